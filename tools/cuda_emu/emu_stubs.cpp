// Emulation stubs for the CUDA runtime queries (tools/cuda_emu); the kernels themselves are
// the real csrc/cuda/*.cu files with their launches rewritten.
#include <string>
namespace fastloss { namespace cuda {
int device_count() { return 1; }
std::string runtime_version() { return "emulated"; }
int driver_version() { return 0; }
} }
