// Row-wise losses on the CPU (compiled once per SIMD level). Softmax focal loss and truncated
// cross-entropy are two policies of the row engine. Both are functions of l = log p_y, so a row's gradient is
// A (p - onehot(y)) with A = -dloss/dl, and the engine's three row paths, layouts, threads and
// fused gradient serve them as they serve cross-entropy. The divergences (entropy, KL, JS) of
// probability rows follow: two passes over each row while it sits in L1, vector logs.
#include "fastloss/cpu_kernel.h"
#include "fastloss/row_engine.h"
#include "fastloss/rowwise.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace {

using row_engine::RowGrad;
using row_engine::RowStats;

// loss = -a (1-p)^g l,  q = 1 - p = -expm1(l) (exact near p = 1), f = q^g:
//   -dloss/dl = a f (1 - g p l/q)   (l/q -> -1 as q -> 0, so finite for every g >= 0).
// With g = 0 and a = 1 this is bit-for-bit cross-entropy: loss -l = (m - x_y) + log_s, A = T = 1.
template <class S> struct FocalPolicy {
  S gamma, alpha;
  const S* alpha_c;  // per-class alpha (contiguous), or null for the scalar
  bool grad_needs_log() const { return true; }
  S a(int64_t y) const { return alpha_c ? alpha_c[y] : alpha; }
  S loss(const RowStats<S>& r) const {
    const S l = r.log_py();
    if (gamma == S(0)) return a(r.y) * -l;
    return a(r.y) * std::pow(-std::expm1(l), gamma) * -l;
  }
  RowGrad<S> grad(const RowStats<S>& r) const {
    S A = a(r.y);
    if (gamma != S(0)) {
      const S l = r.log_py(), q = -std::expm1(l);
      const S l_over_q = q > S(0) ? l / q : S(-1);
      A *= std::pow(q, gamma) * (S(1) - gamma * std::exp(l) * l_over_q);
    }
    return {A, A};
  }
};

// loss = -f l. Hard: f = [p < margin], constant. Soft: f = sigmoid(K (margin - p)),
//   -dloss/dl = f - f (1 - f) K p l.
template <class S> struct TruncatedPolicy {
  S margin, K;
  bool soft;
  bool grad_needs_log() const { return true; }
  static S sigmoid(S z) {
    if (z >= S(0)) return S(1) / (S(1) + std::exp(-z));
    const S e = std::exp(z);
    return e / (S(1) + e);
  }
  S factor(S p) const {
    if (soft) return sigmoid(K * (margin - p));
    return p < margin ? S(1) : S(0);
  }
  S loss(const RowStats<S>& r) const {
    const S l = r.log_py();
    return factor(std::exp(l)) * -l;
  }
  RowGrad<S> grad(const RowStats<S>& r) const {
    const S l = r.log_py(), p = std::exp(l), f = factor(p);
    const S A = soft ? f - f * (S(1) - f) * K * p * l : f;
    return {A, A};
  }
};

template <class S>
void focal_impl(const SoftmaxFocalParams& p) {
  const TensorView& x = p.rows.logits;
  const int64_t C = x.ndim > 0 ? x.shape[x.ndim - 1] : 0;
  ScratchBuffer abuf;
  const S* alpha_c = nullptr;
  if (!is_none(p.alpha)) {
    S* a = abuf.get<S>(C + 1);
    for (int64_t c = 0; c < C; ++c) a[c] = load_as<S>(p.alpha, c * p.alpha.strides[0]);
    alpha_c = a;
  }
  const FocalPolicy<S> pol{static_cast<S>(p.gamma), static_cast<S>(p.alpha_scalar), alpha_c};
  row_engine::run<S>(p.rows, pol);
}

template <class S>
void truncated_impl(const TruncatedCrossEntropyParams& p) {
  const TruncatedPolicy<S> pol{static_cast<S>(p.margin), static_cast<S>(p.softness), p.soft};
  row_engine::run<S>(p.rows, pol);
}

// --- divergences ---------------------------------------------------------------------------
// scipy's elementwise terms, lane-wise (NaN stays NaN):
//   entr(x) = -x log x for x > 0, 0 at x = 0, -inf for x < 0;
//   rel_entr(x, y) = x log(x / y) for x, y > 0, 0 for x = 0 <= y, +inf otherwise.
template <class V> inline V entr(V x) {
  typedef decltype(x[0] + 0) S;
  V r = -x * vlog(x);
  r = x == S(0) ? V{} : r;
  return x < S(0) ? V{} - std::numeric_limits<S>::infinity() : r;
}
template <class V> inline V rel_entr(V x, V y) {
  typedef decltype(x[0] + 0) S;
  V r = x * vlog(x / y);  // y = 0 < x gives log(inf) = inf
  r = x == S(0) && y >= S(0) ? V{} : r;
  return x < S(0) || y < S(0) ? V{} + std::numeric_limits<S>::infinity() : r;
}

// Threads pay off from this many elements per thread (a row element costs one or two vector
// logs, ~0.3-0.6 ns on the dev machine; 2-thread fork/join ~3-5 us).
constexpr int64_t kMinDivergencePerThread = 16384;

template <class S>
void divergence_impl(const DivergenceParams& p) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const int rank = p.p.ndim - 1;
  const int64_t C = p.p.shape[rank];
  const int64_t rows = p.p.drop_last().numel();
  if (rows == 0) return;
  const bool two = p.kind != Divergence::entropy;
  const int64_t* strides[3] = {p.p.strides, two ? p.q.strides : nullptr, p.out.strides};
  const int nt = threads_for(rows * C, kMinDivergencePerThread);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t r0, r1;
    thread_range(rows, omp_get_thread_num(), omp_get_num_threads(), &r0, &r1);
    ScratchBuffer pbuf, qbuf;
    RowWalker<3> walk(p.p.shape, rank, strides);
    walk.begin(r0);
    for (int64_t r = r0; r < r1; ++r, walk.next()) {
      // rows in place when contiguous and native, else gathered (same bits either way)
      const S* x = row_engine::row_source<S>(p.p, walk.offset(0), C, pbuf.get<S>(C + W));
      const S* y = two ? row_engine::row_source<S>(p.q, walk.offset(1), C, qbuf.get<S>(C + W)) : nullptr;
      auto at = [C](const S* a, int64_t j) { return j + W <= C ? load(a + j) : load_partial(a + j, C - j, S(0)); };
      // pass 1: the sums that normalise the rows (padding lanes load as 0 and add 0 below)
      V sp = V{}, sq = V{};
      for (int64_t j = 0; j < C; j += W) {
        sp += at(x, j);
        if (two) sq += at(y, j);
      }
      const V Sp = splat(hsum<S>(sp)), Sq = splat(two ? hsum<S>(sq) : S(1));
      // pass 2: the terms, on the row while it is in L1
      V acc = V{};
      for (int64_t j = 0; j < C; j += W) {
        const V pk = at(x, j) / Sp;
        if (p.kind == Divergence::entropy) {
          acc += entr(pk);
        } else {
          const V qk = at(y, j) / Sq;
          if (p.kind == Divergence::kl) {
            acc += rel_entr(pk, qk);
          } else {
            const V m = (pk + qk) * S(0.5);
            acc += rel_entr(pk, m) + rel_entr(qk, m);
          }
        }
      }
      const S v = hsum<S>(acc) * (p.kind == Divergence::js ? S(0.5) : S(1));
      store_as<S>(p.out, walk.offset(2), v);
    }
  }
}

}  // namespace

// float16 and float32 compute in float; float64 in double.
void divergence(const DivergenceParams& p) {
  if (p.p.dtype == DType::f64) divergence_impl<double>(p);
  else divergence_impl<float>(p);
}

void softmax_focal_loss(const SoftmaxFocalParams& p) {
  if (p.rows.logits.dtype == DType::f64) focal_impl<double>(p);
  else focal_impl<float>(p);
}

void truncated_cross_entropy(const TruncatedCrossEntropyParams& p) {
  if (p.rows.logits.dtype == DType::f64) truncated_impl<double>(p);
  else truncated_impl<float>(p);
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
