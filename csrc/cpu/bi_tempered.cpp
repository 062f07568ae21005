// Bi-tempered logistic loss and tempered softmax on the CPU (compiled once per SIMD level);
// formulas in fastloss/bi_tempered.h.
//
// One algorithm, two ways of laying rows on the SIMD lanes:
//  - ClassLanes: one row at a time, its classes along the lanes (gathered into a contiguous
//    scratch row when strided or float16), so every pass over the row reads L1;
//  - RowLanes: the binary form, W two-class rows [0, x] at once, one per lane.
// The algorithm sees a row through each(f) (f gets one Chunk of classes) and total(acc) (the
// sum over the row of what f accumulated, broadcast to every lane of that row). Per-row values
// are vectors throughout: splats for ClassLanes, one value per row for RowLanes.
//
// Per element: every normalisation step is one exp_t = exp(log(base) / (1-t2)) (a vector log and
// a vector exp); the last pass takes log(s) once, s = max(1 + (1-t2)(x - norm), 0), and from it
// p = exp(log s / (1-t2)) and q = p^(1-t1) = exp(log s (1-t1)/(1-t2)); the forget factor
// p^(t2-t1) = q / s and the escort p^t2 = p / s need no further exp. So 2 (num_iters + 1) + 3
// transcendentals per element (15 at num_iters = 5), and the gradient comes from the same pass
// (d = (p - y) p^(t2-t1) and the escorts kept in two L1 scratch rows). When 1/(1-t2) (and
// (1-t1)/(1-t2)) are small integers, as for t2 = 1.2, 1.5, 2, 0.8 or 0.5, exp_t is b^n by a few
// multiplies and a divide: no transcendental per element at all.
#include "fastloss/bi_tempered.h"
#include "fastloss/cpu_kernel.h"
#include "fastloss/row_engine.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace {

// Rows worth a thread (an element costs ~15 vector transcendentals at 5 iterations, ~10 ns on
// one core; 4096 elements are ~40 us, well above the 2-20 us fork/join of the pool).
constexpr int64_t kMinElementsPerThread = 4096;

template <class S> struct Temps {
  S t1, t2, k1, k2, inv_k2, r12, beta, inv_beta;
  int64_t iters;
  bool t1_one, t2_one, t_eq, t2_gt1;  // from the double temperatures (t2 = 1 + 1e-9 is 1.0f)
  bool beta_le0, beta_zero;  // t1 >= 2, t1 == 2: the y^(2-t1) terms need their limits (see loss_pass)
  bool log1p_fix;            // |1 - t2| < 1/4: log(1 + k u) takes 1 + k u's rounding error back (log_1pz)
  // 1/(1-t2) and (1-t1)/(1-t2) when they are small integers (t2 = 1.2, 1.5, 2, 0.5, 0.8 and
  // t1 = 2 - t2 ...), else 0: exp_t is then a few multiplies instead of a log and an exp.
  int n_k2, n_r12;
  S ls_a, ls_b;  // smoothed label = ls_a * y + ls_b
  S eps;         // the reference's 1e-10 inside log_t(y + eps, t1)
};

// e as an integer in [-16, 16] when it is one (to 1e-9 relative: 1/(1-1.2) is -5 + 1e-15), else 0.
inline int small_integer(double e) {
  const double r = std::nearbyint(e);
  return std::isfinite(e) && r != 0 && std::fabs(r) <= 16 && std::fabs(e - r) <= 1e-9 * std::fabs(r) ? static_cast<int>(r)
                                                                                                     : 0;
}

template <class S> Temps<S> temps(double t1, double t2, int64_t iters, double ls, int64_t C) {
  Temps<S> T;
  T.n_k2 = t2 == 1.0 ? 0 : small_integer(1.0 / (1.0 - t2));
  T.n_r12 = t2 == 1.0 || t1 == 1.0 ? 0 : small_integer((1.0 - t1) / (1.0 - t2));
  T.t1 = static_cast<S>(t1);
  T.t2 = static_cast<S>(t2);
  T.k1 = static_cast<S>(1.0 - t1);
  T.k2 = static_cast<S>(1.0 - t2);
  T.inv_k2 = static_cast<S>(1.0 / (1.0 - t2));
  T.r12 = static_cast<S>((1.0 - t1) / (1.0 - t2));
  T.beta = static_cast<S>(2.0 - t1);
  T.inv_beta = static_cast<S>(1.0 / (2.0 - t1));
  T.iters = iters;
  T.t1_one = t1 == 1.0;
  T.t2_one = t2 == 1.0;
  T.t_eq = t1 == t2;
  T.t2_gt1 = t2 > 1.0;
  T.beta_le0 = t1 >= 2.0;
  T.log1p_fix = std::fabs(1.0 - t2) < 0.25;
  T.beta_zero = t1 == 2.0;
  const double c = static_cast<double>(C);
  T.ls_a = static_cast<S>(ls > 0 ? 1.0 - c / (c - 1.0) * ls : 1.0);
  T.ls_b = static_cast<S>(ls > 0 ? ls / (c - 1.0) : 0.0);
  T.eps = static_cast<S>(1e-10);
  return T;
}

template <class S> struct Chunk {
  typedef vec_t<S> V;
  typedef typename Vec<S>::I M;
  int64_t off;  // where this chunk's per-class scratch (d, escort) lives
  int64_t n;    // live lanes (ClassLanes tail); W otherwise
  V x;          // activations, -inf on dead lanes
  M live;       // lanes that hold a class of the row
};

// One row, classes along the lanes.
template <class S> struct ClassLanes {
  typedef vec_t<S> V;
  typedef typename Vec<S>::I M;
  static constexpr int W = Vec<S>::W;
  const S* x;
  const S* y;       // soft labels (unsmoothed), or null
  int64_t label;    // integer label, or -1
  int64_t C;
  template <class F> void each(F f) const {
    const S ninf = -std::numeric_limits<S>::infinity();
    V iota;
    for (int i = 0; i < W; ++i) iota[i] = S(i);
    for (int64_t j = 0; j < C; j += W) {
      const int64_t n = C - j < W ? C - j : W;
      Chunk<S> c;
      c.off = j;
      c.n = n;
      c.x = n == W ? load(x + j) : load_partial(x + j, n, ninf);
      c.live = iota < S(n);
      f(c);
    }
  }
  // A row's sums run in float64 (WideSum): a float32 row of 50000 classes would otherwise sum to
  // 1e-4 and its tempered softmax miss 1 by as much.
  typedef WideSum<S> Acc;
  V total(Acc& acc) const { return splat(static_cast<S>(acc.sum())); }
  V max() const {
    V m = splat(-std::numeric_limits<S>::infinity());
    each([&](const Chunk<S>& c) { m = vmax(m, c.x); });
    return splat(hmax<S>(m));
  }
  // Smoothed labels of the chunk (0 on dead lanes).
  V labels(const Chunk<S>& c, const Temps<S>& T) const {
    if (y) {
      const V yv = c.n == W ? load(y + c.off) : load_partial(y + c.off, c.n, S(0));
      const V s = yv * T.ls_a + T.ls_b;
      return c.live ? s : V{};
    }
    V s = splat(T.ls_b);
    if (label >= c.off && label < c.off + c.n) s[label - c.off] = T.ls_a + T.ls_b;
    return c.live ? s : V{};
  }
};

// W binary rows [0, x] at once (one per lane), labels [1 - t, t].
template <class S> struct RowLanes {
  typedef vec_t<S> V;
  typedef typename Vec<S>::I M;
  static constexpr int W = Vec<S>::W;
  V x1, t;
  template <class F> void each(F f) const {
    Chunk<S> c;
    c.n = W;
    c.live = V{} == V{};
    c.off = 0;
    c.x = V{};
    f(c);
    c.off = W;
    c.x = x1;
    f(c);
  }
  struct Acc {  // two classes per row: nothing to widen
    V acc{};
    void add(V v) { acc += v; }
  };
  V total(Acc& a) const { return a.acc; }
  V max() const { return vmax(x1, V{}); }  // NaN propagates (compare is false)
  V labels(const Chunk<S>& c, const Temps<S>& T) const {
    const V yc = c.off == 0 ? S(1) - t : t;
    return yc * T.ls_a + T.ls_b;
  }
};

// max(v, 0), NaN staying NaN.
template <class V> inline V relu(V v) {
  typedef decltype(v[0] + 0) S;
  return v < S(0) ? V{} : v;
}

// b^n for an integer n != 0 (binary powering; 1/0 = inf and inf^-n = 0 as pow gives them).
template <class V> inline V ipow(V b, int n) {
  typedef decltype(b[0] + 0) S;
  int e = n < 0 ? -n : n;
  V r = splat(S(1));
  for (V x = b; e; e >>= 1, x *= x)
    if (e & 1) r *= x;
  return n < 0 ? S(1) / r : r;
}

// log(max(b, 0)) for b = 1 + z already rounded, rb = 1 / b (0 where b <= 0): with log1p_fix the
// rounding error of b comes back as err / b (Fast2Sum), so that near t = 1, where 1/(1-t) blows
// any error of log b up (t = 1 + 1 ulp: b rounds to 1 and the tempered softmax summed to 0.40),
// exp_t still follows exp. -inf where b <= 0; NaN stays NaN.
template <class S> inline vec_t<S> log_base(vec_t<S> z, vec_t<S> b, vec_t<S> rb, const Temps<S>& T) {
  typedef vec_t<S> V;
  const V l = vlog(relu(b));
  if (!T.log1p_fix) return l;
  const V err = (z < S(1) && z > S(-1)) ? (S(1) - b) + z : (z - b) + S(1);
  return rb == S(0) ? l : l + err * rb;  // b = +-inf (a padding lane's -inf) or <= 0: no correction
}

// exp_t(u) = max(1 + z, 0)^(1/(1-t)) for z = (1-t) u.
template <class S> inline vec_t<S> exp_t_z(vec_t<S> z, const Temps<S>& T) {
  typedef vec_t<S> V;
  const V b = S(1) + z;
  if (T.n_k2) return ipow(relu(b), T.n_k2);
  const V rb = T.log1p_fix ? (b > S(0) ? S(1) / b : V{}) : V{};
  return vexp(log_base<S>(z, b, rb, T) * T.inv_k2);
}

// expm1 lane by lane (once per row): (Z^-k - 1) / k as (exp(-k log Z) - 1) / k would lose every
// digit to cancellation for k near 0.
template <class S> inline vec_t<S> expm1_lanes(vec_t<S> v) {
  for (int i = 0; i < Vec<S>::W; ++i) v[i] = std::expm1(v[i]);
  return v;
}

// The normalisation `norm` of each row: p = exp_t(x - norm) sums to 1 (the reference's three cases).
template <class S, class View> vec_t<S> normalization(const View& v, const Temps<S>& T) {
  typedef vec_t<S> V;
  const V m = v.max();
  if (T.t2_one) {
    typename View::Acc acc;
    v.each([&](const Chunk<S>& c) { acc.add(vexp(c.x - m)); });
    return m + vlog(v.total(acc));
  }
  const S k = T.k2;
  if (T.t2_gt1) {  // fixed point: a <- (x - m) Z^(1-t), Z = sum exp_t(a); exp_t(a) = (1 + k Z^k (x - m))^(1/k)
    V kc = splat(k);
    auto partition = [&]() {
      typename View::Acc acc;
      v.each([&](const Chunk<S>& c) { acc.add(exp_t_z<S>(kc * (c.x - m), T)); });
      return v.total(acc);
    };
    for (int64_t i = 0; i < T.iters; ++i) kc = k * vexp(k * vlog(partition()));
    const V Z = partition();
    return m - expm1_lanes<S>(-k * vlog(Z)) / k;  // -log_t(1/Z) + m
  }
  // bisection for t < 1 on [0, -log_t(1/effective_dim)]; a NaN anywhere in the row makes the
  // norm NaN (the bisection's compares would skip it and leave the rest of the row finite)
  typename View::Acc cnt, nans;
  const S thr = S(-1) / k;
  v.each([&](const Chunk<S>& c) {
    cnt.add(c.x - m > thr ? splat(S(1)) : V{});
    nans.add(c.x != c.x ? splat(S(1)) : V{});
  });
  const V eff = v.total(cnt);
  const V poison = v.total(nans) > S(0) ? splat(std::numeric_limits<S>::quiet_NaN()) : V{};
  V lower = V{}, upper = -expm1_lanes<S>(-k * vlog(eff)) / k;
  for (int64_t i = 0; i < T.iters; ++i) {
    const V mid = (upper + lower) * S(0.5);
    typename View::Acc acc;
    v.each([&](const Chunk<S>& c) { acc.add(exp_t_z<S>(k * ((c.x - m) - mid), T)); });
    const V sum = v.total(acc);
    upper = sum < S(1) ? mid : upper;
    lower = sum < S(1) ? lower : mid;
  }
  return (upper + lower) * S(0.5) + m + poison;
}

// Per-element probability terms at u = x - norm.
template <class S> struct Probs {
  vec_t<S> p, q, lp;  // p, p^(1-t1), log p (only when t1 = 1)
  vec_t<S> r;         // 1 / s (0 where s = 0); for t2 = 1 unused
};
template <class S> inline Probs<S> probs(vec_t<S> u, const Temps<S>& T) {
  typedef vec_t<S> V;
  Probs<S> P;
  if (T.t2_one) {
    P.lp = u;
    P.p = vexp(u);
    P.q = T.t1_one ? splat(S(1)) : vexp(u * T.k1);
    P.r = V{};
    return P;
  }
  const V z = T.k2 * u, b = S(1) + z;
  const V s = relu(b);
  P.r = s > S(0) ? S(1) / s : V{};
  if (T.n_k2 && (T.t1_one ? false : T.n_r12 != 0)) {  // no log needed
    P.p = ipow(s, T.n_k2);
    P.q = ipow(s, T.n_r12);
    P.lp = V{};
    return P;
  }
  const V l = log_base<S>(z, b, P.r, T);
  P.lp = l * T.inv_k2;
  P.p = T.n_k2 ? ipow(s, T.n_k2) : vexp(P.lp);
  P.q = T.t1_one ? splat(S(1)) : T.n_r12 ? ipow(s, T.n_r12) : vexp(l * T.r12);
  return P;
}

// The row's loss (per lane) and, with `grad`, the scratch d (at off) and escorts (at W*... e),
// and the gradient factor D / sum(escorts). label_const: the labels-only part for integer labels.
//
// Per class the loss is [y log_t(y + eps) - B(y)] - [y log_t(p) - B(p)] with B(u) = u^b / b,
// b = 2 - t1. For t1 < 2 the two brackets are summed apart (the first is label_const for
// integer labels), B(0) = 0. For t1 >= 2 the limits decide: B(u) -> log u at b = 0, and
// B(0) = -inf, so a class with y = 0 < p costs +inf, y = p = 0 costs 0 (its two terms are one
// limit), y > 0 = p costs +inf: those classes are summed as one term each.
template <class S, class View>
vec_t<S> loss_pass(const View& v, const Temps<S>& T, vec_t<S> norm, vec_t<S> label_const, bool soft, bool grad, S* d,
                   S* e, vec_t<S>* factor) {
  typedef vec_t<S> V;
  typedef typename View::Acc Acc;
  Acc a_ylt, a_pq, a_lab, a_d, a_e, a_whole;
  const S inf = std::numeric_limits<S>::infinity();
  v.each([&](const Chunk<S>& c) {
    const Probs<S> P = probs(c.x - norm, T);
    const V y = v.labels(c, T);
    const V ltp = T.t1_one ? P.lp : (P.q - S(1)) / T.k1;
    // p^b: 0 where p = 0 (p * p^(1-t1) would be 0 * inf when t1 > 1)
    const V pq = T.t1_one ? P.p : (P.p == S(0) ? V{} : P.p * P.q);
    if (T.beta_le0) {
      const V lt_y = (vexp(vlog(y + T.eps) * T.k1) - S(1)) / T.k1;
      const V By = T.beta_zero ? vlog(y) : vexp(vlog(y) * T.beta) * T.inv_beta;
      const V Bp = T.beta_zero ? vlog(P.p) : pq * T.inv_beta;
      V term = (y * lt_y - By) - (y * ltp - Bp);
      term = P.p == S(0) ? (y == S(0) ? V{} : splat(inf)) : (y == S(0) ? splat(inf) : term);
      a_whole.add(c.live ? term : V{});
    } else {
      a_ylt.add(y != S(0) ? y * ltp : V{});  // a zero label never meets log_t(0) = -inf
      a_pq.add(c.live ? pq : V{});
      if (soft) {
        const V zero = V{};
        if (std::memcmp(&y, &zero, sizeof(V)) != 0) {  // one-hot rows skip their zero chunks
          const V lye = vlog(y + T.eps);
          const V lt = T.t1_one ? lye : (vexp(lye * T.k1) - S(1)) / T.k1;
          const V yb = T.t1_one ? y : vexp(vlog(y) * T.beta);
          a_lab.add(y * lt - yb * T.inv_beta);
        }
      }
    }
    if (grad) {
      V F, esc;
      if (T.t2_one) {
        F = P.q;
        esc = P.p;
      } else {
        F = P.r != S(0) ? P.q * P.r : (T.t_eq ? splat(S(1)) : V{});
        esc = P.p * P.r;
      }
      V dv = (P.p - y) * F;
      dv = c.live ? dv : V{};
      esc = c.live ? esc : V{};
      store(d + c.off, dv);
      store(e + c.off, esc);
      a_d.add(dv);
      a_e.add(esc);
    }
  });
  if (grad) *factor = v.total(a_d) / v.total(a_e);
  if (T.beta_le0) return v.total(a_whole);
  const V lab = soft ? v.total(a_lab) : label_const;
  return lab - v.total(a_ylt) + v.total(a_pq) * T.inv_beta;
}

template <class S>
void loss_rows(const BiTemperedParams& p) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const int rank = p.activations.ndim - 1;
  const int64_t C = p.activations.shape[rank];
  const int64_t rows = p.activations.drop_last().numel();
  const bool want_grad = !is_none(p.grad), reduce_none = p.reduction == Reduction::none;
  if (rows == 0 || C == 0) {
    zero_row_losses(p.loss, p.reduction, rank, rows);
    return;
  }
  const Temps<S> T = temps<S>(p.t1, p.t2, p.num_iters, p.label_smoothing, C);
  const V label_const = splat(static_cast<S>(bi_tempered_onehot_label_const(p.t1, p.label_smoothing, C)));
  const double scale = p.reduction == Reduction::mean ? 1.0 / static_cast<double>(rows) : 1.0;
  const S sc = static_cast<S>(scale);
  const DType native = sizeof(S) == 4 ? DType::f32 : DType::f64;
  const int64_t gcs = want_grad ? p.grad.strides[rank] : 1;
  const bool grad_direct = want_grad && p.grad.dtype == native && gcs == 1;
  const int64_t* strides[4] = {p.activations.strides, p.labels.strides, want_grad ? p.grad.strides : nullptr,
                               reduce_none ? p.loss.strides : nullptr};
  const int nt0 = threads_for(rows * C * (p.num_iters + 2) / 8, kMinElementsPerThread);
  const int nt = nt0 < 256 ? nt0 : 256;
  double partial[256] = {0};
  parallel_parts(nt, [&](int part, int nparts) {
    const int tid = part;
    int64_t r0, r1;
    thread_range(rows, tid, nparts, &r0, &r1);
    ScratchBuffer xbuf, ybuf, dbuf, ebuf, gbuf;
    S* d = dbuf.get<S>(C + W);
    S* e = ebuf.get<S>(C + W);
    RowWalker<4> walk(p.activations.shape, rank, strides);
    walk.begin(r0);
    double acc = 0;
    for (int64_t r = r0; r < r1; ++r, walk.next()) {
      ClassLanes<S> v;
      v.C = C;
      v.x = row_engine::row_source<S>(p.activations, walk.offset(0), C, xbuf.get<S>(C + W));
      v.y = p.soft_labels ? row_engine::row_source<S>(p.labels, walk.offset(1), C, ybuf.get<S>(C + W)) : nullptr;
      v.label = p.soft_labels ? -1 : load_index(p.labels, walk.offset(1));
      const V norm = normalization<S>(v, T);
      V factor = V{};
      const S loss = loss_pass<S>(v, T, norm, label_const, p.soft_labels, want_grad, d, e, &factor)[0];
      if (want_grad) {
        const int64_t go = walk.offset(2);
        S* g = grad_direct ? p.grad.ptr<S>() + go : gbuf.get<S>(C + W);
        const V f = factor;
        for (int64_t j = 0; j < C; j += W) {
          const V gv = (load(d + j) - load(e + j) * f) * sc;
          if (j + W <= C) store(g + j, gv);
          else store_partial(g + j, gv, C - j);
        }
        if (!grad_direct)
          for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad, go + c * gcs, g[c]);
      }
      if (reduce_none) store_as<S>(p.loss, walk.offset(3), loss);
      else acc += static_cast<double>(loss);
    }
    partial[tid] = acc;
  });
  if (!reduce_none) store_reduced_loss(p.loss, partial, nt, scale);
}

// The binary form: each element a two-class row [0, x] with labels [1-t, t]; W rows per step.
// At t1 = t2 = 1 it is the logistic loss: (y0 + y1) softplus(x) - y1 x, gradient (y0 + y1) sigmoid(x) - y1.
template <class S>
void loss_binary(const BiTemperedParams& p) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const TensorView& xv = p.activations;
  const int rank = xv.ndim;
  const int64_t n = xv.numel();
  const bool want_grad = !is_none(p.grad), reduce_none = p.reduction == Reduction::none;
  if (n == 0) {
    if (!reduce_none) store_as<double>(p.loss, 0, 0.0);
    return;
  }
  const Temps<S> T = temps<S>(p.t1, p.t2, p.num_iters, p.label_smoothing, 2);
  const bool logistic = T.t1_one && T.t2_one;
  const double scale = p.reduction == Reduction::mean ? 1.0 / static_cast<double>(n) : 1.0;
  const S sc = static_cast<S>(scale);
  const int64_t* strides[4] = {xv.strides, p.labels.strides, want_grad ? p.grad.strides : nullptr,
                               reduce_none ? p.loss.strides : nullptr};
  const int nt0 = threads_for(n * 2 * (p.num_iters + 2) / 8, kMinElementsPerThread);
  const int nt = nt0 < 256 ? nt0 : 256;
  double partial[256] = {0};
  parallel_parts(nt, [&](int part, int nparts) {
    const int tid = part;
    int64_t r0, r1;
    thread_range(n, tid, nparts, &r0, &r1);
    RowWalker<4> walk(xv.shape, rank, strides);
    walk.begin(r0);
    S d[2 * W], e[2 * W];
    int64_t go[W], lo[W];
    double acc = 0;
    for (int64_t r = r0; r < r1; r += W) {
      const int k = static_cast<int>(r1 - r < W ? r1 - r : W);
      RowLanes<S> v;
      v.x1 = V{};
      v.t = V{};
      for (int i = 0; i < k; ++i, walk.next()) {
        v.x1[i] = load_as<S>(xv, walk.offset(0));
        v.t[i] = load_as<S>(p.labels, walk.offset(1));
        go[i] = walk.offset(2);
        lo[i] = walk.offset(3);
      }
      V loss, g;
      if (logistic) {
        const V y1 = v.t * T.ls_a + T.ls_b, y0 = (S(1) - v.t) * T.ls_a + T.ls_b;
        const V ax = v.x1 > S(0) ? v.x1 : -v.x1;
        const V en = vexp(-ax);
        const V sp = relu(v.x1) + vlog(S(1) + en);  // softplus(x) = log(1 + e^x)
        loss = (y0 + y1) * sp - y1 * v.x1;
        const V sig = v.x1 > S(0) ? S(1) / (S(1) + en) : en / (S(1) + en);
        g = ((y0 + y1) * sig - y1) * sc;
      } else {
        // labels-only part per class: y log_t(y + eps) - y^(2-t1) / (2-t1)
        V lab = V{};
        for (int c = 0; c < 2; ++c) {
          Chunk<S> ch;
          ch.off = c * W;
          const V y = v.labels(ch, T);
          const V lye = vlog(y + T.eps);
          const V lt = T.t1_one ? lye : (vexp(lye * T.k1) - S(1)) / T.k1;
          const V yb = T.t1_one ? y : vexp(vlog(y) * T.beta);
          lab += y * lt - yb * T.inv_beta;
        }
        const V norm = normalization<S>(v, T);
        V factor = V{};
        loss = loss_pass<S>(v, T, norm, lab, false, want_grad, d, e, &factor);
        g = (load(d + W) - load(e + W) * factor) * sc;
      }
      for (int i = 0; i < k; ++i) {
        if (want_grad) store_as<S>(p.grad, go[i], g[i]);
        if (reduce_none) store_as<S>(p.loss, lo[i], loss[i]);
        else acc += static_cast<double>(loss[i]);
      }
    }
    partial[tid] = acc;
  });
  if (!reduce_none) store_reduced_loss(p.loss, partial, nt, scale);
}

template <class S>
void softmax_rows(const TemperedSoftmaxParams& p) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const int rank = p.activations.ndim - 1;
  const int64_t C = p.activations.shape[rank];
  const int64_t rows = p.activations.drop_last().numel();
  if (rows == 0 || C == 0) return;
  const Temps<S> T = temps<S>(1.0, p.t, p.num_iters, 0.0, C);
  const DType native = sizeof(S) == 4 ? DType::f32 : DType::f64;
  const int64_t ocs = p.out.strides[rank];
  const bool direct = p.out.dtype == native && ocs == 1;
  const int64_t* strides[2] = {p.activations.strides, p.out.strides};
  const int nt = threads_for(rows * C * (p.num_iters + 2) / 8, kMinElementsPerThread);
  parallel_parts(nt, [&](int part, int nparts) {
    int64_t r0, r1;
    thread_range(rows, part, nparts, &r0, &r1);
    ScratchBuffer xbuf, obuf;
    RowWalker<2> walk(p.activations.shape, rank, strides);
    walk.begin(r0);
    for (int64_t r = r0; r < r1; ++r, walk.next()) {
      ClassLanes<S> v;
      v.C = C;
      v.x = row_engine::row_source<S>(p.activations, walk.offset(0), C, xbuf.get<S>(C + W));
      v.y = nullptr;
      v.label = -1;
      const V norm = normalization<S>(v, T);
      const int64_t oo = walk.offset(1);
      S* o = direct ? p.out.ptr<S>() + oo : obuf.get<S>(C + W);
      v.each([&](const Chunk<S>& c) {
        const V pv = probs<S>(c.x - norm, T).p;
        if (c.n == W) store(o + c.off, pv);
        else store_partial(o + c.off, pv, c.n);
      });
      if (!direct)
        for (int64_t c = 0; c < C; ++c) store_as<S>(p.out, oo + c * ocs, o[c]);
    }
  });
}

}  // namespace

// float16 and float32 compute in float; float64 in double.
void bi_tempered_logistic_loss(const BiTemperedParams& p) {
  const bool f64 = p.activations.dtype == DType::f64;
  if (p.binary) f64 ? loss_binary<double>(p) : loss_binary<float>(p);
  else f64 ? loss_rows<double>(p) : loss_rows<float>(p);
}

void tempered_softmax(const TemperedSoftmaxParams& p) {
  if (p.activations.dtype == DType::f64) softmax_rows<double>(p);
  else softmax_rows<float>(p);
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
