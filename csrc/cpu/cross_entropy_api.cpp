// Argument checks shared by the CPU and CUDA cross-entropy entry points, and the CPU dispatch.
#include <string>

#include "fastloss/cross_entropy.h"

namespace fastloss {
namespace {

bool same_shape(const TensorView& a, const TensorView& b, int ndim) {
  if (a.ndim != ndim || b.ndim < ndim) return false;
  for (int i = 0; i < ndim; ++i)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}

}  // namespace

void check_cross_entropy_params(const CrossEntropyParams& p, bool nll) {
  const char* in = nll ? "log_probs" : "logits";
  if (!is_float(p.logits.dtype))
    throw_type(std::string(in) + " must be float16, float32 or float64, got " + dtype_name(p.logits.dtype));
  if (p.logits.ndim < 1) throw_value(std::string(in) + " must have a class axis (at least 1 dimension)");
  const int rank = p.logits.ndim - 1;
  const int64_t C = p.logits.shape[rank];
  if (p.soft_labels) {
    if (!is_float(p.labels.dtype))
      throw_type(std::string("labels must be integer class indices or float probabilities, got ") +
                 dtype_name(p.labels.dtype));
    if (!same_shape(p.labels, p.logits, p.logits.ndim))
      throw_value("probability labels must have the shape of " + std::string(in) + " " +
                  shape_string(p.logits) + ", got " + shape_string(p.labels) +
                  (p.labels.ndim == rank && same_shape(p.labels, p.logits, rank)
                       ? std::string(" (float labels of the class indices' shape: if integer class indices were "
                                     "meant, pass an integer array, e.g. labels.astype(int))")
                       : std::string()));
  } else {
    if (is_float(p.labels.dtype))
      throw_type(std::string("labels must be integers, got ") + dtype_name(p.labels.dtype));
    if (!same_shape(p.labels, p.logits, rank))
      throw_value("labels must have the shape of " + std::string(in) + " without its class axis, " +
                  shape_string(p.logits.drop_last()) + ", got " + shape_string(p.labels));
  }
  if (!is_none(p.weight)) {
    if (!is_float(p.weight.dtype)) throw_type(std::string("weight must be a float array, got ") + dtype_name(p.weight.dtype));
    if (p.weight.ndim != 1 || p.weight.shape[0] != C)
      throw_value("weight must have shape (" + std::to_string(C) + ",) (one per class), got " + shape_string(p.weight));
  }
  if (!(p.label_smoothing >= 0.0 && p.label_smoothing <= 1.0))
    throw_value("label_smoothing must be in [0, 1], got " + std::to_string(p.label_smoothing));
  if (!(p.z_loss >= 0.0)) throw_value("z_loss must be >= 0, got " + std::to_string(p.z_loss));
  if (!is_none(p.grad)) {
    if (!same_shape(p.grad, p.logits, p.logits.ndim))
      throw_value("grad_out must have the shape of " + std::string(in) + " " + shape_string(p.logits) + ", got " +
                  shape_string(p.grad));
    if (p.grad.dtype != p.logits.dtype)
      throw_type(std::string("grad_out must have the dtype of ") + in + " (" + dtype_name(p.logits.dtype) + "), got " +
                 dtype_name(p.grad.dtype));
  }
}

namespace cpu {
void softmax_cross_entropy(const CrossEntropyParams& p) { FASTLOSS_CPU_DISPATCH(softmax_cross_entropy, p); }
void nll_loss(const CrossEntropyParams& p) { FASTLOSS_CPU_DISPATCH(nll_loss, p); }
}  // namespace cpu

}  // namespace fastloss
