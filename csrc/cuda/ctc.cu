// CTC loss for CuPy arrays (placeholder until the kernel lands).
#include "cuda_common.cuh"
#include "fastloss/ctc.h"

namespace fastloss {
namespace cuda {
void ctc_loss(const CtcParams&) { throw Error(ErrorKind::runtime, "ctc_loss: CUDA kernel not implemented yet"); }
}  // namespace cuda
}  // namespace fastloss
