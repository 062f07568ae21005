// Row-wise losses: softmax focal loss and truncated cross-entropy on the row engine
// (row_engine.h), the divergences (entropy, KL, Jensen-Shannon) of probability rows and the
// multiclass hinge losses. Each row of C logits x (class axis last) with integer label y has
// p = softmax(x) and log p_y = x_y - logsumexp(x); the loss is a function of log p_y alone,
// so its gradient is A (p - onehot(y)) with A = -dloss/dlog p_y.
#pragma once
#include "fastloss/cross_entropy.h"
#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {

// -alpha[y] (1 - p_y)^gamma log p_y.
struct SoftmaxFocalParams {
  // logits, integer labels, ignore_index, reduction, loss, grad (weight: none, no smoothing).
  CrossEntropyParams rows;
  TensorView alpha = none_view();  // (C,) per-class alpha, or none (then alpha_scalar)
  double alpha_scalar = 1.0;
  double gamma = 2.0;
};

// factor * -log p_y: factor = [p_y < margin] (a constant for the gradient) or, with
// softness K, sigmoid(K (margin - p_y)) (differentiated).
struct TruncatedCrossEntropyParams {
  CrossEntropyParams rows;
  double margin = 0.6;
  bool soft = false;     // softness given
  double softness = 0;   // K
};

// Divergences along the last axis of (rows..., C) probability arrays, one value per row, as
// scipy computes them (inputs normalised to sum 1 first; 0 log 0 = 0; sums in float64):
//   entropy:        -sum p log p / log(base)   (-inf where an entry of the normalised row is < 0)
//   kl_divergence:   sum p log(p / q)   (inf where q = 0 < p, or any input is negative)
//   js_divergence:  (KL(p || m) + KL(q || m)) / 2,  m = (p + q) / 2  (scipy's jensenshannon**2,
//                   clamped at 0)
// An empty row gives 0. With gradients, grad_p / grad_q = d(sum of out)/dp and /dq through the
// normalisation, zero entries at their limits (see the CPU kernel for the formulas).
enum class Divergence { entropy, kl, js };
struct DivergenceParams {
  Divergence kind = Divergence::entropy;
  TensorView p, q;   // q: none for entropy
  TensorView out;    // (rows...)
  bool base_given = false;  // entropy's `base` (finite, > 0, != 1); the natural log otherwise
  double base = 0;
  TensorView grad_p = none_view(), grad_q = none_view();  // like p and q, or none (grad_q needs grad_p)
};

// Multiclass hinge of scores (rows..., C) and integer labels y, class weights w (or 1):
//   weston_watkins: w_y / C * sum_{j != y} max(0, margin - s_y + s_j)^p   (torch multi_margin_loss)
//   crammer_singer: w_y * max(0, margin - s_y + max_{j != y} s_j)^p
// "mean" averages over the rows (as torch).
struct MulticlassHingeParams {
  TensorView scores, labels;
  TensorView weight = none_view();
  double margin = 1.0;
  double p = 1;  // 1 or 2
  bool crammer_singer = false;
  Reduction reduction = Reduction::mean;
  TensorView loss, grad = none_view();
};

// Argument checks shared by both devices (fastloss::Error naming the argument).
void check_softmax_focal_params(const SoftmaxFocalParams& p);
void check_truncated_cross_entropy_params(const TruncatedCrossEntropyParams& p);
void check_divergence_params(const DivergenceParams& p);
void check_multiclass_hinge_params(const MulticlassHingeParams& p);

namespace cpu {
void softmax_focal_loss(const SoftmaxFocalParams& p);
void truncated_cross_entropy(const TruncatedCrossEntropyParams& p);
void divergence(const DivergenceParams& p);
void multiclass_hinge_loss(const MulticlassHingeParams& p);
}  // namespace cpu

// --- l2_loss ------------------------------------------------------------------------------
// Euclidean distance of each row of pred and target (rows..., C): w * sqrt(sum_c (x_c - t_c)^2),
// w the row's weight (weight broadcast to the rows' shape, or 1). Gradient w.r.t. pred:
// w (x - t) / d, defined as 0 at a row with d = 0. "mean" averages over the rows.
struct L2LossParams {
  TensorView pred, target;         // (rows..., C), same shape
  TensorView weight = none_view(); // rank <= rows rank; each dimension 1 or the rows' (right-aligned)
  Reduction reduction = Reduction::mean;
  TensorView loss, grad = none_view();
};
void check_l2_loss_params(const L2LossParams& p);
namespace cpu {
void l2_loss(const L2LossParams& p);
}  // namespace cpu

}  // namespace fastloss

FASTLOSS_CPU_KERNEL_DECL(void, l2_loss, (const ::fastloss::L2LossParams&))
FASTLOSS_CPU_KERNEL_DECL(void, softmax_focal_loss, (const ::fastloss::SoftmaxFocalParams&))
FASTLOSS_CPU_KERNEL_DECL(void, truncated_cross_entropy, (const ::fastloss::TruncatedCrossEntropyParams&))
FASTLOSS_CPU_KERNEL_DECL(void, divergence, (const ::fastloss::DivergenceParams&))
FASTLOSS_CPU_KERNEL_DECL(void, multiclass_hinge_loss, (const ::fastloss::MulticlassHingeParams&))

// CUDA entry points (csrc/cuda/rowwise.cu). Focal and truncated CE take the stream and the
// workspace in their CrossEntropyParams; the divergences and the hinge losses take them here.
// The workspace is rowwise_workspace_bytes(rows) of device memory.
namespace fastloss {
namespace cuda {
inline size_t rowwise_workspace_bytes(int64_t rows) { return 64 + 8 * static_cast<size_t>(rows); }
void softmax_focal_loss(const SoftmaxFocalParams& p);
void truncated_cross_entropy(const TruncatedCrossEntropyParams& p);
void divergence(const DivergenceParams& p, void* stream);
void multiclass_hinge_loss(const MulticlassHingeParams& p, void* stream, void* workspace);
// l2_loss: a target in pred's dtype (the binding converts it); workspace as above.
void l2_loss(const L2LossParams& p, void* stream, void* workspace);
}  // namespace cuda
}  // namespace fastloss
