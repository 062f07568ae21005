// Dice loss on the CPU (compiled once per SIMD level); formulas in fastloss/dice.h.
//
// The canonical inputs are (N, positions..., C), class axis last. Positions are walked in
// groups of up to W along the last position dimension, one position per SIMD lane, looping
// over the classes: in the (N, C, H, W) layout with axis=1 every load and store is a
// contiguous vector, and the softmax over the classes of W positions is W independent
// lane-wise softmaxes (the row engine's lane path, see row_engine.h). Other layouts gather
// the lanes at their strides (same values, slower).
//   pass 1: per-(sample, class) sums I, P, T: vector accumulators per class, added into
//           double every kFlushGroups groups (so a sum over 10^8 positions keeps float64
//           accuracy); labels are checked on the way (nothing is written before the check);
//   loss:   from the sums, one value per (sample, class);
//   pass 2: the gradient, the activation recomputed from x (keeping p in the gradient array
//           measured no faster: this pass is bound by memory and first-touch page faults).
// The positions split into contiguous chunks (fixed by the size) that threads take in turn; a
// sample two chunks share is summed from their partials in chunk order (the same bits for any
// thread count).
#include "fastloss/cpu_kernel.h"
#include "fastloss/dice.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace {

// Elements per thread before a parallel region pays off (an element costs about one exp;
// the same size as the row engine's, see row_engine.h).
constexpr int64_t kMinDicePerThread = 16384;
// Work per chunk (elements) and the most chunks (see dice_impl).
constexpr int64_t kChunkElements = int64_t(1) << 16;
constexpr int64_t kMaxChunks = 1024;
constexpr int64_t kEdgeBytes = int64_t(32) << 20;
// Groups (of W positions) summed in the compute type before the sums move into float64.
constexpr int kFlushGroups = 64;
// Software prefetch distance along a class stream (8 vectors of AVX-512: ~ the memory latency
// at one vector per ~50 cycles per class).
constexpr int64_t kPrefetchBytes = 512;

// Labels of up to W lanes at `off`, `stride` apart, as int64 (the dtype switch once per group).
inline void load_labels(const TensorView& t, int64_t off, int64_t stride, int n, int64_t* out) {
  switch (t.dtype) {
#define FASTLOSS_DICE_LABELS(D, T) \
  case DType::D: { const T* q = t.ptr<const T>() + off; for (int l = 0; l < n; ++l) out[l] = static_cast<int64_t>(q[l * stride]); break; }
    FASTLOSS_DICE_LABELS(i64, int64_t)
    FASTLOSS_DICE_LABELS(i32, int32_t)
    FASTLOSS_DICE_LABELS(i16, int16_t)
    FASTLOSS_DICE_LABELS(i8, int8_t)
    FASTLOSS_DICE_LABELS(u8, uint8_t)
    FASTLOSS_DICE_LABELS(u16, uint16_t)
    FASTLOSS_DICE_LABELS(u32, uint32_t)
    FASTLOSS_DICE_LABELS(u64, uint64_t)  // above INT64_MAX reads as negative: out of range
#undef FASTLOSS_DICE_LABELS
    default: for (int l = 0; l < n; ++l) out[l] = -1;
  }
}

template <class S> struct Kernel {
  typedef vec_t<S> V;
  typedef typename Vec<S>::I VI;
  static constexpr int W = Vec<S>::W;

  const DiceParams& p;
  int R;             // position dims (including N)
  int64_t C, M;      // classes, positions per sample
  int64_t xcs, tcs, gcs;  // class strides
  int64_t x_in, t_in, g_in;  // strides along the last position dim
  bool x_native, t_native, g_native;
  bool sq;

  explicit Kernel(const DiceParams& pp) : p(pp) {
    const TensorView& x = p.inputs;
    R = x.ndim - 1;
    C = x.shape[R];
    M = 1;
    for (int d = 1; d < R; ++d) M *= x.shape[d];
    const DType native = sizeof(S) == 4 ? DType::f32 : DType::f64;
    xcs = x.strides[R];
    x_in = x.strides[R - 1];
    x_native = x.dtype == native;
    tcs = p.int_targets ? 0 : p.targets.strides[R];
    t_in = p.targets.strides[R - 1];
    t_native = p.targets.dtype == native;
    const bool g = !is_none(p.grad);
    gcs = g ? p.grad.strides[R] : 0;
    g_in = g ? p.grad.strides[R - 1] : 0;
    g_native = g && p.grad.dtype == native;
    sq = p.squared;
  }

  // n lanes of a float view at off, off + in, ... (the rest 0).
  static V lanes(const TensorView& t, bool native, int64_t off, int64_t in, int n) {
    if (native) {
      const S* q = t.ptr<const S>() + off;
      if (in == 1) return n == W ? load(q) : load_partial(q, n, S(0));
      V v = V{};
      for (int l = 0; l < n; ++l) v[l] = q[l * in];
      return v;
    }
    V v = V{};
    for (int l = 0; l < n; ++l) v[l] = load_as<S>(t, off + l * in);
    return v;
  }
  void put_lanes(int64_t off, V v, int n) const {
    if (g_native) {
      S* q = p.grad.ptr<S>() + off;
      if (g_in == 1) {
        __builtin_prefetch(reinterpret_cast<char*>(q) + kPrefetchBytes, 1);
        if (n == W) store(q, v);
        else store_partial(q, v, n);
        return;
      }
      for (int l = 0; l < n; ++l) q[l * g_in] = v[l];
      return;
    }
    for (int l = 0; l < n; ++l) store_as<S>(p.grad, off + l * g_in, v[l]);
  }

  // sigmoid(x) and its derivative from one exp: e = exp(-|x|), d = 1 + e,
  // sigmoid = 1/d (x >= 0) or e/d, sigmoid' = e/d^2 (accurate in both tails).
  static V sigmoid(V x, V* deriv) {
    const V ax = x < S(0) ? -x : x;
    const V e = vexp(-ax);
    const V inv = S(1) / (S(1) + e);
    if (deriv) *deriv = e * inv * inv;
    return x >= S(0) ? inv : e * inv;
  }

  // The activation of the group's C x W inputs into pbuf (and sigmoid' into dbuf), up to a
  // factor per lane that it returns: softmax leaves exp(x - max) and returns 1 / sum (the
  // caller multiplies as it reads, saving a pass), the others 1.
  V activate(int64_t xo, int n, V* pbuf, V* dbuf) const {
    const TensorView& x = p.inputs;
    // The classes of a group are C streams kVecBytes wide (stride xcs apart in the (N, C, H, W)
    // layout): more than the hardware prefetcher follows, so fetch each kPrefetchBytes ahead.
    const bool prefetch = x_native && x_in == 1;
    if (p.activation == DiceActivation::softmax) {
      V m = splat(-std::numeric_limits<S>::infinity());
      for (int64_t c = 0; c < C; ++c) {
        if (prefetch) __builtin_prefetch(x.ptr<const char>() + (xo + c * xcs) * int64_t(sizeof(S)) + kPrefetchBytes);
        const V v = lanes(x, x_native, xo + c * xcs, x_in, n);
        pbuf[c] = v;
        m = vmax(m, v);
      }
      V s = V{};
      for (int64_t c = 0; c < C; ++c) {
        const V e = vexp(pbuf[c] - m);
        pbuf[c] = e;
        s += e;
      }
      return S(1) / s;
    } else if (p.activation == DiceActivation::sigmoid) {
      for (int64_t c = 0; c < C; ++c) {
        if (prefetch) __builtin_prefetch(x.ptr<const char>() + (xo + c * xcs) * int64_t(sizeof(S)) + kPrefetchBytes);
        pbuf[c] = sigmoid(lanes(x, x_native, xo + c * xcs, x_in, n), dbuf ? dbuf + c : nullptr);
      }
    } else {
      for (int64_t c = 0; c < C; ++c) {
        if (prefetch) __builtin_prefetch(x.ptr<const char>() + (xo + c * xcs) * int64_t(sizeof(S)) + kPrefetchBytes);
        pbuf[c] = lanes(x, x_native, xo + c * xcs, x_in, n);
      }
    }
    return splat(S(1));
  }

  // Labels of the group as lane integers; a label outside [0, C) reads as -1 (matches no
  // class) and its position is reported through *bad.
  VI labels(int64_t to, int n, int64_t row, int64_t* bad) const {
    int64_t y[W];
    load_labels(p.targets, to, t_in, n, y);
    VI v;
    for (int l = 0; l < W; ++l) {
      const bool ok = l < n && y[l] >= 0 && y[l] < C;
      if (l < n && !ok && row + l < *bad) *bad = row + l;
      v[l] = ok ? static_cast<decltype(v[0] + 0)>(y[l]) : -1;
    }
    return v;
  }

  // Pass 1 over rows [r0, r1): each group's I, P, T go into acc (3 vectors per class), which
  // moves into the float64 sums d every kFlushGroups groups; when a sample's positions in the
  // range end, commit(sample, d) takes its sums. d: 3 C doubles, zeroed.
  template <class Commit>
  void sums(int64_t r0, int64_t r1, V* acc, V* pbuf, double* d, int64_t* bad, Commit commit) const {
    const int64_t* strides[2] = {p.inputs.strides, p.targets.strides};
    RowWalker<2> walk(p.inputs.shape, R, strides);
    walk.begin(r0);
    for (int64_t i = 0; i < 3 * C; ++i) acc[i] = V{};
    auto flush = [&] {
      for (int64_t i = 0; i < 3 * C; ++i) {
        d[i] += static_cast<double>(hsum<S>(acc[i]));
        acc[i] = V{};
      }
    };
    int64_t cur = r0 / M;
    int groups = 0;
    for (int64_t r = r0; r < r1;) {
      const int64_t rem = walk.inner_remaining(), left = r1 - r;
      const int n = static_cast<int>(rem < W ? (left < rem ? left : rem) : (left < W ? left : W));
      const int64_t sample = r / M;
      if (sample != cur || groups == kFlushGroups) {
        flush();
        groups = 0;
        if (sample != cur) {
          commit(cur, d);
          std::memset(d, 0, sizeof(double) * 3 * C);
          cur = sample;
        }
      }
      const V inv = activate(walk.offset(0), n, pbuf, nullptr);
      VI live;
      for (int l = 0; l < W; ++l) live[l] = l < n ? -1 : 0;
      const VI y = p.int_targets ? labels(walk.offset(1), n, r, bad) : VI{};
      for (int64_t c = 0; c < C; ++c) {
        V pv = pbuf[c] * inv;
        pv = live ? pv : V{};  // padding lanes (and their NaNs) add nothing
        V* a = acc + 3 * c;
        if (p.int_targets) {
          const VI hit = y == static_cast<decltype(y[0] + 0)>(c);
          a[0] += hit ? pv : V{};
          a[2] += hit ? splat(S(1)) : V{};
        } else {
          V tv = lanes(p.targets, t_native, walk.offset(1) + c * tcs, t_in, n);
          a[0] += pv * tv;
          a[2] += sq ? tv * tv : tv;
        }
        a[1] += sq ? pv * pv : pv;
      }
      ++groups;
      r += n;
      for (int i = 0; i < n; ++i) walk.next();
    }
    flush();
    commit(cur, d);
  }

  // Pass 2 over rows [r0, r1): the gradient. coef: a_nc, b_nc per (sample, class), in S.
  void grad(int64_t r0, int64_t r1, const S* ca, const S* cb, V* pbuf, V* dbuf) const {
    const int64_t* strides[3] = {p.inputs.strides, p.targets.strides, p.grad.strides};
    RowWalker<3> walk(p.inputs.shape, R, strides);
    walk.begin(r0);
    int64_t bad = INT64_MAX;
    const bool sig = p.activation == DiceActivation::sigmoid, soft = p.activation == DiceActivation::softmax;
    for (int64_t r = r0; r < r1;) {
      const int64_t rem = walk.inner_remaining(), left = r1 - r;
      const int n = static_cast<int>(rem < W ? (left < rem ? left : rem) : (left < W ? left : W));
      const int64_t sample = r / M;
      const S* a = ca + sample * C;
      const S* b = cb + sample * C;
      const V inv = activate(walk.offset(0), n, pbuf, sig ? dbuf : nullptr);
      const VI y = p.int_targets ? labels(walk.offset(1), n, r, &bad) : VI{};
      // t_c of the group: one-hot of the labels, or the float targets
      auto target = [&](int64_t c) {
        if (p.int_targets) return y == static_cast<decltype(y[0] + 0)>(c) ? splat(S(1)) : V{};
        return lanes(p.targets, t_native, walk.offset(1) + c * tcs, t_in, n);
      };
      if (soft) {
        // g_c = a_c t_c + b_c p_c^(k-1) and dot = sum_c p_c g_c from one loop over e_c = p_c / inv:
        //   dot = inv sum e a t + (k = 1: inv sum e b;  k = 2: inv^2 sum e^2 b)
        V sat = V{}, sb = V{};
        for (int64_t c = 0; c < C; ++c) {
          const V e = pbuf[c];
          sat += e * target(c) * a[c];
          sb += sq ? e * e * b[c] : e * b[c];
        }
        const V dot = inv * sat + (sq ? inv * inv * sb : inv * sb);
        for (int64_t c = 0; c < C; ++c) {
          const V pv = pbuf[c] * inv;
          const V g = target(c) * a[c] + (sq ? pv * b[c] : splat(b[c]));
          put_lanes(walk.offset(2) + c * gcs, pv * (g - dot), n);
        }
      } else {
        for (int64_t c = 0; c < C; ++c) {
          const V pv = pbuf[c];
          const V g = target(c) * a[c] + (sq ? pv * b[c] : splat(b[c]));  // dloss/dp
          put_lanes(walk.offset(2) + c * gcs, sig ? g * dbuf[c] : g, n);
        }
      }
      r += n;
      for (int i = 0; i < n; ++i) walk.next();
    }
  }
};

// IndexError for the label of (flat) row first_bad.
void throw_bad_label(const DiceParams& p, int64_t first_bad, int64_t C) {
  const TensorView& t = p.targets;
  const int rank = t.ndim;
  int64_t off = 0, rr = first_bad;
  for (int dd = rank - 1; dd >= 0; --dd) {
    off += (rr % t.shape[dd]) * t.strides[dd];
    rr /= t.shape[dd];
  }
  // the user's label shape (a unit dim the layout appended is not shown)
  const int shown = rank == 2 && t.shape[1] == 1 && t.strides[1] == 0 ? 1 : rank;
  throw_index("targets" + index_string(t.shape, shown, first_bad) + " = " + std::to_string(load_index(t, off)) +
              " is outside [0, " + std::to_string(C) + ")");
}

// Per-class dice of samples with no position axes, (N, C) with axis=1: every (sample, class)
// bucket holds one element, so a row is a vector loop along its classes (the position-lane
// groups would hold one lane each). Returns the first bad label's row (or INT64_MAX); per-row
// losses go to row_loss (summed by the caller in row order: any thread count, same bits).
template <class S>
int64_t dice_rows(const Kernel<S>& k, const DiceParams& p, double scale, double* row_loss) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const int64_t N = p.inputs.shape[0], C = k.C;
  const bool want_grad = !is_none(p.grad), reduce_none = p.reduction == Reduction::none;
  const bool soft = p.activation == DiceActivation::softmax, sig = p.activation == DiceActivation::sigmoid;
  const S smooth = static_cast<S>(p.smooth_nr), sc = static_cast<S>(scale), kk = p.squared ? S(2) : S(1);
  const int64_t xs = p.inputs.strides[0], ts = p.targets.strides[0];
  const int64_t gs = want_grad ? p.grad.strides[0] : 0;
  const bool x_direct = k.x_native && k.xcs == 1, t_direct = !p.int_targets && k.t_native && k.tcs == 1;
  const bool g_direct = want_grad && k.g_native && k.gcs == 1;
  const int nt = threads_for(N * C, kMinDicePerThread);
  int64_t first_bad_all = INT64_MAX;
  parallel_parts(nt, [&](int t_part, int t_parts) {
    int64_t first_bad = INT64_MAX;
    ScratchBuffer xbuf, tbuf, pbuf, dbuf, gbuf;  // rows padded by a vector
    S* xg = xbuf.get<S>(C + W);
    S* tg = tbuf.get<S>(C + W);
    S* pr = pbuf.get<S>(C + W);  // the activation
    S* dr = sig ? dbuf.get<S>(C + W) : nullptr;  // sigmoid'
    S* gr = gbuf.get<S>(C + W);
    int64_t n0, n1;
    thread_range(N, t_part, t_parts, &n0, &n1);
    for (int64_t n = n0; n < n1; ++n) {
      const S* x = x_direct ? p.inputs.ptr<const S>() + n * xs : xg;
      if (!x_direct)
        for (int64_t c = 0; c < C; ++c) xg[c] = load_as<S>(p.inputs, n * xs + c * k.xcs);
      int64_t y = -1;
      const S* t = t_direct ? p.targets.ptr<const S>() + n * ts : tg;
      if (p.int_targets) {
        y = load_index(p.targets, n * ts);
        if (y < 0 || y >= C) {
          if (n < first_bad) first_bad = n;
          row_loss[n] = 0;
          continue;
        }
      } else if (!t_direct) {
        for (int64_t c = 0; c < C; ++c) tg[c] = load_as<S>(p.targets, n * ts + c * k.tcs);
      }
      auto part = [&](const S* q, int64_t j, S fill) { return C - j >= W ? load(q + j) : load_partial(q + j, C - j, fill); };
      auto tvec = [&](int64_t j) {
        if (!p.int_targets) return part(t, j, S(0));
        V v = V{};
        if (static_cast<uint64_t>(y - j) < static_cast<uint64_t>(W)) v[y - j] = S(1);
        return v;
      };
      // the activation into pr (softmax: exp(x - max), then scaled by 1/sum on use)
      S inv = 1;
      if (soft) {
        V mv = splat(-std::numeric_limits<S>::infinity());
        for (int64_t j = 0; j < C; j += W) mv = vmax(mv, part(x, j, -std::numeric_limits<S>::infinity()));
        const V m = splat(hmax<S>(mv));
        V sv = V{};
        for (int64_t j = 0; j < C; j += W) {
          const V e = vexp(part(x, j, -std::numeric_limits<S>::infinity()) - m);
          sv += e;
          store(pr + j, e);
        }
        inv = S(1) / hsum<S>(sv);
      } else {
        for (int64_t j = 0; j < C; j += W) {
          V d;
          store(pr + j, sig ? Kernel<S>::sigmoid(part(x, j, S(0)), &d) : part(x, j, S(0)));
          if (sig) store(dr + j, d);
        }
      }
      // per element: loss 1 - (2pt + smooth) / (p^k + t^k + smooth); dloss/dp = a t + b p^(k-1)
      V lacc = V{}, dot = V{};
      for (int64_t j = 0; j < C; j += W) {
        const int64_t nl = C - j < W ? C - j : W;
        const V pv = load(pr + j) * inv, tv = tvec(j);
        const V D = (p.squared ? pv * pv + tv * tv : pv + tv) + smooth, Nm = S(2) * pv * tv + smooth;
        const auto empty = (D == S(0)) & (Nm == S(0));  // smooth = 0, nothing predicted, nothing there
        // Divides rather than one reciprocal: 1/D overflows for a denormal D (a float32 softmax
        // probability of exp(-100) with smooth 0), and inf * 0 is NaN; t / D and Nm / D are not.
        const V Ds = empty ? splat(S(1)) : D;
        const V q = Nm / Ds;
        const V l = empty ? V{} : S(1) - q;
        const V lz = nl == W ? l : (first_lanes<S>(nl, S(1)) == S(1) ? l : V{});
        lacc += lz;
        if (reduce_none) {
          for (int64_t i = 0; i < nl; ++i) store_as<S>(p.loss, n * p.loss.strides[0] + (j + i) * p.loss.strides[1], l[i]);
        }
        if (want_grad) {
          // dloss/dp = -2 s t / D + k s p^(k-1) Nm / D^2 (0 where Nm is: no 0 * inf)
          const V at = (S(-2) * sc) * (tv / Ds);
          const V bp = (kk * sc) * q * ((p.squared ? pv : splat(S(1))) / Ds);
          const V gp = empty ? V{} : at + (Nm == S(0) ? V{} : bp);
          if (soft) {
            const V gz = nl == W ? gp : (first_lanes<S>(nl, S(1)) == S(1) ? gp : V{});
            dot += pv * gz;
            store(gr + j, gp);
          } else {
            store(gr + j, sig ? gp * load(dr + j) : gp);
          }
        }
      }
      row_loss[n] = static_cast<double>(hsum<S>(lacc));
      if (want_grad) {
        const S dt = hsum<S>(dot);
        S* g = g_direct ? p.grad.ptr<S>() + n * gs : gr;
        for (int64_t j = 0; j < C; j += W) {
          V gv = load(gr + j);
          if (soft) gv = load(pr + j) * inv * (gv - dt);
          if (C - j >= W) store(g + j, gv);
          else store_partial(g + j, gv, C - j);
        }
        if (!g_direct)
          for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad, n * gs + c * k.gcs, g[c]);
      }
    }
    atomic_min(&first_bad_all, first_bad);
  });
  return first_bad_all;
}

template <class S>
void dice_impl(const DiceParams& p) {
  typedef vec_t<S> V;
  const Kernel<S> k(p);
  const int64_t N = p.inputs.shape[0], C = k.C, M = k.M;
  const int64_t rows = N * M;
  const int64_t B = N * C;  // (sample, class) buckets
  const bool want_grad = !is_none(p.grad), reduce_none = p.reduction == Reduction::none;
  // MONAI's options (dice.h) take the bucket path below.
  const bool plain = !p.batch && !p.jaccard && p.smooth_nr == p.smooth_dr && p.first_class == 0 &&
                     is_none(p.weight) && p.weight_scalar == 1.0;
  if (plain && p.per_class && M == 1 && N > 0 && C > 0) {  // (N, C) with axis=1: the row path
    const double scale = p.reduction == Reduction::mean ? 1.0 / static_cast<double>(B) : 1.0;
    ScratchBuffer loss_buf;
    double* row_loss = loss_buf.get<double>(N);
    const int64_t bad = dice_rows<S>(k, p, scale, row_loss);
    if (bad != INT64_MAX) throw_bad_label(p, bad, C);
    if (!reduce_none) {
      double total = 0;
      for (int64_t n = 0; n < N; ++n) total += row_loss[n];
      store_as<double>(p.loss, 0, total * scale);
    }
    return;
  }

  ScratchBuffer sum_buf;
  double* sums = sum_buf.get<double>(3 * B + 1);  // (I, P, T) per bucket
  std::memset(sums, 0, sizeof(double) * 3 * B);
  // The positions split into chunks fixed by the size alone, handed to the threads dynamically:
  // a thread slowed by a busy core holds up no other, and since each chunk's partial sums are
  // combined in chunk order, the result has the same bits for every thread count.
  // Each chunk keeps 2 x 3 C doubles for its edge samples: at most kEdgeBytes of them in all
  // (many classes get fewer, longer chunks), and never more chunks than positions.
  int64_t want_chunks = rows * C / kChunkElements;
  const int64_t most = kEdgeBytes / (48 * (C > 0 ? C : 1));
  want_chunks = want_chunks < most ? want_chunks : most;
  want_chunks = want_chunks < rows ? want_chunks : rows;
  const int nchunks = static_cast<int>(want_chunks < 1 ? 1 : want_chunks < kMaxChunks ? want_chunks : kMaxChunks);
  const int nt0 = rows > 0 && C > 0 ? threads_for(rows * C, kMinDicePerThread) : 1;
  const int nt = nt0 < nchunks ? nt0 : nchunks;

  if (rows > 0 && C == 0 && p.int_targets)  // no class to name
    throw_index("targets" + index_string(p.targets.shape, p.targets.ndim, 0) + " = " +
                std::to_string(load_index(p.targets, 0)) + " is outside [0, 0)");
  if (rows > 0 && C > 0) {
    // Per chunk, the sums of its first and last sample when another chunk shares them.
    ScratchBuffer edge_buf, bad_buf;
    double* edge = edge_buf.get<double>(int64_t(nchunks) * 2 * 3 * C + 1);
    std::memset(edge, 0, sizeof(double) * nchunks * 2 * 3 * C);
    int64_t* bad_of = bad_buf.get<int64_t>(nchunks);
    Claim claim(nchunks, 1);
    parallel_parts(nt, [&](int, int) {
      ScratchBuffer abuf, pbuf, dbuf;
      V* acc = abuf.get<V>(3 * C);
      V* pv = pbuf.get<V>(C);
      double* d = dbuf.get<double>(3 * C);
      for (int64_t c0, c1; claim.take(&c0, &c1);)
      for (int ch = static_cast<int>(c0); ch < c1; ++ch) {
        int64_t r0, r1;
        thread_range(rows, ch, nchunks, &r0, &r1);
        int64_t bad = INT64_MAX;
        if (r0 < r1) {
          std::memset(d, 0, sizeof(double) * 3 * C);
          const int64_t n_first = r0 / M;
          k.sums(r0, r1, acc, pv, d, &bad, [&](int64_t sample, const double* sm) {
            const bool exclusive = sample * M >= r0 && (sample + 1) * M <= r1;
            double* dst = exclusive ? sums + sample * 3 * C : edge + (int64_t(ch) * 2 + (sample == n_first ? 0 : 1)) * 3 * C;
            std::memcpy(dst, sm, sizeof(double) * 3 * C);
          });
        }
        bad_of[ch] = bad;
      }
    });
    int64_t first_bad = INT64_MAX;
    for (int t = 0; t < nchunks; ++t) {
      first_bad = bad_of[t] < first_bad ? bad_of[t] : first_bad;
      int64_t r0, r1;
      thread_range(rows, t, nchunks, &r0, &r1);
      if (r0 >= r1) continue;
      const int64_t nf = r0 / M, nl = (r1 - 1) / M;
      for (int e = 0; e < 2; ++e) {
        const int64_t sample = e == 0 ? nf : nl;
        if (e == 1 && nl == nf) break;
        if (sample * M >= r0 && (sample + 1) * M <= r1) continue;  // exclusive: already in place
        const double* src = edge + (int64_t(t) * 2 + e) * 3 * C;
        for (int64_t i = 0; i < 3 * C; ++i) sums[sample * 3 * C + i] += src[i];
      }
    }
    if (first_bad != INT64_MAX) throw_bad_label(p, first_bad, C);
  }

  // batch: the sums over the samples, per class, into sample 0's buckets (in sample order).
  if (p.batch)
    for (int64_t n = 1; n < N; ++n)
      for (int64_t i = 0; i < 3 * C; ++i) sums[i] += sums[n * 3 * C + i];
  // Loss per bucket and the gradient coefficients (dice_bucket); class 0 left out with
  // include_background=False (zero coefficients: its probability still enters the softmax).
  const double count = static_cast<double>(dice_kept_buckets(p, N, C));
  const double scale = p.reduction == Reduction::mean ? (count > 0 ? 1.0 / count : 0.0) : 1.0;
  ScratchBuffer coef_buf;
  S* ca = want_grad ? coef_buf.get<S>(2 * B + 2) : nullptr;
  S* cb = want_grad ? ca + B + 1 : nullptr;
  double total = 0;
  const int64_t ls0 = reduce_none && !p.batch ? p.loss.strides[0] : 0;
  const int64_t ls1 = reduce_none && p.per_class ? p.loss.strides[p.batch ? 0 : 1] : 0;
  static const double no_sums[3] = {0.0, 0.0, 0.0};
  const int64_t samples = p.batch && N == 0 ? 1 : N;  // batch over no sample: still one value per class
  for (int64_t n = 0; n < samples; ++n) {
    const bool first = !p.batch || n == 0;  // a bucket of its own (batch: sample 0 holds them)
    for (int64_t c = 0; c < C; ++c) {
      const bool kept = c >= p.first_class;
      const double w = !kept ? 0.0 : is_none(p.weight) ? p.weight_scalar
                                                        : p.weight.ptr<const double>()[(c - p.first_class) * p.weight.strides[0]];
      const double* s = N == 0 ? no_sums : sums + ((p.batch ? 0 : n) * C + c) * 3;
      const DiceBucket bk = dice_bucket(s[0], s[1], s[2], p.smooth_nr, p.smooth_dr, p.jaccard, p.squared, w, scale * w);
      if (want_grad && n < N) {
        ca[n * C + c] = static_cast<S>(bk.a);
        cb[n * C + c] = static_cast<S>(bk.b);
      }
      if (!kept || !first) continue;
      if (reduce_none) store_as<double>(p.loss, n * ls0 + (c - p.first_class) * ls1, bk.loss);
      else total += bk.loss;
    }
  }
  if (!reduce_none) store_as<double>(p.loss, 0, total * scale);

  if (want_grad && rows > 0 && C > 0) {
    Claim claim(nchunks, 1);
    parallel_parts(nt, [&](int, int) {
      ScratchBuffer pbuf, dbuf;
      V* pv = pbuf.get<V>(C);
      V* dv = dbuf.get<V>(C);
      for (int64_t c0, c1; claim.take(&c0, &c1);)
      for (int ch = static_cast<int>(c0); ch < c1; ++ch) {
        int64_t r0, r1;
        thread_range(rows, ch, nchunks, &r0, &r1);
        if (r0 < r1) k.grad(r0, r1, ca, cb, pv, dv);
      }
    });
  }
}

}  // namespace

void dice_loss(const DiceParams& p) {
  if (p.inputs.dtype == DType::f64) dice_impl<double>(p);
  else dice_impl<float>(p);
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
