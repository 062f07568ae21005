#!/usr/bin/env bash
# Cross-compiles the CPU library (fastloss_core) for aarch64 with Debian's cross compiler: off
# x86 only the portable baseline kernels are built (no intrinsics, no -m flags). Then builds
# tools/cross_aarch64/test_kernels.cpp against it and runs it under qemu-user when qemu is there.
#   apt-get install -y g++-aarch64-linux-gnu qemu-user-static     (Debian/Ubuntu, as root)
#   bash tools/cross_aarch64.sh [build dir, default build/aarch64]
# About 2-3 minutes on 2 cores (one SIMD variant instead of three; -O2).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/aarch64}
CXX=${FASTLOSS_CROSS_CXX:-aarch64-linux-gnu-g++}
if ! command -v "$CXX" >/dev/null; then
  echo "cross_aarch64: $CXX not found (apt-get install -y g++-aarch64-linux-gnu)" >&2
  exit 1
fi
mkdir -p "$BUILD"
cat > "$BUILD/toolchain.cmake" <<TOOLCHAIN
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER $CXX)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
TOOLCHAIN
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# -O2 rather than the default -O3 keeps the cross build short; the code is the same code.
cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_TOOLCHAIN_FILE="$BUILD/toolchain.cmake" \
  -DFASTLOSS_BUILD_PYTHON=OFF -DFASTLOSS_CUDA=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
cmake --build "$BUILD" --target fastloss_core -j "${FASTLOSS_CROSS_JOBS:-2}"
"$CXX" -std=c++17 -O1 -Icsrc/include tools/cross_aarch64/test_kernels.cpp "$BUILD/libfastloss_core.a" \
  -fopenmp -pthread -o "$BUILD/test_kernels"
file "$BUILD/test_kernels" 2>/dev/null || true
QEMU=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if [ -z "$QEMU" ]; then
  echo "cross_aarch64: built; qemu-aarch64 not found, the test program was not run (apt-get install -y qemu-user-static)"
  exit 0
fi
"$QEMU" -L /usr/aarch64-linux-gnu "$BUILD/test_kernels"
