#!/usr/bin/env bash
# The CPU module under AddressSanitizer + UndefinedBehaviorSanitizer: the fuzz harness and the
# error-path tests. Any report fails the run (ASan aborts on its first report; UBSan is told to
# halt; the log is also searched, for reports from child processes).
#
#   tools/sanitize.sh                  build (build/sanitize) and run
#   FASTLOSS_SANITIZE_FUZZ_SECONDS=N   fuzz budget (default 150)
#
# Python is not instrumented, so the runtimes are preloaded: libasan, and libstdc++ with it
# (otherwise ASan's __cxa_throw interceptor aborts on the first C++ exception). Leak checking
# is off: CPython keeps its allocations alive at exit by design.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build/sanitize"
PKG="$BUILD/pkg"
LOG="$BUILD/sanitize.log"
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# (No LTO: pybind11 would otherwise link the instrumented module with -flto, minutes longer.)
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DFASTLOSS_CUDA=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS="$SAN -g1" -DCMAKE_MODULE_LINKER_FLAGS="$SAN" -DCMAKE_SHARED_LINKER_FLAGS="$SAN" \
  -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER} \
  -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build "$BUILD" -j2
# The package from this tree with the sanitized module (python/fastloss is left alone).
rm -rf "$PKG" && mkdir -p "$PKG/fastloss"
cp "$ROOT"/python/fastloss/*.py "$PKG/fastloss/"
cp "$BUILD"/_C*.so "$PKG/fastloss/"

export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so.6)"
export ASAN_OPTIONS=detect_leaks=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$PKG"
export FASTLOSS_NUM_THREADS=2
export FASTLOSS_FUZZ_SANITIZER=1  # fuzz_specs.KNOWN entries marked skip="sanitizer" are not run
cd "$ROOT"
run_all() {
  local s=0
  python3 tools/fuzz.py --seconds "${FASTLOSS_SANITIZE_FUZZ_SECONDS:-150}" --seed 20261202 || s=1
  # Error paths: every test that feeds bad arguments, and the robustness regressions.
  python3 -m pytest -q -p no:cacheprovider tests/test_robustness.py tests/test_ctc.py tests/test_cross_entropy.py \
    tests/test_edit_distance.py -k "robustness or bad or error or wrong or invalid or overflow or good_call" || s=1
  return $s
}
set +e
run_all 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$LOG"; then
  echo "sanitize.sh: sanitizer reports in $LOG" >&2
  status=1
fi
exit $status
