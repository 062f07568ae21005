// Softmax cross-entropy and NLL on the CPU (compiled once per SIMD level).
//
// Per row of C logits, integer label y, class weights w, smoothing eps, z-loss z:
//   loss = (1-eps) w_y (lse - x_y) + eps/C sum_c w_c (lse - x_c) + z lse^2
//   dloss/dx_j = p_j A - coef_j,  A = (1-eps) w_y + eps/C sum_c w_c + 2 z lse,
//                                 coef_j = eps/C w_j + (1-eps) w_y [j == y]
// With probability targets t (smoothed t' = (1-eps) t + eps/C):
//   loss = A' lse - sum_c w_c t'_c x_c,  A' = sum_c w_c t'_c;  dloss/dx_j = p_j (A' + 2 z lse) - w_j t'_j
// Both gradients are "p times a row constant minus a per-class coefficient", so one pass-2
// loop serves them: cross-entropy is the row engine's first policy (row_engine.h walks the
// layouts, threads and writes the gradient; each row is read from memory once).
#include "fastloss/cpu_kernel.h"
#include "fastloss/cross_entropy.h"
#include "fastloss/row_engine.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace {

// Cross-entropy as a row-engine policy. The loss of a row from its softmax statistics and
// side sums; hard labels use (m - x_y) + log(sum), not lse - x_y: exact when |x| is huge and
// the row is flat.
template <class S> struct CrossEntropyPolicy {
  bool soft;
  S eps, eps_c, wsum, z;
  bool grad_needs_log() const { return z != S(0); }
  S loss(const row_engine::RowStats<S>& r) const {
    const S lse = r.m + r.log_s;
    S loss;
    if (soft) {
      loss = r.swt * lse - r.sx;
    } else {
      loss = (S(1) - eps) * r.wy * ((r.m - r.xy) + r.log_s);
      if (eps != S(0)) loss += eps_c * (wsum * lse - r.sx);
    }
    if (z != S(0)) loss += z * lse * lse;
    return loss;
  }
  row_engine::RowGrad<S> grad(const row_engine::RowStats<S>& r) const {
    row_engine::RowGrad<S> g;
    g.A = soft ? r.swt : (S(1) - eps) * r.wy + eps_c * wsum;
    g.T = soft ? S(0) : (S(1) - eps) * r.wy;
    if (z != S(0)) g.A += S(2) * z * (r.m + r.log_s);
    return g;
  }
};

template <class S>
void cross_entropy_impl(const CrossEntropyParams& p) {
  const int64_t C = p.logits.ndim > 0 ? p.logits.shape[p.logits.ndim - 1] : 0;
  S wsum = static_cast<S>(C);
  if (!is_none(p.weight)) {  // the same float sum the engine forms for its weight row
    double acc = 0;
    for (int64_t c = 0; c < C; ++c) acc += load_as<S>(p.weight, c * p.weight.strides[0]);
    wsum = static_cast<S>(acc);
  }
  const S eps = static_cast<S>(p.label_smoothing);
  const CrossEntropyPolicy<S> pol{p.soft_labels, eps, C ? eps / static_cast<S>(C) : S(0), wsum,
                                  static_cast<S>(p.z_loss)};
  row_engine::run<S>(p, pol);
}

// NLL reads one value per row (and writes C gradient entries), cheaper than a softmax
// element: threads pay off from about twice the row engine's size per thread (row_engine.h).
constexpr int64_t kMinNllPerThread = 32768;

template <class S>
void nll_impl(const CrossEntropyParams& p) {
  const int rank = p.logits.ndim - 1;
  const int64_t C = p.logits.shape[rank];
  const int64_t rows = p.logits.drop_last().numel();
  const bool want_grad = !is_none(p.grad);
  const bool weighted = !is_none(p.weight);
  const bool reduce_none = p.reduction == Reduction::none;
  if (rows == 0) {
    if (!reduce_none) store_as<double>(p.loss, 0, 0.0);
    return;
  }
  const row_engine::Denominator den = row_engine::label_denominator(p, rows, C);
  if (C == 0) {
    row_engine::zero_loss(p, rank, rows);
    return;
  }
  const double scale = p.reduction == Reduction::mean ? (den.value != 0 ? 1.0 / den.value : 0.0) : 1.0;
  const int64_t ics = p.logits.strides[rank];
  const int64_t gcs = want_grad ? p.grad.strides[rank] : 1;
  const int64_t* strides[4] = {p.logits.strides, p.labels.strides, want_grad ? p.grad.strides : nullptr,
                               reduce_none ? p.loss.strides : nullptr};
  // a row is a label load and a (usually strided) clear of C gradient entries
  const int64_t per_row = want_grad ? C : 1;
  const int nt = threads_for(rows * per_row, kMinNllPerThread);
  // Fixed chunks of rows, one partial per chunk: the same bits for every thread count.
  const Chunks chunks = fixed_chunks(rows, (kMinNllPerThread / 2 + per_row - 1) / per_row);
  double partial[kMaxFixedChunks] = {0};
  parallel_chunks(chunks, nt, [&](int64_t tid, int64_t r0, int64_t r1) {
    RowWalker<4> walk(p.logits.shape, rank, strides);
    walk.begin(r0);
    double acc = 0;
    for (int64_t r = r0; r < r1; ++r, walk.next()) {
      const int64_t y = load_index(p.labels, walk.offset(1));
      const bool ignored = y == p.ignore_index;
      const S wy = ignored ? S(0) : weighted ? load_as<S>(p.weight, y * p.weight.strides[0]) : S(1);
      const S loss = ignored ? S(0) : -wy * load_as<S>(p.logits, walk.offset(0) + y * ics);
      if (reduce_none) store_as<S>(p.loss, walk.offset(3), loss);
      else acc += static_cast<double>(loss);
      if (want_grad) {
        const int64_t go = walk.offset(2);
        if (p.grad.dtype == (sizeof(S) == 4 ? DType::f32 : DType::f64) && gcs == 1)
          std::memset(p.grad.ptr<S>() + go, 0, C * sizeof(S));
        else
          for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad, go + c * gcs, S(0));
        if (!ignored) store_as<S>(p.grad, go + y * gcs, static_cast<S>(-wy * scale));
      }
    }
    partial[tid] = acc;
  });
  if (!reduce_none) {
    store_reduced_loss(p.loss, partial, static_cast<int>(chunks.count), scale);
  }
}

}  // namespace

// float16 and float32 compute in float; float64 in double.
void softmax_cross_entropy(const CrossEntropyParams& p) {
  if (p.logits.dtype == DType::f64) cross_entropy_impl<double>(p);
  else cross_entropy_impl<float>(p);
}

void nll_loss(const CrossEntropyParams& p) {
  if (p.logits.dtype == DType::f64) nll_impl<double>(p);
  else nll_impl<float>(p);
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
