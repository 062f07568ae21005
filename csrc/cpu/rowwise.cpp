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

// Threads pay off from this many elements per thread (an element costs one or two vector
// logs, more than a softmax element; the same size as the row engine's, see row_engine.h).
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
  const bool want_gp = !is_none(p.grad_p), want_gq = !is_none(p.grad_q);
  const DType native = sizeof(S) == 4 ? DType::f32 : DType::f64;
  const int64_t gp_cs = want_gp ? p.grad_p.strides[rank] : 1, gq_cs = want_gq ? p.grad_q.strides[rank] : 1;
  const bool gp_direct = want_gp && p.grad_p.dtype == native && gp_cs == 1;
  const bool gq_direct = want_gq && p.grad_q.dtype == native && gq_cs == 1;
  const double log_base = p.base_given ? std::log(p.base) : 1.0;
  const int64_t* strides[5] = {p.p.strides, two ? p.q.strides : nullptr, p.out.strides,
                               want_gp ? p.grad_p.strides : nullptr, want_gq ? p.grad_q.strides : nullptr};
  const int nt = threads_for(rows * C * (want_gp ? 2 : 1), kMinDivergencePerThread);
  const S ninf = -std::numeric_limits<S>::infinity();
  parallel_parts(nt, [&](int part, int nparts) {
    int64_t r0, r1;
    thread_range(rows, part, nparts, &r0, &r1);
    ScratchBuffer pbuf, qbuf, gpbuf, gqbuf;
    RowWalker<5> walk(p.p.shape, rank, strides);
    walk.begin(r0);
    for (int64_t r = r0; r < r1; ++r, walk.next()) {
      // rows in place when contiguous and native, else gathered (same bits either way)
      const S* x = row_engine::row_source<S>(p.p, walk.offset(0), C, pbuf.get<S>(C + W));
      const S* y = two ? row_engine::row_source<S>(p.q, walk.offset(1), C, qbuf.get<S>(C + W)) : nullptr;
      auto at = [&](const S* a, int64_t j) { return j + W <= C ? load(a + j) : load_partial(a + j, C - j, S(0)); };
      // pass 1: the sums that normalise the rows (padding lanes load as 0 and add 0), in float64
      WideSum<S> sum_p, sum_q;
      for (int64_t j = 0; j < C; j += W) {
        sum_p.add(at(x, j));
        if (two) sum_q.add(at(y, j));
      }
      const double Sp = sum_p.sum(), Sq = two ? sum_q.sum() : 1.0;
      // pass 2: scipy's terms of the normalised rows pk = p / Sp, qk = q / Sq (a negative or
      // zero sum flips or blows up pk as scipy's division does), on the row while it is in L1:
      //   entropy: a = sum entr(pk);  KL: a = sum rel_entr(pk, qk);
      //   JS: a = sum rel_entr(pk, m), b = sum rel_entr(qk, m), m = (pk + qk) / 2.
      const V inv_p = splat(static_cast<S>(1.0 / Sp)), inv_q = splat(static_cast<S>(1.0 / Sq));
      WideSum<S> sum_a, sum_b;
      for (int64_t j = 0; j < C; j += W) {
        const V pk = at(x, j) * inv_p;
        if (p.kind == Divergence::entropy) {
          sum_a.add(entr(pk));
        } else if (p.kind == Divergence::kl) {
          sum_a.add(rel_entr(pk, at(y, j) * inv_q));
        } else {
          const V qk = at(y, j) * inv_q, m = (pk + qk) * S(0.5);
          sum_a.add(rel_entr(pk, m));
          sum_b.add(rel_entr(qk, m));
        }
      }
      const double a = sum_a.sum(), b = sum_b.sum();
      double v = p.kind == Divergence::entropy ? a / log_base : p.kind == Divergence::kl ? a : 0.5 * (a + b);
      if (p.kind == Divergence::js && v < 0) v = 0;  // rounding of two equal rows (NaN stays)
      store_as<S>(p.out, walk.offset(2), static_cast<S>(v));
      if (!want_gp) continue;
      // pass 3: d(value)/dp and d(value)/dq through the normalisation (g_k = (t_k - sum_j pk_j t_j) / Sp
      // for t = d(value)/d(pk)). A zero pk takes the limits: its log is -inf, its ratio to q is 0.
      //   entropy: gp = (-log pk - H) / (Sp ln base)
      //   KL:      gp = (log(pk / qk) - KL) / Sp,          gq = (1 - pk / qk) / Sq
      //   JS:      gp = (log(pk / m) - a) / (2 Sp),         gq = (log(qk / m) - b) / (2 Sq)
      const int64_t gpo = walk.offset(3), gqo = want_gq ? walk.offset(4) : 0;
      S* gp = gp_direct ? p.grad_p.ptr<S>() + gpo : gpbuf.get<S>(C + W);
      S* gq = !want_gq ? nullptr : gq_direct ? p.grad_q.ptr<S>() + gqo : gqbuf.get<S>(C + W);
      const S half = p.kind == Divergence::js ? S(0.5) : S(1);
      const V scale_p = splat(static_cast<S>(half / (Sp * (p.kind == Divergence::entropy ? log_base : 1.0))));
      const V scale_q = splat(static_cast<S>(half / Sq));
      const V va = splat(static_cast<S>(a)), vb = splat(static_cast<S>(b));
      const V ln2 = splat(static_cast<S>(0.6931471805599453));
      for (int64_t j = 0; j < C; j += W) {
        const int64_t n = C - j < W ? C - j : W;
        const V pk = at(x, j) * inv_p;
        V g, h = V{};
        if (p.kind == Divergence::entropy) {
          g = (-vlog(pk) - va) * scale_p;
        } else if (p.kind == Divergence::kl) {
          const V qk = at(y, j) * inv_q;
          const V ratio = pk / qk;
          g = ((pk == S(0) ? splat(ninf) : vlog(ratio)) - va) * scale_p;
          h = (S(1) - (pk == S(0) ? V{} : ratio)) * scale_q;
        } else {
          const V qk = at(y, j) * inv_q, m = (pk + qk) * S(0.5);
          // a zero entry against a zero entry: p / m -> 2 along the way there
          const V lp = pk == S(0) ? (qk == S(0) ? ln2 : splat(ninf)) : vlog(pk / m);
          const V lq = qk == S(0) ? (pk == S(0) ? ln2 : splat(ninf)) : vlog(qk / m);
          g = (lp - va) * scale_p;
          h = (lq - vb) * scale_q;
        }
        if (n == W) {
          store(gp + j, g);
          if (gq) store(gq + j, h);
        } else {
          store_partial(gp + j, g, n);
          if (gq) store_partial(gq + j, h, n);
        }
      }
      if (!gp_direct)
        for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad_p, gpo + c * gp_cs, gp[c]);
      if (gq && !gq_direct)
        for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad_q, gqo + c * gq_cs, gq[c]);
    }
  });
}

// --- multiclass hinge ------------------------------------------------------------------------
// One pass over each row: the margins z_j = margin - s_y + s_j, the loss and the gradient
// (w_y/C p h^(p-1) for Weston-Watkins at every active j; at the best rival only for
// Crammer-Singer), then the label's entry as minus the sum of the others.
// Elements per thread before threads pay off (a margin term costs less than a softmax element;
// the same size as the row engine's, see row_engine.h).
constexpr int64_t kMinHingePerThread = 16384;

template <class S>
void hinge_impl(const MulticlassHingeParams& p) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const int rank = p.scores.ndim - 1;
  const int64_t C = p.scores.shape[rank];
  const int64_t rows = p.scores.drop_last().numel();
  const bool want_grad = !is_none(p.grad), reduce_none = p.reduction == Reduction::none;
  if (rows == 0) {
    if (!reduce_none) store_as<double>(p.loss, 0, 0.0);
    return;
  }
  {  // every label is checked before anything is written
    const int64_t* ls[1] = {p.labels.strides};
    RowWalker<1> walk(p.labels.shape, rank, ls);
    walk.begin(0);
    for (int64_t r = 0; r < rows; ++r, walk.next()) {
      const int64_t y = load_index(p.labels, walk.offset(0));
      if (y < 0 || y >= C)
        throw_index("labels" + index_string(p.labels.shape, rank, r) + " = " + std::to_string(y) + " is outside [0, " +
                    std::to_string(C) + ")");
    }
  }
  ScratchBuffer wbuf;
  const S* w = nullptr;
  if (!is_none(p.weight)) {
    S* wb = wbuf.get<S>(C + 1);
    for (int64_t c = 0; c < C; ++c) wb[c] = load_as<S>(p.weight, c * p.weight.strides[0]);
    w = wb;
  }
  const double scale = p.reduction == Reduction::mean ? 1.0 / static_cast<double>(rows) : 1.0;
  const S sc = static_cast<S>(scale), margin = static_cast<S>(p.margin);
  const S inv_c = p.crammer_singer ? S(1) : S(1) / static_cast<S>(C);
  const bool sq = p.p == 2.0;
  const DType native = sizeof(S) == 4 ? DType::f32 : DType::f64;
  const int64_t gcs = want_grad ? p.grad.strides[rank] : 1;
  const bool grad_direct = want_grad && p.grad.dtype == native && gcs == 1;
  const bool stream = grad_direct && p.grad.numel() * int64_t(sizeof(S)) >= row_engine::kStreamBytes;
  const int64_t* strides[4] = {p.scores.strides, p.labels.strides, want_grad ? p.grad.strides : nullptr,
                               reduce_none ? p.loss.strides : nullptr};
  const S ninf = -std::numeric_limits<S>::infinity();
  const int nt0 = threads_for(rows * C, kMinHingePerThread);
  const int nt = nt0 < 256 ? nt0 : 256;
  double partial[256] = {0};
  parallel_parts(nt, [&](int part, int nparts) {
    const int tid = part;
    int64_t r0, r1;
    thread_range(rows, tid, nparts, &r0, &r1);
    ScratchBuffer xbuf, gbuf;
    RowWalker<4> walk(p.scores.shape, rank, strides);
    walk.begin(r0);
    double acc = 0;
    for (int64_t r = r0; r < r1; ++r, walk.next()) {
      const int64_t y = load_index(p.labels, walk.offset(1)), go = walk.offset(2);
      const S* x = row_engine::row_source<S>(p.scores, walk.offset(0), C, xbuf.get<S>(C + W));
      const S wy = w ? w[y] : S(1);
      S* g = want_grad ? (grad_direct ? p.grad.ptr<S>() + go : gbuf.get<S>(C + W)) : nullptr;
      // x_j for j != y (the label's lane and the padding read as -inf)
      auto rival = [&](int64_t j, int64_t n) {
        V v = n == W ? load(x + j) : load_partial(x + j, n, ninf);
        if (static_cast<uint64_t>(y - j) < static_cast<uint64_t>(n)) v[y - j] = ninf;
        return v;
      };
      // The gradient goes out in vectors, aligned ones streamed past the cache for big
      // gradients; vectors start at 0, `first`, then every W (see put_vec).
      const bool do_stream = stream && g == p.grad.ptr<S>() + go;
      const int64_t first = do_stream ? misaligned_prefix(g, C) : 0;
      auto each_vector = [&](auto&& f) {
        int64_t j = 0;
        if (first > 0) {
          f(int64_t(0), first);
          j = first;
        }
        for (; j < C; j += W) f(j, C - j < W ? C - j : W);
      };
      S loss;
      if (!p.crammer_singer) {
        const V base = splat(margin - x[y]);
        const S gk = sc * wy * inv_c * (sq ? S(2) : S(1));
        V lacc = V{}, gacc = V{};
        // Pass 1: the loss and the label's gradient (minus the sum of the others).
        each_vector([&](int64_t j, int64_t n) {
          const V z = base + rival(j, n);
          const V h = z > S(0) ? z : V{};  // a NaN margin counts 0, as in torch
          lacc += sq ? h * h : h;
          if (g) gacc += sq ? h * gk : (z > S(0) ? splat(gk) : V{});
        });
        loss = wy * inv_c * hsum<S>(lacc);
        // Pass 2 (the row is still in L1): the gradient, the label's entry in its lane, so
        // no scalar store follows a streamed line.
        if (g) {
          const S gy = -hsum<S>(gacc);
          each_vector([&](int64_t j, int64_t n) {
            const V z = base + rival(j, n);
            const V h = z > S(0) ? z : V{};
            V gv = sq ? h * gk : (z > S(0) ? splat(gk) : V{});
            if (static_cast<uint64_t>(y - j) < static_cast<uint64_t>(n)) gv[y - j] = gy;
            put_vec<S>(g, j, gv, n, do_stream);
          });
        }
      } else {
        V mv = splat(ninf);
        for (int64_t j = 0; j < C; j += W) mv = vmax(mv, rival(j, C - j < W ? C - j : W));
        const S m = hmax<S>(mv), z = margin - x[y] + m;
        const S h = z > S(0) ? z : S(0);
        loss = wy * (sq ? h * h : h);
        if (g) {
          // the first best rival takes the gradient (a subgradient at ties)
          int64_t jstar = -1;
          S gv = 0;
          if (h > S(0)) {
            jstar = 0;
            while (jstar < C && (jstar == y || x[jstar] != m)) ++jstar;
            gv = sc * wy * (sq ? S(2) * h : S(1));
          }
          each_vector([&](int64_t j, int64_t n) {
            V v = V{};
            if (static_cast<uint64_t>(y - j) < static_cast<uint64_t>(n)) v[y - j] = -gv;
            if (static_cast<uint64_t>(jstar - j) < static_cast<uint64_t>(n)) v[jstar - j] = gv;
            put_vec<S>(g, j, v, n, do_stream);
          });
        }
      }
      if (want_grad && !grad_direct)
        for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad, go + c * gcs, g[c]);
      if (reduce_none) store_as<S>(p.loss, walk.offset(3), loss);
      else acc += static_cast<double>(loss);
    }
    partial[tid] = acc;
    if (stream) stream_fence();
  });
  if (!reduce_none) {
    store_reduced_loss(p.loss, partial, nt, scale);
  }
}

}  // namespace

void multiclass_hinge_loss(const MulticlassHingeParams& p) {
  if (p.scores.dtype == DType::f64) hinge_impl<double>(p);
  else hinge_impl<float>(p);
}

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

// --- l2_loss ----------------------------------------------------------------------------------
namespace {

// Elements per thread before threads pay off (a subtract and a multiply-add per element).
constexpr int64_t kMinL2PerThread = 32768;

// sum (x - t)^2 of one row; when it overflows with finite inputs, again with the differences
// scaled by their largest magnitude (sqrt(sum) = m sqrt(sum (d/m)^2)), so ||d|| is exact-ish
// up to the dtype's max. Returns the distance.
template <class S> S row_distance(const S* x, const S* t, int64_t C) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  auto diff = [&](int64_t j) {
    return j + W <= C ? load(x + j) - load(t + j) : load_partial(x + j, C - j, S(0)) - load_partial(t + j, C - j, S(0));
  };
  WideSum<S> acc;  // float64: a float32 row of 2^24 differences sums to float32 rounding
  for (int64_t j = 0; j < C; j += W) {
    const V d = diff(j);
    acc.add(d * d);
  }
  const double ss = acc.sum();
  if (!std::isinf(ss)) return static_cast<S>(std::sqrt(ss));
  S m = 0;
  for (int64_t j = 0; j < C; ++j) m = std::max(m, std::abs(x[j] - t[j]));  // NaN never wins; inf stays inf
  if (std::isinf(m)) return m;
  S s2 = 0;
  for (int64_t j = 0; j < C; ++j) {
    const S d = (x[j] - t[j]) / m;
    s2 += d * d;
  }
  return m * std::sqrt(s2);
}

template <class S>
void l2_impl(const L2LossParams& p) {
  constexpr int W = Vec<S>::W;
  const int rank = p.pred.ndim - 1;
  const int64_t C = p.pred.shape[rank];
  const int64_t rows = p.pred.drop_last().numel();
  const bool want_grad = !is_none(p.grad), reduce_none = p.reduction == Reduction::none;
  if (rows == 0) {
    if (!reduce_none) store_as<double>(p.loss, 0, 0.0);
    return;
  }
  // weight broadcast to the rows' shape: right-aligned, stride 0 along its size-1 dimensions
  TensorView w = none_view();
  if (!is_none(p.weight)) {
    w = p.weight;
    w.ndim = rank;
    const int lead = rank - p.weight.ndim;
    for (int i = 0; i < rank; ++i) {
      const int k = i - lead;
      w.shape[i] = p.pred.shape[i];
      w.strides[i] = k >= 0 && p.weight.shape[k] != 1 ? p.weight.strides[k] : 0;
    }
  }
  const bool weighted = !is_none(w);
  const double scale = p.reduction == Reduction::mean ? 1.0 / static_cast<double>(rows) : 1.0;
  const S sc = static_cast<S>(scale);
  const DType native = sizeof(S) == 4 ? DType::f32 : DType::f64;
  const int64_t gcs = want_grad ? p.grad.strides[rank] : 1;
  const bool grad_direct = want_grad && p.grad.dtype == native && gcs == 1;
  const int64_t* strides[5] = {p.pred.strides, p.target.strides, want_grad ? p.grad.strides : nullptr,
                               reduce_none ? p.loss.strides : nullptr, weighted ? w.strides : nullptr};
  const int nt0 = threads_for(rows * C, kMinL2PerThread);
  const int nt = nt0 < 256 ? nt0 : 256;
  double partial[256] = {0};
  parallel_parts(nt, [&](int part, int nparts) {
    const int tid = part;
    int64_t r0, r1;
    thread_range(rows, tid, nparts, &r0, &r1);
    ScratchBuffer xbuf, tbuf, gbuf;
    RowWalker<5> walk(p.pred.shape, rank, strides);
    walk.begin(r0);
    double acc = 0;
    for (int64_t r = r0; r < r1; ++r, walk.next()) {
      const S* x = row_engine::row_source<S>(p.pred, walk.offset(0), C, xbuf.get<S>(C + W));
      const S* t = row_engine::row_source<S>(p.target, walk.offset(1), C, tbuf.get<S>(C + W));
      const S wr = weighted ? load_as<S>(w, walk.offset(4)) : S(1);
      const S d = row_distance<S>(x, t, C);
      const S loss = wr * d;
      if (want_grad) {
        const int64_t go = walk.offset(2);
        S* g = grad_direct ? p.grad.ptr<S>() + go : gbuf.get<S>(C + W);
        // d/dx ||x - t|| = (x - t) / d; 0 at d = 0 (the minimum), so the gradient stays finite
        const S k = d > S(0) ? sc * wr / d : S(0);
        for (int64_t c = 0; c < C; ++c) g[c] = k * (x[c] - t[c]);
        if (!grad_direct)
          for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad, go + c * gcs, g[c]);
      }
      if (reduce_none) store_as<S>(p.loss, walk.offset(3), loss);
      else acc += static_cast<double>(loss);
    }
    partial[tid] = acc;
  });
  if (!reduce_none) {
    store_reduced_loss(p.loss, partial, nt, scale);
  }
}

}  // namespace

void l2_loss(const L2LossParams& p) {
  if (p.pred.dtype == DType::f64) l2_impl<double>(p);
  else l2_impl<float>(p);
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
