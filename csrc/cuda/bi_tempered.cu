// Bi-tempered logistic loss and tempered softmax for CuPy arrays; formulas in
// fastloss/bi_tempered.h, the same algorithm as the CPU kernel (csrc/cpu/bi_tempered.cpp).
//
// One warp per row (any C, classes strided over the lanes, any layout), or one thread per
// element for the binary form; the algorithm is written once against a "view" of the row:
// each(f) visits this thread's classes, total(v) sums over the row (a warp sum, or nothing for
// a thread's own two-class row). Per row: the normalisation's passes, one pass for the loss and
// the gradient's two sums, one pass writing the gradient (recomputing p: cheaper than keeping
// it). Launches on the caller's stream: the rows, then (mean/sum) one block that adds the
// per-row losses in a fixed order. Integer labels outside [0, C) set a device flag (the first
// bad row) raised as IndexError after one copy. t1 = t2 = 1 runs the cross-entropy kernel.
#include "cuda_common.cuh"
#include "fastloss/bi_tempered.h"

namespace fastloss {
namespace cuda {
namespace {

struct Workspace {
  unsigned long long first_bad;  // first row with a bad label, ~0 if none
  double pad[7];
  // followed by double row_loss[rows]
};
static_assert(sizeof(Workspace) == 64, "bi_tempered_workspace_bytes sizes the workspace as 64 + 8 * rows");

template <class A> struct Temps {
  A t1, t2, k1, k2, ik2, r12, ibeta, beta, ls_a, ls_b, eps, label_const, scale;
  int64_t iters;
  bool t1_one, t2_one, t_eq, soft, t2_gt1;  // t2_gt1 from the double t2 (1 + 1e-9 is 1.0f)
  bool beta_le0, beta_zero;  // t1 >= 2, t1 == 2: the y^(2-t1) terms at their limits (as the CPU kernel)
};

template <class A> Temps<A> temps(double t1, double t2, int64_t iters, double ls, int64_t C) {
  Temps<A> T;
  T.t1 = A(t1);
  T.t2 = A(t2);
  T.k1 = A(1.0 - t1);
  T.k2 = A(1.0 - t2);
  T.ik2 = A(1.0 / (1.0 - t2));
  T.r12 = A((1.0 - t1) / (1.0 - t2));
  T.beta = A(2.0 - t1);
  T.ibeta = A(1.0 / (2.0 - t1));
  const double c = static_cast<double>(C);
  T.ls_a = A(ls > 0 ? 1.0 - c / (c - 1.0) * ls : 1.0);
  T.ls_b = A(ls > 0 ? ls / (c - 1.0) : 0.0);
  T.eps = A(1e-10);
  T.label_const = A(0);
  T.scale = A(1);
  T.iters = iters;
  T.t1_one = t1 == 1.0;
  T.t2_one = t2 == 1.0;
  T.t_eq = t1 == t2;
  T.t2_gt1 = t2 > 1.0;
  T.soft = true;
  T.beta_le0 = t1 >= 2.0;
  T.beta_zero = t1 == 2.0;
  return T;
}

// exp_t at base 1 + b: max(1 + b, 0)^(1/(1-t)); log1p keeps log(1 + b) exact near b = 0 (and
// --use_fast_math leaves it alone, unlike logf).
// (NaN stays NaN.)
template <class A> __device__ __forceinline__ A log_base(A b) { return b <= A(-1) ? A(-INFINITY) : log1p(b); }
template <class A> __device__ __forceinline__ A exp_t_base(A b, A ik) { return b <= A(-1) ? A(0) : exp(log1p(b) * ik); }

template <class A> struct Probs {
  A p, q, lp, r;  // p, p^(1-t1), log p, 1/s (0 where s = 0)
};
template <class A> __device__ __forceinline__ Probs<A> probs(A u, const Temps<A>& T) {
  Probs<A> P;
  if (T.t2_one) {
    P.lp = u;
    P.p = exp(u);
    P.q = T.t1_one ? A(1) : exp(u * T.k1);
    P.r = A(0);
    return P;
  }
  const A b = T.k2 * u;
  const A l = log_base(b);
  P.lp = l * T.ik2;
  P.p = exp(P.lp);
  P.q = T.t1_one ? A(1) : exp(l * T.r12);
  P.r = b <= A(-1) ? A(0) : A(1) / (A(1) + b);
  return P;
}

// A row on a warp: lane l holds classes l, l + 32, ...
template <class A, class T> struct WarpRow {
  const T* x;
  const T* y;  // soft labels or null
  int64_t xo, xcs, yo, ycs, label, C;
  int lane;
  template <class F> __device__ void each(F f) const {
    for (int64_t c = lane; c < C; c += 32) f(c, A(load_f(x, xo + c * xcs)));
  }
  __device__ A total(A v) const { return warp_sum(v); }
  __device__ A max() const {
    A m = -INFINITY;
    each([&](int64_t, A v) { m = v > m || v != v ? v : m; });
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const A w = __shfl_xor_sync(0xffffffffu, m, o);
      m = w > m || w != w ? w : m;
    }
    return m;
  }
  __device__ A label_at(int64_t c, const Temps<A>& K) const {
    if (y) return A(load_f(y, yo + c * ycs)) * K.ls_a + K.ls_b;
    return c == label ? K.ls_a + K.ls_b : K.ls_b;
  }
};

// A thread's own binary row [0, x] with labels [1 - t, t].
template <class A> struct PairRow {
  A x1, t;
  template <class F> __device__ void each(F f) const {
    f(0, A(0));
    f(1, x1);
  }
  __device__ A total(A v) const { return v; }
  __device__ A max() const { return x1 > A(0) || x1 != x1 ? x1 : A(0); }
  __device__ A label_at(int64_t c, const Temps<A>& K) const { return (c == 0 ? A(1) - t : t) * K.ls_a + K.ls_b; }
};

template <class A, class View> __device__ A normalization(const View& v, const Temps<A>& T) {
  const A m = v.max();
  if (T.t2_one) {
    A s = 0;
    v.each([&](int64_t, A x) { s += exp(x - m); });
    return m + log(v.total(s));
  }
  const A k = T.k2, ik = T.ik2;
  if (T.t2_gt1) {  // fixed point
    A kc = k;
    auto partition = [&]() {
      A z = 0;
      v.each([&](int64_t, A x) { z += exp_t_base(kc * (x - m), ik); });
      return v.total(z);
    };
    for (int64_t i = 0; i < T.iters; ++i) kc = k * exp(k * log(partition()));
    const A Z = partition();
    return m - expm1(-k * log(Z)) / k;  // expm1: no cancellation for t2 near 1
  }
  A cnt = 0, nans = 0;  // a NaN anywhere makes the norm NaN (the bisection's compares would skip it)
  const A thr = A(-1) / k;
  v.each([&](int64_t, A x) {
    cnt += x - m > thr ? A(1) : A(0);
    nans += x != x ? A(1) : A(0);
  });
  const A eff = v.total(cnt);
  const A poison = v.total(nans) > A(0) ? A(NAN) : A(0);
  A lower = 0, upper = -expm1(-k * log(eff)) / k;
  for (int64_t i = 0; i < T.iters; ++i) {
    const A mid = (upper + lower) * A(0.5);
    A s = 0;
    v.each([&](int64_t, A x) { s += exp_t_base(k * ((x - m) - mid), ik); });
    const A sum = v.total(s);
    if (sum < A(1)) upper = mid;
    else lower = mid;
  }
  return (upper + lower) * A(0.5) + m + poison;
}

// Forget factor p^(t2-t1) and escort weight p^t2 of one class.
template <class A> __device__ __forceinline__ void forget_escort(const Probs<A>& P, const Temps<A>& T, A* F, A* esc) {
  if (T.t2_one) {
    *F = P.q;
    *esc = P.p;
  } else {
    *F = P.r != A(0) ? P.q * P.r : (T.t_eq ? A(1) : A(0));
    *esc = P.p * P.r;
  }
}

// The row's loss; with `grad`, also D / sum(escorts) in *factor.
template <class A, class View> __device__ A loss_of(const View& v, const Temps<A>& T, A norm, bool grad, A* factor) {
  A ylt = 0, pq = 0, lab = 0, d = 0, e = 0, whole = 0;
  v.each([&](int64_t c, A x) {
    const Probs<A> P = probs(x - norm, T);
    const A y = v.label_at(c, T);
    const A ltp = T.t1_one ? P.lp : (P.q - A(1)) / T.k1;
    const A pb = T.t1_one ? P.p : (P.p == A(0) ? A(0) : P.p * P.q);  // p^(2-t1); 0 at p = 0
    if (T.beta_le0) {  // t1 >= 2: each class as one term at its limits (see the CPU kernel's loss_pass)
      const A lt_y = (exp(log(y + T.eps) * T.k1) - A(1)) / T.k1;
      const A By = T.beta_zero ? log(y) : exp(log(y) * T.beta) * T.ibeta;
      const A Bp = T.beta_zero ? log(P.p) : pb * T.ibeta;
      A term = (y * lt_y - By) - (y * ltp - Bp);
      if (P.p == A(0)) term = y == A(0) ? A(0) : A(INFINITY);
      else if (y == A(0)) term = A(INFINITY);
      whole += term;
    } else {
      if (y != A(0)) ylt += y * ltp;  // a zero label never meets log_t(0) = -inf
      pq += pb;
    }
    if (T.soft && !T.beta_le0 && y != A(0)) {
      const A lye = log(y + T.eps);
      const A lt = T.t1_one ? lye : (exp(lye * T.k1) - A(1)) / T.k1;
      const A yb = T.t1_one ? y : exp(log(y) * T.beta);
      lab += y * lt - yb * T.ibeta;
    }
    if (grad) {
      A F, esc;
      forget_escort(P, T, &F, &esc);
      d += (P.p - y) * F;
      e += esc;
    }
  });
  if (grad) *factor = v.total(d) / v.total(e);
  if (T.beta_le0) return v.total(whole);
  return (T.soft ? v.total(lab) : T.label_const) - v.total(ylt) + v.total(pq) * T.ibeta;
}

template <class A, class View> __device__ A grad_at(const View& v, const Temps<A>& T, A norm, A factor, int64_t c, A x) {
  const Probs<A> P = probs(x - norm, T);
  A F, esc;
  forget_escort(P, T, &F, &esc);
  return T.scale * ((P.p - v.label_at(c, T)) * F - esc * factor);
}

struct Dev {
  RowGeom x_rows, y_rows, l_rows, g_rows, loss_rows;
  int64_t C, rows, x_cs, y_cs, g_cs;
  const void* x;
  const void* y;       // soft labels / binary targets, or null
  const void* labels;  // integer labels, or null
  bool labels32;
  void* grad;
  void* loss;
  int reduction;  // 0 none, 1 mean, 2 sum
  Workspace* ws;
};

template <class T, bool kGrad>
__global__ void __launch_bounds__(256) rows_kernel(Dev p, Temps<typename AccOf<T>::type> K) {
  typedef typename AccOf<T>::type A;
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < p.rows; r += warps) {
    WarpRow<A, T> v;
    v.x = static_cast<const T*>(p.x);
    v.y = static_cast<const T*>(p.y);
    v.xo = row_offset(p.x_rows, r);
    v.xcs = p.x_cs;
    v.yo = p.y ? row_offset(p.y_rows, r) : 0;
    v.ycs = p.y_cs;
    v.C = p.C;
    v.lane = lane;
    v.label = -1;
    bool bad = false;
    if (p.labels) {
      const int64_t lo = row_offset(p.l_rows, r);
      v.label = p.labels32 ? static_cast<const int32_t*>(p.labels)[lo] : static_cast<const int64_t*>(p.labels)[lo];
      bad = v.label < 0 || v.label >= p.C;
      if (bad && lane == 0) atomicMin(&p.ws->first_bad, static_cast<unsigned long long>(r));
    }
    A loss = 0, factor = 0, norm = 0;
    if (!bad) {
      norm = normalization<A>(v, K);
      loss = loss_of<A>(v, K, norm, kGrad, &factor);
    }
    if (kGrad) {
      T* g = static_cast<T*>(p.grad);
      const int64_t go = row_offset(p.g_rows, r);
      v.each([&](int64_t c, A x) { store_f(g, go + c * p.g_cs, bad ? A(0) : grad_at<A>(v, K, norm, factor, c, x)); });
    }
    if (lane == 0) {
      if (p.reduction == 0) store_f(static_cast<T*>(p.loss), row_offset(p.loss_rows, r), loss);
      else reinterpret_cast<double*>(p.ws + 1)[r] = static_cast<double>(loss);
    }
  }
}

template <class T, bool kGrad>
__global__ void __launch_bounds__(256) binary_kernel(Dev p, Temps<typename AccOf<T>::type> K) {
  typedef typename AccOf<T>::type A;
  const bool logistic = K.t1_one && K.t2_one;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.rows; i += int64_t(gridDim.x) * blockDim.x) {
    PairRow<A> v;
    v.x1 = A(load_f(static_cast<const T*>(p.x), row_offset(p.x_rows, i)));
    v.t = A(load_f(static_cast<const T*>(p.y), row_offset(p.y_rows, i)));
    A loss, g = 0;
    if (logistic) {  // (y0 + y1) softplus(x) - y1 x
      const A y0 = v.label_at(0, K), y1 = v.label_at(1, K);
      const A en = exp(-fabs(v.x1));
      loss = (y0 + y1) * ((v.x1 > A(0) ? v.x1 : A(0)) + log1p(en)) - y1 * v.x1;
      const A sig = v.x1 > A(0) ? A(1) / (A(1) + en) : en / (A(1) + en);
      g = K.scale * ((y0 + y1) * sig - y1);
    } else {
      A factor = 0;
      const A norm = normalization<A>(v, K);
      loss = loss_of<A>(v, K, norm, kGrad, &factor);
      if (kGrad) g = grad_at<A>(v, K, norm, factor, 1, v.x1);
    }
    if (kGrad) store_f(static_cast<T*>(p.grad), row_offset(p.g_rows, i), g);
    if (p.reduction == 0) store_f(static_cast<T*>(p.loss), row_offset(p.loss_rows, i), loss);
    else reinterpret_cast<double*>(p.ws + 1)[i] = static_cast<double>(loss);
  }
}

// One block adds the row losses in a fixed order (deterministic) and stores the 0-d result.
constexpr int kFinishThreads = 1024;
template <class T> __global__ void __launch_bounds__(kFinishThreads) finish_kernel(Dev p, double scale) {
  typedef typename AccOf<T>::type A;
  const double* row_loss = reinterpret_cast<const double*>(p.ws + 1);
  double acc = 0;
  for (int64_t r = threadIdx.x; r < p.rows; r += blockDim.x) acc += row_loss[r];
  acc = block_sum(acc);
  if (threadIdx.x == 0) store_f(static_cast<T*>(p.loss), 0, static_cast<A>(acc * scale));
}

template <class T> __global__ void __launch_bounds__(256) softmax_kernel(Dev p, Temps<typename AccOf<T>::type> K) {
  typedef typename AccOf<T>::type A;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < p.rows; r += warps) {
    WarpRow<A, T> v;
    v.x = static_cast<const T*>(p.x);
    v.y = nullptr;
    v.xo = row_offset(p.x_rows, r);
    v.xcs = p.x_cs;
    v.yo = v.ycs = 0;
    v.label = -1;
    v.C = p.C;
    v.lane = threadIdx.x % 32;
    const A norm = normalization<A>(v, K);
    T* out = static_cast<T*>(p.grad);
    const int64_t oo = row_offset(p.g_rows, r);
    v.each([&](int64_t c, A x) { store_f(out, oo + c * p.g_cs, probs(x - norm, K).p); });
  }
}

template <class T> void launch(const Dev& d, const BiTemperedParams& p, cudaStream_t s) {
  typedef typename AccOf<T>::type A;
  Temps<A> K = temps<A>(p.t1, p.t2, p.num_iters, p.label_smoothing, p.binary ? 2 : d.C);
  const double scale = p.reduction == Reduction::mean && d.rows > 0 ? 1.0 / static_cast<double>(d.rows) : 1.0;
  K.scale = A(scale);
  K.soft = p.binary || p.soft_labels;
  if (!K.soft) K.label_const = A(bi_tempered_onehot_label_const(p.t1, p.label_smoothing, d.C));
  const bool grad = !is_none(p.grad);
  if (d.rows > 0) {
    if (p.binary) {
      if (grad) binary_kernel<T, true><<<grid_for(d.rows, 256), 256, 0, s>>>(d, K);
      else binary_kernel<T, false><<<grid_for(d.rows, 256), 256, 0, s>>>(d, K);
    } else {
      if (grad) rows_kernel<T, true><<<grid_for(d.rows, 8), 256, 0, s>>>(d, K);
      else rows_kernel<T, false><<<grid_for(d.rows, 8), 256, 0, s>>>(d, K);
    }
  }
  if (d.reduction != 0) finish_kernel<T><<<1, kFinishThreads, 0, s>>>(d, scale);
}

Dev make_dev(const TensorView& x, const TensorView& y, const TensorView& labels, const TensorView& out_like,
             const TensorView& loss, Reduction red, int rank, void* workspace) {
  Dev d;
  d.C = rank < x.ndim ? x.shape[rank] : 2;
  d.rows = 1;
  for (int i = 0; i < rank; ++i) d.rows *= x.shape[i];
  d.x_rows = row_geom(x, rank);
  d.y_rows = row_geom(is_none(y) ? x : y, rank);
  d.l_rows = row_geom(is_none(labels) ? x : labels, rank);
  d.g_rows = row_geom(is_none(out_like) ? x : out_like, rank);
  d.loss_rows = row_geom(red == Reduction::none ? loss : x, rank);
  d.x_cs = rank < x.ndim ? x.strides[rank] : 0;
  d.y_cs = !is_none(y) && rank < y.ndim ? y.strides[rank] : 0;
  d.g_cs = !is_none(out_like) && rank < out_like.ndim ? out_like.strides[rank] : 0;
  d.x = x.data;
  d.y = is_none(y) ? nullptr : y.data;
  d.labels = is_none(labels) ? nullptr : labels.data;
  d.labels32 = !is_none(labels) && labels.dtype == DType::i32;
  d.grad = is_none(out_like) ? nullptr : out_like.data;
  d.loss = loss.data;
  d.reduction = red == Reduction::none ? 0 : red == Reduction::mean ? 1 : 2;
  d.ws = static_cast<Workspace*>(workspace);
  return d;
}

}  // namespace

void bi_tempered_logistic_loss(const BiTemperedParams& p) {
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  if (!p.binary && p.t1 == 1.0 && p.t2 == 1.0) return softmax_cross_entropy(bi_tempered_as_cross_entropy(p));
  const int rank = p.binary ? p.activations.ndim : p.activations.ndim - 1;
  const bool ints = !p.binary && !p.soft_labels;
  const Dev d = make_dev(p.activations, ints ? none_view() : p.labels, ints ? p.labels : none_view(), p.grad, p.loss,
                         p.reduction, rank, p.workspace);
  if (ints) FASTLOSS_CUDA_CHECK(cudaMemsetAsync(p.workspace, 0xFF, sizeof(unsigned long long), s));
  if (!p.binary && d.C == 0) {  // rows of no classes: loss 0
    if (p.reduction == Reduction::none) {
      if (d.rows > 0) FASTLOSS_CUDA_CHECK(cudaMemsetAsync(p.loss.data, 0, d.rows * dtype_size(p.loss.dtype), s));
    } else {
      FASTLOSS_CUDA_CHECK(cudaMemsetAsync(p.loss.data, 0, dtype_size(p.loss.dtype), s));
    }
    return;
  }
  switch (p.activations.dtype) {
    case DType::f64: launch<double>(d, p, s); break;
    case DType::f32: launch<float>(d, p, s); break;
    default: launch<__half>(d, p, s); break;
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
  if (ints && d.rows > 0) {
    unsigned long long bad = 0;
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&bad, p.workspace, sizeof bad, cudaMemcpyDeviceToHost, s));
    FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
    if (bad == ~0ull) return;
    const int64_t r = static_cast<int64_t>(bad);
    int64_t off = 0, rr = r;
    for (int k = rank - 1; k >= 0; --k) {
      off += (rr % p.labels.shape[k]) * p.labels.strides[k];
      rr /= p.labels.shape[k];
    }
    int64_t y = 0;
    if (p.labels.dtype == DType::i32) {
      int32_t v = 0;
      FASTLOSS_CUDA_CHECK(cudaMemcpy(&v, static_cast<const int32_t*>(p.labels.data) + off, 4, cudaMemcpyDeviceToHost));
      y = v;
    } else {
      FASTLOSS_CUDA_CHECK(cudaMemcpy(&y, static_cast<const int64_t*>(p.labels.data) + off, 8, cudaMemcpyDeviceToHost));
    }
    throw_index("labels" + index_string(p.labels.shape, rank, r) + " = " + std::to_string(y) + " is outside [0, " +
                std::to_string(d.C) + ")");
  }
}

void tempered_softmax(const TemperedSoftmaxParams& p) {
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  const int rank = p.activations.ndim - 1;
  const Dev d = make_dev(p.activations, none_view(), none_view(), p.out, p.out, Reduction::none, rank, nullptr);
  if (d.rows == 0 || d.C == 0) return;
  switch (p.activations.dtype) {
    case DType::f64:
      softmax_kernel<double><<<grid_for(d.rows, 8), 256, 0, s>>>(d, temps<double>(1.0, p.t, p.num_iters, 0.0, d.C));
      break;
    case DType::f32:
      softmax_kernel<float><<<grid_for(d.rows, 8), 256, 0, s>>>(d, temps<float>(1.0, p.t, p.num_iters, 0.0, d.C));
      break;
    default:
      softmax_kernel<__half><<<grid_for(d.rows, 8), 256, 0, s>>>(d, temps<float>(1.0, p.t, p.num_iters, 0.0, d.C));
      break;
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace fastloss
