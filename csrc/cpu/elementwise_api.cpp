// Argument checks shared by the CPU and CUDA elementwise losses, and the CPU entry point
// (first pass where a loss needs one, then the per-ISA loss pass).
#include <cmath>
#include <string>

#include "fastloss/elementwise.h"

namespace fastloss {
namespace {

bool same_shape(const TensorView& a, const TensorView& b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; ++i)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}

// `v` viewed with `like`'s shape (NumPy broadcasting: trailing dims aligned, size-1 or
// missing dims repeat through a zero stride); a ValueError naming `name` if it cannot.
TensorView broadcast_to(const TensorView& v, const TensorView& like, const char* name, const char* like_name) {
  if (!is_float(v.dtype)) throw_type(std::string(name) + " must be a float array, got " + dtype_name(v.dtype));
  bool ok = v.ndim <= like.ndim;
  TensorView b = v;
  b.ndim = like.ndim;
  for (int i = 0; ok && i < like.ndim; ++i) {
    const int j = i - (like.ndim - v.ndim);
    b.shape[i] = like.shape[i];
    if (j < 0) b.strides[i] = 0;
    else if (v.shape[j] == like.shape[i]) b.strides[i] = v.strides[j];
    else if (v.shape[j] == 1) b.strides[i] = 0;
    else ok = false;
  }
  if (!ok)
    throw_value(std::string(name) + " of shape " + shape_string(v) + " does not broadcast to the shape of " +
                like_name + " " + shape_string(like));
  return b;
}

}  // namespace

const char* elementwise_loss_name(ElementwiseLoss loss) {
  switch (loss) {
#define FASTLOSS_NAME_ENTRY(name, functor) \
  case ElementwiseLoss::name: return #name;
    FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_NAME_ENTRY)
#undef FASTLOSS_NAME_ENTRY
  }
  return "?";
}

ElementwiseConsts check_elementwise_params(ElementwiseParams& p) {
  const std::string x = p.pred_name, t = p.target_name;
  if (!is_float(p.pred.dtype))
    throw_type(x + " must be float16, float32 or float64, got " + dtype_name(p.pred.dtype));
  if (!is_float(p.target.dtype)) throw_type(t + " must be a float array, got " + dtype_name(p.target.dtype));
  if (!same_shape(p.target, p.pred))
    throw_value(t + " must have the shape of " + x + " " + shape_string(p.pred) + ", got " + shape_string(p.target));
  if (!is_none(p.weight)) p.weight = broadcast_to(p.weight, p.pred, "weight", p.pred_name);
  if (!is_none(p.pos_weight)) p.pos_weight = broadcast_to(p.pos_weight, p.pred, "pos_weight", p.pred_name);
  if (p.reduction == Reduction::none ? !same_shape(p.loss, p.pred) : p.loss.ndim != 0)
    throw_value("loss output has the wrong shape " + shape_string(p.loss));
  if (!is_none(p.grad)) {
    if (!same_shape(p.grad, p.pred))
      throw_value("grad_out must have the shape of " + x + " " + shape_string(p.pred) + ", got " + shape_string(p.grad));
    if (p.grad.dtype != p.pred.dtype)
      throw_type("grad_out must have the dtype of " + x + " (" + dtype_name(p.pred.dtype) + "), got " +
                 dtype_name(p.grad.dtype));
  }
  if (p.batchmean && p.kind != ElementwiseLoss::kl_div) throw_value("reduction 'batchmean' is only for kl_div");

  ElementwiseConsts k;
  switch (p.kind) {
    case ElementwiseLoss::balanced_sigmoid_cross_entropy:
      if (!p.beta_from_targets && !(p.beta >= 0.0 && p.beta <= 1.0))
        throw_value("beta must be in [0, 1] (or None: the fraction of negatives), got " + number_string(p.beta));
      k.a = p.beta;
      break;
    case ElementwiseLoss::sigmoid_focal_loss:
      if (!(p.gamma >= 0.0) || std::isinf(p.gamma)) throw_value("gamma must be a finite number >= 0, got " + number_string(p.gamma));
      if (std::isnan(p.alpha)) throw_value("alpha must be a number (< 0 disables it), got nan");
      k.a = p.alpha;
      k.b = p.gamma;
      k.n = p.gamma == std::floor(p.gamma) && p.gamma <= 8 ? static_cast<int>(p.gamma) : -1;
      break;
    case ElementwiseLoss::truncated_sigmoid_cross_entropy:
      if (!(p.margin >= 0.0 && p.margin <= 1.0)) throw_value("margin must be in [0, 1], got " + number_string(p.margin));
      if (p.soft && (!(p.softness > 0.0) || std::isinf(p.softness)))
        throw_value("softness must be a finite number > 0 (or None for hard truncation), got " + number_string(p.softness));
      k.a = p.margin;
      k.b = p.soft ? p.softness : 0.0;
      k.n = p.soft ? 1 : 0;
      break;
    case ElementwiseLoss::hinge_loss:
      if (!std::isfinite(p.margin)) throw_value("margin must be finite, got " + number_string(p.margin));
      k.a = p.margin;
      k.n = p.squared ? 1 : 0;
      break;
    case ElementwiseLoss::kl_div:
      k.n = p.log_target ? 1 : 0;
      break;
    case ElementwiseLoss::huber_loss:
      if (!(p.delta > 0.0)) throw_value("delta must be > 0, got " + number_string(p.delta));
      k.a = p.delta;
      break;
    case ElementwiseLoss::smooth_l1_loss:
      if (!(p.beta >= 0.0)) throw_value("beta must be >= 0, got " + number_string(p.beta));
      k.a = p.beta;
      k.b = p.beta > 0 ? 1.0 / p.beta : 0.0;
      k.n = p.beta == 0.0 ? 1 : 0;
      break;
    default:
      break;
  }
  return k;
}

int64_t elementwise_denominator(const ElementwiseParams& p) {
  if (p.batchmean) return p.pred.ndim ? p.pred.shape[0] : 1;
  return p.pred.numel();
}

void check_hinge_labels(const ElementwiseParams& p, const TargetStats& s) {
  if (s.others)
    throw_value(std::string(p.target_name) + index_string(p.pred.shape, p.pred.ndim, s.first_other) + " = " +
                number_string(s.first_other_value) + ": labels must be in {-1, +1} or {0, 1}");
  if (s.minus_ones && s.zeros)
    throw_value(std::string(p.target_name) + " mixes -1 and 0 (" + std::to_string(s.minus_ones) + " and " +
                std::to_string(s.zeros) + " of them): labels must be in {-1, +1} or {0, 1}");
}

namespace cpu {
namespace {
TargetStats target_stats(const ElementwiseParams& p) { FASTLOSS_CPU_DISPATCH(elementwise_target_stats, p); }
void run(const ElementwiseParams& p, const ElementwiseConsts& k) { FASTLOSS_CPU_DISPATCH(elementwise_run, p, k); }
}  // namespace

void elementwise_loss(ElementwiseParams& p) {
  ElementwiseConsts k = check_elementwise_params(p);
  const bool balanced_auto = p.kind == ElementwiseLoss::balanced_sigmoid_cross_entropy && p.beta_from_targets;
  if (balanced_auto || p.kind == ElementwiseLoss::hinge_loss) {
    const TargetStats s = target_stats(p);
    if (p.kind == ElementwiseLoss::hinge_loss) check_hinge_labels(p, s);
    const int64_t n = p.pred.numel();
    if (balanced_auto) k.a = n ? static_cast<double>(s.zeros) / static_cast<double>(n) : 0.0;
  }
  run(p, k);
}
}  // namespace cpu

}  // namespace fastloss
