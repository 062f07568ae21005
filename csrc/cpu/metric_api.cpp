// Argument checks shared by the CPU and CUDA metric-learning entry points, the label range
// check of the CPU path, and the CPU dispatch.
#include <cmath>
#include <string>
#include <vector>

#include "fastloss/metric.h"

namespace fastloss {
namespace {

void check_float(const TensorView& t, const char* name) {
  if (t.dtype != DType::f32 && t.dtype != DType::f64)
    throw_type(std::string(name) + " must be float32 or float64 (float16 is widened by the caller), got " +
               dtype_name(t.dtype));
}

void check_matrix(const TensorView& t, const char* name, const char* dims) {
  if (t.ndim != 2)
    throw_value(std::string(name) + " must be 2-D " + dims + ", got shape " + shape_string(t));
}

void check_same_dtype(const TensorView& t, const char* name, const TensorView& ref, const char* ref_name) {
  if (t.dtype != ref.dtype)
    throw_type(std::string(name) + " must have the dtype of " + ref_name + " (" + dtype_name(ref.dtype) + "), got " +
               dtype_name(t.dtype));
}

void check_labels_shape(const TensorView& labels, int64_t N, const char* rows_of) {
  if (is_float(labels.dtype) || labels.dtype == DType::b1)
    throw_type(std::string("labels must be integers, got ") + dtype_name(labels.dtype));
  if (labels.ndim != 1 || labels.shape[0] != N)
    throw_value("labels must have shape (" + std::to_string(N) + ",) (one per row of " + rows_of + "), got " +
                shape_string(labels));
}

void check_loss(const TensorView& loss, Reduction r, int64_t N) {
  if (is_none(loss)) return;  // checked before the outputs exist
  if (r == Reduction::none ? (loss.ndim != 1 || loss.shape[0] != N) : loss.ndim != 0)
    throw_value("internal: loss output has shape " + shape_string(loss));
}

// First label outside [0, K) -> IndexError naming labels, its position, value and the range.
// Fills counts[k] (rows per class) when asked.
void check_label_range(const TensorView& labels, int64_t K, const char* classes_of, int64_t* counts) {
  const int64_t N = labels.shape[0], st = labels.strides[0];
  for (int64_t i = 0; i < N; ++i) {
    const int64_t y = load_index(labels, i * st);
    if (y < 0 || y >= K)
      throw_index("labels[" + std::to_string(i) + "] = " + std::to_string(y) + " is outside [0, " + std::to_string(K) +
                  ") (the classes of " + classes_of + ")");
    if (counts) ++counts[y];
  }
}

}  // namespace

MarginConsts margin_consts(int m, double beta) {
  MarginConsts k;
  k.m = m;
  k.beta_w = beta / (1.0 + beta);
  k.inv_1pb = 1.0 / (1.0 + beta);
  const double pi = 3.14159265358979323846;
  for (int j = 0; j < m && j < kMaxLargeMargin; ++j) k.cos_step[j] = std::cos(j * pi / m);
  return k;
}

void check_large_margin_params(const LargeMarginParams& p) {
  check_float(p.features, "features");
  check_matrix(p.features, "features", "(N, D)");
  check_float(p.weight, "weight");
  check_matrix(p.weight, "weight", "(D, C)");
  check_same_dtype(p.weight, "weight", p.features, "features");
  const int64_t N = p.features.shape[0], D = p.features.shape[1];
  if (p.weight.shape[0] != D)
    throw_value("weight must have shape (D, C) with D = " + std::to_string(D) + " (features' columns), got " +
                shape_string(p.weight));
  check_labels_shape(p.labels, N, "features");
  if (p.margin < 1 || p.margin > kMaxLargeMargin)
    throw_value("margin must be an integer from 1 to " + std::to_string(kMaxLargeMargin) + ", got " +
                std::to_string(p.margin));
  if (!(p.beta >= 0.0) || std::isinf(p.beta)) throw_value("beta must be a finite number >= 0, got " + number_string(p.beta));
  const int64_t C = p.weight.shape[1];
  if (!is_none(p.logits)) {  // the row pass: internal arrays
    if (p.logits.ndim != 2 || p.logits.shape[0] != N || p.logits.shape[1] != C || p.logits.dtype != p.features.dtype ||
        (N > 0 && C > 1 && p.logits.strides[1] != 1))
      throw_value("internal: logits must be (N, C) in the dtype of features with unit column stride");
    check_loss(p.loss, p.reduction, N);
  }
  if (p.grad) {
    if (is_none(p.row_scale) || is_none(p.class_scale) || p.row_scale.dtype != DType::f64 ||
        p.class_scale.dtype != DType::f64 || p.row_scale.numel() != N || p.class_scale.numel() != C)
      throw_value("internal: row_scale (N,) and class_scale (C,) must be float64");
  }
}

void check_center_loss_params(const CenterLossParams& p) {
  check_float(p.features, "features");
  check_matrix(p.features, "features", "(N, D)");
  check_float(p.centers, "centers");
  check_matrix(p.centers, "centers", "(K, D)");
  check_same_dtype(p.centers, "centers", p.features, "features");
  const int64_t N = p.features.shape[0], D = p.features.shape[1];
  if (p.centers.shape[1] != D)
    throw_value("centers must have shape (K, D) with D = " + std::to_string(D) + " (features' columns), got " +
                shape_string(p.centers));
  check_labels_shape(p.labels, N, "features");
  check_loss(p.loss, p.reduction, N);
  if (!is_none(p.grad) && (p.grad.ndim != 2 || p.grad.shape[0] != N || p.grad.shape[1] != D || p.grad.dtype != p.features.dtype))
    throw_value("internal: grad must be shaped like features");
}

void check_update_centers_params(const UpdateCentersParams& p) {
  check_float(p.centers, "centers");
  check_matrix(p.centers, "centers", "(K, D)");
  check_float(p.features, "features");
  check_matrix(p.features, "features", "(N, D)");
  check_same_dtype(p.features, "features", p.centers, "centers");
  const int64_t D = p.centers.shape[1], N = p.features.shape[0];
  if (p.features.shape[1] != D)
    throw_value("features must have shape (N, D) with D = " + std::to_string(D) + " (centers' columns), got " +
                shape_string(p.features));
  check_labels_shape(p.labels, N, "features");
  if (!(p.alpha >= 0.0) || std::isinf(p.alpha)) throw_value("alpha must be a finite number >= 0, got " + number_string(p.alpha));
  if (!is_none(p.out) && (p.out.ndim != 2 || p.out.shape[0] != p.centers.shape[0] || p.out.shape[1] != D || p.out.dtype != p.centers.dtype))
    throw_value("internal: out must be shaped like centers");
}

namespace cpu {
void large_margin_softmax_rows(const LargeMarginParams& p) {
  check_label_range(p.labels, p.weight.shape[1], "weight", nullptr);
  FASTLOSS_CPU_DISPATCH(large_margin_softmax_rows, p);
}
void large_margin_softmax_finish(const LargeMarginParams& p) { FASTLOSS_CPU_DISPATCH(large_margin_softmax_finish, p); }
void center_loss(const CenterLossParams& p) {
  check_label_range(p.labels, p.centers.shape[0], "centers", nullptr);
  FASTLOSS_CPU_DISPATCH(center_loss, p);
}
void update_centers(const UpdateCentersParams& p) {
  std::vector<int64_t> counts(static_cast<size_t>(p.centers.shape[0]), 0);
  check_label_range(p.labels, p.centers.shape[0], "centers", counts.data());
  FASTLOSS_CPU_DISPATCH(update_centers, p, counts.data());
}
}  // namespace cpu

}  // namespace fastloss
