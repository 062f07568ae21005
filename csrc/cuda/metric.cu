// Metric-learning kernels on CUDA: the L-Softmax row pass and gradient epilogue (the matrix
// products run in cuBLAS through CuPy, see metric.h), center loss, center update.
//
// Every sum is taken in a fixed order, so results are the same bits on every run:
//  - per-row losses go to the workspace and one block adds them (block_sum's fixed tree);
//  - per-class sums (L-Softmax's class scales, the center update) are gathered by the class:
//    a block owns a class (or a slice of classes) and walks the labels in row order, adding
//    the rows that carry its class. No floating-point atomics.
// Labels are checked first (a device flag, one copy back, IndexError before any output is
// written); float16 inputs arrive widened to float32 by the caller.
#include <cstdint>
#include <string>

#include "cuda_common.cuh"
#include "fastloss/metric.h"

namespace fastloss {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// A (rows, cols) view by value.
template <class T> struct Mat {
  T* p;
  int64_t rows, cols, rs, cs;
  __device__ __forceinline__ T& at(int64_t i, int64_t j) const { return p[i * rs + j * cs]; }
};
template <class T> Mat<T> mat(const TensorView& v) {
  return {static_cast<T*>(v.data), v.shape[0], v.shape[1], v.strides[0], v.strides[1]};
}

struct Labels {
  const int64_t* p;
  int64_t n, stride;
  __device__ __forceinline__ int64_t operator[](int64_t i) const { return p[i * stride]; }
};
Labels labels_of(const TensorView& v) {
  return {static_cast<const int64_t*>(v.data), v.shape[0], v.strides[0]};
}

// ---------------------------------------------------------------------------------------
// Labels: the first row whose label is outside [0, K) (atomicMin on an integer: exact).
__global__ void labels_kernel(Labels y, int64_t K, unsigned long long* first_bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < y.n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t v = y[i];
    if (v < 0 || v >= K) atomicMin(first_bad, static_cast<unsigned long long>(i));
  }
}

// Checks the labels before anything is written (one synchronisation: the error must be raised
// from this call). `flag` is 8 bytes of workspace.
void check_labels(const TensorView& labels, int64_t K, const char* classes_of, void* flag, cudaStream_t s) {
  const Labels y = labels_of(labels);
  if (y.n == 0) return;
  unsigned long long* d_flag = static_cast<unsigned long long*>(flag);
  FASTLOSS_CUDA_CHECK(cudaMemsetAsync(d_flag, 0xFF, sizeof(unsigned long long), s));
  labels_kernel<<<grid_for(y.n, kThreads), kThreads, 0, s>>>(y, K, d_flag);
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
  unsigned long long bad = 0;
  FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&bad, d_flag, sizeof(bad), cudaMemcpyDeviceToHost, s));
  FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  if (bad == ~0ull) return;
  int64_t v = 0;
  FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&v, y.p + static_cast<int64_t>(bad) * y.stride, 8, cudaMemcpyDeviceToHost, s));
  FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  throw_index("labels[" + std::to_string(bad) + "] = " + std::to_string(v) + " is outside [0, " + std::to_string(K) +
              ") (the classes of " + classes_of + ")");
}

// Sum of n doubles in a fixed order, times `scale`, stored as T at out[0].
template <class T> __global__ void sum_kernel(const double* v, int64_t n, double scale, T* out) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += v[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) out[0] = static_cast<T>(acc * scale);
}

// ---------------------------------------------------------------------------------------
// L-Softmax.

// |x_i|^2 (one warp per row) and |w_j|^2 (one thread per column, rows of w coalesced).
template <class T> __global__ void row_sq_norms_kernel(Mat<const T> x, double* out) {
  typedef typename AccOf<T>::type A;
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; i < x.rows; i += warps) {
    A acc = 0;
    for (int64_t j = lane; j < x.cols; j += 32) {
      const A v = x.at(i, j);
      acc += v * v;
    }
    acc = warp_sum(acc);
    if (lane == 0) out[i] = static_cast<double>(acc);
  }
}
template <class T> __global__ void col_sq_norms_kernel(Mat<const T> w, double* out) {
  typedef typename AccOf<T>::type A;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < w.cols; j += int64_t(gridDim.x) * blockDim.x) {
    A acc = 0;
    for (int64_t d = 0; d < w.rows; ++d) {
      const A v = w.at(d, j);
      acc += v * v;
    }
    out[j] = static_cast<double>(acc);
  }
}

struct LmDev {
  MarginConsts mk;
  Labels y;
  int64_t N, C;
  double scale;
  bool grad, none;
  const double* xsq;   // (N,) or null for margin 1
  const double* wsq;   // (C,)
  double* row_loss;    // (N,) for mean/sum
  double* row_scale;   // (N,) with grad
};

// One block per row (grid-stride): the margin target, the row's (max, sum of exp) with it in
// place of the plain logit, the loss, then the gradient written over the logits.
template <class T> __global__ void lm_rows_kernel(Mat<T> logits, T* loss, int64_t loss_stride, LmDev d) {
  typedef typename AccOf<T>::type A;
  __shared__ A red[32 * 3];
  for (int64_t i = blockIdx.x; i < d.N; i += gridDim.x) {
    T* row = &logits.at(i, 0);
    const int64_t y = d.y[i];
    const double a = d.xsq ? sqrt(d.xsq[i]) : 0.0, b = d.xsq ? sqrt(d.wsq[y]) : 0.0;
    const MarginRow mr = margin_row(d.mk, static_cast<double>(row[y]), a, b);
    const A zy = static_cast<A>(static_cast<T>(mr.z));
    MaxSum<A> ms;
    ms.init();
    for (int64_t j = threadIdx.x; j < d.C; j += blockDim.x) ms.add(j == y ? zy : static_cast<A>(row[j]));
    A dummy[1] = {A(0)};
    block_reduce<A, 1>(ms, dummy, red);
    const A logs = flog_ge1(ms.s);
    if (threadIdx.x == 0) {
      const double li = static_cast<double>((ms.m - zy) + logs);
      if (d.none) loss[i * loss_stride] = static_cast<T>(li);
      else d.row_loss[i] = li;
    }
    if (d.grad) {
      const A inv = A(1) / ms.s, sc = static_cast<A>(d.scale);
      __syncthreads();  // every thread has read row[y] (margin_row) before anyone overwrites it
      for (int64_t j = threadIdx.x; j < d.C; j += blockDim.x) {
        if (j == y) continue;
        row[j] = static_cast<T>(fexp(static_cast<A>(row[j]) - ms.m) * inv * sc);
      }
      if (threadIdx.x == 0) {
        const double py = exp(static_cast<double>(zy) - static_cast<double>(ms.m)) / static_cast<double>(ms.s);
        const double gy = d.scale * (py - 1.0);
        row[y] = static_cast<T>(gy * mr.dz_df);
        d.row_scale[i] = a > 0.0 ? gy * mr.along * (b / a) : 0.0;
      }
    }
    __syncthreads();  // `red` is reused by the next row
  }
}

// Walks labels in row order, calling f(i) for every row whose label is `cls`. All threads of the
// block call it together (tiles of blockDim labels; flags in shared memory, then every thread
// visits the flagged rows in order, so each thread's sum runs in row order).
template <class F> __device__ void for_rows_of_class(const Labels& y, int64_t cls, int* flags, unsigned* any, F&& f) {
  for (int64_t t0 = 0; t0 < y.n; t0 += blockDim.x) {
    if (threadIdx.x == 0) *any = 0;
    __syncthreads();
    const int64_t i = t0 + threadIdx.x;
    const int hit = i < y.n && y[i] == cls;
    flags[threadIdx.x] = hit;
    if (hit) atomicAdd(any, 1u);
    __syncthreads();
    if (*any) {
      const int64_t n = y.n - t0 < blockDim.x ? y.n - t0 : blockDim.x;
      for (int k = 0; k < n; ++k)
        if (flags[k]) f(t0 + k);
    }
    __syncthreads();
  }
}

// s_j = sum_{y_i = j} r_i |x_i|^2 / |w_j|^2 (0 for a zero column): one thread per class of the
// block's slice, labels in row order from shared memory.
__global__ void class_scale_kernel(Labels y, int64_t C, const double* row_scale, const double* xsq, const double* wsq,
                                   double* s) {
  __shared__ int64_t lab[kThreads];
  __shared__ double val[kThreads];
  for (int64_t j0 = blockIdx.x * int64_t(blockDim.x); j0 < C; j0 += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = j0 + threadIdx.x;
    double acc = 0;
    for (int64_t t0 = 0; t0 < y.n; t0 += blockDim.x) {
      const int64_t i = t0 + threadIdx.x;
      __syncthreads();
      lab[threadIdx.x] = i < y.n ? y[i] : -1;
      val[threadIdx.x] = i < y.n ? row_scale[i] * xsq[i] : 0.0;
      __syncthreads();
      const int64_t n = y.n - t0 < blockDim.x ? y.n - t0 : blockDim.x;
      for (int k = 0; k < n; ++k)
        if (lab[k] == j) acc += val[k];
    }
    if (j < C) s[j] = wsq[j] > 0.0 ? acc / wsq[j] : 0.0;
  }
}

// out[i, j] += k_i src[i, j] (k_i = 0 skipped) for grad_features; with `by_col`, k indexes columns
// (grad_weight[d, j] += s_j w[d, j]).
template <class T>
__global__ void add_scaled_kernel(Mat<T> out, Mat<const T> src, const double* k, bool by_col) {
  typedef typename AccOf<T>::type A;
  const int64_t total = out.rows * out.cols;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / out.cols, j = e - i * out.cols;
    const double kk = k[by_col ? j : i];
    if (kk == 0.0) continue;
    out.at(i, j) = static_cast<T>(static_cast<A>(out.at(i, j)) + static_cast<A>(kk) * static_cast<A>(src.at(i, j)));
  }
}

struct LmWorkspace {
  unsigned long long* flag;
  double *xsq, *wsq, *row_loss;
};
LmWorkspace lm_workspace(void* ws, int64_t N, int64_t C) {
  char* p = static_cast<char*>(ws);
  LmWorkspace w;
  w.flag = reinterpret_cast<unsigned long long*>(p);
  p += kAlign;
  w.xsq = reinterpret_cast<double*>(p);
  p += align_up(8 * static_cast<size_t>(N));
  w.wsq = reinterpret_cast<double*>(p);
  p += align_up(8 * static_cast<size_t>(C));
  w.row_loss = reinterpret_cast<double*>(p);
  return w;
}

template <class T> void lm_rows_typed(const LargeMarginParams& p, cudaStream_t s) {
  const int64_t N = p.features.shape[0], C = p.weight.shape[1];
  const LmWorkspace ws = lm_workspace(p.workspace, N, C);
  LmDev d;
  d.mk = margin_consts(p.margin, p.beta);
  d.y = labels_of(p.labels);
  d.N = N;
  d.C = C;
  d.none = p.reduction == Reduction::none;
  d.scale = p.reduction == Reduction::mean ? (N ? 1.0 / static_cast<double>(N) : 0.0) : 1.0;
  d.grad = p.grad;
  d.xsq = p.margin > 1 ? ws.xsq : nullptr;
  d.wsq = ws.wsq;
  d.row_loss = ws.row_loss;
  d.row_scale = p.grad ? static_cast<double*>(p.row_scale.data) : nullptr;
  if (N > 0 && C > 0) {
    if (p.margin > 1) {
      row_sq_norms_kernel<T><<<grid_for(N, kThreads / 32), kThreads, 0, s>>>(mat<const T>(p.features), ws.xsq);
      col_sq_norms_kernel<T><<<grid_for(C, kThreads), kThreads, 0, s>>>(mat<const T>(p.weight), ws.wsq);
    }
    lm_rows_kernel<T><<<grid_for(N, 1), kThreads, 0, s>>>(mat<T>(p.logits), static_cast<T*>(p.loss.data),
                                                           d.none ? p.loss.strides[0] : 0, d);
  }
  if (!d.none) sum_kernel<T><<<1, kThreads, 0, s>>>(ws.row_loss, N, d.scale, static_cast<T*>(p.loss.data));
  if (p.grad) {
    double* cs = static_cast<double*>(p.class_scale.data);
    if (p.margin > 1 && C > 0)
      class_scale_kernel<<<grid_for(C, kThreads), kThreads, 0, s>>>(d.y, C, d.row_scale, ws.xsq, ws.wsq, cs);
    else if (C > 0)
      FASTLOSS_CUDA_CHECK(cudaMemsetAsync(cs, 0, 8 * static_cast<size_t>(C), s));
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

// grad_features += r * features (per row), grad_weight += weight * s (per column).
template <class T> void lm_finish_typed(const LargeMarginParams& p, cudaStream_t s) {
  const int64_t N = p.features.shape[0], D = p.features.shape[1], C = p.weight.shape[1];
  if (N > 0 && D > 0)
    add_scaled_kernel<T><<<grid_for(N * D, kThreads), kThreads, 0, s>>>(
        mat<T>(p.grad_features), mat<const T>(p.features), static_cast<const double*>(p.row_scale.data), false);
  if (D > 0 && C > 0)
    add_scaled_kernel<T><<<grid_for(D * C, kThreads), kThreads, 0, s>>>(
        mat<T>(p.grad_weight), mat<const T>(p.weight), static_cast<const double*>(p.class_scale.data), true);
}

// ---------------------------------------------------------------------------------------
// Center loss: one block per row (grid-stride), the gradient written as the row is read.
template <class T>
__global__ void center_loss_kernel(Mat<const T> x, Labels y, Mat<const T> c, Mat<T> g, bool grad, double scale,
                                   T* loss, int64_t loss_stride, bool none, double* row_loss) {
  typedef typename AccOf<T>::type A;
  const A sc = static_cast<A>(scale);
  for (int64_t i = blockIdx.x; i < x.rows; i += gridDim.x) {
    const int64_t k = y[i];
    A acc = 0;
    for (int64_t j = threadIdx.x; j < x.cols; j += blockDim.x) {
      const A dlt = static_cast<A>(x.at(i, j)) - static_cast<A>(c.at(k, j));
      acc += dlt * dlt;
      if (grad) g.at(i, j) = static_cast<T>(dlt * sc);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) {
      const double li = 0.5 * static_cast<double>(acc);
      if (none) loss[i * loss_stride] = static_cast<T>(li);
      else row_loss[i] = li;
    }
    __syncthreads();  // block_sum's shared memory is reused by the next row
  }
}

// Center update: block (class j, slice of kThreads columns), rows of class j added in row order.
template <class T>
__global__ void update_centers_kernel(Mat<const T> c, Mat<const T> x, Labels y, double alpha, Mat<T> out) {
  __shared__ int flags[kThreads];
  __shared__ unsigned any;
  const int64_t slices = (c.cols + blockDim.x - 1) / blockDim.x;
  for (int64_t b = blockIdx.x; b < c.rows * slices; b += gridDim.x) {
    const int64_t j = b / slices, d = (b - j * slices) * blockDim.x + threadIdx.x;
    const bool in = d < c.cols;
    double sum = 0;
    int64_t n = 0;
    for_rows_of_class(y, j, flags, &any, [&](int64_t i) {
      if (in) sum += static_cast<double>(x.at(i, d));
      ++n;
    });
    if (in) {
      const double cj = static_cast<double>(c.at(j, d));
      out.at(j, d) = n == 0 ? c.at(j, d) : static_cast<T>(cj - alpha * (static_cast<double>(n) * cj - sum) / static_cast<double>(1 + n));
    }
  }
}

}  // namespace

size_t large_margin_workspace_bytes(int64_t N, int64_t C) {
  return kAlign + align_up(8 * static_cast<size_t>(N)) + align_up(8 * static_cast<size_t>(C)) +
         align_up(8 * static_cast<size_t>(N));
}
size_t center_loss_workspace_bytes(int64_t N) { return kAlign + align_up(8 * static_cast<size_t>(N)); }
size_t update_centers_workspace_bytes(int64_t) { return kAlign; }

void large_margin_softmax_rows(const LargeMarginParams& p) {
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  check_labels(p.labels, p.weight.shape[1], "weight", p.workspace, s);
  if (p.features.dtype == DType::f64) lm_rows_typed<double>(p, s);
  else lm_rows_typed<float>(p, s);
}

void large_margin_softmax_finish(const LargeMarginParams& p) {
  if (p.margin == 1) return;  // the products are the whole gradient
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  if (p.features.dtype == DType::f64) lm_finish_typed<double>(p, s);
  else lm_finish_typed<float>(p, s);
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

void center_loss(const CenterLossParams& p) {
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  check_labels(p.labels, p.centers.shape[0], "centers", p.workspace, s);
  const int64_t N = p.features.shape[0];
  const bool none = p.reduction == Reduction::none, grad = !is_none(p.grad);
  const double scale = p.reduction == Reduction::mean ? (N ? 1.0 / static_cast<double>(N) : 0.0) : 1.0;
  double* row_loss = reinterpret_cast<double*>(static_cast<char*>(p.workspace) + kAlign);
  const int64_t ls = none ? p.loss.strides[0] : 0;
  const int threads = p.features.shape[1] >= 256 ? kThreads : 64;
  if (p.features.dtype == DType::f64) {
    if (N) center_loss_kernel<double><<<grid_for(N, 1), threads, 0, s>>>(
        mat<const double>(p.features), labels_of(p.labels), mat<const double>(p.centers),
        grad ? mat<double>(p.grad) : Mat<double>{nullptr, 0, 0, 0, 0}, grad, scale, static_cast<double*>(p.loss.data), ls, none, row_loss);
    if (!none) sum_kernel<double><<<1, kThreads, 0, s>>>(row_loss, N, scale, static_cast<double*>(p.loss.data));
  } else {
    if (N) center_loss_kernel<float><<<grid_for(N, 1), threads, 0, s>>>(
        mat<const float>(p.features), labels_of(p.labels), mat<const float>(p.centers),
        grad ? mat<float>(p.grad) : Mat<float>{nullptr, 0, 0, 0, 0}, grad, scale, static_cast<float*>(p.loss.data), ls, none, row_loss);
    if (!none) sum_kernel<float><<<1, kThreads, 0, s>>>(row_loss, N, scale, static_cast<float*>(p.loss.data));
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

void update_centers(const UpdateCentersParams& p) {
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  check_labels(p.labels, p.centers.shape[0], "centers", p.workspace, s);
  const int64_t K = p.centers.shape[0], D = p.centers.shape[1];
  if (K == 0 || D == 0) return;
  const int threads = D >= kThreads ? kThreads : (D > 32 ? 64 : 32);
  const int64_t work = K * ((D + threads - 1) / threads);
  if (p.centers.dtype == DType::f64)
    update_centers_kernel<double><<<grid_for(work, 1), threads, 0, s>>>(
        mat<const double>(p.centers), mat<const double>(p.features), labels_of(p.labels), p.alpha, mat<double>(p.out));
  else
    update_centers_kernel<float><<<grid_for(work, 1), threads, 0, s>>>(
        mat<const float>(p.centers), mat<const float>(p.features), labels_of(p.labels), p.alpha, mat<float>(p.out));
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace fastloss
