// Argument checks of the bi-tempered losses and the tempered softmax (shared by the CPU and
// CUDA entry points), and the CPU dispatch: t1 = t2 = 1 runs the cross-entropy kernel, as the
// reference runs softmax_cross_entropy_with_logits there.
#include <cmath>
#include <limits>
#include <string>

#include "fastloss/bi_tempered.h"
#include "fastloss/cross_entropy.h"

namespace fastloss {
namespace {

void check_temperature(double t, const char* name) {
  if (!(t > 0.0) || std::isinf(t)) throw_value(std::string(name) + " must be a finite number > 0, got " + number_string(t));
}

void check_iters(int64_t n) {
  if (n < 1) throw_value("num_iters must be >= 1, got " + std::to_string(n));
  if (n > 100000) throw_value("num_iters must be at most 100000, got " + std::to_string(n));
}

bool same_shape(const TensorView& a, const TensorView& b, int ndim) {
  if (a.ndim != ndim || b.ndim < ndim) return false;
  for (int i = 0; i < ndim; ++i)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}

}  // namespace

void check_bi_tempered_params(const BiTemperedParams& p) {
  const TensorView& x = p.activations;
  if (!is_float(x.dtype)) throw_type(std::string("activations must be float16, float32 or float64, got ") + dtype_name(x.dtype));
  check_temperature(p.t1, "t1");
  check_temperature(p.t2, "t2");
  check_iters(p.num_iters);
  if (!(p.label_smoothing >= 0.0 && p.label_smoothing < 1.0))
    throw_value("label_smoothing must be in [0, 1), got " + number_string(p.label_smoothing));
  if (p.binary) {
    if (!is_float(p.labels.dtype)) throw_type(std::string("targets must be a float array, got ") + dtype_name(p.labels.dtype));
    if (!same_shape(p.labels, x, x.ndim))
      throw_value("targets must have the shape of activations " + shape_string(x) + ", got " + shape_string(p.labels));
  } else {
    if (x.ndim < 1) throw_value("activations must have a class axis (at least 1 dimension)");
    const int rank = x.ndim - 1;
    const int64_t C = x.shape[rank];
    if (p.soft_labels) {
      if (!same_shape(p.labels, x, x.ndim))
        throw_value("probability labels must have the shape of activations " + shape_string(x) + ", got " +
                    shape_string(p.labels) +
                    (p.labels.ndim == rank && same_shape(p.labels, x, rank)
                         ? std::string(" (float labels of the class indices' shape: if integer class indices were "
                                       "meant, pass an integer array, e.g. labels.astype(int))")
                         : std::string()));
    } else if (!same_shape(p.labels, x, rank)) {
      throw_value("labels must have the shape of activations without its class axis, " + shape_string(x.drop_last()) +
                  ", got " + shape_string(p.labels));
    }
    if (p.label_smoothing > 0.0 && C < 2)
      throw_value("label_smoothing = " + number_string(p.label_smoothing) + " needs at least 2 classes (it moves mass to the C - 1 "
                  "others), got C = " + std::to_string(C));
  }
  if (!is_none(p.grad)) {
    if (!same_shape(p.grad, x, x.ndim))
      throw_value("grad_out must have the shape of activations " + shape_string(x) + ", got " + shape_string(p.grad));
    if (p.grad.dtype != x.dtype)
      throw_type(std::string("grad_out must have the dtype of activations (") + dtype_name(x.dtype) + "), got " +
                 dtype_name(p.grad.dtype));
  }
}

void check_tempered_softmax_params(const TemperedSoftmaxParams& p) {
  if (!is_float(p.activations.dtype))
    throw_type(std::string("activations must be float16, float32 or float64, got ") + dtype_name(p.activations.dtype));
  if (p.activations.ndim < 1) throw_value("activations must have a class axis (at least 1 dimension)");
  check_temperature(p.t, "t");
  check_iters(p.num_iters);
}

namespace {

// Every integer label in [0, C) (there is no ignore_index): IndexError naming the first bad one.
void check_labels_in_range(const BiTemperedParams& p) {
  const int rank = p.activations.ndim - 1;
  const int64_t C = p.activations.shape[rank];
  const int64_t rows = p.labels.numel();
  int64_t offset = 0, index[kMaxDims] = {};
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t y = load_index(p.labels, offset);
    if (y < 0 || y >= C)
      throw_index("labels" + index_string(p.labels.shape, rank, r) + " = " + std::to_string(y) + " is outside [0, " +
                  std::to_string(C) + ")");
    for (int d = rank - 1; d >= 0; --d) {  // odometer over the label rows
      offset += p.labels.strides[d];
      if (++index[d] < p.labels.shape[d]) break;
      offset -= p.labels.strides[d] * p.labels.shape[d];
      index[d] = 0;
    }
  }
}

}  // namespace

// The cross-entropy parameters of the t1 = t2 = 1 case: the reference's smoothing
// (1 - C/(C-1) ls) y + ls/(C-1) is cross-entropy's (1 - eps) y + eps/C with eps = C ls / (C-1).
CrossEntropyParams bi_tempered_as_cross_entropy(const BiTemperedParams& p) {
  CrossEntropyParams ce;
  ce.logits = p.activations;
  ce.labels = p.labels;
  ce.soft_labels = p.soft_labels;
  ce.ignore_index = std::numeric_limits<int64_t>::min();  // labels are checked in range first
  const double C = static_cast<double>(p.activations.shape[p.activations.ndim - 1]);
  ce.label_smoothing = p.label_smoothing > 0.0 ? C * p.label_smoothing / (C - 1.0) : 0.0;
  ce.reduction = p.reduction;
  ce.loss = p.loss;
  ce.grad = p.grad;
  ce.stream = p.stream;
  ce.workspace = p.workspace;
  return ce;
}

double bi_tempered_onehot_label_const(double t1, double ls, int64_t C) {
  auto f = [t1](double y) {
    const double lt = t1 == 1.0 ? std::log(y + 1e-10) : (std::pow(y + 1e-10, 1.0 - t1) - 1.0) / (1.0 - t1);
    return y * lt - std::pow(y, 2.0 - t1) / (2.0 - t1);
  };
  const double lo = ls > 0.0 ? ls / static_cast<double>(C - 1) : 0.0, hi = ls > 0.0 ? 1.0 - ls : 1.0;
  return f(hi) + (C > 1 ? static_cast<double>(C - 1) * f(lo) : 0.0);
}

namespace cpu {
void bi_tempered_logistic_loss(const BiTemperedParams& p) {
  if (!p.binary && !p.soft_labels) check_labels_in_range(p);
  if (!p.binary && p.t1 == 1.0 && p.t2 == 1.0) return cpu::softmax_cross_entropy(bi_tempered_as_cross_entropy(p));
  FASTLOSS_CPU_DISPATCH(bi_tempered_logistic_loss, p);
}
void tempered_softmax(const TemperedSoftmaxParams& p) { FASTLOSS_CPU_DISPATCH(tempered_softmax, p); }
}  // namespace cpu

}  // namespace fastloss
