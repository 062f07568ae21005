// The row engine: one fused pass for every softmax row loss (per-ISA; include after
// cpu_kernel.h, like row_softmax.h).
//
// A softmax row loss sees each row of C logits x (class axis moved last) through its softmax
// statistics: the max m, sum = sum_c exp(x_c - m), log_s = log(sum), the logit x_y of the
// row's integer label y and (for cross-entropy's smoothing and probability labels) the side
// sums swt = sum_c w_c t'_c and sx = sum_c w_c t'_c x_c (or sum_c w_c x_c). From them the loss
// (a Policy) gives the row's loss and its gradient as
//     dloss/dx_j = A p_j - coef_j - T [j == y],   p = softmax(x),
// where coef_j is cross-entropy's per-class term (eps/C w_j, or w_j t'_j for probability
// labels; 0 for every other loss). The engine owns everything else: label checks and the
// "mean" denominator, the three row paths, any layout and class axis, threads, the reduction
// and the gradient written in the same pass.
//
// Row paths (picked per call; every layout of the same values gives the same path):
//  - lanes: W rows at once, one per SIMD lane, looping over the classes, for the (N, C, H, W)
//    layout with axis=1 and for fewer than 16 classes;
//  - short rows (at most kShortVecs vectors): the row lives in registers, one load, exp and
//    store per element; the row's log(sum) is taken W rows at a time with one vector log;
//    loss-only (N, C) calls with plain integer labels take W such rows at once (wide_rows:
//    their max and sum trees as transposed reductions, the same bits);
//  - long rows: 2 KiB blocks (row_softmax.h), one exp per element, the exponentials kept in a
//    scratch row so the gradient needs no second exp.
//
// A Policy provides (S is float or double):
//   bool grad_needs_log() const;   // its A or T use log_s (otherwise short rows defer the log)
//   S loss(const RowStats<S>&) const;
//   RowGrad<S> grad(const RowStats<S>&) const;   // log_s is set when grad_needs_log()
#pragma once
#include <utility>

#include "fastloss/cpu_kernel.h"
#include "fastloss/cross_entropy.h"
#include "fastloss/row_softmax.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace row_engine {

template <class S> struct RowStats {
  S m, sum, log_s;  // softmax statistics of the row
  S swt, sx;        // side sums (cross-entropy's smoothing and probability labels; else 0)
  S xy, wy;         // logit and class weight of the label (0 and 1 for probability labels)
  int64_t y;        // the label (-1 for probability labels)
  // log p_y, written as (x_y - m) - log_s so that its negation is bit-for-bit (m - x_y) + log_s.
  S log_py() const { return (xy - m) - log_s; }
};
template <class S> struct RowGrad {
  S A, T;
};

// Gradients bigger than this go around the cache (streaming stores).
constexpr int64_t kStreamBytes = int64_t(8) << 20;

// Parallel regions pay off only above these sizes. Single-thread kernel costs from
// bench_fastloss (CrossEntropySmall, avx512, 2-core VM): ~1.2 ns per logit of a 32-class row
// (loss only), ~1 ns per label checked. 16384 logits per thread is ~20 us of work, several
// times the 2-5 us fork/join of two threads on an idle 2-core VM; below it a call stays on the
// calling thread and never wakes the pool (under load a woken pool cost 0.1-20 ms per call).
// Labels are checked on as many threads as the row loop will use (its pool is awake anyway),
// from 4096 per thread: checked on one thread, a (16384, 32) call's other thread spun through
// the check (15% of the call in libgomp).
constexpr int64_t kMinLabelsPerThread = 4096;      // labels checked per thread
constexpr int64_t kMinElementsPerThread = 16384;   // logits per thread in the row loop
constexpr int64_t kChunkElements = 8192;           // logits per claimed chunk of rows (~10 us)

struct Denominator {
  double value;       // sum of w_y over counted rows (or their count)
  int64_t counted;    // rows not ignored
};

// Checks every integer label and sums the weights of the counted rows (the "mean" denominator).
inline Denominator label_denominator(const CrossEntropyParams& p, int64_t rows, int64_t C) {
  const int rank = p.logits.ndim - 1;
  if (p.soft_labels) return {static_cast<double>(rows), rows};
  const int64_t* strides[1] = {p.labels.strides};
  const bool weighted = !is_none(p.weight);
  const int nt_rows = threads_for(rows * C, kMinElementsPerThread), nt_labels = threads_for(rows, kMinLabelsPerThread);
  const int nt = nt_rows < nt_labels ? nt_rows : nt_labels;
  double total = 0;
  int64_t counted = 0, first_bad = rows;
  // Fixed chunks, a weight sum per chunk added in chunk order (the same bits for every thread
  // count); counts and the first bad row are exact in any order.
  const Chunks chunks = fixed_chunks(rows, kMinLabelsPerThread / 2);
  double chunk_total[kMaxFixedChunks] = {0};
  int64_t chunk_counted[kMaxFixedChunks] = {0};
  int64_t chunk_bad[kMaxFixedChunks];
  // One loop per label type: a dtype switch per label cost more than the check itself.
  auto check = [&](auto label_type) {
    typedef decltype(label_type) L;
    const L* labels = p.labels.ptr<const L>();
    const int64_t ignore = p.ignore_index;
    parallel_chunks(chunks, nt, [&](int64_t ch, int64_t r0, int64_t r1) {
      double total = 0;
      int64_t counted = 0, first_bad = rows;
      auto one = [&](int64_t r, int64_t offset) {
        const int64_t y = static_cast<int64_t>(labels[offset]);
        if (y == ignore) return;
        if (static_cast<uint64_t>(y) >= static_cast<uint64_t>(C)) {
          if (r < first_bad) first_bad = r;
          return;
        }
        if (weighted) total += load_as<double>(p.weight, y * p.weight.strides[0]);
        ++counted;
      };
      if (rank <= 1) {  // one label axis: indexed directly (the walker's step cost more)
        const int64_t ls = rank ? p.labels.strides[0] : 0;
        for (int64_t r = r0; r < r1; ++r) one(r, r * ls);
      } else {
        RowWalker<1> walk(p.labels.shape, rank, strides);
        walk.begin(r0);
        for (int64_t r = r0; r < r1; ++r, walk.next()) one(r, walk.offset(0));
      }
      chunk_total[ch] = total;
      chunk_counted[ch] = counted;
      chunk_bad[ch] = first_bad;
    });
    for (int64_t ch = 0; ch < chunks.count; ++ch) {
      total += chunk_total[ch];
      counted += chunk_counted[ch];
      if (chunk_bad[ch] < first_bad) first_bad = chunk_bad[ch];
    }
  };
  switch (p.labels.dtype) {
    case DType::i64: check(int64_t()); break;
    case DType::i32: check(int32_t()); break;
    case DType::i16: check(int16_t()); break;
    case DType::i8: check(int8_t()); break;
    case DType::u8: check(uint8_t()); break;
    case DType::u16: check(uint16_t()); break;
    case DType::u32: check(uint32_t()); break;
    case DType::u64: check(uint64_t()); break;
    default: first_bad = 0;
  }
  if (first_bad < rows) {
    RowWalker<1> walk(p.labels.shape, rank, strides);
    walk.begin(first_bad);
    const int64_t y = load_index(p.labels, walk.offset(0));
    throw_index("labels" + index_string(p.labels.shape, rank, first_bad) + " = " + std::to_string(y) +
                " is outside [0, " + std::to_string(C) + ") and is not ignore_index (" +
                std::to_string(p.ignore_index) + ")");
  }
  // Unweighted, the denominator is the count (adding 1.0 per label was a chain of FP adds).
  return {weighted ? total : static_cast<double>(counted), counted};
}

// The loss of rows with no classes (all ignored): 0 for each row, or a 0 total.
inline void zero_loss(const CrossEntropyParams& p, int rank, int64_t rows) {
  zero_row_losses(p.loss, p.reduction, rank, rows);
}

// A row of type S, either in place (contiguous, right dtype) or gathered into `buf`.
template <class S>
inline const S* row_source(const TensorView& t, int64_t offset, int64_t C, S* buf) {
  const int64_t cs = t.strides[t.ndim - 1];
  if (t.dtype == (sizeof(S) == 4 ? DType::f32 : DType::f64) && cs == 1) return t.ptr<const S>() + offset;
  for (int64_t c = 0; c < C; ++c) buf[c] = load_as<S>(t, offset + c * cs);
  return buf;
}

// Everything a row needs that does not change from row to row.
template <class S> struct RowConsts {
  int64_t C;
  const S* w;  // contiguous class weights (padded by a vector), or null
  S wsum, eps, eps_c, sc;  // sum of weights, smoothing, smoothing per class, reduction scale
  bool soft, want_grad;
};

// Rows of at most kShortVecs vectors (contiguous, native dtype, gradient written in place):
// the whole row stays in registers, so one load, one exp and one store per element, with no
// scratch row, no block bookkeeping and only a few horizontal reductions per row.
constexpr int kShortVecs = 8;

// Statistics of R rows at x[r] (targets t[r] for probability labels, labels y[r] otherwise);
// with a gradient, writes row r's to g[r]. log_s is filled only when the gradient needs it
// (the caller takes the others' logs W rows at a time). NV = ceil(C / W). The R rows go
// through each step together: a short row is one long chain (max, exp, sum), and R
// independent chains keep the vector units busy where one would wait on its own latency.
template <class S, int NV, int R, class Policy>
void short_rows(const RowConsts<S>& k, const Policy& pol, const S* const* x, const S* const* t, const int64_t* y,
                S* const* g, RowStats<S>* st) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const S ninf = -std::numeric_limits<S>::infinity();
  const int64_t tail = k.C - (NV - 1) * W;  // lanes used in the last vector, 1..W
  auto part = [&](const S* p, int i, S fill) { return i < NV - 1 || tail == W ? load(p + i * W) : load_partial(p + i * W, tail, fill); };
  V xv[R][NV], e[R][NV], mv[R], sv[R];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < NV; ++i) xv[r][i] = part(x[r], i, ninf);
  for (int r = 0; r < R; ++r) {
    mv[r] = xv[r][0];
    for (int i = 1; i < NV; ++i) mv[r] = vmax(mv[r], xv[r][i]);
  }
  for (int r = 0; r < R; ++r) st[r].m = hmax_tree<S>(mv[r]);
  for (int r = 0; r < R; ++r) {
    // Started at the first exp, not at 0 + it: the same bits (an exp is never -0), one add less.
    for (int i = 0; i < NV; ++i) {
      e[r][i] = vexp<true>(xv[r][i] - st[r].m);  // padding lanes: exp(-inf) = 0
      sv[r] = i == 0 ? e[r][i] : sv[r] + e[r][i];
    }
  }
  for (int r = 0; r < R; ++r) st[r].sum = hsum_tree<S>(sv[r]);
  for (int r = 0; r < R; ++r) {
    st[r].swt = st[r].sx = 0;
    if (k.soft || k.eps != S(0)) {
      V a = V{}, b = V{};
      for (int i = 0; i < NV; ++i) {
        const bool last = i == NV - 1 && tail < W;
        const V xz = last ? (first_lanes<S>(tail, S(1)) == S(1) ? xv[r][i] : V{}) : xv[r][i];  // padding as 0
        const V wv = k.w ? part(k.w, i, S(0)) : V{};
        if (k.soft) {
          V wt = part(t[r], i, S(0)) * (S(1) - k.eps) + (last ? first_lanes<S>(tail, k.eps_c) : splat(k.eps_c));
          if (k.w) wt *= wv;
          a += wt;
          b += wt == S(0) ? V{} : wt * xz;  // a zero target never meets a -inf logit
        } else {
          b += k.w ? xz * wv : xz;
        }
      }
      st[r].swt = hsum_tree<S>(a);
      st[r].sx = hsum_tree<S>(b);
    }
    st[r].y = k.soft ? -1 : y[r];
    st[r].xy = k.soft ? S(0) : x[r][y[r]];
    st[r].wy = !k.soft && k.w ? k.w[y[r]] : S(1);
    st[r].log_s = 0;
  }
  if (!k.want_grad) return;
  for (int r = 0; r < R; ++r) {
    if (pol.grad_needs_log()) st[r].log_s = vlog(splat(st[r].sum))[0];  // the log the loss will use
    const RowGrad<S> rg = pol.grad(st[r]);
    const V kA = splat(k.sc * rg.A / st[r].sum);
    const S kc = k.sc * k.eps_c;
    const S target_term = k.sc * rg.T;
    for (int i = 0; i < NV; ++i) {
      V coef = k.soft ? part(t[r], i, S(0)) * (k.sc * (S(1) - k.eps)) + kc : splat(kc);
      if (k.w) coef *= part(k.w, i, S(0));
      V gv = e[r][i] * kA - coef;
      if (!k.soft && y[r] / W == i) gv[y[r] % W] -= target_term;
      if (i < NV - 1 || tail == W) store(g[r] + i * W, gv);
      else store_partial(g[r] + i * W, gv, tail);
    }
  }
}

// Lane r of the result is the halving-tree reduction of v[r] (as tree_reduce: op(lo, hi) over
// halves, then quarters, ...), for W vectors at once: each level pairs two vectors and folds
// every group of 2H lanes to H, so log2 W levels of two shuffles and one op per pair serve W
// rows, where one row's own tree is a chain of log2 W dependent shuffle + op steps.
template <int H, int Second, class V, size_t... I>
inline V fold_groups(V a, V b, std::index_sequence<I...>) {
  return __builtin_shufflevector(a, b, static_cast<int>((I / H) * 2 * H + Second * H + I % H)...);
}
template <class S, int H, class Op> inline void fold_level(vec_t<S>* v, Op op) {
  constexpr int W = Vec<S>::W;
  for (int i = 0; i < H; ++i) {  // 2H vectors in, H out
    const vec_t<S> a = fold_groups<H, 0>(v[2 * i], v[2 * i + 1], std::make_index_sequence<W>());
    const vec_t<S> b = fold_groups<H, 1>(v[2 * i], v[2 * i + 1], std::make_index_sequence<W>());
    v[i] = op(a, b);
  }
  if constexpr (H > 1) fold_level<S, H / 2>(v, op);
}
template <class S, class Op> inline vec_t<S> transpose_reduce(vec_t<S>* v, Op op) {
  if constexpr (Vec<S>::W > 1) fold_level<S, Vec<S>::W / 2>(v, op);
  return v[0];
}

// Loss-only statistics of W short rows with plain integer labels (no smoothing, no
// probability labels): the rows' max and sum trees run as two transposed reductions, in the
// same order as short_rows' trees (same bits), instead of 2W dependent chains. NV = ceil(C / W).
template <class S, int NV, class Policy>
void wide_rows(const RowConsts<S>& k, const Policy& pol, const S* const* x, const int64_t* y, S* loss) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const S ninf = -std::numeric_limits<S>::infinity();
  const int64_t tail = k.C - (NV - 1) * W;
  auto part = [&](const S* p, int i) { return i < NV - 1 || tail == W ? load(p + i * W) : load_partial(p + i * W, tail, ninf); };
  V v[W];
  for (int r = 0; r < W; ++r) {
    V m = part(x[r], 0);
    for (int i = 1; i < NV; ++i) m = vmax(m, part(x[r], i));
    v[r] = m;
  }
  const V m = transpose_reduce<S>(v, [](V a, V b) { return a > b ? a : b; });
  for (int r = 0; r < W; ++r) {
    V sum = vexp<true>(part(x[r], 0) - m[r]);  // padding lanes: exp(-inf) = 0
    for (int i = 1; i < NV; ++i) sum += vexp<true>(part(x[r], i) - m[r]);
    v[r] = sum;
  }
  const V sum = transpose_reduce<S>(v, [](V a, V b) { return a + b; });
  const V log_s = vlog(sum);  // the vector log PendingLosses takes, on the same lanes
  // A local copy: the stores to loss[] could alias the policy's fields, which then were
  // reloaded and re-tested for every row.
  const Policy P = pol;
  S out[W];
  for (int r = 0; r < W; ++r) {
    RowStats<S> st;
    st.m = m[r];
    st.sum = sum[r];
    st.log_s = log_s[r];
    st.swt = st.sx = 0;
    st.y = y[r];
    st.xy = x[r][y[r]];
    st.wy = k.w ? k.w[y[r]] : S(1);
    out[r] = P.loss(st);
  }
  for (int r = 0; r < W; ++r) loss[r] = out[r];
}

template <class S, class Policy>
using WideRowsFn = void (*)(const RowConsts<S>&, const Policy&, const S* const*, const int64_t*, S*);
template <class S, class Policy> WideRowsFn<S, Policy> wide_rows_for(int64_t C) {
  constexpr int W = Vec<S>::W;
  switch ((C + W - 1) / W) {
    case 1: return wide_rows<S, 1, Policy>;
    case 2: return wide_rows<S, 2, Policy>;
    case 3: return wide_rows<S, 3, Policy>;
    case 4: return wide_rows<S, 4, Policy>;
    case 5: return wide_rows<S, 5, Policy>;
    case 6: return wide_rows<S, 6, Policy>;
    case 7: return wide_rows<S, 7, Policy>;
    case 8: return wide_rows<S, 8, Policy>;
    default: return nullptr;
  }
}

// Rows per short_rows call: as many as keep both rows' vectors (x and exp) in registers.
template <class S> constexpr int short_batch(int nv) { return nv <= 2 ? 4 : nv <= 4 ? 2 : 1; }
constexpr int kMaxShortBatch = 4;

template <class S, class Policy>
using ShortRowsFn = void (*)(const RowConsts<S>&, const Policy&, const S* const*, const S* const*, const int64_t*,
                             S* const*, RowStats<S>*);
// The function for a full batch of short_batch(NV) rows (batch = false: for one row), or null
// for rows longer than kShortVecs vectors.
template <class S, class Policy> ShortRowsFn<S, Policy> short_rows_for(int64_t C, bool batch) {
  constexpr int W = Vec<S>::W;
#define FASTLOSS_SHORT_CASE(nv) \
  case nv: return batch ? short_rows<S, nv, short_batch<S>(nv), Policy> : short_rows<S, nv, 1, Policy>;
  switch ((C + W - 1) / W) {
    FASTLOSS_SHORT_CASE(1)
    FASTLOSS_SHORT_CASE(2)
    FASTLOSS_SHORT_CASE(3)
    FASTLOSS_SHORT_CASE(4)
    FASTLOSS_SHORT_CASE(5)
    FASTLOSS_SHORT_CASE(6)
    FASTLOSS_SHORT_CASE(7)
    FASTLOSS_SHORT_CASE(8)
    default: return nullptr;
  }
#undef FASTLOSS_SHORT_CASE
}

// Short rows whose loss waits for its log: W rows' sums go through one vector log (a scalar
// log call per row cost as much as the rest of a 32-class row).
template <class S> struct PendingLosses {
  static constexpr int W = Vec<S>::W;
  RowStats<S> st[W];
  int64_t loss_offset[W];
  int n = 0;
  bool logs_known = false;  // the gradient already took each row's log (the same vector log)
  template <class Policy> void flush(const Policy& pol, bool reduce_none, const TensorView& loss, double* acc) {
    if (n == 0) return;
    if (!logs_known) {
      vec_t<S> s = splat(S(1));
      for (int i = 0; i < n; ++i) s[i] = st[i].sum;
      const vec_t<S> ls = vlog(s);
      for (int i = 0; i < n; ++i) st[i].log_s = ls[i];
    }
    // One add per row, in row order, as on every path; the running sum in a register (adding
    // through *acc chained every row on a store forward).
    double sum = *acc;
    for (int i = 0; i < n; ++i) {
      const S l = pol.loss(st[i]);
      if (reduce_none) store_as<S>(loss, loss_offset[i], l);
      else sum += static_cast<double>(l);
    }
    *acc = sum;
    n = 0;
  }
};

// W rows at once, one per SIMD lane, looping over the classes: for the (N, C, H, W) layout with
// axis=1 (consecutive rows are consecutive pixels: every load and store is a contiguous
// vector) and for few classes (C <= kLaneClasses, lanes gathered at the row stride), where a
// row is too short to fill vectors and per-row overhead would dominate. exp(x - max) is kept
// in a C x W scratch for pass 2.
// (Measured on Zen 4, float32: lanes win below 16 classes, short rows in registers from 16.)
constexpr int64_t kLaneClasses = 15;

template <class S, class Policy>
struct LaneGroup {
  typedef vec_t<S> V;
  static constexpr int W = Vec<S>::W;
  const CrossEntropyParams& p;
  const Policy& pol;
  const RowConsts<S>& k;
  int64_t xcs, tcs, gcs, x_in, t_in, g_in, l_in;  // class strides; strides along the rows' last dim
  bool weighted, reduce_none;

  // W values at base[0], base[stride], ...: a vector load when the lanes are contiguous.
  static V lanes(const S* base, int64_t stride) {
    if (stride == 1) return load(base);
    V v;
    for (int l = 0; l < W; ++l) v[l] = base[l * stride];
    return v;
  }
  static void put_lanes(S* base, int64_t stride, V v) {
    if (stride == 1) return store(base, v);
    for (int l = 0; l < W; ++l) base[l * stride] = v[l];
  }

  // Rows at offsets (xo, to, go, lo) and the next W-1 along the last row dim. Adds their
  // losses to *acc in row order (or stores them, with reduction "none").
  void run(int64_t xo, int64_t to, int64_t go, int64_t lo, S* e_buf, double* acc) const {
    const int64_t C = k.C;
    const S eps = k.eps, eps_c = k.eps_c, sc = k.sc;
    const S* w = k.w;
    const S* x = p.logits.ptr<const S>() + xo;
    const S ninf = -std::numeric_limits<S>::infinity();
    int64_t y[W];
    bool live[W];
    for (int l = 0; l < W; ++l) {
      y[l] = p.soft_labels ? 0 : load_index(p.labels, to + l * t_in);
      live[l] = p.soft_labels || y[l] != p.ignore_index;
    }
    V m = splat(ninf);
    for (int64_t c = 0; c < C; ++c) m = vmax(m, lanes(x + c * xcs, x_in));
    // Sums in the short-row path's order (class c into partial c % W, then a halving tree over
    // the W partials), so a row gives the same bits whichever path its layout takes.
    V ps[W], pswt[W], psx[W];
    for (int i = 0; i < W; ++i) ps[i] = pswt[i] = psx[i] = V{};
    const bool side = p.soft_labels || eps != S(0);
    const S* t = p.soft_labels ? p.labels.ptr<const S>() + to : nullptr;
    for (int64_t c = 0; c < C; ++c) {
      const int j = static_cast<int>(c % W);
      const V xv = lanes(x + c * xcs, x_in);
      const V e = vexp<true>(xv - m);
      ps[j] += e;
      if (k.want_grad) store(e_buf + c * W, e);
      if (p.soft_labels) {
        V wt = lanes(t + c * tcs, t_in) * (S(1) - eps) + eps_c;
        if (weighted) wt *= w[c];
        pswt[j] += wt;
        psx[j] += wt == S(0) ? V{} : wt * xv;
      } else if (eps != S(0)) {
        psx[j] += weighted ? xv * w[c] : xv;
      }
    }
    for (int h = W / 2; h >= 1; h /= 2)
      for (int i = 0; i < h; ++i) {
        ps[i] += ps[i + h];
        if (side) {
          pswt[i] += pswt[i + h];
          psx[i] += psx[i + h];
        }
      }
    const V s = ps[0], swt = pswt[0], sx = psx[0];
    const V log_s = vlog(s);  // one vector log for the W rows
    S kA[W], target[W];
    for (int l = 0; l < W; ++l) {
      S loss = 0;
      kA[l] = target[l] = 0;
      if (live[l]) {
        RowStats<S> st;
        st.m = m[l];
        st.sum = s[l];
        st.log_s = log_s[l];
        st.swt = swt[l];
        st.sx = sx[l];
        st.y = p.soft_labels ? -1 : y[l];
        st.wy = !p.soft_labels && weighted ? w[y[l]] : S(1);
        st.xy = p.soft_labels ? S(0) : x[y[l] * xcs + l * x_in];
        loss = pol.loss(st);
        if (k.want_grad) {
          const RowGrad<S> rg = pol.grad(st);
          if (!p.soft_labels) target[l] = sc * rg.T;
          kA[l] = sc * rg.A / s[l];
        }
      }
      if (reduce_none) store_as<S>(p.loss, lo + l * l_in, loss);
      else *acc += static_cast<double>(loss);
    }
    if (k.want_grad) {
      S* g = p.grad.ptr<S>() + go;
      S kc_lane[W];
      for (int l = 0; l < W; ++l) kc_lane[l] = live[l] ? sc * eps_c : S(0);
      const V kv = load(kA), kc = load(kc_lane);
      V keep;  // 1 for counted rows, 0 for ignored ones (whose exps may be NaN)
      for (int l = 0; l < W; ++l) keep[l] = live[l] ? S(1) : S(0);
      for (int64_t c = 0; c < C; ++c) {
        const V e = load(e_buf + c * W);
        V coef = kc;
        if (p.soft_labels) coef = lanes(t + c * tcs, t_in) * (sc * (S(1) - eps)) + kc;
        if (weighted) coef *= w[c];
        const V gv = e * kv - coef;
        put_lanes(g + c * gcs, g_in, keep == S(1) ? gv : V{});
      }
      for (int l = 0; l < W; ++l)
        if (live[l] && !p.soft_labels) g[y[l] * gcs + l * g_in] -= target[l];
    }
  }
};

// The engine. p: logits (rows..., C), labels, weight (cross-entropy's class weights: they
// scale coef and the "mean" denominator), smoothing, reduction, loss, grad. p.z_loss is the
// policy's business.
template <class S, class Policy>
void run(const CrossEntropyParams& p, const Policy& pol) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
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
  const Denominator den = label_denominator(p, rows, C);  // with C == 0 every label must be ignored
  if (C == 0) {
    zero_loss(p, rank, rows);
    return;
  }
  // mean over zero counted rows is 0 with a zero gradient, never NaN
  const double scale = p.reduction == Reduction::mean ? (den.value != 0 ? 1.0 / den.value : 0.0) : 1.0;

  const S eps = static_cast<S>(p.label_smoothing);
  const S eps_c = eps / static_cast<S>(C);
  const S sc = static_cast<S>(scale);

  // Weights as a contiguous S row (read every row when smoothing or soft labels need them).
  ScratchBuffer wbuf;
  const S* w = nullptr;
  S wsum = static_cast<S>(C);
  if (weighted) {
    S* wb = wbuf.get<S>(C + W);
    double acc = 0;
    for (int64_t c = 0; c < C; ++c) {
      wb[c] = load_as<S>(p.weight, c * p.weight.strides[0]);
      acc += wb[c];
    }
    w = wb;
    wsum = static_cast<S>(acc);
  }
  const RowConsts<S> k{C, w, wsum, eps, eps_c, sc, p.soft_labels, want_grad};

  const DType native = sizeof(S) == 4 ? DType::f32 : DType::f64;
  const int64_t gcs = want_grad ? p.grad.strides[rank] : 1;
  const bool grad_direct = want_grad && p.grad.dtype == native && gcs == 1;
  const bool stream = grad_direct && p.grad.numel() * int64_t(sizeof(S)) >= kStreamBytes;

  const int64_t* strides[4] = {p.logits.strides, p.labels.strides, want_grad ? p.grad.strides : nullptr,
                               reduce_none ? p.loss.strides : nullptr};
  // Lane-per-row groups: the (N, C, H, W) layout (rows contiguous along their last dim,
  // classes strided) or few classes (any layout). Only for rows the short path would take in
  // a contiguous layout: the lanes sum in its order, not in the long path's blocks, and a
  // layout must not change the bits.
  const bool lane_layout = p.logits.strides[rank] != 1 && rank >= 1 && p.logits.strides[rank - 1] == 1 &&
                           C <= kShortVecs * W;
  const bool spatial = rank >= 1 && W > 1 && (lane_layout || C <= kLaneClasses) && p.logits.dtype == native &&
                       p.logits.shape[rank - 1] >= W && (!want_grad || p.grad.dtype == native) &&
                       (!p.soft_labels || p.labels.dtype == native);
  const LaneGroup<S, Policy> group{p,
                                   pol,
                                   k,
                                   p.logits.strides[rank],
                                   p.soft_labels ? p.labels.strides[rank] : 0,
                                   want_grad ? p.grad.strides[rank] : 0,
                                   rank ? p.logits.strides[rank - 1] : 0,
                                   rank ? p.labels.strides[rank - 1] : 0,
                                   want_grad && rank ? p.grad.strides[rank - 1] : 0,
                                   reduce_none && rank ? p.loss.strides[rank - 1] : 0,
                                   weighted,
                                   reduce_none};
  // Short rows: the whole row in registers (strided or converted rows gathered first, so
  // every layout gives the same bits).
  const ShortRowsFn<S, Policy> short_batch_fn = short_rows_for<S, Policy>(C, true);
  const ShortRowsFn<S, Policy> short_one_fn = short_rows_for<S, Policy>(C, false);
  const int batch_rows = short_batch<S>(static_cast<int>((C + W - 1) / W));
  const bool plain_rows = rank == 1 && short_batch_fn && !spatial && !p.soft_labels && p.labels.dtype == DType::i64 &&
                          p.logits.dtype == native && p.logits.strides[1] == 1 && (!want_grad || grad_direct);
  const WideRowsFn<S, Policy> wide_fn =
      plain_rows && !want_grad && eps == S(0) && W > 1 ? wide_rows_for<S, Policy>(C) : nullptr;
  const int nt = threads_for(rows * C, kMinElementsPerThread);
  // Rows in fixed chunks claimed by the threads in turn, one partial sum per chunk (the same
  // bits for every thread count); whole lane groups per chunk where rows go W at a time.
  const Chunks chunks = fixed_chunks(rows, (kChunkElements + C - 1) / C, spatial ? W : 1);
  double partial[kMaxFixedChunks] = {0};

  parallel_chunks(chunks, nt, [&](int64_t tid, int64_t r0, int64_t r1) {
    // Kept by each thread between chunks and calls (a chunk allocates nothing).
    static thread_local ScratchBuffer xbuf, tbuf, ebuf, bmbuf, gbuf;
    PendingLosses<S> pending;
    pending.logs_known = want_grad && pol.grad_needs_log();
    double acc = 0;
    // Short rows wait here until a batch is full (rows in order; gathered rows and gradients
    // not written in place get their own slot of the scratch rows).
    struct {
      const S* x[kMaxShortBatch];
      const S* t[kMaxShortBatch];
      int64_t y[kMaxShortBatch];
      S* g[kMaxShortBatch];
      int64_t grad_offset[kMaxShortBatch], loss_offset[kMaxShortBatch];
      int n = 0;
    } batch;
    const int64_t slot = C + W;
    S* const x_slots = short_batch_fn ? xbuf.get<S>(slot * kMaxShortBatch) : nullptr;
    S* const t_slots = short_batch_fn && p.soft_labels ? tbuf.get<S>(slot * kMaxShortBatch) : nullptr;
    S* const g_slots = short_batch_fn && want_grad && !grad_direct ? gbuf.get<S>(slot * kMaxShortBatch) : nullptr;
    auto run_batch = [&]() {
      if (batch.n == 0) return;
      RowStats<S> st[kMaxShortBatch];
      if (batch.n == batch_rows) {
        short_batch_fn(k, pol, batch.x, batch.t, batch.y, batch.g, st);
      } else {
        for (int i = 0; i < batch.n; ++i)
          short_one_fn(k, pol, batch.x + i, batch.t + i, batch.y + i, batch.g + i, st + i);
      }
      for (int i = 0; i < batch.n; ++i) {
        if (want_grad && !grad_direct)
          for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad, batch.grad_offset[i] + c * gcs, batch.g[i][c]);
        pending.st[pending.n] = st[i];
        pending.loss_offset[pending.n] = batch.loss_offset[i];
        if (++pending.n == W) pending.flush(pol, reduce_none, p.loss, &acc);
      }
      batch.n = 0;
    };
    // The common case, (N, C) contiguous rows of short length with int64 labels and the
    // gradient (if any) in place: rows addressed directly, no walker, gathers or dtype switches.
    if (plain_rows) {
      const S* xb = p.logits.ptr<const S>();
      const int64_t* yb = p.labels.ptr<const int64_t>();
      S* gb = want_grad ? p.grad.ptr<S>() : nullptr;
      const int64_t xs = p.logits.strides[0], ys = p.labels.strides[0], gs = want_grad ? p.grad.strides[0] : 0;
      const int64_t ls = reduce_none ? p.loss.strides[0] : 0;
      // Loss only with plain labels: W rows at a time through wide_rows.
      struct {
        const S* x[W];
        int64_t y[W], loss_offset[W];
        int n = 0;
      } wide;
      auto add_short = [&](const S* xr, int64_t y, S* gr, int64_t loss_offset) {
        const int i = batch.n++;
        batch.x[i] = xr;
        batch.t[i] = nullptr;
        batch.y[i] = y;
        batch.g[i] = gr;
        batch.loss_offset[i] = loss_offset;
        if (batch.n == batch_rows) run_batch();
      };
      // Prefetching pays where this thread's rows come from L3 or memory, not from its L2.
      const bool prefetch = (r1 - r0) * xs * int64_t(sizeof(S)) > (int64_t(1) << 20);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t y = yb[r * ys];
        if (y == p.ignore_index) {
          if (reduce_none) store_as<S>(p.loss, r * ls, S(0));
          if (want_grad) std::memset(gb + r * gs, 0, C * sizeof(S));
          continue;
        }
        if (!wide_fn) {
          add_short(xb + r * xs, y, want_grad ? gb + r * gs : nullptr, r * ls);
          continue;
        }
        const int i = wide.n++;
        wide.x[i] = xb + r * xs;
        // The row two groups ahead, into the cache (rows from L3 stalled wide_rows' first loads;
        // the rows' compute hides the prefetch).
        if (prefetch && r + 2 * W < r1) {
          const char* ahead = reinterpret_cast<const char*>(xb + (r + 2 * W) * xs);
          for (int64_t b = 0; b < C * int64_t(sizeof(S)) + 63; b += 64) __builtin_prefetch(ahead + b);
        }
        wide.y[i] = y;
        wide.loss_offset[i] = r * ls;
        if (wide.n == W) {  // (nothing is pending: only the last rows take the short path)
          S loss[W];
          wide_fn(k, pol, wide.x, wide.y, loss);
          if (reduce_none) {
            for (int j = 0; j < W; ++j) store_as<S>(p.loss, wide.loss_offset[j], loss[j]);
          } else {
            double sum = acc;  // one add per row, in row order, as on every path
            for (int j = 0; j < W; ++j) sum += static_cast<double>(loss[j]);
            acc = sum;
          }
          wide.n = 0;
        }
      }
      for (int i = 0; i < wide.n; ++i) add_short(wide.x[i], wide.y[i], nullptr, wide.loss_offset[i]);
      r1 = r0;  // the general loop below has nothing left
    }
    RowWalker<4> walk(p.logits.shape, rank, strides);
    walk.begin(r0);
    for (int64_t r = r0; r < r1; ++r, walk.next()) {
      const int64_t lo = walk.offset(0), to = walk.offset(1), go = walk.offset(2);
      if (spatial && r + W <= r1 && walk.inner_remaining() >= W) {  // a whole group of rows
        run_batch();  // losses are summed in row order
        pending.flush(pol, reduce_none, p.loss, &acc);
        group.run(lo, to, go, walk.offset(3), ebuf.get<S>(C * W), &acc);
        for (int i = 1; i < W; ++i) walk.next();
        r += W - 1;
        continue;
      }
      int64_t y = -1;
      if (!p.soft_labels) {
        y = load_index(p.labels, to);
        if (y == p.ignore_index) {  // ignored row: loss 0, gradient 0
          if (reduce_none) store_as<S>(p.loss, walk.offset(3), S(0));
          if (want_grad)
            for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad, go + c * gcs, S(0));
          continue;
        }
      }
      if (short_batch_fn) {
        const int i = batch.n++;
        batch.x[i] = row_source<S>(p.logits, lo, C, x_slots + i * slot);
        batch.t[i] = p.soft_labels ? row_source<S>(p.labels, to, C, t_slots + i * slot) : nullptr;
        batch.y[i] = y;
        batch.g[i] = want_grad ? (grad_direct ? p.grad.ptr<S>() + go : g_slots + i * slot) : nullptr;
        batch.grad_offset[i] = go;
        batch.loss_offset[i] = walk.offset(3);
        if (batch.n == batch_rows) run_batch();
        continue;
      }
      const S* x = row_source<S>(p.logits, lo, C, xbuf.get<S>(C + W));
      S* dst = grad_direct ? p.grad.ptr<S>() + go : nullptr;
      const RowBlocks<S> rb{C};

      // Side sums for the loss, gathered during pass 1.
      V sx_v = V{}, swt_v = V{};  // sum w_c x_c (smoothing) / sum w_c t'_c x_c, sum w_c t'_c (soft)
      const S* t = p.soft_labels ? row_source<S>(p.labels, to, C, tbuf.get<S>(C + W)) : nullptr;
      auto side = [&](int64_t j, V xv, int64_t n) {
        if (p.soft_labels) {
          V tv = n == W ? load(t + j) : load_partial(t + j, n, S(0));
          V wt = tv * (S(1) - eps) + (n == W ? splat(eps_c) : first_lanes<S>(n, eps_c));
          if (weighted) wt *= n == W ? load(w + j) : load_partial(w + j, n, S(0));
          swt_v += wt;
          sx_v += wt == S(0) ? V{} : wt * xv;  // a zero target never meets a -inf logit
        } else if (eps != S(0)) {
          sx_v += weighted ? xv * (n == W ? load(w + j) : load_partial(w + j, n, S(0))) : xv;
        }
      };

      SoftmaxStats<S> ss;
      S* exps = nullptr;
      S* bmax = nullptr;
      // Plain integer labels need no side sums: NoSide keeps their pass 1 free of branches.
      const bool plain = !p.soft_labels && eps == S(0);
      if (want_grad) {
        exps = ebuf.get<S>(C + W);
        bmax = bmbuf.get<S>(rb.count() + 1);
        ss = plain ? softmax_stats<S, true>(x, rb, exps, bmax) : softmax_stats<S, true>(x, rb, exps, bmax, side);
      } else {
        ss = plain ? softmax_stats<S, false>(x, rb, nullptr, nullptr)
                   : softmax_stats<S, false>(x, rb, nullptr, nullptr, side);
      }
      RowStats<S> st;
      st.m = ss.max;
      st.sum = ss.sum;
      st.log_s = std::log(ss.sum);
      st.swt = p.soft_labels ? hsum<S>(swt_v) : S(0);
      st.sx = p.soft_labels || eps != S(0) ? hsum<S>(sx_v) : S(0);
      st.y = y;
      st.xy = p.soft_labels ? S(0) : x[y];
      st.wy = !p.soft_labels && weighted ? w[y] : S(1);
      const S loss = pol.loss(st);
      if (reduce_none) store_as<S>(p.loss, walk.offset(3), loss);
      else acc += static_cast<double>(loss);

      if (want_grad) {
        const RowGrad<S> rg = pol.grad(st);
        S* g = dst ? dst : gbuf.get<S>(C + W);
        const V kA = splat(sc * rg.A);
        const S kc = sc * eps_c;
        const bool do_stream = stream && dst;
        const int64_t first = dst ? misaligned_prefix(dst, C) : 0;
        // The target's own term goes into its lane before the store: a scalar store after a
        // streamed vector to the same line would stall on the write-combining.
        const S target_term = p.soft_labels ? S(0) : sc * rg.T;
        auto put = [&](int64_t j, V v, int64_t n) {
          if (static_cast<uint64_t>(y - j) < static_cast<uint64_t>(n)) v[y - j] -= target_term;
          put_vec<S>(g, j, v, n, do_stream);
        };
        if (p.soft_labels) {
          const S one_m = S(1) - eps;
          for_each_prob<S>(exps, bmax, rb, ss, first, [&](int64_t j, V pv, int64_t n) {
            V tv = n == W ? load(t + j) : load_partial(t + j, n, S(0));
            V wt = tv * (sc * one_m) + kc;
            if (weighted) wt *= n == W ? load(w + j) : load_partial(w + j, n, S(0));
            put(j, pv * kA - wt, n);
          });
        } else if (weighted && eps != S(0)) {
          for_each_prob<S>(exps, bmax, rb, ss, first, [&](int64_t j, V pv, int64_t n) {
            const V wv = n == W ? load(w + j) : load_partial(w + j, n, S(0));
            put(j, pv * kA - wv * kc, n);
          });
        } else {
          const V kcv = splat(kc);
          for_each_prob<S>(exps, bmax, rb, ss, first, [&](int64_t j, V pv, int64_t n) { put(j, pv * kA - kcv, n); });
        }
        if (!dst)
          for (int64_t c = 0; c < C; ++c) store_as<S>(p.grad, go + c * gcs, g[c]);
      }
    }
    run_batch();
    pending.flush(pol, reduce_none, p.loss, &acc);
    partial[tid] = acc;
    if (stream) stream_fence();
  });
  if (!reduce_none) {
    store_reduced_loss(p.loss, partial, static_cast<int>(chunks.count), scale);
  }
}

}  // namespace row_engine
}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
