// Argument checks, label count and block plan of linear_cross_entropy (device-independent).
#include <cmath>
#include <string>

#include "fastloss/linear_cross_entropy.h"

namespace fastloss {

void check_linear_cross_entropy_params(const LinearCrossEntropyParams& p) {
  if (p.hidden.ndim != 2) throw_value("hidden must be 2-D (N, D), got shape " + shape_string(p.hidden));
  if (p.weight.ndim != 2) throw_value("weight must be 2-D (V, D) as in torch.nn.Linear, got shape " + shape_string(p.weight));
  const int64_t N = p.hidden.shape[0], D = p.hidden.shape[1], V = p.weight.shape[0];
  if (p.weight.shape[1] != D)
    throw_value("weight must have shape (V, " + std::to_string(D) + ") to match hidden " + shape_string(p.hidden) +
                ", got " + shape_string(p.weight));
  if (!is_none(p.bias) && (p.bias.ndim != 1 || p.bias.shape[0] != V))
    throw_value("bias must have shape (" + std::to_string(V) + ",) (one per row of weight), got " + shape_string(p.bias));
  if (is_float(p.labels.dtype) || p.labels.dtype == DType::b1)
    throw_type(std::string("labels must be integers, got ") + dtype_name(p.labels.dtype));
  if (p.labels.ndim != 1 || p.labels.shape[0] != N)
    throw_value("labels must have shape (" + std::to_string(N) + ",) (one per row of hidden), got " +
                shape_string(p.labels));
  if (!(p.label_smoothing >= 0.0 && p.label_smoothing <= 1.0))
    throw_value("label_smoothing must be in [0, 1], got " + number_string(p.label_smoothing));
  if (!(p.z_loss >= 0.0) || std::isinf(p.z_loss)) throw_value("z_loss must be finite and >= 0, got " + number_string(p.z_loss));
  if (p.has_softcap && !(p.softcap > 0.0 && std::isfinite(p.softcap)))
    throw_value("softcap must be None or a finite number > 0, got " + number_string(p.softcap));
}

int64_t count_linear_cross_entropy_labels(const TensorView& labels, int64_t V, int64_t ignore_index) {
  const int64_t n = labels.shape[0], s = labels.strides[0];
  int64_t counted = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = load_index(labels, i * s);
    if (y == ignore_index) continue;
    if (y < 0 || y >= V)
      throw_index("labels[" + std::to_string(i) + "] = " + std::to_string(y) + " is outside [0, " + std::to_string(V) +
                  ") and is not ignore_index (" + std::to_string(ignore_index) + ")");
    ++counted;
  }
  return counted;
}

LinearCrossEntropyPlan plan_linear_cross_entropy(int64_t N, int64_t V, int64_t D, int item_bytes, bool grad,
                                                 bool softcap, int64_t block_bytes) {
  LinearCrossEntropyPlan plan;
  plan.buffers = softcap && grad ? 2 : 1;  // the capped logits and tanh (for the derivative)
  // grad_weight accumulates block after block through a (vocab_chunk, D) product buffer:
  // a sixteenth of the budget (a chunk of the vocabulary, not a (V, D) copy).
  const int64_t row_bytes = (D > 0 ? D : 1) * item_bytes;
  int64_t chunk = grad ? block_bytes / 16 / row_bytes : 0;
  if (chunk < 1) chunk = 1;
  if (chunk > V) chunk = V > 0 ? V : 1;
  plan.vocab_chunk = chunk;
  const int64_t chunk_bytes = grad ? chunk * row_bytes : 0;
  const int64_t logit_row = (V > 0 ? V : 1) * item_bytes * plan.buffers;
  int64_t rows = (block_bytes - chunk_bytes) / logit_row;
  if (rows < 1) rows = 1;  // a row of logits is the least a block can hold
  if (rows > N) rows = N > 0 ? N : 1;
  plan.rows = rows;
  return plan;
}

}  // namespace fastloss
