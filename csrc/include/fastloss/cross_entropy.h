// Softmax cross-entropy and NLL: one parameter block, the same entry points on CPU and CUDA.
#pragma once
#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {

struct CrossEntropyParams {
  // Class axis already moved last: logits (rows..., C).
  TensorView logits;
  // Integer labels (rows...) or, with soft_labels, float probabilities shaped like logits.
  TensorView labels;
  bool soft_labels = false;
  TensorView weight = none_view();  // (C,) or none
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  double z_loss = 0.0;
  Reduction reduction = Reduction::mean;
  TensorView loss;                  // 0-d for mean/sum, (rows...) for none
  TensorView grad = none_view();    // like logits, or none
  // CUDA only: the stream (cudaStream_t) and a device workspace the caller allocated with
  // cross_entropy_workspace_bytes(); ignored on the CPU.
  void* stream = nullptr;
  void* workspace = nullptr;
};

// Validates shapes shared by both devices (throws fastloss::Error naming the argument).
void check_cross_entropy_params(const CrossEntropyParams& p, bool nll);

namespace cpu {
void softmax_cross_entropy(const CrossEntropyParams& p);
void nll_loss(const CrossEntropyParams& p);
}  // namespace cpu

namespace cuda {
size_t cross_entropy_workspace_bytes(const CrossEntropyParams& p);
void softmax_cross_entropy(const CrossEntropyParams& p);
void nll_loss(const CrossEntropyParams& p);
// Shared-memory budget per block for holding rows on chip (tests: force each cluster size);
// 0 restores the default, a negative value turns the row cache off.
void set_row_cache_bytes(int64_t bytes);
// What the last long-row call with a gradient did (tests: a cached launch the GPU refuses
// falls back silently, so only this shows it): the cluster size planned (0: not cached),
// the cluster size launched (0: fell back to the two-read kernel), and whether the device
// and the build allow clusters.
struct RowCacheChoice {
  int planned = -1, launched = -1;
  bool clusters = false;
};
RowCacheChoice last_row_cache_choice();
}  // namespace cuda

}  // namespace fastloss

FASTLOSS_CPU_KERNEL_DECL(void, softmax_cross_entropy, (const ::fastloss::CrossEntropyParams&))
FASTLOSS_CPU_KERNEL_DECL(void, nll_loss, (const ::fastloss::CrossEntropyParams&))
