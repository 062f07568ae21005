// CTC loss (connectionist temporal classification): one parameter block, the same entry
// points on CPU and CUDA.
#pragma once
#include <cstddef>
#include <cstdint>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {

struct CtcParams {
  // (T, N, C) view whatever the caller's layout ("NTC" arrives with its first two axes
  // swapped, no copy): log-probabilities, or unnormalised logits with from_logits.
  TensorView log_probs;
  // Integer labels: padded (N, S) or concatenated (sum of label_lengths,), on the device of
  // log_probs.
  TensorView labels;
  // Per-sample lengths, always on the host (N values each).
  const int64_t* input_lengths = nullptr;
  const int64_t* label_lengths = nullptr;
  int64_t blank = 0;
  bool from_logits = false;
  bool zero_infinity = false;
  Reduction reduction = Reduction::mean;
  TensorView loss;                // 0-d for mean/sum, (N,) for none
  TensorView grad = none_view();  // (T, N, C) view like log_probs, or none
  // CUDA only: the stream (cudaStream_t) and a device workspace the caller allocated with
  // ctc_workspace_bytes(); ignored on the CPU.
  void* stream = nullptr;
  void* workspace = nullptr;
};

// Shapes, lengths and blank, shared by both devices (throws fastloss::Error naming the
// argument). Does not read labels (they may be on the device).
void check_ctc_params(const CtcParams& p);
// Label values on the host: in [0, C) (IndexError) and not blank (ValueError).
void check_ctc_labels_host(const CtcParams& p);
// Offset (in elements) and element stride of sample b's labels; `offsets` gets N entries.
void ctc_label_offsets(const CtcParams& p, int64_t* offsets, int64_t* stride);
// Raises the error for label k of sample b with value y (IndexError, or ValueError for blank).
[[noreturn]] void ctc_bad_label(const CtcParams& p, int64_t b, int64_t k, int64_t y);
// Largest label length (0 for an empty batch).
int64_t ctc_max_label_length(const CtcParams& p);

namespace cpu {
void ctc_loss(const CtcParams& p);
}  // namespace cpu

namespace cuda {
void ctc_loss(const CtcParams& p);
}  // namespace cuda

// Byte offsets into the CUDA workspace of a (T, N, C) call whose longest label sequence is
// max_label_length (L = 2 * max_label_length + 1 extended states); A is float, or double
// for float64 input. Defined here so the binding (compiled without nvcc) sizes it too.
struct CtcWorkspaceLayout {
  size_t info;   // int64 [N][4]: input length, label length, label offset, unused
  size_t flag;   // unsigned long long: first bad label position (b * (Smax + 1) + s)
  size_t loss;   // double [N]: per-sample loss (after zero_infinity), for the reduction
  size_t lse;    // A [N][T]: log-sum-exp of each (t, b) row (from_logits only)
  size_t alpha;  // A [N][T][L]
  size_t beta;   // A [N][2][L]
  size_t post;   // A [N][C]: per-class posterior of the current t
  size_t ext;    // int32 [N][L]: extended label sequence
  size_t total;
};

inline CtcWorkspaceLayout ctc_workspace_layout(int64_t T, int64_t N, int64_t C, int64_t max_label_length,
                                               bool from_logits, bool f64) {
  auto up = [](size_t v) { return (v + 255) & ~size_t(255); };
  const size_t a = f64 ? 8 : 4, n = static_cast<size_t>(N), t = static_cast<size_t>(T);
  const size_t L = static_cast<size_t>(2 * max_label_length + 1);
  CtcWorkspaceLayout w;
  w.info = 0;
  w.flag = up(w.info + 32 * n);
  w.loss = up(w.flag + 8);
  w.lse = up(w.loss + 8 * n);
  w.alpha = up(w.lse + (from_logits ? a * n * t : 0));
  w.beta = up(w.alpha + a * n * t * L);
  w.post = up(w.beta + a * n * 2 * L);
  w.ext = up(w.post + a * n * static_cast<size_t>(C));
  w.total = up(w.ext + 4 * n * L);
  return w;
}

}  // namespace fastloss

FASTLOSS_CPU_KERNEL_DECL(void, ctc_loss, (const ::fastloss::CtcParams&))
