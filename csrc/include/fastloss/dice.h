// Dice loss (fastloss.dice_loss). For each sample n (first axis), and each class c when the
// call names a class axis, over the sample's positions i (every other element):
//     I = sum_i p_i t_i,   P = sum_i p_i^k,   T = sum_i t_i^k,   k = 2 if squared else 1,
//     loss_nc = w_c (1 - (2 I + smooth_nr) / (P + T + smooth_dr))
// MONAI's options (DiceLoss): jaccard takes the denominator 2 (P + T - I) + smooth_dr; batch
// sums I, P, T over the samples first (one bucket per class); include_background=False
// leaves class 0 out of the loss (the softmax still runs over every class); w the per-class
// weight (1 without one).
// p = activation(x): x itself, sigmoid(x), or softmax(x) over the class axis; t the float
// targets, or one-hot(labels) for integer labels (never materialised). Both sums 0 with
// smooth = 0 (an empty prediction of an empty target) gives 0, with a zero gradient.
// Gradient w.r.t. x (scale s of the reduction times w_c, D the denominator, Nm = 2 I + smooth_nr):
//     dloss/dp_i = s (-2 t_i / D + k p_i^(k-1) Nm / D^2) = a_nc t_i + b_nc p_i^(k-1)
//     (jaccard: s (-2 t_i / D + 2 (k p_i^(k-1) - t_i) Nm / D^2), the same form; dice_bucket)
// then through the activation: sigmoid' = p (1 - p); softmax: p_c (g_c - sum_j p_j g_j).
// Kernels take two passes over x: the sums, then (with a gradient) the gradient, the
// activation recomputed rather than stored.
#pragma once
#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {

enum class DiceActivation { none, sigmoid, softmax };

struct DiceParams {
  // Canonical views (dice_layout): inputs (N, positions..., C) with the class axis last (a
  // size-1, stride-0 class dimension without an axis) and at least one position dimension
  // (a size-1, stride-0 one when the sample has no other axis). Float targets are laid out
  // like inputs; integer labels as (N, positions...).
  TensorView inputs, targets;
  bool int_targets = false;
  bool per_class = false;  // axis given: one value per (sample, class)
  DiceActivation activation = DiceActivation::none;
  double smooth = 1.0;                     // smooth_nr and smooth_dr unless given
  double smooth_nr = 1.0, smooth_dr = 1.0;  // set by the caller (both = smooth by default)
  bool squared = false;
  bool jaccard = false;
  bool batch = false;
  int64_t first_class = 0;        // 1: include_background=False (class 0 left out)
  TensorView weight = none_view();  // float64 (C - first_class,) class weights, or none
  double weight_scalar = 1.0;       // a scalar weight (every class)
  Reduction reduction = Reduction::mean;
  TensorView loss;                // "none": (N,) or (N, C'); batch: () or (C',); else 0-d
  TensorView grad = none_view();  // canonical like inputs
};

// Checks the user's arrays and options (ValueError/TypeError naming the argument) and fills
// p.inputs/p.targets/p.int_targets/p.per_class with the canonical views. axis < 0: none
// (already normalised otherwise). p.activation, smooth must be set first.
void dice_layout(DiceParams& p, const TensorView& inputs, const TensorView& targets, int axis);
// The gradient array (shaped like the user's inputs) in the canonical layout of inputs.
TensorView dice_canonical_grad(const TensorView& grad, int axis);
// Shape of the "none" loss: (N,) or (N, C') (C' = C - first_class), without the N with batch.
// Call after dice_layout (it reads first_class and batch).
void dice_loss_shape(const DiceParams& p, const TensorView& inputs, int axis, int64_t* shape, int* ndim);

// The (sample, class) buckets' loss values count kept ones; the mean's denominator.
inline int64_t dice_kept_buckets(const DiceParams& p, int64_t N, int64_t C) {
  const int64_t classes = C - p.first_class > 0 ? C - p.first_class : 0;
  return (p.batch ? 1 : N) * (p.per_class ? classes : 1);
}

#if defined(__CUDACC__) || defined(FASTLOSS_CUDA_EMU)
#define FASTLOSS_DICE_HD __host__ __device__
#else
#define FASTLOSS_DICE_HD
#endif

// One bucket's loss (weighted) and gradient coefficients from its sums; sw = scale * weight.
// Both the denominator and the numerator 0 (smooth 0, nothing predicted, nothing there) give
// 0. A coefficient multiplying only zeros is 0 (a = -2 s / D overflows the compute type for
// a denormal D, e.g. a float32 softmax probability of exp(-100), and inf * 0 is NaN).
struct DiceBucket {
  double loss, a, b;
};
static inline FASTLOSS_DICE_HD DiceBucket dice_bucket(double I, double P, double T, double smooth_nr,
                                                      double smooth_dr, bool jaccard, bool squared, double w,
                                                      double sw) {
  DiceBucket r;
  const double D = jaccard ? 2.0 * (P + T - I) + smooth_dr : P + T + smooth_dr, Nm = 2.0 * I + smooth_nr;
  const double k = squared ? 2.0 : 1.0;
  if (D == 0.0 && Nm == 0.0) {
    r.loss = r.a = r.b = 0.0;
    return r;
  }
  r.loss = w * (1.0 - Nm / D);
  const double q = Nm / D;  // Nm / D^2 = q / D
  r.a = T == 0.0 ? 0.0 : jaccard ? -2.0 * sw * (1.0 + q) / D : -2.0 * sw / D;
  r.b = Nm == 0.0 ? 0.0 : (jaccard ? 2.0 : 1.0) * k * sw * q / D;
  return r;
}

namespace cpu {
void dice_loss(const DiceParams& p);
}  // namespace cpu

namespace cuda {
// Device scratch for one call: a 64-byte header (the label flag), then per (sample, class)
// bucket the sums I, P, T, the gradient coefficients a, b and the loss, as doubles.
inline size_t dice_workspace_bytes(const DiceParams& p) {
  // (batch over no sample still has one loss per class)
  const int64_t N = p.inputs.shape[0] > 0 ? p.inputs.shape[0] : 1;
  const int64_t B = N * p.inputs.shape[p.inputs.ndim - 1];
  return 64 + 6 * 8 * static_cast<size_t>(B);
}
void dice_loss(const DiceParams& p, void* stream, void* workspace);
}  // namespace cuda

}  // namespace fastloss

FASTLOSS_CPU_KERNEL_DECL(void, dice_loss, (const ::fastloss::DiceParams&))
