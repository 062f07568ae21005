// Argument checks of the row-wise losses (shared by CPU and CUDA entry points) and the CPU
// dispatch.
#include <cmath>
#include <string>

#include "fastloss/rowwise.h"

namespace fastloss {
namespace {

// The label-row part: integer labels shaped like logits without the class axis, no class
// weights or smoothing (these losses have their own per-class factors).
void check_label_rows(const CrossEntropyParams& p) {
  if (p.soft_labels || !is_none(p.weight) || p.label_smoothing != 0.0 || p.z_loss != 0.0)
    throw_value("internal: row-engine losses take integer labels only");
  check_cross_entropy_params(p, false);
}

}  // namespace

void check_softmax_focal_params(const SoftmaxFocalParams& p) {
  check_label_rows(p.rows);
  if (!(p.gamma >= 0.0) || std::isinf(p.gamma)) throw_value("gamma must be a finite number >= 0, got " + number_string(p.gamma));
  if (!is_none(p.alpha)) {
    const int64_t C = p.rows.logits.shape[p.rows.logits.ndim - 1];
    if (!is_float(p.alpha.dtype)) throw_type(std::string("alpha must be a float array, got ") + dtype_name(p.alpha.dtype));
    if (p.alpha.ndim != 1 || p.alpha.shape[0] != C)
      throw_value("alpha must be a scalar or have shape (" + std::to_string(C) + ",) (one per class), got " +
                  shape_string(p.alpha));
  }
}

void check_truncated_cross_entropy_params(const TruncatedCrossEntropyParams& p) {
  check_label_rows(p.rows);
  if (!std::isfinite(p.margin)) throw_value("margin must be a finite number, got " + number_string(p.margin));
  if (p.soft && !(p.softness > 0.0 && std::isfinite(p.softness)))
    throw_value("softness must be None or a finite number > 0, got " + number_string(p.softness));
}

void check_divergence_params(const DivergenceParams& p) {
  const bool two = p.kind != Divergence::entropy;
  if (!is_float(p.p.dtype)) throw_type(std::string("p must be float16, float32 or float64, got ") + dtype_name(p.p.dtype));
  if (p.p.ndim < 1) throw_value("p must have at least one dimension (the axis summed over)");
  if (two) {
    if (!is_float(p.q.dtype)) throw_type(std::string("q must be float16, float32 or float64, got ") + dtype_name(p.q.dtype));
    bool same = p.q.ndim == p.p.ndim;
    for (int i = 0; same && i < p.p.ndim; ++i) same = p.q.shape[i] == p.p.shape[i];
    if (!same) throw_value("q must have the shape of p " + shape_string(p.p) + ", got " + shape_string(p.q));
    if (p.q.dtype != p.p.dtype)
      throw_type(std::string("q must have the dtype of p (") + dtype_name(p.p.dtype) + "), got " + dtype_name(p.q.dtype));
  }
  if (p.base_given && !(p.base > 0 && p.base != 1 && std::isfinite(p.base)))
    throw_value("base must be None or a finite number > 0 other than 1, got " + number_string(p.base));
  if (!is_none(p.grad_q) && (!two || is_none(p.grad_p))) throw_value("internal: grad_q without grad_p or q");
}

void check_multiclass_hinge_params(const MulticlassHingeParams& p) {
  if (!is_float(p.scores.dtype))
    throw_type(std::string("scores must be float16, float32 or float64, got ") + dtype_name(p.scores.dtype));
  if (p.scores.ndim < 1) throw_value("scores must have a class axis (at least 1 dimension)");
  const int rank = p.scores.ndim - 1;
  if (is_float(p.labels.dtype) || p.labels.dtype == DType::b1)
    throw_type(std::string("labels must be integers, got ") + dtype_name(p.labels.dtype));
  bool same = p.labels.ndim == rank;
  for (int i = 0; same && i < rank; ++i) same = p.labels.shape[i] == p.scores.shape[i];
  if (!same)
    throw_value("labels must have the shape of scores without its class axis, " + shape_string(p.scores.drop_last()) +
                ", got " + shape_string(p.labels));
  const int64_t C = p.scores.shape[rank];
  if (!is_none(p.weight)) {
    if (!is_float(p.weight.dtype)) throw_type(std::string("weight must be a float array, got ") + dtype_name(p.weight.dtype));
    if (p.weight.ndim != 1 || p.weight.shape[0] != C)
      throw_value("weight must have shape (" + std::to_string(C) + ",) (one per class), got " + shape_string(p.weight));
  }
  if (p.p != 1.0 && p.p != 2.0) throw_value("p must be 1 or 2, got " + number_string(p.p));
  if (!std::isfinite(p.margin)) throw_value("margin must be a finite number, got " + number_string(p.margin));
  if (!is_none(p.grad)) {
    bool g = p.grad.ndim == p.scores.ndim;
    for (int i = 0; g && i < p.scores.ndim; ++i) g = p.grad.shape[i] == p.scores.shape[i];
    if (!g) throw_value("grad_out must have the shape of scores " + shape_string(p.scores) + ", got " + shape_string(p.grad));
  }
}

namespace cpu {
void softmax_focal_loss(const SoftmaxFocalParams& p) { FASTLOSS_CPU_DISPATCH(softmax_focal_loss, p); }
void truncated_cross_entropy(const TruncatedCrossEntropyParams& p) { FASTLOSS_CPU_DISPATCH(truncated_cross_entropy, p); }
void divergence(const DivergenceParams& p) { FASTLOSS_CPU_DISPATCH(divergence, p); }
void multiclass_hinge_loss(const MulticlassHingeParams& p) { FASTLOSS_CPU_DISPATCH(multiclass_hinge_loss, p); }
}  // namespace cpu

// --- l2_loss ------------------------------------------------------------------------------
void check_l2_loss_params(const L2LossParams& p) {
  if (!is_float(p.pred.dtype)) throw_type(std::string("pred must be float16, float32 or float64, got ") + dtype_name(p.pred.dtype));
  if (p.pred.ndim < 1) throw_value("pred must have at least one dimension (the axis summed over)");
  if (!is_float(p.target.dtype))
    throw_type(std::string("target must be float16, float32 or float64, got ") + dtype_name(p.target.dtype));
  bool same = p.target.ndim == p.pred.ndim;
  for (int i = 0; same && i < p.pred.ndim; ++i) same = p.target.shape[i] == p.pred.shape[i];
  if (!same) throw_value("target must have the shape of pred " + shape_string(p.pred) + ", got " + shape_string(p.target));
  if (!is_none(p.weight)) {
    const int rank = p.pred.ndim - 1;
    if (!is_float(p.weight.dtype)) throw_type(std::string("weight must be a float array, got ") + dtype_name(p.weight.dtype));
    bool ok = p.weight.ndim <= rank;
    for (int i = 0; ok && i < p.weight.ndim; ++i) {
      const int64_t w = p.weight.shape[p.weight.ndim - 1 - i], r = p.pred.shape[rank - 1 - i];
      ok = w == 1 || w == r;
    }
    if (!ok)
      throw_value("weight must broadcast to the rows' shape " + shape_string(p.pred.drop_last()) +
                  " (pred without axis), got " + shape_string(p.weight));
  }
}

namespace cpu {
void l2_loss(const L2LossParams& p) { FASTLOSS_CPU_DISPATCH(l2_loss, p); }
}  // namespace cpu

}  // namespace fastloss
