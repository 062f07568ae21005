// The math of each elementwise loss, written once for the CPU engine (M = SIMD vectors of
// one ISA level) and the CUDA kernel (M = scalars on the device). For one element with
// prediction x, target t and per-element parameter c (pos_weight; 1 when absent), a functor
// gives the loss l and its derivative d = dl/dx. The engine applies weight, reduction,
// gradient scale and storage; a functor knows none of that.
//
// M provides: types S (scalar) and V (lane type), c(s) (a V of s), exp, exp_nonpos (for
// x <= 0 or NaN: no upper clamp), log, log1p01
// (log(1 + e) for e in [0, 1]), abs, fma (a b + c, one rounding) and recip (1 / x for
// normal x, maybe approximate).
// Conditions are written as `cond ? a : b` on V, which GCC's vector extension and plain
// scalars both accept (both branches are computed on vectors, so each branch is finite or
// selected away).
//
// Numerics: every sigmoid-family loss goes through one exp(-|x|): softplus(+-x) =
// max(+-x, 0) + log1p(exp(-|x|)), sigmoid(+-x) from the same exp, so logits of 1e9 or
// +-inf give exact values, and terms with a zero coefficient are selected to 0 (never 0*inf).
#pragma once

#if defined(__CUDACC__)
#define FASTLOSS_HD __host__ __device__ __forceinline__
#else
#define FASTLOSS_HD inline
#endif

namespace fastloss {
namespace elementwise {

template <class S> struct Consts {
  S a, b, c;
  int n;
};

// sigmoid(x), sigmoid(-x) and lp = log1p(exp(-|x|)) from one exp and one log1p;
// softplus(+-x) = max(+-x, 0) + lp.
template <class M> struct Sig {
  typedef typename M::V V;
  V x, s, sn, lp;
  FASTLOSS_HD explicit Sig(V x_) : x(x_) {
    const V one = M::c(1);
    const V e = M::exp_nonpos(-M::abs(x));
    lp = M::log1p01(e);
    const V r = M::recip(one + e);
    const V er = e * r;
    s = x >= M::c(0) ? r : er;
    sn = x >= M::c(0) ? er : r;
    // NaN: e, lp and r are NaN and the condition false, so all three carry it.
  }
};

// A*softplus(-x) + B*softplus(x) and its derivative B*s - A*(1-s): the binary cross-entropy
// family (A weighs the positive term, B the negative). One of max(+-x, 0) is 0, so
// l = k x + (A + B) lp with k = B (x >= 0) or -A: for targets in [0, 1] a sum of non-negative
// terms (no cancellation), and k = 0 drops k x (never 0 * inf at infinite logits).
template <class M>
FASTLOSS_HD void weighted_bce(const Sig<M>& q, typename M::V A, typename M::V B, typename M::V& l,
                              typename M::V& d) {
  typedef typename M::V V;
  const V zero = M::c(0);
  const V k = q.x >= zero ? B : -A;
  l = M::fma(A + B, q.lp, k == zero ? zero : k * q.x);
  d = B * q.s - A * q.sn;
}

// torch.nn.functional.binary_cross_entropy_with_logits: c = pos_weight.
// l = c t softplus(-x) + (1-t) softplus(x); d = (1-t) s - c t (1-s).
template <class M> struct SigmoidCrossEntropy {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>&, V x, V t, V c, V& l, V& d) {
    const Sig<M> q(x);
    weighted_bce<M>(q, c * t, M::c(1) - t, l, d);
  }
};

// -(beta t log s + (1-beta)(1-t) log(1-s)); a = beta (constant for the gradient).
template <class M> struct BalancedSigmoidCrossEntropy {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>& k, V x, V t, V, V& l, V& d) {
    const Sig<M> q(x);
    weighted_bce<M>(q, t * k.a, (M::c(1) - t) * (S(1) - k.a), l, d);
  }
};

// m^n for a small non-negative integer n (m^0 = 1, also for m = 0).
template <class M> FASTLOSS_HD typename M::V int_pow(typename M::V m, int n) {
  typename M::V r = M::c(1);
  for (int i = 0; i < n; ++i) r = r * m;
  return r;
}

// torchvision.ops.sigmoid_focal_loss: ce = BCE-with-logits, m = 1 - p_t = s(1-t) + (1-s)t,
// l = alpha_t ce m^gamma; d = alpha_t ((s - t) m^g + g ce m^g q (1 - 2t)) with
// q = s(1-s)/m = dm/dx / (1-2t) / m, bounded by 1 (its limit max(s, 1-s) where m underflows).
// a = alpha (< 0: no alpha_t), b = gamma, n = gamma when it is a small integer (m^g by
// multiplication), else -1 (m^g = exp(g log m)).
template <class M> struct SigmoidFocal {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>& k, V x, V t, V, V& l, V& d) {
    const V zero = M::c(0), one = M::c(1);
    const Sig<M> q(x);
    V ce, dce;
    weighted_bce<M>(q, t, one - t, ce, dce);  // dce = s - t
    const V m = (one - t) * q.s + t * q.sn;
    const V mg = k.n >= 0 ? int_pow<M>(m, k.n) : (m > zero ? M::exp(M::log(m) * k.b) : zero);
    l = ce * mg;
    d = dce * mg;
    if (k.b > S(0)) {
      // Below the smallest normal m the limit of q is max(s, 1 - s) (one of them is ~1).
      const V qq = m > S(sizeof(S) == 4 ? 0x1p-126 : 0x1p-1022) ? q.s * q.sn * M::recip(m) : (q.s > q.sn ? q.s : q.sn);
      const V extra = ce * mg * qq * (one - t - t) * k.b;
      d = d + (qq == zero ? zero : extra);  // ce may be inf where qq is 0
    }
    if (k.a >= S(0)) {
      const V at = t * k.a + (one - t) * (S(1) - k.a);
      l = l * at;
      d = d * at;
    }
  }
};

// Cross-entropy counted where p_t = t s + (1-t)(1-s) < margin. Hard (n = 0): the factor is a
// constant 0 or 1. Soft (n = 1, b = softness K): f = sigmoid(K (margin - p_t)), l = f ce and
// the gradient flows through f: d = f (s - t) + ce f (1-f) K (1 - 2t) s (1-s). a = margin.
template <class M> struct TruncatedSigmoidCrossEntropy {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>& k, V x, V t, V, V& l, V& d) {
    const V zero = M::c(0), one = M::c(1);
    const Sig<M> q(x);
    V ce, dce;
    weighted_bce<M>(q, t, one - t, ce, dce);
    const V pt = t * q.s + (one - t) * q.sn;
    if (k.n == 0) {
      // pt is NaN when x or t is: the compare would select 0, so NaN is put back from pt.
      l = pt < k.a ? ce : zero;
      d = pt < k.a ? dce : zero;
      l = pt == pt ? l : pt;
      d = pt == pt ? d : pt;
    } else {
      const V z = (M::c(k.a) - pt) * k.b;
      const V ez = M::exp_nonpos(-M::abs(z));
      const V r = M::recip(one + ez);
      const V f = z >= zero ? r : ez * r;      // sigmoid(z)
      const V fn = z >= zero ? ez * r : r;     // 1 - f
      const V extra = ce * f * fn * (one - t - t) * q.s * q.sn * k.b;
      l = f == zero ? zero : f * ce;
      d = f * dce + (f * fn == zero ? zero : extra);
      l = x == x ? l : x;
      d = x == x ? d : x;
    }
  }
};

// Binary hinge: y = t, or -1 where t = 0 (labels {-1, 1} or {0, 1}, checked by the engine's
// first pass); h = margin - y x; l = max(0, h) (n = 0) or max(0, h)^2 (n = 1). a = margin.
template <class M> struct Hinge {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>& k, V x, V t, V, V& l, V& d) {
    const V zero = M::c(0);
    const V y = t == zero ? M::c(-1) : t;
    const V h = M::c(k.a) - y * x;
    if (k.n == 0) {
      l = h < zero ? zero : h;                       // NaN stays
      d = h > zero ? -y : (h <= zero ? zero : h);
    } else {
      l = h < zero ? zero : h * h;
      d = h < zero ? zero : y * h * S(-2);
    }
  }
};

// torch.nn.functional.kl_div, x = log-probabilities. n = 0: l = t (log t - x), d = -t;
// n = 1 (log_target): l = e^t (t - x), d = -e^t. A zero target (t = 0, or -inf in log
// space) contributes 0 whatever x is, unless x is NaN.
template <class M> struct KlDiv {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>& k, V x, V t, V, V& l, V& d) {
    const V zero = M::c(0);
    const V nan_or_zero = x == x ? zero : x;
    if (k.n == 0) {
      const V tpos = t == zero ? M::c(1) : t;  // keeps log away from 0 in the dropped lane
      l = t == zero ? nan_or_zero : t * (M::log(tpos) - x);
      d = -t;
    } else {
      const V et = M::exp(t);
      l = et == zero ? nan_or_zero : et * (t - x);
      d = -et;
    }
  }
};

// Regression losses on the residual r = x - t.
template <class M> struct Mse {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>&, V x, V t, V, V& l, V& d) {
    const V r = x - t;
    l = r * r;
    d = r + r;
  }
};

// sign(r) with sign(0) = 0 and NaN kept.
template <class M> FASTLOSS_HD typename M::V sign(typename M::V r) {
  const typename M::V zero = M::c(0);
  return r > zero ? M::c(1) : (r < zero ? M::c(-1) : r);
}

template <class M> struct L1 {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>&, V x, V t, V, V& l, V& d) {
    const V r = x - t;
    l = M::abs(r);
    d = sign<M>(r);
  }
};

// a = delta: 0.5 r^2 where |r| < delta, else delta (|r| - delta / 2); d = clamp(r, +-delta).
template <class M> struct Huber {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>& k, V x, V t, V, V& l, V& d) {
    const V r = x - t, ar = M::abs(r);
    l = ar < k.a ? r * r * S(0.5) : (ar - k.a * S(0.5)) * k.a;
    d = r > k.a ? M::c(k.a) : (r < -k.a ? M::c(-k.a) : r);
  }
};

// a = beta, b = 1 / beta: 0.5 r^2 / beta where |r| < beta, else |r| - beta / 2; n = 1 for
// beta = 0, which is exactly L1 (sign(0) = 0).
template <class M> struct SmoothL1 {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>& k, V x, V t, V c, V& l, V& d) {
    if (k.n == 1) return L1<M>::eval(k, x, t, c, l, d);
    const V r = x - t, ar = M::abs(r);
    l = ar < k.a ? r * r * (k.b * S(0.5)) : ar - k.a * S(0.5);
    d = r > k.a ? M::c(1) : (r < -k.a ? M::c(-1) : r * k.b);
  }
};

// log(cosh r) = |r| + log1p(e) - log 2, e = exp(-2|r|) (finite for any finite r);
// d = tanh(r) = sign(r) (1 - e) / (1 + e).
template <class M> struct LogCosh {
  typedef typename M::V V;
  typedef typename M::S S;
  FASTLOSS_HD static void eval(const Consts<S>&, V x, V t, V, V& l, V& d) {
    const V one = M::c(1);
    const V r = x - t, ar = M::abs(r);
    const V e = M::exp_nonpos(ar * S(-2));
    l = ar + (M::log1p01(e) - S(0.693147180559945309417232121458176568));
    const V th = (one - e) * M::recip(one + e);
    d = r < M::c(0) ? -th : th;
  }
};

}  // namespace elementwise
}  // namespace fastloss
