// Row-wise losses for CuPy arrays: one row kernel skeleton, each loss a small device functor.
// The math is the CPU kernels' (csrc/cpu/rowwise.cpp); see fastloss/rowwise.h for formulas.
//
// row_kernel walks rows with a warp (C <= 1024) or a whole block per row, over any layout
// (RowGeom) and class stride. Per row:
//   pass 1: the functor folds each element into an online (max, sum of exp) pair and kN sums;
//           the group reduces them in a fixed order;
//   pass 2: (functors with kSecondPass: the divergences, which need the row's normalisers first) more sums;
//   loss:   the functor's loss from the row's totals;
//   grad:   one more read of the row writes the gradient (same kernel).
// Launches on the caller's stream, in order: labels_kernel (label losses: first bad row ->
// device flag, integer count of counted rows -> "mean" denominator; integer atomics, so exact),
// row_kernel, and finish_kernel, which sums the per-row losses in a fixed order (deterministic,
// no floating-point atomics). A bad label is raised as IndexError after one flag copy.
#include <cmath>
#include <type_traits>

#include "cuda_common.cuh"
#include "fastloss/rowwise.h"

namespace fastloss {
namespace cuda {
namespace {

struct Workspace {
  unsigned long long first_bad;  // first row with a bad label, ~0 if none
  unsigned counted;              // rows whose label is not ignore_index (rows < 2^32, checked)
  unsigned unused;
  double pad[6];
  // followed by double row_loss[rows]
};
static_assert(sizeof(Workspace) == 64, "rowwise_workspace_bytes sizes the workspace as 64 + 8 * rows");

// dtype-erased loads of a small per-class vector (alpha, weight) of any float dtype.
struct ClassVec {
  const void* data = nullptr;
  int dtype = 0;  // 0 f16, 1 f32, 2 f64
  int64_t stride = 0;
};
__device__ __forceinline__ double load_class(const ClassVec& v, int64_t c) {
  if (v.dtype == 2) return static_cast<const double*>(v.data)[c * v.stride];
  if (v.dtype == 1) return static_cast<const float*>(v.data)[c * v.stride];
  return __half2float(static_cast<const __half*>(v.data)[c * v.stride]);
}
ClassVec class_vec(const TensorView& t) {
  ClassVec v;
  if (is_none(t)) return v;
  v.data = t.data;
  v.dtype = t.dtype == DType::f64 ? 2 : t.dtype == DType::f32 ? 1 : 0;
  v.stride = t.strides[0];
  return v;
}

struct DevRows {
  RowGeom x_rows, t_rows, label_rows, grad_rows, loss_rows;
  int64_t C, rows;
  int64_t x_cs, t_cs, grad_cs;
  const void* x;
  const void* t;       // second float array (q of the divergences), or null
  const void* labels;  // integer labels, or null
  void* grad;
  void* grad2 = nullptr;  // the gradient w.r.t. t (divergences), or null
  RowGeom grad2_rows;
  int64_t grad2_cs = 0;
  void* loss;
  bool has_ignore;
  int64_t ignore_index;
  int reduction;  // 0 none, 1 mean (denominator: counted rows), 2 sum
  Workspace* ws;
};

template <class L> __device__ __forceinline__ int64_t load_label(const L* p, int64_t i) { return static_cast<int64_t>(p[i]); }

// What a functor sees of its row.
template <class A> struct Row {
  int64_t y;  // label, -1 without labels
  A xy;       // x at the label
  A scale;    // gradient scale of the reduction
};

// --- the loss functors ---------------------------------------------------------------------
// Interface: kN sums; kMax (pass 1 keeps the online max/sum-of-exp); kSecondPass (begin2 with
// pass 1's totals, add2 into kN fresh sums, end2 with their totals); kRival (the first j != y
// with x_j = max over j != y); add(ms, v, c, x, t, row); loss(ms, v, row) (may keep per-row
// state); grad(c, x, row, rival), or with kGradT grad_xt (both inputs, both gradients).

// Softmax rows with a label: l = log p_y = x_y - m - log s; gradient A (p - onehot(y)).
template <class A> struct SoftmaxLabelBase {
  static constexpr int kN = 1;
  static constexpr bool kMax = true, kSecondPass = false, kRival = false;
  A m, log_s, Ascaled;
  __device__ void add(MaxSum<A>& ms, A (&)[kN], int64_t, A x, A, const Row<A>&) { ms.add(x); }
  __device__ void add2(A (&)[kN], int64_t, A, A, const Row<A>&) {}
  __device__ A log_py(const MaxSum<A>& ms, const Row<A>& row) {
    m = ms.m;
    log_s = flog_ge1(ms.s);
    return (row.xy - m) - log_s;
  }
  __device__ A grad(int64_t c, A x, const Row<A>& row, int64_t) const {
    const A p = fexp(x - m - log_s);
    return Ascaled * (c == row.y ? p - A(1) : p);
  }
};

// loss = -a (1-p)^g l;  -dloss/dl = a f (1 - g p l/q), q = -expm1(l), f = q^g.
template <class A> struct FocalFn : SoftmaxLabelBase<A> {
  A gamma, alpha;
  ClassVec alpha_c;
  __device__ A loss(const MaxSum<A>& ms, const A (&)[1], const Row<A>& row) {
    const A l = this->log_py(ms, row);
    const A a = alpha_c.data ? static_cast<A>(load_class(alpha_c, row.y)) : alpha;
    A loss, Ag = a;
    if (gamma == A(0)) {
      loss = a * -l;
    } else {
      const A q = -expm1(l);
      loss = a * pow(q, gamma) * -l;
      const A l_over_q = q > A(0) ? l / q : A(-1);
      Ag *= pow(q, gamma) * (A(1) - gamma * exp(l) * l_over_q);
    }
    this->Ascaled = Ag * row.scale;
    return loss;
  }
};

// loss = -f l: f = [p < margin] (constant), or sigmoid(K (margin - p)) (differentiated).
template <class A> struct TruncatedFn : SoftmaxLabelBase<A> {
  A margin, K;
  bool soft;
  __device__ static A sigmoid(A z) {
    if (z >= A(0)) return A(1) / (A(1) + exp(-z));
    const A e = exp(z);
    return e / (A(1) + e);
  }
  __device__ A loss(const MaxSum<A>& ms, const A (&)[1], const Row<A>& row) {
    const A l = this->log_py(ms, row), p = exp(l);
    const A f = soft ? sigmoid(K * (margin - p)) : (p < margin ? A(1) : A(0));
    const A Ag = soft ? f - f * (A(1) - f) * K * p * l : f;
    this->Ascaled = Ag * row.scale;
    return f * -l;
  }
};

// scipy's elementwise terms (NaN stays NaN).
template <class A> __device__ __forceinline__ A entr(A x) {
  if (x < A(0)) return -INFINITY;
  if (x == A(0)) return A(0);
  return -x * log(x);
}
template <class A> __device__ __forceinline__ A rel_entr(A x, A y) {
  if (x < A(0) || y < A(0)) return INFINITY;
  if (x == A(0) && y >= A(0)) return A(0);
  return x * log(x / y);  // y = 0 < x: inf
}

// Divergences of probability rows (x = p, t = q), as the CPU kernel computes them:
//   pass 1: v = (Sp, Sq); pass 2 on the normalised rows pk = p / Sp, qk = q / Sq:
//   entropy a = sum entr(pk) (value a / log base); kl a = sum rel_entr(pk, qk);
//   js a = sum rel_entr(pk, m), b = sum rel_entr(qk, m), m = (pk + qk) / 2 (value (a + b) / 2 >= 0).
// The gradients of the sum of the values w.r.t. p (grad) and q (grad2), zero entries at their limits.
template <class A, int kKind> struct DivergenceFn {
  static constexpr int kN = 2;
  static constexpr bool kMax = false, kSecondPass = true, kRival = false, kGradT = true;
  A log_base = 1;
  A inv_p, inv_q, a, b;
  __device__ void add(MaxSum<A>&, A (&v)[kN], int64_t, A x, A t, const Row<A>&) {
    v[0] += x;
    if (kKind != 0) v[1] += t;
  }
  __device__ void begin2(const A (&v)[kN]) {
    inv_p = A(1) / v[0];
    inv_q = kKind != 0 ? A(1) / v[1] : A(1);
  }
  __device__ void add2(A (&v)[kN], int64_t, A x, A t, const Row<A>&) {
    const A pk = x * inv_p;
    if (kKind == 0) {
      v[0] += entr(pk);
    } else if (kKind == 1) {
      v[0] += rel_entr(pk, t * inv_q);
    } else {
      const A qk = t * inv_q, m = (pk + qk) * A(0.5);
      v[0] += rel_entr(pk, m);
      v[1] += rel_entr(qk, m);
    }
  }
  __device__ void end2(const A (&v)[kN]) {
    a = v[0];
    b = v[1];
  }
  __device__ A loss(const MaxSum<A>&, const A (&)[kN], const Row<A>&) const {
    if (kKind == 0) return a / log_base;
    if (kKind == 1) return a;
    const A js = (a + b) * A(0.5);
    return js < A(0) ? A(0) : js;  // rounding of two equal rows (NaN stays)
  }
  __device__ void grad_xt(int64_t, A x, A t, const Row<A>&, A& gx, A& gt) const {
    const A pk = x * inv_p;
    if (kKind == 0) {
      gx = (-log(pk) - a) * inv_p / log_base;
      gt = A(0);
    } else if (kKind == 1) {
      const A qk = t * inv_q;
      gx = ((pk == A(0) ? -INFINITY : log(pk / qk)) - a) * inv_p;
      gt = (A(1) - (pk == A(0) ? A(0) : pk / qk)) * inv_q;
    } else {
      const A qk = t * inv_q, m = (pk + qk) * A(0.5);
      const A ln2 = A(0.6931471805599453);
      const A lp = pk == A(0) ? (qk == A(0) ? ln2 : -INFINITY) : log(pk / m);
      const A lq = qk == A(0) ? (pk == A(0) ? ln2 : -INFINITY) : log(qk / m);
      gx = (lp - a) * inv_p * A(0.5);
      gt = (lq - b) * inv_q * A(0.5);
    }
  }
  __device__ A grad(int64_t, A, const Row<A>&, int64_t) const { return A(0); }
};

// Functors whose gradient reads the second input and may write a second gradient (the
// divergences) declare kGradT and give grad_xt.
template <class F, class = void> struct GradT { static constexpr bool value = false; };
template <class F> struct GradT<F, std::void_t<decltype(F::kGradT)>> { static constexpr bool value = F::kGradT; };

// Weston-Watkins: loss = w_y / C sum_{j != y} h_j^p, h_j = max(0, margin - x_y + x_j);
// gradient gk h_j (p = 2) or gk [z_j > 0] at j != y, minus their sum at y.
template <class A> struct WestonWatkinsFn {
  static constexpr int kN = 2;
  static constexpr bool kMax = false, kSecondPass = false, kRival = false;
  A margin, inv_c;
  bool sq;
  ClassVec weight;
  A wy, gk, gy;
  __device__ void add(MaxSum<A>&, A (&v)[kN], int64_t c, A x, A, const Row<A>& row) {
    if (c == row.y) return;
    const A z = margin - row.xy + x;
    const A h = z > A(0) ? z : A(0);  // a NaN margin counts 0, as in torch
    v[0] += sq ? h * h : h;
    v[1] += sq ? h : (z > A(0) ? A(1) : A(0));
  }
  __device__ void add2(A (&)[kN], int64_t, A, A, const Row<A>&) {}
  __device__ A loss(const MaxSum<A>&, const A (&v)[kN], const Row<A>& row) {
    wy = weight.data ? static_cast<A>(load_class(weight, row.y)) : A(1);
    gk = row.scale * wy * inv_c * (sq ? A(2) : A(1));
    gy = -gk * v[1];
    return wy * inv_c * v[0];
  }
  __device__ A grad(int64_t c, A x, const Row<A>& row, int64_t) const {
    if (c == row.y) return gy;
    const A z = margin - row.xy + x;
    return sq ? gk * (z > A(0) ? z : A(0)) : (z > A(0) ? gk : A(0));
  }
};

// Crammer-Singer: loss = w_y max(0, margin - x_y + max_{j != y} x_j)^p; the first best rival
// takes the gradient (a subgradient at ties).
template <class A> struct CrammerSingerFn {
  static constexpr int kN = 1;
  static constexpr bool kMax = true, kSecondPass = false, kRival = true;
  A margin;
  bool sq;
  ClassVec weight;
  A m, gv;
  __device__ void add(MaxSum<A>& ms, A (&)[kN], int64_t c, A x, A, const Row<A>& row) {
    if (c != row.y && x > ms.m) ms.m = x;  // only the max is used (NaN rivals are skipped, as on the CPU)
  }
  __device__ void add2(A (&)[kN], int64_t, A, A, const Row<A>&) {}
  __device__ A loss(const MaxSum<A>& ms, const A (&)[kN], const Row<A>& row) {
    m = ms.m;
    const A wy = weight.data ? static_cast<A>(load_class(weight, row.y)) : A(1);
    const A z = margin - row.xy + m, h = z > A(0) ? z : A(0);
    gv = h > A(0) ? row.scale * wy * (sq ? A(2) * h : A(1)) : A(0);
    return wy * (sq ? h * h : h);
  }
  __device__ A rival_max() const { return m; }
  __device__ A grad(int64_t c, A, const Row<A>& row, int64_t rival) const {
    if (c == row.y) return rival < 0 ? A(0) : -gv;
    return c == rival ? gv : A(0);
  }
};

// --- the skeleton --------------------------------------------------------------------------

// Smallest value over the row's group (warp or block); every thread gets it.
template <bool kWarpRows> __device__ int64_t group_min(int64_t v, int64_t* smem) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const int64_t w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w < v ? w : v;
  }
  if (kWarpRows || blockDim.x <= 32) return v;
  __syncthreads();
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) / 32;
  int64_t r = smem[0];
  for (int w = 1; w < warps; ++w) r = smem[w] < r ? smem[w] : r;
  return r;
}

template <class T, class L, class F, bool kGrad, bool kWarpRows>
__global__ void __launch_bounds__(kWarpRows ? 256 : 512) row_kernel(DevRows p, F fn) {
  typedef typename AccOf<T>::type A;
  constexpr int kN = F::kN;
  __shared__ A smem[32 * (kN + 2)];
  __shared__ int64_t ismem[32];
  const int lane = kWarpRows ? threadIdx.x % 32 : threadIdx.x;
  const int group = kWarpRows ? 32 : blockDim.x;
  const int64_t groups_per_block = kWarpRows ? blockDim.x / 32 : 1;
  const int64_t first = blockIdx.x * groups_per_block + (kWarpRows ? threadIdx.x / 32 : 0);
  const int64_t stride = int64_t(gridDim.x) * groups_per_block;
  const T* x = static_cast<const T*>(p.x);
  const T* t = static_cast<const T*>(p.t);
  double scale = 1.0;
  if (p.reduction == 1) {
    const uint64_t n = p.labels ? p.ws->counted : static_cast<uint64_t>(p.rows);
    scale = n ? 1.0 / static_cast<double>(n) : 0.0;
  }

  for (int64_t r = first; r < p.rows; r += stride) {  // uniform per group
    const int64_t xo = row_offset(p.x_rows, r);
    const int64_t to = t ? row_offset(p.t_rows, r) : 0;
    Row<A> row{-1, A(0), static_cast<A>(scale)};
    bool skip = false;
    if (p.labels) {
      // the label and x_y are read before anything can write the gradient (grad may alias x)
      row.y = load_label(static_cast<const L*>(p.labels), row_offset(p.label_rows, r));
      skip = (p.has_ignore && row.y == p.ignore_index) || row.y < 0 || row.y >= p.C;  // bad labels raise on the host
      if (!skip) row.xy = load_f(x, xo + row.y * p.x_cs);
    }
    F f = fn;
    A loss = 0;
    if (!skip) {
      MaxSum<A> ms;
      ms.init();
      A v[kN];
#pragma unroll
      for (int k = 0; k < kN; ++k) v[k] = 0;
      for (int64_t c = lane; c < p.C; c += group)
        f.add(ms, v, c, A(load_f(x, xo + c * p.x_cs)), t ? A(load_f(t, to + c * p.t_cs)) : A(0), row);
      if (kWarpRows) {
        if (F::kMax) warp_maxsum(ms);
#pragma unroll
        for (int k = 0; k < kN; ++k) v[k] = warp_sum(v[k]);
      } else {
        block_reduce<A, kN>(ms, v, smem);
      }
      if constexpr (F::kSecondPass) {
        f.begin2(v);
        A v2[kN];
#pragma unroll
        for (int k = 0; k < kN; ++k) v2[k] = 0;
        for (int64_t c = lane; c < p.C; c += group)
          f.add2(v2, c, A(load_f(x, xo + c * p.x_cs)), t ? A(load_f(t, to + c * p.t_cs)) : A(0), row);
        MaxSum<A> unused;
        unused.init();
        if (kWarpRows) {
#pragma unroll
          for (int k = 0; k < kN; ++k) v2[k] = warp_sum(v2[k]);
        } else {
          __syncthreads();  // block_reduce's shared memory is free again
          block_reduce<A, kN>(unused, v2, smem);
        }
        f.end2(v2);
      }
      loss = f.loss(ms, v, row);
      if (kGrad) {
        int64_t rival = -1;
        if constexpr (F::kRival) {
          const A mx = f.rival_max();
          int64_t mine = p.C;
          for (int64_t c = lane; c < p.C; c += group)
            if (c != row.y && A(load_f(x, xo + c * p.x_cs)) == mx) { mine = c; break; }
          rival = group_min<kWarpRows>(mine, ismem);
          if (rival >= p.C) rival = -1;
        }
        if (!kWarpRows) __syncthreads();  // every thread has read x (and x_y) before grad (maybe x) is written
        T* g = static_cast<T*>(p.grad);
        const int64_t go = row_offset(p.grad_rows, r);
        if constexpr (GradT<F>::value) {
          T* g2 = static_cast<T*>(p.grad2);
          const int64_t go2 = g2 ? row_offset(p.grad2_rows, r) : 0;
          for (int64_t c = lane; c < p.C; c += group) {
            A gx, gt;
            f.grad_xt(c, A(load_f(x, xo + c * p.x_cs)), t ? A(load_f(t, to + c * p.t_cs)) : A(0), row, gx, gt);
            store_f(g, go + c * p.grad_cs, gx);
            if (g2) store_f(g2, go2 + c * p.grad2_cs, gt);
          }
        } else {
          for (int64_t c = lane; c < p.C; c += group)
            store_f(g, go + c * p.grad_cs, f.grad(c, A(load_f(x, xo + c * p.x_cs)), row, rival));
        }
      }
    } else if (kGrad) {
      T* g = static_cast<T*>(p.grad);
      const int64_t go = row_offset(p.grad_rows, r);
      for (int64_t c = lane; c < p.C; c += group) store_f(g, go + c * p.grad_cs, A(0));
    }
    if (lane == 0) {
      if (p.reduction == 0) store_f(static_cast<T*>(p.loss), row_offset(p.loss_rows, r), loss);
      else reinterpret_cast<double*>(p.ws + 1)[r] = static_cast<double>(loss);
    }
    if (!kWarpRows) __syncthreads();  // the next row reuses the shared memory
  }
}

// Checks the labels (first bad row) and counts the rows that are not ignored (integers: the
// count is exact in any order).
constexpr int kLabelThreads = 256;
template <class L> __global__ void __launch_bounds__(kLabelThreads) labels_kernel(DevRows p) {
  unsigned n = 0;
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < p.rows; r += int64_t(gridDim.x) * blockDim.x) {
    const int64_t y = load_label(static_cast<const L*>(p.labels), row_offset(p.label_rows, r));
    if (p.has_ignore && y == p.ignore_index) continue;
    if (y < 0 || y >= p.C) {
      atomicMin(&p.ws->first_bad, static_cast<unsigned long long>(r));
      continue;
    }
    ++n;
  }
  if (n) atomicAdd(&p.ws->counted, n);
}

// One block sums the row losses in a fixed order and writes the 0-d result.
constexpr int kFinishThreads = 1024;
template <class T> __global__ void __launch_bounds__(kFinishThreads) finish_kernel(DevRows p) {
  typedef typename AccOf<T>::type A;
  const double* row_loss = reinterpret_cast<const double*>(p.ws + 1);
  double acc = 0;
  for (int64_t r = threadIdx.x; r < p.rows; r += blockDim.x) acc += row_loss[r];
  acc = block_sum(acc);
  if (threadIdx.x == 0) {
    double scale = 1.0;
    if (p.reduction == 1) {
      const uint64_t n = p.labels ? p.ws->counted : static_cast<uint64_t>(p.rows);
      scale = n ? 1.0 / static_cast<double>(n) : 0.0;
    }
    store_f(static_cast<T*>(p.loss), 0, static_cast<A>(acc * scale));
  }
}

// x (rows..., C) with its class axis last; t a second array like x, or none.
DevRows make_rows(const TensorView& x, const TensorView& t, const TensorView& labels, const TensorView& grad,
                  const TensorView& loss, Reduction red, void* workspace) {
  DevRows d;
  const int rank = x.ndim - 1;
  d.C = x.shape[rank];
  d.rows = 1;
  for (int i = 0; i < rank; ++i) d.rows *= x.shape[i];
  if (d.rows > int64_t(0xFFFFFFFFu)) throw_value("more than 2^32 - 1 rows are not supported for CuPy arrays");
  d.x_rows = row_geom(x, rank);
  d.t_rows = row_geom(is_none(t) ? x : t, rank);
  d.label_rows = row_geom(is_none(labels) ? x : labels, rank);
  d.grad_rows = row_geom(is_none(grad) ? x : grad, rank);
  d.loss_rows = row_geom(red == Reduction::none ? loss : x, rank);
  d.x_cs = x.strides[rank];
  d.t_cs = is_none(t) ? 0 : t.strides[rank];
  d.grad_cs = is_none(grad) ? 0 : grad.strides[rank];
  d.x = x.data;
  d.t = is_none(t) ? nullptr : t.data;
  d.labels = is_none(labels) ? nullptr : labels.data;
  d.grad = is_none(grad) ? nullptr : grad.data;
  d.loss = loss.data;
  d.has_ignore = false;
  d.ignore_index = 0;
  d.reduction = red == Reduction::none ? 0 : red == Reduction::mean ? 1 : 2;
  d.ws = static_cast<Workspace*>(workspace);
  return d;
}

template <class T, class L, class F, bool kGrad> void launch_rows(const DevRows& d, const F& f, cudaStream_t s) {
  if (d.C <= 1024) {
    const int warps = 8;
    row_kernel<T, L, F, kGrad, true><<<grid_for(d.rows, warps), warps * 32, 0, s>>>(d, f);
  } else {
    row_kernel<T, L, F, kGrad, false><<<grid_for(d.rows, 1), 512, 0, s>>>(d, f);
  }
}

// The label check, the rows and the reduction, for one (T, L, functor).
template <class T, class L, class F> void run_typed(const DevRows& d, const F& f, bool grad, cudaStream_t s) {
  if (d.rows > 0) {
    if (d.labels) labels_kernel<L><<<grid_for(d.rows, kLabelThreads), kLabelThreads, 0, s>>>(d);
    if (grad) launch_rows<T, L, F, true>(d, f, s);
    else launch_rows<T, L, F, false>(d, f, s);
  }
  if (d.reduction != 0) finish_kernel<T><<<1, kFinishThreads, 0, s>>>(d);
}

// The float type of the data: T, and A (its accumulator) for the functor.
template <template <class> class Fn, class Make>
void dispatch(const TensorView& x, const TensorView& labels, const DevRows& d, bool grad, cudaStream_t s, Make make) {
  const bool l32 = !is_none(labels) && labels.dtype == DType::i32;
  switch (x.dtype) {
    case DType::f64: {
      const Fn<double> f = make(double());
      l32 ? run_typed<double, int32_t>(d, f, grad, s) : run_typed<double, int64_t>(d, f, grad, s);
      break;
    }
    case DType::f32: {
      const Fn<float> f = make(float());
      l32 ? run_typed<float, int32_t>(d, f, grad, s) : run_typed<float, int64_t>(d, f, grad, s);
      break;
    }
    default: {
      const Fn<float> f = make(float());
      l32 ? run_typed<__half, int32_t>(d, f, grad, s) : run_typed<__half, int64_t>(d, f, grad, s);
      break;
    }
  }
}

void prepare_workspace(void* workspace, cudaStream_t s) {
  Workspace* ws = static_cast<Workspace*>(workspace);
  FASTLOSS_CUDA_CHECK(cudaMemsetAsync(&ws->first_bad, 0xFF, sizeof(unsigned long long), s));
  FASTLOSS_CUDA_CHECK(cudaMemsetAsync(&ws->counted, 0, sizeof(unsigned), s));
}

// One flag copy after the launches; a bad label is read back for the message.
void check_labels_after(const TensorView& x, const TensorView& labels, bool has_ignore, int64_t ignore_index,
                        void* workspace, cudaStream_t s) {
  Workspace host;
  FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&host, workspace, sizeof(Workspace), cudaMemcpyDeviceToHost, s));
  FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  if (host.first_bad == ~0ull) return;
  const int rank = x.ndim - 1;
  const int64_t r = static_cast<int64_t>(host.first_bad);
  int64_t off = 0, rr = r;
  for (int d = rank - 1; d >= 0; --d) {
    off += (rr % labels.shape[d]) * labels.strides[d];
    rr /= labels.shape[d];
  }
  int64_t y = 0;
  if (labels.dtype == DType::i32) {
    int32_t v = 0;
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&v, static_cast<const int32_t*>(labels.data) + off, 4, cudaMemcpyDeviceToHost, s));
    FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
    y = v;
  } else {
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&y, static_cast<const int64_t*>(labels.data) + off, 8, cudaMemcpyDeviceToHost, s));
    FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  std::string msg = "labels" + index_string(labels.shape, rank, r) + " = " + std::to_string(y) + " is outside [0, " +
                    std::to_string(x.shape[rank]) + ")";
  if (has_ignore) msg += " and is not ignore_index (" + std::to_string(ignore_index) + ")";
  throw_index(msg);
}

// Label rows (focal, truncated): cross-entropy's params carry the stream and the workspace.
template <template <class> class Fn, class Make> void label_rows(const CrossEntropyParams& p, Make make) {
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  DevRows d = make_rows(p.logits, none_view(), p.labels, p.grad, p.loss, p.reduction, p.workspace);
  d.has_ignore = true;
  d.ignore_index = p.ignore_index;
  prepare_workspace(p.workspace, s);
  dispatch<Fn>(p.logits, p.labels, d, !is_none(p.grad), s, make);
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
  if (d.rows > 0) check_labels_after(p.logits, p.labels, true, p.ignore_index, p.workspace, s);
}

template <class A> using EntropyFn = DivergenceFn<A, 0>;
template <class A> using KlFn = DivergenceFn<A, 1>;
template <class A> using JsFn = DivergenceFn<A, 2>;

}  // namespace

void softmax_focal_loss(const SoftmaxFocalParams& p) {
  label_rows<FocalFn>(p.rows, [&](auto zero) {
    typedef decltype(zero) A;
    FocalFn<A> f{};
    f.gamma = static_cast<A>(p.gamma);
    f.alpha = static_cast<A>(p.alpha_scalar);
    f.alpha_c = class_vec(p.alpha);
    return f;
  });
}

void truncated_cross_entropy(const TruncatedCrossEntropyParams& p) {
  label_rows<TruncatedFn>(p.rows, [&](auto zero) {
    typedef decltype(zero) A;
    TruncatedFn<A> f{};
    f.margin = static_cast<A>(p.margin);
    f.K = static_cast<A>(p.softness);
    f.soft = p.soft;
    return f;
  });
}

void divergence(const DivergenceParams& p, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  DevRows d = make_rows(p.p, p.q, none_view(), p.grad_p, p.out, Reduction::none, nullptr);
  if (!is_none(p.grad_q)) {
    d.grad2 = p.grad_q.data;
    d.grad2_rows = row_geom(p.grad_q, p.grad_q.ndim - 1);
    d.grad2_cs = p.grad_q.strides[p.grad_q.ndim - 1];
  }
  const bool grad = !is_none(p.grad_p);
  const double log_base = p.base_given ? std::log(p.base) : 1.0;
  auto make = [log_base](auto z) {
    DivergenceFn<decltype(z), 0> f{};
    f.log_base = static_cast<decltype(z)>(log_base);
    return f;
  };
  if (p.kind == Divergence::entropy) dispatch<EntropyFn>(p.p, none_view(), d, grad, s, make);
  else if (p.kind == Divergence::kl) dispatch<KlFn>(p.p, none_view(), d, grad, s, [](auto z) { return KlFn<decltype(z)>{}; });
  else dispatch<JsFn>(p.p, none_view(), d, grad, s, [](auto z) { return JsFn<decltype(z)>{}; });
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

void multiclass_hinge_loss(const MulticlassHingeParams& p, void* stream, void* workspace) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const DevRows d = make_rows(p.scores, none_view(), p.labels, p.grad, p.loss, p.reduction, workspace);
  prepare_workspace(workspace, s);
  const bool grad = !is_none(p.grad);
  const int64_t C = d.C;
  if (p.crammer_singer) {
    dispatch<CrammerSingerFn>(p.scores, p.labels, d, grad, s, [&](auto zero) {
      typedef decltype(zero) A;
      CrammerSingerFn<A> f{};
      f.margin = static_cast<A>(p.margin);
      f.sq = p.p == 2.0;
      f.weight = class_vec(p.weight);
      return f;
    });
  } else {
    dispatch<WestonWatkinsFn>(p.scores, p.labels, d, grad, s, [&](auto zero) {
      typedef decltype(zero) A;
      WestonWatkinsFn<A> f{};
      f.margin = static_cast<A>(p.margin);
      f.inv_c = A(1) / static_cast<A>(C);
      f.sq = p.p == 2.0;
      f.weight = class_vec(p.weight);
      return f;
    });
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
  if (d.rows > 0) check_labels_after(p.scores, p.labels, false, 0, workspace, s);
}

// --- l2_loss ------------------------------------------------------------------------------
// One warp per row: the sum of squared differences (again scaled by the largest difference when
// it overflows with finite inputs, as on the CPU), the row's weight, its loss and gradient
// w (x - t) / d (0 at d = 0). Row losses go through the workspace and finish_kernel's fixed-order
// sum, like the other row losses.
namespace {

struct L2Rows {
  RowGeom x_rows, t_rows, g_rows, loss_rows, w_rows;
  int64_t C, rows, x_cs, t_cs, g_cs;
  const void* x;
  const void* t;
  void* g;
  void* loss;
  const void* w;  // weight broadcast to the rows (w_rows), or null
  int w_dtype;    // 0 f16, 1 f32, 2 f64
  bool reduce_none;
  double scale;   // of the gradient
  double* row_loss;
};

__device__ __forceinline__ double load_weight(const L2Rows& p, int64_t off) {
  if (p.w_dtype == 2) return static_cast<const double*>(p.w)[off];
  if (p.w_dtype == 1) return static_cast<const float*>(p.w)[off];
  return __half2float(static_cast<const __half*>(p.w)[off]);
}

template <class T> __global__ void __launch_bounds__(256) l2_kernel(L2Rows p) {
  typedef typename AccOf<T>::type A;
  const T* x = static_cast<const T*>(p.x);
  const T* t = static_cast<const T*>(p.t);
  const int lane = threadIdx.x % 32;
  const int64_t first = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t r = first; r < p.rows; r += stride) {  // uniform per warp
    const int64_t xo = row_offset(p.x_rows, r), to = row_offset(p.t_rows, r);
    auto diff = [&](int64_t c) { return A(load_f(x, xo + c * p.x_cs)) - A(load_f(t, to + c * p.t_cs)); };
    A ss = 0;
    for (int64_t c = lane; c < p.C; c += 32) {
      const A dv = diff(c);
      ss += dv * dv;
    }
    ss = warp_sum(ss);
    A d;
    if (!isinf(ss)) {
      d = sqrt(ss);
    } else {  // overflowed: sqrt(sum) = m sqrt(sum (d/m)^2), m the largest |difference|
      A m = 0;
      for (int64_t c = lane; c < p.C; c += 32) {
        const A a = fabs(diff(c));
        m = a > m ? a : m;  // NaN never wins
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const A om = __shfl_xor_sync(0xffffffffu, m, o);
        m = om > m ? om : m;
      }
      if (isinf(m)) {
        d = m;
      } else {
        A s2 = 0;
        for (int64_t c = lane; c < p.C; c += 32) {
          const A q = diff(c) / m;
          s2 += q * q;
        }
        d = m * sqrt(warp_sum(s2));
      }
    }
    const A w = p.w ? A(load_weight(p, row_offset(p.w_rows, r))) : A(1);
    const A loss = w * d;
    if (p.g) {
      T* g = static_cast<T*>(p.g);
      const int64_t go = row_offset(p.g_rows, r);
      const A k = d > A(0) ? A(p.scale) * w / d : A(0);  // 0 at the minimum: finite
      for (int64_t c = lane; c < p.C; c += 32) store_f(g, go + c * p.g_cs, k * diff(c));
    }
    if (lane == 0) {
      if (p.reduce_none) store_f(static_cast<T*>(p.loss), row_offset(p.loss_rows, r), loss);
      else p.row_loss[r] = static_cast<double>(loss);
    }
  }
}

template <class T> void run_l2(const L2Rows& l, const DevRows& d, cudaStream_t s) {
  if (l.rows > 0) l2_kernel<T><<<grid_for(l.rows, 8), 256, 0, s>>>(l);
  if (!l.reduce_none) finish_kernel<T><<<1, kFinishThreads, 0, s>>>(d);
}

}  // namespace

void l2_loss(const L2LossParams& p, void* stream, void* workspace) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  // make_rows: the geometry, and the fields finish_kernel reads ("mean" over every row)
  const DevRows d = make_rows(p.pred, p.target, none_view(), p.grad, p.loss, p.reduction, workspace);
  const int rank = p.pred.ndim - 1;
  L2Rows l;
  l.x_rows = d.x_rows;
  l.t_rows = d.t_rows;
  l.g_rows = d.grad_rows;
  l.loss_rows = d.loss_rows;
  l.C = d.C;
  l.rows = d.rows;
  l.x_cs = d.x_cs;
  l.t_cs = d.t_cs;
  l.g_cs = d.grad_cs;
  l.x = d.x;
  l.t = d.t;
  l.g = d.grad;
  l.loss = d.loss;
  l.reduce_none = p.reduction == Reduction::none;
  l.scale = p.reduction == Reduction::mean ? (d.rows ? 1.0 / static_cast<double>(d.rows) : 0.0) : 1.0;
  l.row_loss = reinterpret_cast<double*>(static_cast<Workspace*>(workspace) + 1);
  l.w = is_none(p.weight) ? nullptr : p.weight.data;
  l.w_dtype = is_none(p.weight) ? 0 : p.weight.dtype == DType::f64 ? 2 : p.weight.dtype == DType::f32 ? 1 : 0;
  // weight broadcast to the rows' shape: right-aligned, stride 0 along its size-1 dimensions
  l.w_rows = row_geom(p.pred, rank);
  for (int i = 0; i < kMaxDims; ++i) l.w_rows.strides[i] = 0;
  if (!is_none(p.weight)) {
    const int lead = rank - p.weight.ndim;
    for (int i = 0; i < rank; ++i) {
      const int k = i - lead;
      l.w_rows.strides[i] = k >= 0 && p.weight.shape[k] != 1 ? p.weight.strides[k] : 0;
    }
  }
  switch (p.pred.dtype) {
    case DType::f64: run_l2<double>(l, d, s); break;
    case DType::f32: run_l2<float>(l, d, s); break;
    default: run_l2<__half>(l, d, s); break;
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace fastloss
