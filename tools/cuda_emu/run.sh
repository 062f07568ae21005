#!/usr/bin/env bash
# Runs the CUDA ctc_loss kernels on the CPU, for sessions without a GPU: every block is
# blockDim std::threads with a real barrier for __syncthreads (warp shuffles go through
# shared memory and the barrier), blocks run one after another, "device" memory is host
# memory, and a fake `cupy` (NumPy arrays dressed as device arrays) drives the real Python
# CuPy path and binding. Catches indexing, synchronisation and logic errors; it does not
# model --use_fast_math precision, real warp scheduling or performance.
#
#   tools/cuda_emu/run.sh [pytest args...]      (needs build/dev from the CPU dev build)
# When module.cpp registers more loss families, add their bind_*.cpp below and stubs for
# their cuda:: entry points to emu_stubs.cpp (or an emulated .cu the same way as ctc.cu).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/cuda_emu"
OUT="$ROOT/build/cuda_emu"
mkdir -p "$OUT/pkg/fastloss" "$OUT/pkg/cupy"
python3 "$HERE/rewrite_launches.py" "$ROOT/csrc/cuda/ctc.cu" "$OUT/ctc_emu.cpp" "$ROOT/csrc/cuda"
PYINC=$(python3 -c "import sysconfig;print(sysconfig.get_paths()['include'])")
PBINC=$(python3 -c "import pybind11;print(pybind11.get_include())")
SUFFIX=$(python3 -c "import sysconfig;print(sysconfig.get_config_var('EXT_SUFFIX'))")
g++ -std=c++20 -O1 -fPIC -shared -fopenmp -mf16c -I "$HERE/shim" -I "$ROOT/csrc/include" -I "$ROOT/csrc/bindings" \
  -I "$PYINC" -I "$PBINC" -DFASTLOSS_WITH_CUDA=1 -DFASTLOSS_CUDA_VERSION_STRING='"emulated"' \
  -DFASTLOSS_CUDA_ARCHS_STRING='"emulated"' -DFASTLOSS_COMPILER_STRING='"emulated"' \
  "$OUT/ctc_emu.cpp" "$HERE/emu_stubs.cpp" "$ROOT/csrc/bindings/module.cpp" "$ROOT/csrc/bindings/bind_cross_entropy.cpp" \
  "$ROOT/csrc/bindings/bind_ctc.cpp" "$ROOT/build/dev/libfastloss_core.a" -o "$OUT/pkg/fastloss/_C$SUFFIX"
cp "$ROOT"/python/fastloss/*.py "$OUT/pkg/fastloss/"
cp "$HERE/cupy/__init__.py" "$OUT/pkg/cupy/"
cd "$OUT" && PYTHONPATH="$OUT/pkg" python3 -m pytest "$ROOT/tests/test_ctc.py" -q -p no:cacheprovider -k TestCuda "$@"
