#!/usr/bin/env bash
# Everything a GPU-lent session needs, in one device call (the lease is short; a fresh machine
# takes minutes to start): build with CUDA for the GPU present, run every CUDA test case on
# it, then the three GPU benchmarks. Outputs go to $OUT (the device tool brings them back).
#
#   run(command="bash tools/gpu_check.sh", carry=[".wheels"])
#
# The GPU image has torch (CUDA), CuPy, pytest, hypothesis, scipy, pybind11 and
# scikit-build-core but no network: rapidfuzz and jiwer (edit-distance oracles) come from
# .wheels/ when carried (pip download --only-binary=:all: --python-version 3.12
# --platform manylinux2014_x86_64 rapidfuzz jiwer -d .wheels); without them the
# edit-distance test module is skipped and says so.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/fastloss_gpu}
mkdir -p "$OUT"
cd "$REPO"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee "$OUT/gpu.txt"
if [ -d .wheels ]; then python3 -m pip install -q --no-index --find-links .wheels rapidfuzz jiwer 2>&1 | tail -2; fi
CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
export FASTLOSS_CUDA_ARCHITECTURES=${FASTLOSS_CUDA_ARCHITECTURES:-$CC} FASTLOSS_CUDA=ON
if ! python3 -m pip install -v --no-build-isolation --no-deps . >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  exit 1
fi
cd /tmp  # import the installed package, not the source tree
python3 -c "import fastloss; print(fastloss.build_info()); print('cuda_available', fastloss.cuda_available())" | tee -a "$OUT/gpu.txt"
timeout 420 python3 -m pytest -q -p no:cacheprovider "$REPO/tests" -k "TestCuda or cupy or rowwise_cuda" 2>&1 | tail -40 | tee "$OUT/tests.txt"
timeout 240 python3 "$REPO/bench/compare_cross_entropy.py" --gpu --repeat 10 2>&1 | tee "$OUT/bench_cross_entropy.txt"
timeout 180 python3 "$REPO/bench/compare_ctc.py" --gpu-only --repeats 20 2>&1 | tee "$OUT/bench_ctc.txt"
timeout 180 python3 "$REPO/bench/compare_edit_distance.py" --gpu-only --repeats 10 2>&1 | tee "$OUT/bench_edit_distance.txt"
