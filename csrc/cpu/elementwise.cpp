// The CPU engine of the elementwise losses (compiled once per SIMD level).
//
// Every view of a call (pred, target, weight, pos_weight, grad, "none" output) has pred's
// shape after the checks (broadcast inputs through zero strides). Dimensions that are
// contiguous in all of them are merged, so a contiguous call is one long row. The flat index
// splits into fixed ranges (kRangeElements or more, fixed by the size alone) that the threads
// claim in turn; within a row, chunks of kChunk elements go through the
// loss functor W lanes at a time. A view that is contiguous and of the compute type is read
// and written in place; any other (strided, float16, broadcast) is gathered into a
// per-thread buffer and its outputs scattered back, so one SIMD loop serves every layout.
// Loss sums accumulate in float64 lanes, one partial per range, added in range order: the same
// bits for every thread count.
#include "fastloss/cpu_kernel.h"
#include "fastloss/elementwise.h"
#include "fastloss/elementwise_losses.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace {

// The loss functors' math on this level's vectors (an ISA-local type: every instantiation of
// a functor with it belongs to this level alone).
template <class S_> struct CpuMath {
  typedef S_ S;
  typedef vec_t<S> V;
  typedef typename Vec<S>::I I;
  static V c(S s) { return splat(s); }
  static V exp(V x) { return vexp(x); }
  static V exp_nonpos(V x) { return vexp<true>(x); }
  static V log(V x) { return vlog(x); }
  // log(1 + e) for e in [0, 1]. Float: e q(e), q a degree-8 fit of log1p(e)/e on [0, 1]
  // (3.2 ulp, no division). Double: log(u) corrected by the rounding of u = 1 + e.
  static V log1p01(V e) {
    if constexpr (sizeof(S) == 4) {
      // Estrin's scheme: a chain of 4 FMAs instead of Horner's 9. These loops are bound by
      // latency (the scheduler fills with one element's exp -> log1p -> loss chain), not by
      // the FMA ports.
      const V e2 = e * e, e4 = e2 * e2;
      const V p01 = fmadd(splat(-4.999950152e-01f), e, splat(9.999999705e-01f));
      const V p23 = fmadd(splat(-2.484436989e-01f), e, splat(3.331927134e-01f));
      const V p45 = fmadd(splat(-1.367476970e-01f), e, splat(1.911143108e-01f));
      const V p67 = fmadd(splat(-2.958850739e-02f), e, splat(7.836166801e-02f));
      const V p03 = fmadd(p23, e2, p01);
      const V p47 = fmadd(p67, e2, p45);
      const V p48 = fmadd(splat(5.253457796e-03f), e4, p47);
      return fmadd(p48, e4, p03) * e;
    } else {
      const V u = e + S(1);
      return vlog(u) - ((u - S(1)) - e) / u;
    }
  }
  // 1 / x for normal x. Float: the hardware estimate and one Newton step (~2 ulp), far
  // cheaper than a division; double divides.
  static V recip(V x) {
    if constexpr (sizeof(S) == 4) {
      // Newton steps as r + r (1 - x r), whose correction is exact (an FMA) so 1/1 lands on
      // 1: the sigmoid losses promise exact values at logits of +-1e9. r (2 - x r) rounded
      // 2 - x r and stayed at 0.99999994.
#if defined(__AVX512F__)
      V r = (V)_mm512_rcp14_ps((__m512)x);
#else
#if defined(__AVX__)
      V r = (V)_mm256_rcp_ps((__m256)x);
#elif defined(FASTLOSS_X86)
      V r = (V)_mm_rcp_ps((__m128)x);
#else
      V r = splat(1.0f) / x;  // no estimate instruction in the portable build
#endif
      r = fmadd(r, fmadd(-x, r, splat(1.0f)), r);  // 12-bit estimates take two steps
#endif
      return fmadd(r, fmadd(-x, r, splat(1.0f)), r);
    } else {
      return splat(S(1)) / x;
    }
  }
  static V fma(V a, V b, V c) { return fmadd(a, b, c); }
  static V abs(V x) {
    if constexpr (sizeof(S) == 4) return (V)((I)x & 0x7fffffff);  // clear the sign bit
    else return (V)((I)x & 0x7fffffffffffffffLL);
  }
};

constexpr int kViews = 6;
enum { kX, kT, kW, kC, kG, kL };
// Elements per chunk: the gather buffers (6 x 8 KB for double) stay in L1.
constexpr int64_t kChunk = 1024;
// Gradients bigger than this are written around the cache (streaming stores).
constexpr int64_t kStreamBytes = int64_t(8) << 20;
// Elements per thread below which waking another thread costs more than it saves: the
// cheapest losses (MSE, L1) run ~1.5 elements/ns/thread from L2 (1 thread, 2^20 float32
// elements: 0.65 ns each) and an OpenMP fork/join costs ~10-20 us on the 2-core dev machine,
// so a thread pays off from ~2^14-2^15 elements. ElementwiseThreads in
// bench/bench_elementwise.cpp sweeps 1 and 2 threads to re-measure it on another machine.
constexpr int64_t kMinPerThread = 1 << 15;
// Elements per claimed range (~5 us of the cheapest loss): several per thread at the smallest
// threaded size, so a thread that falls behind (a busy core) leaves its share to the others.
constexpr int64_t kRangeElements = 1 << 13;

// The views with merged dimensions.
struct Layout {
  int ndim = 0;
  int64_t shape[kMaxDims];
  int64_t strides[kViews][kMaxDims];
  const TensorView* views[kViews];
};

Layout make_layout(const TensorView* const* views) {
  Layout L;
  for (int v = 0; v < kViews; ++v) L.views[v] = views[v];
  const TensorView& x = *views[kX];
  for (int d = 0; d < x.ndim; ++d) {
    if (x.shape[d] == 1) continue;
    const int k = L.ndim;
    bool merge = k > 0;
    for (int v = 0; v < kViews && merge; ++v)
      if (views[v] && L.strides[v][k - 1] != views[v]->strides[d] * x.shape[d]) merge = false;
    if (merge) {
      L.shape[k - 1] *= x.shape[d];
      for (int v = 0; v < kViews; ++v) L.strides[v][k - 1] = views[v] ? views[v]->strides[d] : 0;
    } else {
      L.shape[k] = x.shape[d];
      for (int v = 0; v < kViews; ++v) L.strides[v][k] = views[v] ? views[v]->strides[d] : 0;
      ++L.ndim;
    }
  }
  if (L.ndim == 0) {
    L.ndim = 1;
    L.shape[0] = 1;
    for (int v = 0; v < kViews; ++v) L.strides[v][0] = 0;
  }
  return L;
}

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

template <class S> constexpr DType native() { return sizeof(S) == 4 ? DType::f32 : DType::f64; }

// A vector of losses as float64 lanes (float: both halves converted and added). Through
// intrinsics: a memcpy of the halves went through the stack (its upper-half reload missed
// store forwarding) and GCC splits a generic 8-lane conversion into four 4-lane ones.
inline vec_t<double> widen(vec_t<double> v) { return v; }
inline vec_t<double> widen(vec_t<float> v) {
#if defined(__AVX512F__)
  const __m512 f = (__m512)v;
  const __m256 lo = _mm512_castps512_ps256(f);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
  return (vec_t<double>)_mm512_add_pd(_mm512_cvtps_pd(lo), _mm512_cvtps_pd(hi));
#elif defined(__AVX__)
  const __m256 f = (__m256)v;
  return (vec_t<double>)_mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(f)),
                                      _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
#elif defined(FASTLOSS_X86)
  const __m128 f = (__m128)v;
  return (vec_t<double>)_mm_add_pd(_mm_cvtps_pd(f), _mm_cvtps_pd(_mm_movehl_ps(f, f)));
#else
  typedef float F2 __attribute__((vector_size(8)));
  const F2 lo = __builtin_shufflevector(v, v, 0, 1), hi = __builtin_shufflevector(v, v, 2, 3);
  return __builtin_convertvector(lo, vec_t<double>) + __builtin_convertvector(hi, vec_t<double>);
#endif
}

template <class S> struct Chunk {
  const S* x;
  const S* t;
  const S* w;   // null: no weight
  const S* c;   // null: 1
  S* g;         // null: no gradient
  S* o;         // null: reduced loss (accumulated instead)
};

// m elements of one chunk through loss L; `first` is the flat index of its first element.
// Each loss lands in accumulator lane (flat index mod W), whatever lane it was computed in,
// so the sum has the same bits for any alignment of the gradient buffer (whose alignment
// decides where chunks start).
template <class L, class S>
void run_chunk(const elementwise::Consts<S>& k, const Chunk<S>& ch, int64_t m, int64_t first, S gscale, bool stream,
               vec_t<double>& acc) {
  typedef vec_t<S> V;
  typedef typename Vec<S>::I I;
  constexpr int W = Vec<S>::W;
  I rotate;
  const int64_t rot = first % W;
  for (int j = 0; j < W; ++j) rotate[j] = (j - rot + W) % W;
  // Returns the loss lanes to accumulate (zero where not summed). The accumulator is the
  // caller's local: a reference into the chunk's loop kept it in memory.
  auto body = [&](int64_t i, int64_t n) -> V {
    const bool full = n == W;
    const V x = full ? load(ch.x + i) : load_partial(ch.x + i, n, S(0));
    const V t = full ? load(ch.t + i) : load_partial(ch.t + i, n, S(0));
    const V c = !ch.c ? splat(S(1)) : full ? load(ch.c + i) : load_partial(ch.c + i, n, S(1));
    V l, d;
    L::eval(k, x, t, c, l, d);
    if (ch.w) {
      const V w = full ? load(ch.w + i) : load_partial(ch.w + i, n, S(0));
      l *= w;
      d *= w;
    }
    if (ch.g) {
      d *= gscale;
      if (!full) store_partial(ch.g + i, d, n);
      else if (stream && (reinterpret_cast<uintptr_t>(ch.g + i) % kVecBytes) == 0) stream_store(ch.g + i, d);
      else store(ch.g + i, d);
    }
    if (ch.o) {
      if (full) store(ch.o + i, l);
      else store_partial(ch.o + i, l, n);
      return V{};
    }
    return full ? l : (first_lanes<S>(n, S(1)) == S(1) ? l : V{});
  };
  vec_t<double> sum = acc;
  int64_t i = 0;
  if (rot == 0) {
    for (; i + W <= m; i += W) sum += widen(body(i, W));
  } else {
    for (; i + W <= m; i += W) sum += widen(__builtin_shuffle(body(i, W), rotate));
  }
  if (i < m) {
    const V l = body(i, m - i);
    sum += widen(rot ? __builtin_shuffle(l, rotate) : l);
  }
  acc = sum;
}

// One flat range [f0, f1) of the call.
template <class L, class S>
void run_range(const Layout& lay, const elementwise::Consts<S>& k, int64_t f0, int64_t f1,
               S gscale, bool stream, double* partial) {
  const int nd = lay.ndim;
  const int64_t n = lay.shape[nd - 1];
  const int64_t* outer[kViews];
  for (int v = 0; v < kViews; ++v) outer[v] = lay.strides[v];
  RowWalker<kViews> walk(lay.shape, nd - 1, outer);
  alignas(64) S buf[kViews][kChunk];
  vec_t<double> acc{};
  int64_t row = f0 / n, col = f0 % n;
  walk.begin(row);
  for (int64_t f = f0; f < f1; ++row, col = 0, walk.next()) {
    const int64_t c1 = imin(n, col + (f1 - f));
    for (int64_t c = col; c < c1;) {
      int64_t m = imin(kChunk, c1 - c);
      const S* in[4];
      S* out[2] = {nullptr, nullptr};
      bool direct_out[2] = {false, false};
      // Align the gradient's chunks to whole vectors (for streaming stores) when it is direct.
      const TensorView* gv = lay.views[kG];
      if (gv && gv->dtype == native<S>() && lay.strides[kG][nd - 1] == 1) {
        const S* gp = gv->ptr<S>() + walk.offset(kG) + c;
        const uintptr_t mis = reinterpret_cast<uintptr_t>(gp) % kVecBytes;
        if (mis && mis % sizeof(S) == 0) m = imin(m, (kVecBytes - mis) / sizeof(S));
      }
      for (int v = 0; v < kViews; ++v) {
        const TensorView* tv = lay.views[v];
        const int64_t st = lay.strides[v][nd - 1];
        const int64_t off = tv ? walk.offset(v) + c * st : 0;
        const bool direct = tv && tv->dtype == native<S>() && st == 1;
        if (v < kG) {
          if (!tv) in[v] = nullptr;
          else if (direct) in[v] = tv->ptr<const S>() + off;
          else {
            for (int64_t i = 0; i < m; ++i) buf[v][i] = load_as<S>(*tv, off + i * st);
            in[v] = buf[v];
          }
        } else if (tv) {
          out[v - kG] = direct ? tv->ptr<S>() + off : buf[v];
          direct_out[v - kG] = direct;
        }
      }
      run_chunk<L, S>(k, Chunk<S>{in[kX], in[kT], in[kW], in[kC], out[0], out[1]}, m, f, gscale, stream, acc);
      for (int v = kG; v < kViews; ++v) {
        const TensorView* tv = lay.views[v];
        if (!tv || direct_out[v - kG]) continue;
        const int64_t st = lay.strides[v][nd - 1], off = walk.offset(v) + c * st;
        for (int64_t i = 0; i < m; ++i) store_as<S>(*tv, off + i * st, buf[v][i]);
      }
      f += m;
      c += m;
    }
  }
  *partial = hsum<double>(acc);
}

template <class L, class S> void run_typed(const ElementwiseParams& p, const ElementwiseConsts& kd) {
  const elementwise::Consts<S> k{static_cast<S>(kd.a), static_cast<S>(kd.b), static_cast<S>(kd.c), kd.n};
  const int64_t N = p.pred.numel();
  const int64_t denom = elementwise_denominator(p);
  const bool mean = p.reduction == Reduction::mean;
  const S gscale = mean ? (denom > 0 ? S(1) / static_cast<S>(denom) : S(0)) : S(1);
  const bool none = p.reduction == Reduction::none;
  const bool want_grad = !is_none(p.grad);
  if (N == 0) {
    if (!none) store_as<double>(p.loss, 0, 0.0);
    return;
  }
  const TensorView* views[kViews] = {&p.pred, &p.target, is_none(p.weight) ? nullptr : &p.weight,
                                     is_none(p.pos_weight) ? nullptr : &p.pos_weight, want_grad ? &p.grad : nullptr,
                                     none ? &p.loss : nullptr};
  const Layout lay = make_layout(views);
  const bool stream = want_grad && N * static_cast<int64_t>(sizeof(S)) > kStreamBytes;
  const int nt = threads_for(N, kMinPerThread);
  // Ranges cut at whole cache lines of the flat index.
  const Chunks ranges = fixed_chunks(N, kRangeElements, 64 / static_cast<int64_t>(sizeof(S)));
  double partials[kMaxFixedChunks] = {};
  parallel_chunks(ranges, nt, [&](int64_t c, int64_t f0, int64_t f1) {
    run_range<L, S>(lay, k, f0, f1, gscale, stream, &partials[c]);
    if (stream) stream_fence();  // on the thread that streamed
  });
  if (!none) {
    double total = 0;
    for (int64_t c = 0; c < ranges.count; ++c) total += partials[c];
    if (mean) total = denom > 0 ? total / static_cast<double>(denom) : 0.0;
    store_as<double>(p.loss, 0, total);
  }
}

template <template <class> class F> void run_loss(const ElementwiseParams& p, const ElementwiseConsts& k) {
  if (p.pred.dtype == DType::f64) run_typed<F<CpuMath<double>>, double>(p, k);
  else run_typed<F<CpuMath<float>>, float>(p, k);
}

}  // namespace

TargetStats elementwise_target_stats(const ElementwiseParams& p) {
  const TensorView& t = p.target;
  const int64_t N = t.numel();
  TargetStats total;
  if (N == 0) return total;
  const int64_t* strides[1] = {t.strides};
  const int nt = threads_for(N, kMinPerThread);
  TargetStats parts[256];
  const int nparts = nt < 256 ? nt : 256;
  parallel_parts(nparts, [&](int th, int T) {
    int64_t r0, r1;
    thread_range(N, th, T, &r0, &r1);
    TargetStats s;
    if (r0 < r1) {
      // Elements as rows of a 0-wide inner dimension: the walker steps every dimension.
      RowWalker<1> walk(t.shape, t.ndim, strides);
      walk.begin(r0);
      for (int64_t f = r0; f < r1; ++f, walk.next()) {
        const double v = load_as<double>(t, walk.offset(0));
        if (v == 0) ++s.zeros;
        else if (v == 1) ++s.ones;
        else if (v == -1) ++s.minus_ones;
        else if (s.others++ == 0) {
          s.first_other = f;
          s.first_other_value = v;
        }
      }
    }
    parts[th] = s;
  });
  for (int th = 0; th < nparts; ++th) {
    const TargetStats& s = parts[th];
    total.zeros += s.zeros;
    total.ones += s.ones;
    total.minus_ones += s.minus_ones;
    if (s.others && !total.others) {
      total.first_other = s.first_other;
      total.first_other_value = s.first_other_value;
    }
    total.others += s.others;
  }
  return total;
}

void elementwise_run(const ElementwiseParams& p, const ElementwiseConsts& k) {
  switch (p.kind) {
#define FASTLOSS_RUN_ENTRY(name, functor) \
  case ElementwiseLoss::name: return run_loss<elementwise::functor>(p, k);
    FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_RUN_ENTRY)
#undef FASTLOSS_RUN_ENTRY
  }
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
