// Row-wise softmax machinery for CPU kernels (per-ISA; include after cpu_kernel.h).
//
// Pass 1 (softmax_stats) reads a contiguous row once: it splits the row into blocks, takes
// each block's max (cheap compares), rescales the running sum only when the max grows (one
// scalar exp per block), then adds exp(x - max) for the block while it is still in L1: one
// vector exp per element. With a scratch row it also keeps those exponentials and the max
// each block used, so pass 2 (for_each_prob) turns them into probabilities with a multiply
// instead of a second exp.
#pragma once
#include "fastloss/cpu_kernel.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {

template <class S> struct SoftmaxStats {
  S max;  // row max (the reference for sum)
  S sum;  // sum of exp(x - max)
  S lse() const { return max + std::log(sum); }
};

// Block layout of a row: blocks of kBlock elements from the row's start, whatever the
// alignment of the memory (so results do not depend on where arrays happen to live).
template <class S> struct RowBlocks {
  static constexpr int64_t kBlock = 2048 / sizeof(S);  // 2 KiB: stays in L1 between sub-passes
  int64_t C;
  int64_t count() const { return (C + kBlock - 1) / kBlock; }
  int64_t begin(int64_t b) const { return b * kBlock; }
  int64_t end(int64_t b) const { return (b + 1) * kBlock < C ? (b + 1) * kBlock : C; }
};

// Side accumulators ride along in pass 1 and see every element once: side(j, x, n) gets the
// vector x = row[j, j+n) (lanes past n are 0). NoSide does nothing.
struct NoSide {
  template <class V> void operator()(int64_t, V, int64_t) const {}
};

// Pass 1. `exps` (if kStore) receives exp(x_j - block_max[b]) for j in block b.
template <class S, bool kStore, class Side = NoSide>
SoftmaxStats<S> softmax_stats(const S* x, const RowBlocks<S>& rb, S* exps, S* block_max,
                              Side&& side = Side()) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const S ninf = -std::numeric_limits<S>::infinity();
  S m = ninf, s = 0;
  const int64_t nb = rb.count();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t j0 = rb.begin(b), j1 = rb.end(b);
    const int64_t full_end = j0 + (j1 - j0) / W * W;
    // The memory two blocks ahead (the next row's start when rows are contiguous) into the
    // cache: the block max's first loads otherwise wait on memory (44% of a loss-only
    // (8192, 1000) call). A prefetch past the end of the array is harmless.
    {
      const char* ahead = reinterpret_cast<const char*>(x + j0 + 2 * RowBlocks<S>::kBlock);
      for (int64_t k = 0; k < (j1 - j0) * int64_t(sizeof(S)); k += 64) __builtin_prefetch(ahead + k);
    }
    // block max
    V vm0 = splat(ninf), vm1 = vm0;
    int64_t j = j0;
    for (; j + 2 * W <= full_end; j += 2 * W) {
      vm0 = vmax(vm0, load(x + j));
      vm1 = vmax(vm1, load(x + j + W));
    }
    for (; j < full_end; j += W) vm0 = vmax(vm0, load(x + j));
    if (j < j1) vm1 = vmax(vm1, load_partial(x + j, j1 - j, ninf));
    const S bm = hmax_tree<S>(vmax(vm0, vm1));  // the block's exps wait on it: the short chain
    const S new_m = bm > m ? bm : m;
    if (new_m == ninf) {
      // Everything so far is -inf (or NaN, which the compare skipped): exps are 0, but a
      // NaN must still poison the row.
      for (int64_t k = j0; k < j1; ++k) {
        if (x[k] != x[k]) s = x[k];
        if (kStore) exps[k] = 0;
      }
      if (kStore) block_max[b] = ninf;  // pass 2 scales this block by exp(-inf) = 0
      for (j = j0; j < j1; j += W) {
        const int64_t n = j1 - j < W ? j1 - j : W;
        side(j, n == W ? load(x + j) : load_partial(x + j, n, S(0)), n);
      }
      continue;
    }
    if (new_m > m) {
      s *= std::exp(m - new_m);
      m = new_m;
    }
    if (kStore) block_max[b] = m;
    const V vmx = splat(m);
    V a0 = V{}, a1 = V{}, a2 = V{}, a3 = V{};
    j = j0;
    for (; j + 4 * W <= full_end; j += 4 * W) {
      const V x0 = load(x + j), x1 = load(x + j + W), x2 = load(x + j + 2 * W), x3 = load(x + j + 3 * W);
      const V e0 = vexp<true>(x0 - vmx), e1 = vexp<true>(x1 - vmx), e2 = vexp<true>(x2 - vmx), e3 = vexp<true>(x3 - vmx);
      a0 += e0; a1 += e1; a2 += e2; a3 += e3;
      if (kStore) { store(exps + j, e0); store(exps + j + W, e1); store(exps + j + 2 * W, e2); store(exps + j + 3 * W, e3); }
      side(j, x0, W); side(j + W, x1, W); side(j + 2 * W, x2, W); side(j + 3 * W, x3, W);
    }
    for (; j < full_end; j += W) {
      const V x0 = load(x + j);
      const V e0 = vexp<true>(x0 - vmx);
      a0 += e0;
      if (kStore) store(exps + j, e0);
      side(j, x0, W);
    }
    if (j < j1) {
      const int64_t n = j1 - j;
      const V e0 = vexp<true>(load_partial(x + j, n, ninf) - vmx);
      a1 += e0;
      if (kStore) store_partial(exps + j, e0, n);
      side(j, load_partial(x + j, n, S(0)), n);
    }
    s += hsum<S>((a0 + a1) + (a2 + a3));
  }
  return {m, s};
}

// Pass 2: calls f(j, p, n) for each vector of probabilities p = softmax(row)[j, j+n) (lanes
// past n are 0). Vectors start at 0, `first` (< W, so the caller's stores can be aligned),
// then every W; block_max is overwritten with each block's factor exp(block_max - max)/sum.
template <class S, class F>
void for_each_prob(const S* exps, S* block_max, const RowBlocks<S>& rb, const SoftmaxStats<S>& st,
                   int64_t first, F&& f) {
  typedef vec_t<S> V;
  typedef typename Vec<S>::I I;
  constexpr int W = Vec<S>::W;
  constexpr int64_t kB = RowBlocks<S>::kBlock;
  const S inv_sum = S(1) / st.sum;
  const int64_t nb = rb.count(), C = rb.C;
  for (int64_t b = 0; b < nb; ++b) block_max[b] = std::exp(block_max[b] - st.max) * inv_sum;
  I lane;
  for (int i = 0; i < W; ++i) lane[i] = i;
  auto at = [&](int64_t j, int64_t n) {
    const V e = n == W ? load(exps + j) : load_partial(exps + j, n, S(0));
    const int64_t b0 = j / kB, b1 = (j + n - 1) / kB;
    if (b0 == b1) return e * block_max[b0];
    // the vector straddles a block boundary: lanes past it take the next block's factor
    const I cut = I{} + static_cast<decltype(lane[0] + 0)>(b1 * kB - j);
    return e * (lane < cut ? splat(block_max[b0]) : splat(block_max[b1]));
  };
  int64_t j = 0;
  if (first > 0 && first < C) {
    f(int64_t(0), at(0, first), first);
    j = first;
  }
  for (; j + W <= C; j += W) f(j, at(j, W), int64_t(W));
  if (j < C) f(j, at(j, C - j), C - j);
}

// Writes vector v (n valid lanes) to dst[j..j+n): streamed when asked, full and aligned.
template <class S>
inline void put_vec(S* dst, int64_t j, vec_t<S> v, int64_t n, bool stream) {
  if (n == Vec<S>::W) {
    if (stream && (reinterpret_cast<uintptr_t>(dst + j) % kVecBytes) == 0) stream_store(dst + j, v);
    else store(dst + j, v);
  } else {
    store_partial(dst + j, v, n);
  }
}

// Elements before the first kVecBytes-aligned address of dst (0 if dst cannot be aligned).
template <class S> inline int64_t misaligned_prefix(const S* dst, int64_t C) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(dst);
  if (a % sizeof(S)) return 0;
  const int64_t k = static_cast<int64_t>(((kVecBytes - a % kVecBytes) % kVecBytes) / sizeof(S));
  return k < C ? k : 0;
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
