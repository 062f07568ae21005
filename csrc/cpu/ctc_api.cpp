// Argument checks shared by the CPU and CUDA CTC entry points, and the CPU dispatch.
#include <cstdint>
#include <string>

#include "fastloss/ctc.h"

namespace fastloss {

void check_ctc_params(const CtcParams& p) {
  const TensorView& x = p.log_probs;
  if (!is_float(x.dtype))
    throw_type(std::string("log_probs must be float16, float32 or float64, got ") + dtype_name(x.dtype));
  if (x.ndim != 3)
    throw_value("log_probs must be 3-D (T, N, C) for layout 'TNC' or (N, T, C) for 'NTC', got shape " +
                shape_string(x));
  const int64_t T = x.shape[0], N = x.shape[1], C = x.shape[2];
  if (C < 1) throw_value("log_probs must have at least one class (C >= 1), got C = 0");
  if (p.blank < 0 || p.blank >= C)
    throw_value("blank must be in [0, " + std::to_string(C) + "), got " + std::to_string(p.blank));
  if (is_float(p.labels.dtype) || p.labels.dtype == DType::b1)
    throw_type(std::string("labels must be integers, got ") + dtype_name(p.labels.dtype));
  if (p.labels.ndim != 1 && p.labels.ndim != 2)
    throw_value("labels must be padded (N, S) or concatenated 1-D, got shape " + shape_string(p.labels));
  if (p.labels.ndim == 2 && p.labels.shape[0] != N)
    throw_value("labels (padded) must have N = " + std::to_string(N) + " rows like log_probs, got shape " +
                shape_string(p.labels));
  // `total` never exceeds the concatenated labels' length (each entry is checked against
  // what is left before it is added), so the sum cannot overflow.
  int64_t total = 0, smax = 0;
  for (int64_t b = 0; b < N; ++b) {
    const int64_t t = p.input_lengths[b], s = p.label_lengths[b];
    if (t < 0) throw_value("input_lengths[" + std::to_string(b) + "] = " + std::to_string(t) + " is negative");
    if (t > T)
      throw_value("input_lengths[" + std::to_string(b) + "] = " + std::to_string(t) +
                  " is longer than the input (T = " + std::to_string(T) + ")");
    if (s < 0) throw_value("label_lengths[" + std::to_string(b) + "] = " + std::to_string(s) + " is negative");
    if (p.labels.ndim == 2 && s > p.labels.shape[1])
      throw_value("label_lengths[" + std::to_string(b) + "] = " + std::to_string(s) +
                  " is longer than the padded labels (S = " + std::to_string(p.labels.shape[1]) + ")");
    if (p.labels.ndim == 1 && s > p.labels.shape[0] - total)
      throw_value("label_lengths[:" + std::to_string(b + 1) + "] sum to more than the concatenated labels hold (" +
                  std::to_string(p.labels.shape[0]) + "): the first " + std::to_string(b) + " sum to " +
                  std::to_string(total) + ", label_lengths[" + std::to_string(b) + "] = " + std::to_string(s));
    total += s;
    smax = s > smax ? s : smax;
  }
  ctc_check_working_size(T, N, C, smax);
  if (!is_none(p.grad)) {
    if (p.grad.ndim != 3 || p.grad.shape[0] != T || p.grad.shape[1] != N || p.grad.shape[2] != C)
      throw_value("grad_out must have the shape of log_probs, got " + shape_string(p.grad));
    if (p.grad.dtype != x.dtype)
      throw_type(std::string("grad_out must have the dtype of log_probs (") + dtype_name(x.dtype) + "), got " +
                 dtype_name(p.grad.dtype));
  }
  if (p.reduction == Reduction::none ? (p.loss.ndim != 1 || p.loss.shape[0] != N) : p.loss.ndim != 0)
    throw_value("loss output has the wrong shape " + shape_string(p.loss));
}

void ctc_check_working_size(int64_t T, int64_t N, int64_t C, int64_t max_label_length) {
  // Both devices keep a lattice of T x (2S+1) states per sample (CUDA: all N at once, plus
  // per-sample tables over the states and the C classes). Bounding
  // (2S + C + 64) * 64 * (T + 1) * N by 2**63 keeps every size either device computes from
  // these lengths (bytes included, padding included) inside 64 bits. Only broadcast
  // (stride-0) views get that large; as NumPy's "array is too big", a size beyond 64 bits
  // is a ValueError, and one that merely does not fit in memory a MemoryError.
  int64_t row = 0, bytes = 0;
  const bool overflow = max_label_length > (INT64_MAX - 64) / 2 || C > INT64_MAX - 64 - 2 * max_label_length ||
                        __builtin_mul_overflow(2 * max_label_length + C + 64, int64_t(64), &row) ||
                        T == INT64_MAX || __builtin_mul_overflow(row, T + 1, &bytes) ||
                        __builtin_mul_overflow(bytes, N, &bytes);
  if (overflow)
    throw_value("label_lengths up to " + std::to_string(max_label_length) + " with log_probs of (T, N, C) = (" +
                std::to_string(T) + ", " + std::to_string(N) + ", " + std::to_string(C) +
                ") need a working set beyond 2**63 bytes (T x (2 * max(label_lengths) + 1) states per sample)");
}

void ctc_label_offsets(const CtcParams& p, int64_t* offsets, int64_t* stride) {
  const int64_t N = p.log_probs.shape[1];
  if (p.labels.ndim == 2) {
    for (int64_t b = 0; b < N; ++b) offsets[b] = b * p.labels.strides[0];
    *stride = p.labels.strides[1];
  } else {
    int64_t pos = 0;
    for (int64_t b = 0; b < N; ++b) {
      offsets[b] = pos * p.labels.strides[0];
      pos += p.label_lengths[b];
    }
    *stride = p.labels.strides[0];
  }
}

int64_t ctc_max_label_length(const CtcParams& p) {
  int64_t m = 0;
  for (int64_t b = 0; b < p.log_probs.shape[1]; ++b) m = p.label_lengths[b] > m ? p.label_lengths[b] : m;
  return m;
}

// Position of label k of sample b in the caller's terms: labels[b, k] or labels[i].
static std::string label_position(const CtcParams& p, int64_t b, int64_t k) {
  if (p.labels.ndim == 2) return "labels[" + std::to_string(b) + ", " + std::to_string(k) + "]";
  int64_t pos = k;
  for (int64_t i = 0; i < b; ++i) pos += p.label_lengths[i];
  return "labels[" + std::to_string(pos) + "] (sample " + std::to_string(b) + ", label " + std::to_string(k) + ")";
}

void ctc_bad_label(const CtcParams& p, int64_t b, int64_t k, int64_t y) {
  const int64_t C = p.log_probs.shape[2];
  if (y == p.blank)
    throw_value(label_position(p, b, k) + " = " + std::to_string(y) + " equals blank (" + std::to_string(p.blank) +
                "); labels must not contain the blank");
  throw_index(label_position(p, b, k) + " = " + std::to_string(y) + " is outside [0, " + std::to_string(C) + ")");
}

void check_ctc_labels_host(const CtcParams& p) {
  const int64_t N = p.log_probs.shape[1], C = p.log_probs.shape[2];
  const int64_t stride = p.labels.ndim == 2 ? p.labels.strides[1] : p.labels.strides[0];
  for (int64_t b = 0, pos = 0; b < N; ++b) {
    const int64_t base = p.labels.ndim == 2 ? b * p.labels.strides[0] : pos * p.labels.strides[0];
    // A stride-0 (broadcast) sequence repeats one value: check it once, not 2**62 times.
    const int64_t n = stride == 0 && p.label_lengths[b] > 0 ? 1 : p.label_lengths[b];
    for (int64_t k = 0; k < n; ++k) {
      const int64_t y = load_index(p.labels, base + k * stride);
      if (y < 0 || y >= C || y == p.blank) ctc_bad_label(p, b, k, y);
    }
    pos += p.label_lengths[b];
  }
}

namespace cpu {
void ctc_loss(const CtcParams& p) {
  check_ctc_params(p);
  check_ctc_labels_host(p);
  FASTLOSS_CPU_DISPATCH(ctc_loss, p);
}
}  // namespace cpu

}  // namespace fastloss
