// Included only by CPU kernel sources, which CMake compiles once per SIMD level with
// FASTLOSS_ISA set to avx512, avx2 or baseline. Everything here lives in that level's own
// namespace, so no inline function compiled for AVX-512 can be merged by the linker into
// the code that runs on a CPU without it. Keep std:: templates out of kernel sources for the
// same reason (use ScratchBuffer, not std::vector).
#pragma once
#ifndef FASTLOSS_ISA
#error "cpu_kernel.h is for the per-ISA kernel sources (FASTLOSS_ISA must be defined)"
#endif

// x86 builds compile three variants (avx512, avx2, baseline = SSE2); any other target (aarch64:
// Graviton, Grace) compiles only the baseline one, written in GCC vector extensions with no
// intrinsics (the x86 intrinsics below are all under FASTLOSS_X86).
#if defined(__x86_64__) || defined(__i386__)
#define FASTLOSS_X86 1
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX2__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

// ---------------------------------------------------------------------------------------
// SIMD: GCC vector extensions, one width per compilation. Vec<S>::V holds kVecBytes of S.
template <class S> struct Vec;
template <> struct Vec<float> {
  typedef float V __attribute__((vector_size(kVecBytes)));
  typedef int32_t I __attribute__((vector_size(kVecBytes)));
  static constexpr int W = kVecBytes / 4;
};
template <> struct Vec<double> {
  typedef double V __attribute__((vector_size(kVecBytes)));
  typedef int64_t I __attribute__((vector_size(kVecBytes)));
  static constexpr int W = kVecBytes / 8;
};

template <class S> using vec_t = typename Vec<S>::V;

template <class S> inline vec_t<S> splat(S s) { return vec_t<S>{} + s; }
template <class S> inline vec_t<S> load(const S* p) {
  vec_t<S> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class S> inline void store(S* p, vec_t<S> v) { std::memcpy(p, &v, sizeof(v)); }
// First n (< W) lanes from p, the rest `fill` (AVX-512: one masked load, which never touches
// the memory past n).
template <class S> inline vec_t<S> load_partial(const S* p, int64_t n, S fill) {
#if defined(__AVX512F__)
  if constexpr (sizeof(S) == 4)
    return (vec_t<S>)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << n) - 1), p);
  else
    return (vec_t<S>)_mm512_mask_loadu_pd(_mm512_set1_pd(fill), static_cast<__mmask8>((1u << n) - 1), p);
#else
  S buf[Vec<S>::W];
  for (int i = 0; i < Vec<S>::W; ++i) buf[i] = i < n ? p[i] : fill;
  return load(buf);
#endif
}
template <class S> inline void store_partial(S* p, vec_t<S> v, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (sizeof(S) == 4)
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), (__m512)v);
  else
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), (__m512d)v);
#else
  for (int64_t i = 0; i < n; ++i) p[i] = v[i];
#endif
}
// `value` in the first n lanes, 0 in the rest.
template <class S> inline vec_t<S> first_lanes(int64_t n, S value) {
  S buf[Vec<S>::W];
  for (int i = 0; i < Vec<S>::W; ++i) buf[i] = i < n ? value : S(0);
  return load(buf);
}
// Lane-wise max/min (a NaN lane may or may not survive; callers detect NaN separately).
template <class V> inline V vmax(V a, V b) { return a > b ? a : b; }
template <class V> inline V vmin(V a, V b) { return a < b ? a : b; }

// Horizontal max and sum as halving trees: log2 W steps, where hsum's lane-order loop is a
// chain of W - 1 (fine once per 2 KiB block for a sum nothing waits on; too slow once per
// short row, or for a block max that the block's exps wait on). The halves are register
// shuffles: halves copied through memory stalled each short row on a failed store forward.
template <class S, int N> struct Lanes {
  typedef S V __attribute__((vector_size(N * sizeof(S))));
};
template <class S, int N, class Op> inline S tree_reduce(typename Lanes<S, N>::V v, Op op);
template <class S, int N, class Op, size_t... I>
inline S tree_halves(typename Lanes<S, N>::V v, Op op, std::index_sequence<I...>) {
  const typename Lanes<S, N / 2>::V lo = __builtin_shufflevector(v, v, I...);
  const typename Lanes<S, N / 2>::V hi = __builtin_shufflevector(v, v, (I + N / 2)...);
  return tree_reduce<S, N / 2>(op(lo, hi), op);
}
template <class S, int N, class Op> inline S tree_reduce(typename Lanes<S, N>::V v, Op op) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    return tree_halves<S, N>(v, op, std::make_index_sequence<N / 2>());
  }
}
template <class S> inline S hmax_tree(vec_t<S> v) {
  return tree_reduce<S, Vec<S>::W>(v, [](auto a, auto b) { return a > b ? a : b; });
}
template <class S> inline S hsum_tree(vec_t<S> v) {
  return tree_reduce<S, Vec<S>::W>(v, [](auto a, auto b) { return a + b; });
}

template <class S> inline S hsum(vec_t<S> v) {
  S s = 0;
  for (int i = 0; i < Vec<S>::W; ++i) s += v[i];
  return s;
}
// A float64 running sum of vectors: the lanes add in S for at most kFlush vectors, then fold
// into a double, so a float32 row of 2^31 terms sums to float32 rounding (float lanes alone
// lose 1e-4 at 2^24 terms and stall once a lane's sum dwarfs its terms).
template <class S> struct WideSum {
  static constexpr int kFlush = 64;
  vec_t<S> acc{};
  int n = 0;
  double total = 0;
  void add(vec_t<S> v) {
    acc += v;
    if (++n == kFlush) flush();
  }
  void flush() {
    total += static_cast<double>(hsum<S>(acc));
    acc = vec_t<S>{};
    n = 0;
  }
  double sum() {
    flush();
    return total;
  }
};

template <class S> inline S hmax(vec_t<S> v) {
  S m = v[0];
  for (int i = 1; i < Vec<S>::W; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// a * b + c, fused where the level has FMA (always the same rounding at one level).
inline vec_t<float> fmadd(vec_t<float> a, vec_t<float> b, vec_t<float> c) {
#if defined(__AVX512F__)
  return (vec_t<float>)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
  return (vec_t<float>)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}
inline vec_t<double> fmadd(vec_t<double> a, vec_t<double> b, vec_t<double> c) {
#if defined(__AVX512F__)
  return (vec_t<double>)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__)
  return (vec_t<double>)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  return a * b + c;
#endif
}

// min(max(x, lo), hi) lane-wise, a NaN lane staying NaN: x86 max/min return their second
// operand when either is NaN, so x goes second. One instruction each (a ternary costs two).
inline vec_t<float> clamp_keep_nan(vec_t<float> x, float lo, float hi) {
#if defined(__AVX512F__)
  return (vec_t<float>)_mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), (__m512)x));
#elif defined(__AVX__)
  return (vec_t<float>)_mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), (__m256)x));
#elif defined(FASTLOSS_X86)
  return (vec_t<float>)_mm_min_ps(_mm_set1_ps(hi), _mm_max_ps(_mm_set1_ps(lo), (__m128)x));
#else
  // x86's max/min semantics (a false compare picks the second operand, x or t: NaN survives)
  const vec_t<float> l = splat(lo), h = splat(hi), t = l > x ? l : x;
  return h < t ? h : t;
#endif
}
inline vec_t<double> clamp_keep_nan(vec_t<double> x, double lo, double hi) {
#if defined(__AVX512F__)
  return (vec_t<double>)_mm512_min_pd(_mm512_set1_pd(hi), _mm512_max_pd(_mm512_set1_pd(lo), (__m512d)x));
#elif defined(__AVX__)
  return (vec_t<double>)_mm256_min_pd(_mm256_set1_pd(hi), _mm256_max_pd(_mm256_set1_pd(lo), (__m256d)x));
#elif defined(FASTLOSS_X86)
  return (vec_t<double>)_mm_min_pd(_mm_set1_pd(hi), _mm_max_pd(_mm_set1_pd(lo), (__m128d)x));
#else
  const vec_t<double> l = splat(lo), h = splat(hi), t = l > x ? l : x;
  return h < t ? h : t;
#endif
}

// Streaming (non-temporal) store of a full vector to a kVecBytes-aligned address: the
// gradient is written once and not read again, so skip the read-for-ownership.
inline void stream_store(float* p, vec_t<float> v) {
#if defined(__AVX512F__)
  _mm512_stream_ps(p, (__m512)v);
#elif defined(__AVX__)
  _mm256_stream_ps(p, (__m256)v);
#elif defined(FASTLOSS_X86)
  _mm_stream_ps(p, (__m128)v);
#else
  store(p, v);
#endif
}
inline void stream_store(double* p, vec_t<double> v) {
#if defined(__AVX512F__)
  _mm512_stream_pd(p, (__m512d)v);
#elif defined(__AVX__)
  _mm256_stream_pd(p, (__m256d)v);
#elif defined(FASTLOSS_X86)
  _mm_stream_pd(p, (__m128d)v);
#else
  store(p, v);
#endif
}
inline void stream_fence() {
#if defined(FASTLOSS_X86)
  _mm_sfence();
#endif
}

// exp(x) for every lane: range reduction x = n*ln2 + r, a polynomial for e^r, and 2^n built
// in two halves (or by AVX-512's scalef) so results down to the smallest subnormal and up
// to overflow are right.
// exp(-inf) = 0 exactly, exp(+inf) = inf, NaN stays NaN. About 1 ulp (float), 2 ulp (double).
// kNonPositive: the caller guarantees x <= 0 or NaN (x - max in a softmax), so the upper clamp
// goes (one operation of ~16; the results are the same).
template <bool kNonPositive = false>
inline vec_t<float> vexp(vec_t<float> x) {
  typedef vec_t<float> V;
  // Lanes whose result is 0 (x below the smallest subnormal's log, -inf included, such as the
  // padding lanes of a short row) are computed from x = 0 and zeroed at the end: an underflow
  // inside the scaling costs a microcode assist of ~100 cycles per instruction on Intel cores
  // (it made a 100-class row 3x slower).
  const auto zero = x < -104.0f;
  if constexpr (kNonPositive) x = zero ? V{} : x;
  else x = zero ? V{} : clamp_keep_nan(x, -104.0f, 100.0f);
  const V magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  V t = fmadd(x, splat(1.44269504088896341f), magic);
  V n = t - magic;
  V r = fmadd(n, splat(-0.693359375f), x);
  r = fmadd(n, splat(2.12194440e-4f), r);
  V p = splat(1.9875691500e-4f);
  p = fmadd(p, r, splat(1.3981999507e-3f));
  p = fmadd(p, r, splat(8.3334519073e-3f));
  p = fmadd(p, r, splat(4.1665795894e-2f));
  p = fmadd(p, r, splat(1.6666665459e-1f));
  p = fmadd(p, r, splat(5.0000001201e-1f));
  p = fmadd(p, r * r, r) + 1.0f;
#if defined(__AVX512F__)
  const V e = (V)_mm512_scalef_ps((__m512)p, (__m512)n);  // p * 2^n, with IEEE overflow/underflow
#else
  typedef Vec<float>::I I;
  I ni = (I)t - (I)magic;
  I h1 = ni >> 1, h2 = ni - h1;
  V s1 = (V)((h1 + 127) << 23), s2 = (V)((h2 + 127) << 23);
  const V e = p * s1 * s2;
#endif
  return zero ? V{} : e;
}

template <bool kNonPositive = false>
inline vec_t<double> vexp(vec_t<double> x) {
  typedef vec_t<double> V;
  const auto zero = x < -746.0;  // results that are 0: computed from 0, zeroed (see above)
  if constexpr (kNonPositive) x = zero ? V{} : x;
  else x = zero ? V{} : clamp_keep_nan(x, -746.0, 710.0);
  const V magic = splat(6755399441055744.0);  // 1.5 * 2^52
  V t = fmadd(x, splat(1.4426950408889634074), magic);
  V n = t - magic;
  V r = fmadd(n, splat(-6.93147180369123816490e-01), x);
  r = fmadd(n, splat(-1.90821492927058770002e-10), r);
  // Taylor to r^13 on |r| <= ln2/2: truncation below 1e-17.
  V p = splat(1.0 / 6227020800.0);
  p = fmadd(p, r, splat<double>(1.0 / 479001600.0));
  p = fmadd(p, r, splat<double>(1.0 / 39916800.0));
  p = fmadd(p, r, splat<double>(1.0 / 3628800.0));
  p = fmadd(p, r, splat<double>(1.0 / 362880.0));
  p = fmadd(p, r, splat<double>(1.0 / 40320.0));
  p = fmadd(p, r, splat<double>(1.0 / 5040.0));
  p = fmadd(p, r, splat<double>(1.0 / 720.0));
  p = fmadd(p, r, splat<double>(1.0 / 120.0));
  p = fmadd(p, r, splat<double>(1.0 / 24.0));
  p = fmadd(p, r, splat<double>(1.0 / 6.0));
  p = fmadd(p, r, splat<double>(0.5));
  p = fmadd(p, r, splat<double>(1.0));
  p = fmadd(p, r, splat<double>(1.0));
#if defined(__AVX512F__)
  const V e = (V)_mm512_scalef_pd((__m512d)p, (__m512d)n);
#else
  typedef Vec<double>::I I;
  I ni = (I)t - (I)magic;
  I h1 = ni >> 1, h2 = ni - h1;
  V s1 = (V)((h1 + 1023) << 52), s2 = (V)((h2 + 1023) << 52);
  const V e = p * s1 * s2;
#endif
  return zero ? V{} : e;
}

// log(x) for every lane: x = 2^e * m with m in [sqrt(1/2), sqrt(2)), plus e * ln2 in two
// parts. float: log(1 + f), f = m - 1, as f - f^2/2 + f^3 P(f) with a degree-8 minimax P (the
// classic Cephes logf fit), so no divide: a vector divide costs more than the whole rest.
// double: log m = 2 atanh(z), z = (m - 1) / (m + 1), by its odd series to z^21. Subnormals
// are scaled first. log(0) = -inf, log(+inf) = +inf, log(x < 0) = NaN, NaN stays NaN.
// About 1 ulp (float), 2 ulp (double).
inline vec_t<float> vlog(vec_t<float> x) {
  typedef vec_t<float> V;
  typedef Vec<float>::I I;
  const I sub = x < 1.17549435e-38f;
  const V xs = sub ? x * 8388608.0f : x;  // 2^23
  const I bits = (I)xs;
  I e = ((bits >> 23) & 0xff) - 127;
  e = sub ? e - 23 : e;
  V m = (V)((bits & 0x007fffff) | 0x3f800000);
  const I big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  const V f = m - 1.0f;
  const V f2 = f * f;
  V q = splat(7.0376836292e-2f);
  q = fmadd(q, f, splat(-1.1514610310e-1f));
  q = fmadd(q, f, splat(1.1676998740e-1f));
  q = fmadd(q, f, splat(-1.2420140846e-1f));
  q = fmadd(q, f, splat(1.4249322787e-1f));
  q = fmadd(q, f, splat(-1.6668057665e-1f));
  q = fmadd(q, f, splat(2.0000714765e-1f));
  q = fmadd(q, f, splat(-2.4999993993e-1f));
  q = fmadd(q, f, splat(3.3333331174e-1f));
  const V ef = __builtin_convertvector(e, V);
  V y = f * f2 * q;
  y = fmadd(ef, splat(-2.12194440e-4f), y);
  y = fmadd(f2, splat(-0.5f), y);
  V r = fmadd(ef, splat(0.693359375f), f + y);
  const V inf = splat(std::numeric_limits<float>::infinity());
  r = x == 0.0f ? -inf : r;
  r = x < 0.0f ? splat(std::numeric_limits<float>::quiet_NaN()) : r;
  r = x == inf ? inf : r;
  r = x != x ? x : r;
  return r;
}

inline vec_t<double> vlog(vec_t<double> x) {
  typedef vec_t<double> V;
  typedef Vec<double>::I I;
  const I sub = x < 2.2250738585072014e-308;
  const V xs = sub ? x * 4503599627370496.0 : x;  // 2^52
  const I bits = (I)xs;
  I e = ((bits >> 52) & 0x7ff) - 1023;
  e = sub ? e - 52 : e;
  V m = (V)((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
  const I big = m > 1.4142135623730951;
  m = big ? m * 0.5 : m;
  e = big ? e + 1 : e;
  const V z = (m - 1.0) / (m + 1.0);
  const V z2 = z * z;
  V q = splat(1.0 / 21.0);
  q = q * z2 + 1.0 / 19.0;
  q = q * z2 + 1.0 / 17.0;
  q = q * z2 + 1.0 / 15.0;
  q = q * z2 + 1.0 / 13.0;
  q = q * z2 + 1.0 / 11.0;
  q = q * z2 + 1.0 / 9.0;
  q = q * z2 + 1.0 / 7.0;
  q = q * z2 + 1.0 / 5.0;
  q = q * z2 + 1.0 / 3.0;
  const V ef = __builtin_convertvector(e, V);
  V r = ef * 6.93147180369123816490e-01 + ((z + z) + ((z + z) * z2 * q + ef * 1.90821492927058770002e-10));
  const V inf = splat(std::numeric_limits<double>::infinity());
  r = x == 0.0 ? -inf : r;
  r = x < 0.0 ? splat(std::numeric_limits<double>::quiet_NaN()) : r;
  r = x == inf ? inf : r;
  r = x != x ? x : r;
  return r;
}

// log(exp(a) + exp(b) + exp(c)) lane-wise; -inf when all three are -inf (no NaN from
// -inf - -inf), NaN when any is NaN.
template <class V> inline V vlogsumexp3(V a, V b, V c) {
  typedef decltype(a[0] + 0) S;
  const V m = vmax(vmax(a, b), c);
  const V mm = m == -std::numeric_limits<S>::infinity() ? V{} : m;
  return mm + vlog(vexp(a - mm) + vexp(b - mm) + vexp(c - mm));
}

// ---------------------------------------------------------------------------------------
// A per-thread scratch buffer (64-byte aligned, grows, never shrinks).
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(ptr_); }
  template <class T> T* get(int64_t count) {
    const size_t bytes = (static_cast<size_t>(count) * sizeof(T) + 63) & ~size_t(63);
    if (bytes > capacity_) {
      std::free(ptr_);
      ptr_ = std::aligned_alloc(64, bytes);
      if (!ptr_) throw std::bad_alloc();
      capacity_ = bytes;
    }
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t capacity_ = 0;
};

// ---------------------------------------------------------------------------------------
// Walks the rows of several views that share one row shape (the leading dims), yielding
// each view's element offset. A thread starts anywhere with begin(r) and steps with next():
// an odometer, so the per-row cost is a few adds rather than ndim divisions.
template <int NV>
class RowWalker {
 public:
  RowWalker(const int64_t* shape, int ndim, const int64_t* const* strides) : ndim_(ndim) {
    for (int d = 0; d < ndim; ++d) {
      shape_[d] = shape[d];
      for (int v = 0; v < NV; ++v) strides_[v][d] = strides[v] ? strides[v][d] : 0;
    }
  }
  void begin(int64_t row) {
    for (int v = 0; v < NV; ++v) offset_[v] = 0;
    for (int d = ndim_ - 1; d >= 0; --d) {
      const int64_t n = shape_[d] > 0 ? shape_[d] : 1;  // a size-0 dimension has no rows to reach
      const int64_t i = row % n;
      row /= n;
      index_[d] = i;
      for (int v = 0; v < NV; ++v) offset_[v] += i * strides_[v][d];
    }
  }
  void next() {
    for (int d = ndim_ - 1; d >= 0; --d) {
      for (int v = 0; v < NV; ++v) offset_[v] += strides_[v][d];
      if (++index_[d] < shape_[d]) return;
      for (int v = 0; v < NV; ++v) offset_[v] -= strides_[v][d] * shape_[d];
      index_[d] = 0;
    }
  }
  int64_t offset(int v) const { return offset_[v]; }
  // Index along the last row dimension, and how many rows remain before it wraps.
  int64_t inner_remaining() const { return ndim_ ? shape_[ndim_ - 1] - index_[ndim_ - 1] : 1; }

 private:
  int ndim_;
  int64_t shape_[kMaxDims];
  int64_t strides_[NV][kMaxDims];
  int64_t index_[kMaxDims];
  int64_t offset_[NV];
};

// Rows [begin, end) of `rows` for part `t` of `nt`: contiguous, balanced blocks.
inline void thread_range(int64_t rows, int t, int nt, int64_t* begin, int64_t* end) {
  const int64_t q = rows / nt, r = rows % nt;
  *begin = t * q + (t < r ? t : r);
  *end = *begin + q + (t < r ? 1 : 0);
}

// ---------------------------------------------------------------------------------------
// Parallel loops, all on fastloss::parallel_tasks (runtime.h): the calling thread claims work
// from the start and returns once the work is done, never waiting for a worker that the OS
// has not scheduled yet (an OpenMP parallel region waits at its end for every team thread,
// which on a busy machine cost milliseconds per call). One thread (nt <= 1) runs inline.

// Fixed chunks of [0, n) whose size depends only on n (never on the thread count), so sums
// taken per chunk and combined in chunk order have the same bits for every thread count.
constexpr int64_t kMaxFixedChunks = 512;  // bounds the per-chunk partials (on the stack)
struct Chunks {
  int64_t n, size, count;
  int64_t begin(int64_t c) const { return c * size; }
  int64_t end(int64_t c) const { return (c + 1) * size < n ? (c + 1) * size : n; }
};
// Chunks of at least min_size items, a multiple of `align`, and at most kMaxFixedChunks of them.
inline Chunks fixed_chunks(int64_t n, int64_t min_size, int64_t align = 1) {
  int64_t size = min_size > 1 ? min_size : 1;
  const int64_t least = (n + kMaxFixedChunks - 1) / kMaxFixedChunks;
  if (size < least) size = least;
  size = (size + align - 1) / align * align;
  return Chunks{n, size, n > 0 ? (n + size - 1) / size : 0};
}
// f(chunk, begin, end) once per chunk, on up to nt threads.
template <class F> inline void parallel_chunks(const Chunks& ch, int nt, F&& f) {
  parallel_tasks(ch.count, nt, [&](int64_t c) { f(c, ch.begin(c), ch.end(c)); });
}
// f(i0, i1) over [0, n) in pieces of `grain` items, claimed in turn (dynamic scheduling).
template <class F> inline void parallel_for(int64_t n, int64_t grain, int nt, F&& f) {
  if (grain < 1) grain = 1;
  parallel_tasks((n + grain - 1) / grain, nt, [&](int64_t c) {
    const int64_t i0 = c * grain;
    f(i0, n - i0 < grain ? n : i0 + grain);
  });
}
// f(part, nt) once for each part in [0, nt): a region whose parts split their work with
// thread_range(..., part, nt) or claim it from a Claim. Parts that no worker has claimed run
// on the calling thread, one after another.
template <class F> inline void parallel_parts(int nt, F&& f) {
  if (nt < 1) nt = 1;
  parallel_tasks(nt, nt, [&](int64_t t) { f(static_cast<int>(t), nt); });
}
// *p = min(*p, v), from any thread.
inline void atomic_min(int64_t* p, int64_t v) {
  int64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (v < cur && !__atomic_compare_exchange_n(p, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}
// Items [0, n) handed out `grain` at a time to the parts of a parallel_parts region.
class Claim {
 public:
  Claim(int64_t n, int64_t grain) : n_(n), grain_(grain > 0 ? grain : 1) {}
  bool take(int64_t* begin, int64_t* end) {
    const int64_t b = __atomic_fetch_add(&next_, grain_, __ATOMIC_RELAXED);
    if (b >= n_) return false;
    *begin = b;
    *end = n_ - b < grain_ ? n_ : b + grain_;
    return true;
  }

 private:
  int64_t next_ = 0;
  const int64_t n_, grain_;
};

// ---------------------------------------------------------------------------------------
// Scalar conversions between storage types and the compute type (float16 via F16C when
// the level has it, else bit manipulation).
template <class S> struct Storage;
template <> struct Storage<float> { static float get(const float* p, int64_t i) { return p[i]; } static void put(float* p, int64_t i, float v) { p[i] = v; } };
template <> struct Storage<double> { static double get(const double* p, int64_t i) { return p[i]; } static void put(double* p, int64_t i, double v) { p[i] = v; } };

inline float half_to_float(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) bits = sign;
    else {  // subnormal half: normalise
      int e = -1;
      uint32_t m = mant;
      do { m <<= 1; ++e; } while (!(m & 0x400u));
      bits = sign | ((127 - 15 - e) << 23) | ((m & 0x3ffu) << 13);
    }
  } else if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
  else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}
inline uint16_t float_to_half(float f) {
#if defined(__F16C__)
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0);  // inf/NaN
  if (ax >= 0x477ff000u) return sign | 0x7c00u;                                   // overflow
  if (ax < 0x38800000u) {  // subnormal or zero half: round via float addition
    float a;
    std::memcpy(&a, &ax, 4);
    a += 0.5f;
    uint32_t b;
    std::memcpy(&b, &a, 4);
    return sign | static_cast<uint16_t>(b - 0x3f000000u);
  }
  const uint32_t odd = (ax >> 13) & 1u;
  ax += 0xc8000fffu + odd;  // rebias exponent (-112 << 23) and round to nearest even
  return sign | static_cast<uint16_t>(ax >> 13);
#endif
}

// Loads element i of a float view of any float dtype in compute type C.
template <class C> inline C load_as(const TensorView& t, int64_t offset) {
  switch (t.dtype) {
    case DType::f32: return static_cast<C>(t.ptr<const float>()[offset]);
    case DType::f64: return static_cast<C>(t.ptr<const double>()[offset]);
    default: return static_cast<C>(half_to_float(t.ptr<const uint16_t>()[offset]));
  }
}
template <class C> inline void store_as(const TensorView& t, int64_t offset, C v) {
  switch (t.dtype) {
    case DType::f32: t.ptr<float>()[offset] = static_cast<float>(v); break;
    case DType::f64: t.ptr<double>()[offset] = static_cast<double>(v); break;
    default: t.ptr<uint16_t>()[offset] = float_to_half(static_cast<float>(v)); break;
  }
}

// A row loss of zeros: 0 per row for "none" (loss shaped like the rows, rank dims), else a 0
// total. For calls with no rows or no classes.
inline void zero_row_losses(const TensorView& loss, Reduction reduction, int rank, int64_t rows) {
  if (reduction != Reduction::none) {
    store_as<double>(loss, 0, 0.0);
    return;
  }
  const int64_t* strides[1] = {loss.strides};
  RowWalker<1> walk(loss.shape, rank, strides);
  walk.begin(0);
  for (int64_t r = 0; r < rows; ++r, walk.next()) store_as<double>(loss, walk.offset(0), 0.0);
}

// A reduced loss: the partial sums (per chunk or per part) added in their order, times the
// reduction's scale, stored into the 0-d loss.
inline void store_reduced_loss(const TensorView& loss, const double* partial, int nt, double scale) {
  double total = 0;
  for (int i = 0; i < nt; ++i) total += partial[i];
  store_as<double>(loss, 0, total * scale);
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
