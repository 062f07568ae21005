#!/usr/bin/env bash
# Runs the CUDA kernels on the CPU, for sessions without a GPU: every block is
# blockDim std::threads with a real barrier for __syncthreads (warp shuffles go through
# shared memory and the barrier), blocks run one after another, "device" memory is host
# memory, and a fake `cupy` (NumPy arrays dressed as device arrays) drives the real Python
# CuPy path and binding. Catches indexing, synchronisation and logic errors; it does not
# model --use_fast_math precision, real warp scheduling or performance.
#
#   tools/cuda_emu/run.sh [pytest args...]      (builds the CPU core in build/dev if missing)
# Every csrc/cuda/*.cu (but runtime.cu) is emulated and every binding linked.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/cuda_emu"
OUT="$ROOT/build/cuda_emu"
mkdir -p "$OUT/pkg/fastloss" "$OUT/pkg/cupy"
if [ ! -f "$ROOT/build/dev/libfastloss_core.a" ]; then
  cmake -S "$ROOT" -B "$ROOT/build/dev" -DFASTLOSS_CUDA=OFF -DFASTLOSS_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$ROOT/build/dev" -j 2 --target fastloss_core >/dev/null
fi
EMU_SOURCES=()
for cu in "$ROOT"/csrc/cuda/*.cu; do
  name=$(basename "$cu" .cu)
  [ "$name" = runtime ] && continue  # device queries come from emu_stubs.cpp
  python3 "$HERE/rewrite_launches.py" "$cu" "$OUT/${name}_emu.cpp" "$ROOT/csrc/cuda"
  EMU_SOURCES+=("$OUT/${name}_emu.cpp")
done
PYINC=$(python3 -c "import sysconfig;print(sysconfig.get_paths()['include'])")
PBINC=$(python3 -c "import pybind11;print(pybind11.get_include())")
SUFFIX=$(python3 -c "import sysconfig;print(sysconfig.get_config_var('EXT_SUFFIX'))")
g++ -std=c++20 -O1 -fPIC -shared -fopenmp -mf16c -I "$HERE/shim" -I "$ROOT/csrc/include" -I "$ROOT/csrc/bindings" \
  -I "$PYINC" -I "$PBINC" -DFASTLOSS_WITH_CUDA=1 -DFASTLOSS_CUDA_VERSION_STRING='"emulated"' \
  -DFASTLOSS_CUDA_ARCHS_STRING='"emulated"' -DFASTLOSS_COMPILER_STRING='"emulated"' \
  "${EMU_SOURCES[@]}" "$HERE/emu_stubs.cpp" "$ROOT"/csrc/bindings/*.cpp \
  "$ROOT/build/dev/libfastloss_core.a" -o "$OUT/pkg/fastloss/_C$SUFFIX"
cp "$ROOT"/python/fastloss/*.py "$OUT/pkg/fastloss/"
cp "$HERE/cupy/__init__.py" "$OUT/pkg/cupy/"
# The CUDA cases of every test file: the TestCuda classes and the tests parametrized over
# backend=cupy (pass -k to narrow).
cd "$OUT" && PYTHONPATH="$OUT/pkg" python3 -m pytest "$ROOT/tests" -q -p no:cacheprovider -k "TestCuda or cupy" "$@"
