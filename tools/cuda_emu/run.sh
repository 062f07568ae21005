#!/usr/bin/env bash
# Runs the CUDA kernels on the CPU, for sessions without a GPU: every block is
# blockDim std::threads with a real barrier for __syncthreads (warp shuffles go through
# shared memory and the barrier), blocks run one after another, "device" memory is host
# memory, and a fake `cupy` (NumPy arrays dressed as device arrays) drives the real Python
# CuPy path and binding. Catches indexing, synchronisation and logic errors, and launches
# the GPU would refuse; it does not model --use_fast_math precision, real warp scheduling
# or performance.
#
#   tools/cuda_emu/run.sh [pytest args...]
#       every CUDA test case (TestCuda classes, cases parametrized over cupy); a -k of your
#       own replaces that selection. Builds the CPU core in build/dev (incrementally), and the
#       emulated module when a source changed.
#   FASTLOSS_EMU_CC=8 ...     an A100 instead of an H100: no clusters, 163 KB shared memory
#   FASTLOSS_EMU_PTX=80 ...   an H100 running code built for sm_80 only (cluster code traps)
#   FASTLOSS_EMU_TSAN=1 ...   under ThreadSanitizer: a GPU thread is a std::thread and
#       __syncthreads / cluster.sync() / shuffles are barriers, so TSan reports shared- or
#       global-memory accesses that no barrier orders (like compute-sanitizer's racecheck).
#       Slow: narrow it with -k.
# Every csrc/cuda/*.cu (but runtime.cu) is emulated and every binding linked.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/cuda_emu"
OUT="$ROOT/build/cuda_emu"
SAN=()
PYTHON=python3
if [ "${FASTLOSS_EMU_TSAN:-0}" = 1 ]; then
  OUT="$ROOT/build/cuda_emu_tsan"
  SAN=(-fsanitize=thread)
  # libgomp is not TSan-aware (its fork/join looks like a race): CPU paths on one thread.
  # pytest captures stderr, so reports go to files ($OUT/tsan.PID).
  export OMP_NUM_THREADS=1 FASTLOSS_NUM_THREADS=1
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 report_signal_unsafe=0 log_path=$OUT/tsan}"
  # The TSan runtime must start with the process (preloading it into python3 crashes), so
  # pytest runs in an interpreter embedded in an instrumented executable.
  PYTHON="$OUT/python"
fi
mkdir -p "$OUT/pkg/fastloss" "$OUT/pkg/cupy"
# The CPU core is rebuilt incrementally every run (a stale core would test old CPU code).
if [ ! -f "$ROOT/build/dev/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$ROOT/build/dev" -DFASTLOSS_CUDA=OFF -DFASTLOSS_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$ROOT/build/dev" -j 2 --target fastloss_core >/dev/null
SUFFIX=$(python3 -c "import sysconfig;print(sysconfig.get_config_var('EXT_SUFFIX'))")
MODULE="$OUT/pkg/fastloss/_C$SUFFIX"
if [ ! -f "$MODULE" ] || [ -n "$(find "$ROOT/csrc" "$HERE" "$ROOT/build/dev/libfastloss_core.a" -type f -newer "$MODULE" | head -1)" ]; then
  EMU_SOURCES=()
  for cu in "$ROOT"/csrc/cuda/*.cu; do
    name=$(basename "$cu" .cu)
    [ "$name" = runtime ] && continue  # device queries come from emu_stubs.cpp
    python3 "$HERE/rewrite_launches.py" "$cu" "$OUT/${name}_emu.cpp" "$ROOT/csrc/cuda"
    EMU_SOURCES+=("$OUT/${name}_emu.cpp")
  done
  PYINC=$(python3 -c "import sysconfig;print(sysconfig.get_paths()['include'])")
  PBINC=$(python3 -c "import pybind11;print(pybind11.get_include())")
  g++ "${SAN[@]}" -std=c++20 -O1 -fPIC -shared -fopenmp -mf16c -I "$HERE/shim" -I "$ROOT/csrc/include" -I "$ROOT/csrc/bindings" \
    -I "$PYINC" -I "$PBINC" -DFASTLOSS_WITH_CUDA=1 -DFASTLOSS_CUDA_VERSION_STRING='"emulated"' \
    -DFASTLOSS_CUDA_ARCHS_STRING='"emulated"' -DFASTLOSS_COMPILER_STRING='"emulated"' \
    "${EMU_SOURCES[@]}" "$HERE/emu_stubs.cpp" "$ROOT"/csrc/bindings/*.cpp \
    "$ROOT/build/dev/libfastloss_core.a" -o "$MODULE"
  if [ ${#SAN[@]} -gt 0 ]; then
    printf '#include <Python.h>\nint main(int c, char** v) { return Py_BytesMain(c, v); }\n' >"$OUT/pymain.cpp"
    g++ -fsanitize=thread "$OUT/pymain.cpp" $(python3-config --includes) $(python3-config --ldflags --embed) -o "$PYTHON"
  fi
fi
cp "$ROOT"/python/fastloss/*.py "$OUT/pkg/fastloss/"
cp "$HERE/cupy/__init__.py" "$OUT/pkg/cupy/"
cd "$OUT" && PYTHONPATH="$OUT/pkg" "$PYTHON" -m pytest "$ROOT/tests" -q -p no:cacheprovider -k "TestCuda or cupy or rowwise_cuda" "$@"
