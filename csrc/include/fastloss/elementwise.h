// Elementwise losses: each output element depends on one prediction and one target. One
// parameter block and one engine for all of them (CPU: csrc/cpu/elementwise.cpp; CUDA:
// csrc/cuda/elementwise.cu); the math of each loss is a functor in elementwise_losses.h.
#pragma once
#include <cstddef>
#include <cstdint>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {

// Every elementwise loss, in one list: X(enum name, functor in elementwise_losses.h).
// Adding a loss: a functor, a line here, its options in check_elementwise_params, a binding.
#define FASTLOSS_ELEMENTWISE_LOSSES(X)                                  \
  X(sigmoid_cross_entropy, SigmoidCrossEntropy)                         \
  X(balanced_sigmoid_cross_entropy, BalancedSigmoidCrossEntropy)        \
  X(sigmoid_focal_loss, SigmoidFocal)                                   \
  X(truncated_sigmoid_cross_entropy, TruncatedSigmoidCrossEntropy)      \
  X(hinge_loss, Hinge)                                                  \
  X(kl_div, KlDiv)                                                      \
  X(mse_loss, Mse)                                                      \
  X(l1_loss, L1)                                                        \
  X(huber_loss, Huber)                                                  \
  X(smooth_l1_loss, SmoothL1)                                           \
  X(log_cosh_loss, LogCosh)

enum class ElementwiseLoss {
#define FASTLOSS_ENUM_ENTRY(name, functor) name,
  FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_ENUM_ENTRY)
#undef FASTLOSS_ENUM_ENTRY
};

const char* elementwise_loss_name(ElementwiseLoss loss);

struct ElementwiseParams {
  ElementwiseLoss kind = ElementwiseLoss::mse_loss;
  // Names of the two inputs in messages ("pred"/"target", "logits"/"targets", ...).
  const char* pred_name = "pred";
  const char* target_name = "target";
  TensorView pred;
  TensorView target;                    // shape of pred
  TensorView weight = none_view();      // broadcasts to pred (check_ turns it into pred's shape, zero strides)
  TensorView pos_weight = none_view();  // sigmoid_cross_entropy only; broadcasts likewise (usually (C,))
  // Options (those a loss does not use are ignored): alpha/gamma (focal), margin/softness
  // (truncated, with softness when `soft`; hinge: margin), delta (huber), beta (smooth L1,
  // balanced), log_target (kl_div), squared (hinge).
  double alpha = 0.25, gamma = 2.0, margin = 1.0, softness = 0.0, delta = 1.0, beta = 1.0;
  bool log_target = false, squared = false;
  bool soft = false;                    // truncated: soft truncation with `softness`
  bool beta_from_targets = false;       // balanced CE with beta=None: fraction of zero targets
  Reduction reduction = Reduction::mean;
  bool batchmean = false;               // kl_div: "batchmean" (sum / pred.shape[0])
  TensorView loss;                      // 0-d for mean/sum, pred's shape for none
  TensorView grad = none_view();        // pred's shape and dtype, or none
  // CUDA only: the stream (cudaStream_t) and a device workspace of
  // elementwise_workspace_bytes() bytes; ignored on the CPU.
  void* stream = nullptr;
  void* workspace = nullptr;
};

// Per-call constants a functor reads (filled by check_elementwise_params from the options;
// the engine converts them to the compute type). `n` is a small integer option: focal's
// integer gamma (or -1), smooth L1's beta==0 flag, hinge's squared flag, kl's log_target.
struct ElementwiseConsts {
  double a = 0, b = 0, c = 0;
  int n = 0;
};

// Validates shapes, dtypes and options for both devices (throws fastloss::Error naming the
// argument) and broadcasts weight/pos_weight to pred's shape. Returns the functor constants
// (balanced CE's beta from the call is filled in later, by the engine's first pass).
ElementwiseConsts check_elementwise_params(ElementwiseParams& p);

// Elements the "mean" reduction divides by (numel, or shape[0] for batchmean).
int64_t elementwise_denominator(const ElementwiseParams& p);

// What the engine's first pass counts over the targets: balanced CE's beta (zeros / n) and
// hinge's label check (every label in {-1, 0, 1}, never both -1 and 0).
struct TargetStats {
  int64_t zeros = 0, ones = 0, minus_ones = 0, others = 0;
  int64_t first_other = -1;      // flat index of the first label outside {-1, 0, 1}
  double first_other_value = 0;
};
// Throws the ValueError for hinge labels that `s` shows are invalid (shared by CPU and CUDA).
void check_hinge_labels(const ElementwiseParams& p, const TargetStats& s);

namespace cpu {
// Checks, the first pass where the loss needs one, then the fused loss (+ gradient) pass.
void elementwise_loss(ElementwiseParams& p);
}  // namespace cpu

namespace cuda {
size_t elementwise_workspace_bytes(int64_t numel);
void elementwise_loss(ElementwiseParams& p);
}  // namespace cuda

}  // namespace fastloss

// Per-ISA kernels: the target statistics pass and the loss pass (consts already final).
FASTLOSS_CPU_KERNEL_DECL(::fastloss::TargetStats, elementwise_target_stats, (const ::fastloss::ElementwiseParams&))
FASTLOSS_CPU_KERNEL_DECL(void, elementwise_run, (const ::fastloss::ElementwiseParams&, const ::fastloss::ElementwiseConsts&))
