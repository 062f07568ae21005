// Dice loss (fastloss.dice_loss). For each sample n (first axis), and each class c when the
// call names a class axis, over the sample's positions i (every other element):
//     I = sum_i p_i t_i,   P = sum_i p_i^k,   T = sum_i t_i^k,   k = 2 if squared else 1,
//     loss_nc = 1 - (2 I + smooth) / (P + T + smooth)
// p = activation(x): x itself, sigmoid(x), or softmax(x) over the class axis; t the float
// targets, or one-hot(labels) for integer labels (never materialised). Both sums 0 with
// smooth = 0 (an empty prediction of an empty target) gives 0, with a zero gradient.
// Gradient w.r.t. x (scale s of the reduction, D = P + T + smooth, Nm = 2 I + smooth):
//     dloss/dp_i = s (-2 t_i / D + k p_i^(k-1) Nm / D^2) = a_nc t_i + b_nc p_i^(k-1)
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
  double smooth = 1.0;
  bool squared = false;
  Reduction reduction = Reduction::mean;
  TensorView loss;                // "none": (N,) or (N, C); else 0-d
  TensorView grad = none_view();  // canonical like inputs
};

// Checks the user's arrays and options (ValueError/TypeError naming the argument) and fills
// p.inputs/p.targets/p.int_targets/p.per_class with the canonical views. axis < 0: none
// (already normalised otherwise). p.activation, smooth must be set first.
void dice_layout(DiceParams& p, const TensorView& inputs, const TensorView& targets, int axis);
// The gradient array (shaped like the user's inputs) in the canonical layout of inputs.
TensorView dice_canonical_grad(const TensorView& grad, int axis);
// Shape of the "none" loss: (N,) or (N, C).
void dice_loss_shape(const TensorView& inputs, int axis, int64_t* shape, int* ndim);

namespace cpu {
void dice_loss(const DiceParams& p);
}  // namespace cpu

namespace cuda {
// Device scratch for one call: a 64-byte header (the label flag), then per (sample, class)
// bucket the sums I, P, T, the gradient coefficients a, b and the loss, as doubles.
inline size_t dice_workspace_bytes(const DiceParams& p) {
  const int64_t B = p.inputs.shape[0] * p.inputs.shape[p.inputs.ndim - 1];
  return 64 + 6 * 8 * static_cast<size_t>(B);
}
void dice_loss(const DiceParams& p, void* stream, void* workspace);
}  // namespace cuda

}  // namespace fastloss

FASTLOSS_CPU_KERNEL_DECL(void, dice_loss, (const ::fastloss::DiceParams&))
