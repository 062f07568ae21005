// Emulation stubs for the CUDA entry points other than ctc_loss (tools/cuda_emu).
#include <string>
#include "fastloss/cross_entropy.h"
#include "fastloss/errors.h"
namespace fastloss { namespace cuda {
int device_count() { return 1; }
std::string runtime_version() { return "emulated"; }
int driver_version() { return 0; }
void softmax_cross_entropy(const CrossEntropyParams&) { throw Error(ErrorKind::runtime, "emu: not available"); }
void nll_loss(const CrossEntropyParams&) { throw Error(ErrorKind::runtime, "emu: not available"); }
size_t cross_entropy_workspace_bytes(const CrossEntropyParams&) { return 0; }
} }
