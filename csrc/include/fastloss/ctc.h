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
// ValueError naming label_lengths when the working set of a (T, N, C) call whose longest label
// sequence is max_label_length (a lattice of T x (2S+1) states per sample) is too big for
// 64-bit sizes (possible only with broadcast views). Every size computed from these lengths
// (ctc_workspace_layout included) is safe once this passes.
void ctc_check_working_size(int64_t T, int64_t N, int64_t C, int64_t max_label_length);
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

// The CUDA kernel's working set of one sample, in its block's shared memory when it fits,
// else in the workspace with the same layout (byte offsets; A is float, or double for
// float64 input; L extended states):
//   ext   int32 [L]  extended label sequence (blanks interleaved)
//   next  int32 [L]  odd state s: the next odd state with s's class, -1 if none
//   head  int32 [C]  class c: its first odd state, -1 if none
//   rows  A [2L]     the recursion's two rows (alpha t-1 / t, then beta t+1 / t)
//   gam   A [L]      odd states' posteriors at the current t
//   wpart A [32]     the blank class's posterior at the current t, one partial per warp
// next and head let each class sum its states' posteriors in state order, so the gradient
// has the same bits on every run (no floating-point atomics).
struct CtcSampleLayout {
  size_t next, head, rows, gam, wpart, total;
};

inline CtcSampleLayout ctc_sample_layout(int64_t L, int64_t C, size_t a) {
  auto up16 = [](size_t v) { return (v + 15) & ~size_t(15); };
  const size_t l = static_cast<size_t>(L);
  CtcSampleLayout s;
  s.next = 4 * l;
  s.head = up16(8 * l);
  s.rows = up16(s.head + 4 * static_cast<size_t>(C));
  s.gam = s.rows + 2 * l * a;
  s.wpart = s.gam + l * a;
  s.total = up16(s.wpart + 32 * a);
  return s;
}

// Byte offsets into the CUDA workspace of a (T, N, C) call whose longest label sequence is
// max_label_length (L = 2 * max_label_length + 1 extended states). Defined here so the
// binding (compiled without nvcc) sizes it too.
struct CtcWorkspaceLayout {
  size_t info;     // int64 [N][4]: input length, label length, label offset, label stride
  size_t flag;     // unsigned long long: first bad label position (b * (Smax + 1) + s)
  size_t loss;     // double [N]: per-sample loss (after zero_infinity), for the reduction
  size_t lse;      // A [N][T]: log-sum-exp of each (t, b) row (from_logits only)
  size_t alpha;    // A [N][T][L]
  size_t samples;  // [N][sample.total]: the working sets, when they do not fit on chip
  CtcSampleLayout sample;
  size_t total;
};

inline CtcWorkspaceLayout ctc_workspace_layout(int64_t T, int64_t N, int64_t C, int64_t max_label_length,
                                               bool from_logits, bool f64) {
  ctc_check_working_size(T, N, C, max_label_length);
  auto up = [](size_t v) { return (v + 255) & ~size_t(255); };
  const size_t a = f64 ? 8 : 4, n = static_cast<size_t>(N), t = static_cast<size_t>(T);
  const size_t L = static_cast<size_t>(2 * max_label_length + 1);
  CtcWorkspaceLayout w;
  w.info = 0;
  w.flag = up(w.info + 32 * n);
  w.loss = up(w.flag + 8);
  w.lse = up(w.loss + 8 * n);
  w.alpha = up(w.lse + (from_logits ? a * n * t : 0));
  w.samples = up(w.alpha + a * n * t * L);
  w.sample = ctc_sample_layout(static_cast<int64_t>(L), C, a);
  w.total = up(w.samples + n * w.sample.total);
  return w;
}

}  // namespace fastloss

FASTLOSS_CPU_KERNEL_DECL(void, ctc_loss, (const ::fastloss::CtcParams&))
