// CTC loss on the CPU (compiled once per SIMD level).
//
// Per sample b with T_b inputs and S_b labels, the extended sequence l' (blanks interleaved,
// L = 2 S_b + 1 states) and lp_t(s) = log_probs[t, b, l'_s] (minus the row's log-sum-exp
// with from_logits):
//   alpha_0(s) = lp_0(s) for s < 2, else -inf
//   alpha_t(s) = lse(alpha_{t-1}(s), alpha_{t-1}(s-1), [alpha_{t-1}(s-2)]) + lp_t(s)
//   logZ = lse(alpha_{T-1}(L-1), alpha_{T-1}(L-2)),   loss = -logZ
// where the s-2 term is allowed on label states whose label differs from the one two back.
// The backward sweep keeps two rows: bx_t(s) (paths after t, emission at t excluded) and
// beta_t(s) = bx_t(s) + lp_t(s):
//   bx_{T-1}(s) = 0 for s >= L-2, else -inf;  bx_t(s) = lse(beta_{t+1}(s), beta_{t+1}(s+1), [beta_{t+1}(s+2)])
// and the posterior of state s at t is gamma_t(s) = exp(alpha_t(s) + bx_t(s) - logZ), so
//   dloss/dlog_probs[t, b, c] = -sum_{s: l'_s = c} gamma_t(s)          (log_probs input)
//   dloss/dlogits[t, b, c]    = softmax_c - sum_{s: l'_s = c} gamma_t(s)  (from_logits)
// times the reduction's scale. All alphas of a sample are kept (T_b x L per thread), the
// beta rows are two; the gradient row of t is written as soon as beta_t is known.
// Threads take whole samples; SIMD runs over the states s.
#include <atomic>
#include <exception>

#include "fastloss/cpu_kernel.h"
#include "fastloss/ctc.h"
#include "fastloss/row_softmax.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace {

// Gradients bigger than this go around the cache (streaming stores).
constexpr int64_t kStreamBytes = int64_t(8) << 20;

// Cells (T x (2S+1+C) per sample) worth a thread: OpenMP's fork/join costs about as much as
// computing this many. Measured on the 2-core dev machine (shared with other sessions): one
// cell costs ~110 ns on one thread (bench/ctc_call_overhead.py, T=200, N=16, C=30, S=40);
// an empty 2-thread libgomp parallel region costs 40-60 us at load average ~7 (350-550 cells;
// ~2 us, ~20 cells, on an idle machine; ~570 us at load 240-1000). A tiny call (T=10, N<=4,
// C=5: <= 400 cells) stays on one thread and never wakes the pool.
constexpr int64_t kMinWorkPerThread = 512;

template <class S>
struct Sample {
  typedef vec_t<S> V;
  static constexpr int W = Vec<S>::W;

  const CtcParams* p;
  int64_t C, st_t, st_n, st_c;   // log_probs strides of the (T, N, C) view
  int64_t gt_t, gt_n, gt_c;      // grad strides
  bool x_native, g_native;       // float type S and class stride 1
  bool stream;                   // gradient big enough to bypass the cache
  // per-thread buffers
  ScratchBuffer alpha_buf, beta_buf, lp_buf, ext_buf, skip_buf, lse_buf, row_buf, grow_buf, gam_buf, post_buf;

  // x[t, b, :] as a contiguous row of S (in place when possible).
  const S* row(int64_t t, int64_t b) {
    const int64_t off = t * st_t + b * st_n;
    if (x_native) return p->log_probs.template ptr<const S>() + off;
    S* r = row_buf.get<S>(C + W);
    for (int64_t c = 0; c < C; ++c) r[c] = load_as<S>(p->log_probs, off + c * st_c);
    return r;
  }

  // Gradient row (t, b) set to `value`.
  void fill_row(int64_t t, int64_t b, S value) {
    const TensorView& g = p->grad;
    const int64_t off = t * gt_t + b * gt_n;
    if (g_native) {
      S* d = g.template ptr<S>() + off;
      for (int64_t c = 0; c < C; ++c) d[c] = value;
    } else {
      for (int64_t c = 0; c < C; ++c) store_as<S>(g, off + c * gt_c, value);
    }
  }

  double run(int64_t b, int64_t label_off, int64_t label_stride, S scale, bool want_grad) {
    const S ninf = -std::numeric_limits<S>::infinity();
    const int64_t Tb = p->input_lengths[b], Sb = p->label_lengths[b];
    if (Sb > Tb) {
      // More labels than frames: no alignment, decided before the lattice is built (a long,
      // e.g. broadcast, label sequence costs nothing). Same answer as the lattice's: inf
      // (0 with zero_infinity), a NaN gradient (0) on the sample's frames, 0 past them.
      if (want_grad) {
        const S fill = p->zero_infinity ? S(0) : std::numeric_limits<S>::quiet_NaN();
        for (int64_t t = 0; t < p->log_probs.shape[0]; ++t) fill_row(t, b, t < Tb ? fill : S(0));
      }
      return p->zero_infinity ? 0.0 : std::numeric_limits<double>::infinity();
    }
    const int64_t L = 2 * Sb + 1;
    const int64_t Lv = (L + W - 1) / W * W;  // states computed per row (lanes past L give -inf)
    const int64_t R = Lv + 2 * W;            // row pitch: 2 leading pads, state s at index s + 2
    const bool from_logits = p->from_logits;

    // Extended labels and the skip mask (0 where s-2 -> s is allowed, -inf elsewhere).
    int32_t* ext = ext_buf.get<int32_t>(R);
    S* skip = skip_buf.get<S>(R + 2);
    for (int64_t s = 0; s < R; ++s) {
      if (s < L) ext[s] = s % 2 ? static_cast<int32_t>(load_index(p->labels, label_off + (s / 2) * label_stride))
                                : static_cast<int32_t>(p->blank);
      else ext[s] = static_cast<int32_t>(p->blank);
    }
    for (int64_t s = 0; s < R + 2; ++s) skip[s] = (s < L && s % 2 == 1 && s >= 3 && ext[s] != ext[s - 2]) ? S(0) : ninf;

    // Row log-sum-exps (from_logits).
    S* lse = lse_buf.get<S>(Tb + 1);
    if (from_logits) {
      for (int64_t t = 0; t < Tb; ++t) {
        const S* x = row(t, b);
        const RowBlocks<S> rb{C};
        lse[t] = softmax_stats<S, false>(x, rb, nullptr, nullptr).lse();
      }
    }
    S* lp = lp_buf.get<S>(R);
    for (int64_t s = 0; s < R; ++s) lp[s] = ninf;
    // lp_t(s) for s in [s0, s1) (the lanes past L stay -inf)
    auto gather = [&](int64_t t, int64_t s0, int64_t s1) {
      const S sub = from_logits ? lse[t] : S(0);
      const int64_t off = t * st_t + b * st_n;
      s1 = s1 < L ? s1 : L;
      if (x_native) {
        const S* x = p->log_probs.template ptr<const S>() + off;
        for (int64_t s = s0; s < s1; ++s) lp[s] = x[ext[s]] - sub;
      } else {
        for (int64_t s = s0; s < s1; ++s) lp[s] = load_as<S>(p->log_probs, off + ext[s] * st_c) - sub;
      }
    };

    // Only states on some complete path are computed: at t, s <= 2t + 1 (reachable from the
    // start) and s >= L - 2 (Tb - t) (can still reach the end), rounded out to whole vectors.
    // Everything else stays -inf (beyond 2t + 1 that is the true alpha; below the window the
    // alpha is not needed, as beta is -inf there). An empty window means no path at all.
    auto window = [&](int64_t t, int64_t* j0, int64_t* j1) {
      const int64_t lo = L - 2 * (Tb - t) > 0 ? L - 2 * (Tb - t) : 0;
      const int64_t hi = 2 * t + 2 < L ? 2 * t + 2 : L;
      if (lo >= hi) { *j0 = *j1 = 0; return; }
      *j0 = lo / W * W;
      const int64_t e = (hi + W - 1) / W * W;
      *j1 = e < Lv ? e : Lv;
    };

    // Forward.
    double logZ;
    S* alpha = nullptr;
    if (Tb == 0) {
      logZ = Sb == 0 ? 0.0 : -std::numeric_limits<double>::infinity();
    } else {
      alpha = alpha_buf.get<S>(Tb * R);
      gather(0, 0, 2);
      S* a0 = alpha;
      for (int64_t i = 0; i < Tb * R; ++i) alpha[i] = ninf;
      a0[2] = lp[0];
      if (L > 1) a0[3] = lp[1];
      for (int64_t t = 1; t < Tb; ++t) {
        const S* prev = alpha + (t - 1) * R;
        S* cur = alpha + t * R;
        int64_t j0, j1;
        window(t, &j0, &j1);
        gather(t, j0, j1);
        for (int64_t j = j0; j < j1; j += W) {
          const V a = load(prev + j + 2), b1 = load(prev + j + 1), b2 = load(prev + j) + load(skip + j);
          store(cur + j + 2, vlogsumexp3(a, b1, b2) + load(lp + j));
        }
      }
      const S* last = alpha + (Tb - 1) * R;
      const S e1 = last[2 + L - 1], e2 = L > 1 ? last[2 + L - 2] : ninf;
      const S m = e1 > e2 ? e1 : e2;
      logZ = m == ninf ? -std::numeric_limits<double>::infinity()
                       : static_cast<double>(m) + std::log(std::exp(static_cast<double>(e1 - m)) +
                                                           std::exp(static_cast<double>(e2 - m)));
      if (e1 != e1 || e2 != e2) logZ = std::numeric_limits<double>::quiet_NaN();
    }
    double loss = -logZ;
    const bool infeasible = std::isinf(loss) && loss > 0;
    if (infeasible && p->zero_infinity) loss = 0.0;
    // Never slightly negative: exact for normalised log-probabilities, and unnormalised input
    // keeps its (possibly negative) value beyond rounding.
    if (loss < 0 && (from_logits || loss > -8.0 * double(Tb + 1) * std::numeric_limits<S>::epsilon())) loss = 0.0;
    if (!want_grad) return loss;

    // Backward with the gradient rows.
    const int64_t T = p->log_probs.shape[0];
    const TensorView& g = p->grad;
    for (int64_t t = Tb; t < T; ++t) fill_row(t, b, S(0));
    if (Tb == 0) return loss;
    if (infeasible || logZ != logZ) {
      const S fill = p->zero_infinity && infeasible ? S(0) : std::numeric_limits<S>::quiet_NaN();
      for (int64_t t = 0; t < Tb; ++t) fill_row(t, b, fill);
      return loss;
    }
    S* bcur = beta_buf.get<S>(2 * R);
    S* bnext = bcur + R;
    for (int64_t i = 0; i < 2 * R; ++i) bcur[i] = ninf;
    S* gam = gam_buf.get<S>(R);
    S* post = post_buf.get<S>(C + W);
    for (int64_t c = 0; c < C; ++c) post[c] = S(0);
    V even = V{};
    for (int i = 0; i < W; i += 2) even[i] = S(1);
    const V vlogZ = splat(static_cast<S>(logZ));
    const V vscale = splat(scale);
    for (int64_t t = Tb - 1; t >= 0; --t) {
      const S* al = alpha + t * R;
      int64_t j0, j1;
      window(t, &j0, &j1);
      gather(t, j0, j1);
      if (t == Tb - 1) {
        for (int64_t j = j0; j < j1; j += W) {
          V bx = splat(ninf);
          for (int i = 0; i < W; ++i)
            if (j + i < L && j + i >= L - 2) bx[i] = S(0);
          store(gam + j, vexp(load(al + j + 2) + bx - vlogZ));
          store(bcur + j + 2, bx + load(lp + j));
        }
      } else {
        for (int64_t j = j0; j < j1; j += W) {
          const V bx = vlogsumexp3(load(bnext + j + 2), load(bnext + j + 3), load(bnext + j + 4) + load(skip + j + 2));
          store(gam + j, vexp(load(al + j + 2) + bx - vlogZ));
          store(bcur + j + 2, bx + load(lp + j));
        }
      }
      // gradient row t, written in one pass (streamed past the cache when it is large):
      // scale * (softmax - posterior) or scale * (-posterior)
      // blank states (even s) summed in vector lanes, label states scattered: a scatter of
      // every state would chain all the blank updates through one memory location
      const int64_t s1 = j1 < L ? j1 : L;
      V vb = V{};
      for (int64_t j = j0; j < j1; j += W) vb += load(gam + j) * even;  // gam is 0 past L
      post[p->blank] += hsum<S>(vb);
      for (int64_t s = j0 + 1; s < s1; s += 2) post[ext[s]] += gam[s];
      const int64_t goff = t * gt_t + b * gt_n;
      S* d = g_native ? g.template ptr<S>() + goff : grow_buf.get<S>(C + W);
      const bool st = stream && g_native;
      const S* x = from_logits ? row(t, b) : nullptr;
      const V vl = splat(from_logits ? lse[t] : S(0));
      for (int64_t c = 0; c < C; c += W) {
        const int64_t n = C - c < W ? C - c : W;
        const V pv = n == W ? load(post + c) : load_partial(post + c, n, S(0));
        V v = -pv;
        if (from_logits) v += vexp((n == W ? load(x + c) : load_partial(x + c, n, S(0))) - vl);
        put_vec<S>(d, c, v * vscale, n, st);
      }
      for (int64_t s = j0 + 1; s < s1; s += 2) post[ext[s]] = S(0);
      post[p->blank] = S(0);
      if (!g_native)
        for (int64_t c = 0; c < C; ++c) store_as<S>(g, goff + c * gt_c, d[c]);
      S* tmp = bcur;
      bcur = bnext;
      bnext = tmp;
    }
    return loss;
  }
};

template <class S>
void ctc_impl(const CtcParams& p) {
  const TensorView& x = p.log_probs;
  const int64_t N = x.shape[1], C = x.shape[2];
  const bool want_grad = !is_none(p.grad);
  const DType native = sizeof(S) == 4 ? DType::f32 : DType::f64;
  ScratchBuffer off_buf, loss_buf;
  int64_t* offsets = off_buf.get<int64_t>(N + 1);
  int64_t label_stride = 0;
  ctc_label_offsets(p, offsets, &label_stride);
  double* losses = loss_buf.get<double>(N + 1);
  const double inv_n = N ? 1.0 / static_cast<double>(N) : 0.0;

  std::exception_ptr error;
  std::atomic<bool> failed{false};
  // Work in lattice cells plus gradient columns; threads take whole samples (at most N).
  int64_t work = 0;
  for (int64_t b = 0; b < N; ++b) {
    const int64_t Tb = p.input_lengths[b], Sb = p.label_lengths[b];
    work += Sb > Tb ? 0 : Tb * (2 * Sb + 1 + C);  // sizes bounded by ctc_check_working_size
  }
  const int nt_work = threads_for(work, kMinWorkPerThread);
  const int nt = N < nt_work ? static_cast<int>(N > 0 ? N : 1) : nt_work;
  Claim claim(N, 1);
  parallel_parts(nt, [&](int, int) {
    Sample<S> smp;
    smp.p = &p;
    smp.C = C;
    smp.st_t = x.strides[0];
    smp.st_n = x.strides[1];
    smp.st_c = x.strides[2];
    smp.x_native = x.dtype == native && x.strides[2] == 1;
    smp.gt_t = want_grad ? p.grad.strides[0] : 0;
    smp.gt_n = want_grad ? p.grad.strides[1] : 0;
    smp.gt_c = want_grad ? p.grad.strides[2] : 0;
    smp.g_native = want_grad && p.grad.dtype == native && p.grad.strides[2] == 1;
    smp.stream = smp.g_native && p.grad.numel() * int64_t(sizeof(S)) >= kStreamBytes;
    for (int64_t b, b_end; claim.take(&b, &b_end);) {
      if (failed.load(std::memory_order_relaxed)) continue;
      const int64_t Sb = p.label_lengths[b];
      const double scale = p.reduction == Reduction::mean ? inv_n / static_cast<double>(Sb > 1 ? Sb : 1) : 1.0;
      // An exception must not leave the parallel region (that is std::terminate): the first
      // one (a lattice too big for memory: std::bad_alloc) is rethrown after it.
      try {
        losses[b] = smp.run(b, offsets[b], label_stride, static_cast<S>(scale), want_grad);
      } catch (...) {
        // The first failure keeps its exception (read after every sample has finished).
        if (!failed.exchange(true)) error = std::current_exception();
      }
    }
    if (smp.stream) stream_fence();
  });
  if (error) std::rethrow_exception(error);
  if (p.reduction == Reduction::none) {
    for (int64_t b = 0; b < N; ++b) store_as<double>(p.loss, b * p.loss.strides[0], losses[b]);
  } else {
    double total = 0;
    for (int64_t b = 0; b < N; ++b) {
      const int64_t Sb = p.label_lengths[b];
      total += p.reduction == Reduction::mean ? losses[b] / static_cast<double>(Sb > 1 ? Sb : 1) : losses[b];
    }
    store_as<double>(p.loss, 0, p.reduction == Reduction::mean ? total * inv_n : total);
  }
}

}  // namespace

// float16 and float32 compute in float; float64 in double.
void ctc_loss(const CtcParams& p) {
  if (p.log_probs.dtype == DType::f64) ctc_impl<double>(p);
  else ctc_impl<float>(p);
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
