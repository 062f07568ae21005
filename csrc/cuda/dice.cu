// Dice loss for CuPy arrays; formulas in fastloss/dice.h, the CPU kernels in csrc/cpu/dice.cpp.
//
// Launches on the caller's stream, in order:
//   stats_kernel:  warps walk the positions (K per lane per step, coalesced along the
//                  positions); each lane applies the activation over its positions' classes
//                  (softmax: the row's online max/sum first) and, per class, the warp sums
//                  I, P, T and adds them into the (sample, class) float64 sums with one
//                  atomic each (a step whose positions span two samples adds lane by lane).
//                  A label outside [0, C) sets the first-bad flag and counts as no class;
//   finish_kernel: one thread per (sample, class): the loss and the gradient coefficients;
//   sum_kernel:    one block sums the losses in a fixed order ("mean"/"sum");
//   grad_kernel:   one thread per position: the activation again, then the gradient.
// The flag is read back once after the launches (IndexError). The float64 atomics make the
// last bits of the sums depend on the order the warps finish.
#include "cuda_common.cuh"
#include "fastloss/dice.h"

namespace fastloss {
namespace cuda {
namespace {

struct Header {
  unsigned long long first_bad;  // first position with a bad label, ~0 if none
  double pad[7];
};
static_assert(sizeof(Header) == 64, "dice_workspace_bytes counts a 64-byte header");

constexpr int kK = 4;          // positions per lane per warp step
constexpr int kThreads = 256;

struct DevDice {
  RowGeom xg, tg, gg;  // position dims (N, spatial...) of inputs, targets, grad
  int64_t N, C, M, rows;
  int64_t xcs, tcs, gcs;
  const void* x;
  const void* t;
  void* g;
  void* loss;
  int64_t loss_s0, loss_s1;
  int tkind;  // 0 float targets (inputs' dtype), 1 int32 labels, 2 int64 labels
  int act;    // 0 none, 1 sigmoid, 2 softmax
  bool sq, per_class, jaccard, batch;
  int reduction;  // 0 none, 1 mean, 2 sum
  double smooth_nr, smooth_dr, scale;
  int64_t first_class;
  const double* weight;  // (C - first_class,) or null: weight_scalar
  int64_t weight_s;
  double weight_scalar;
  Header* hdr;
  double* sums;  // 3 per bucket
  double* ca;    // a per bucket
  double* cb;    // b per bucket
  double* losses;
};

template <class A> __device__ __forceinline__ A sigmoid_of(A x, A* deriv) {
  const A e = fexp(x < A(0) ? x : -x);  // exp(-|x|)
  const A inv = A(1) / (A(1) + e);
  if (deriv) *deriv = e * inv * inv;
  return x >= A(0) ? inv : e * inv;
}

// Softmax statistics of position offset xo: max and 1/sum.
template <class T, class A> __device__ void softmax_stats(const DevDice& d, int64_t xo, A* m, A* inv) {
  const T* x = static_cast<const T*>(d.x);
  MaxSum<A> ms;
  ms.init();
  for (int64_t c = 0; c < d.C; ++c) ms.add(A(load_f(x, xo + c * d.xcs)));
  *m = ms.m;
  *inv = A(1) / ms.s;
}

template <class T, class A> __device__ A activation(const DevDice& d, A xv, A m, A inv, A* deriv) {
  if (d.act == 2) return fexp(xv - m) * inv;
  if (d.act == 1) return sigmoid_of(xv, deriv);
  return xv;
}

// The label at offset to (or -1 when it is outside [0, C); the first such position is flagged).
__device__ int64_t label_at(const DevDice& d, int64_t to, int64_t pos, bool flag) {
  const int64_t y = d.tkind == 1 ? int64_t(static_cast<const int32_t*>(d.t)[to]) : static_cast<const int64_t*>(d.t)[to];
  if (y >= 0 && y < d.C) return y;
  if (flag) atomicMin(&d.hdr->first_bad, static_cast<unsigned long long>(pos));
  return -1;
}

template <class T> __global__ void __launch_bounds__(kThreads) stats_kernel(DevDice d) {
  typedef typename AccOf<T>::type A;
  const T* x = static_cast<const T*>(d.x);
  const T* t = static_cast<const T*>(d.t);
  const int lane = threadIdx.x % 32;
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t base = warp * 32 * kK; base < d.rows; base += warps * 32 * kK) {  // warp-uniform
    int64_t xo[kK], to[kK], y[kK], n[kK];
    A m[kK], inv[kK];
    bool live[kK];
#pragma unroll
    for (int j = 0; j < kK; ++j) {
      const int64_t pos = base + lane + 32 * j;
      live[j] = pos < d.rows;
      n[j] = live[j] ? pos / d.M : -1;
      xo[j] = live[j] ? row_offset(d.xg, pos) : 0;
      to[j] = live[j] ? row_offset(d.tg, pos) : 0;
      y[j] = live[j] && d.tkind ? label_at(d, to[j], pos, true) : -1;
      m[j] = 0;
      inv[j] = 1;
      if (live[j] && d.act == 2) softmax_stats<T, A>(d, xo[j], &m[j], &inv[j]);
    }
    const int64_t last = base + 32 * kK - 1 < d.rows ? base + 32 * kK - 1 : d.rows - 1;
    const bool one_sample = base / d.M == last / d.M;  // the same for every lane
    for (int64_t c = 0; c < d.C; ++c) {
      A vi = 0, vp = 0, vt = 0;
#pragma unroll
      for (int j = 0; j < kK; ++j) {
        A li = 0, lp = 0, lt = 0;
        if (live[j]) {
          const A p = activation<T, A>(d, A(load_f(x, xo[j] + c * d.xcs)), m[j], inv[j], nullptr);
          const A tv = d.tkind ? (y[j] == c ? A(1) : A(0)) : A(load_f(t, to[j] + c * d.tcs));
          li = p * tv;
          lp = d.sq ? p * p : p;
          lt = d.sq ? tv * tv : tv;
        }
        if (one_sample) {
          vi += li;
          vp += lp;
          vt += lt;
        } else if (live[j]) {
          double* s = d.sums + (n[j] * d.C + c) * 3;
          atomicAdd(s, double(li));
          atomicAdd(s + 1, double(lp));
          atomicAdd(s + 2, double(lt));
        }
      }
      if (one_sample) {
        vi = warp_sum(vi);
        vp = warp_sum(vp);
        vt = warp_sum(vt);
        if (lane == 0) {
          double* s = d.sums + ((base / d.M) * d.C + c) * 3;
          atomicAdd(s, double(vi));
          atomicAdd(s + 1, double(vp));
          atomicAdd(s + 2, double(vt));
        }
      }
    }
  }
}

// Loss buckets: (sample, class), or with batch one per class (whose sums it adds up over
// the samples, in sample order).
__host__ __device__ inline int64_t loss_buckets(const DevDice& d) { return (d.batch ? 1 : d.N) * d.C; }

// One thread per loss bucket: its loss and coefficients (dice_bucket), for every sample it
// covers; class 0 has zero coefficients and no loss with include_background=False.
template <class T> __global__ void __launch_bounds__(kThreads) finish_kernel(DevDice d) {
  typedef typename AccOf<T>::type A;
  const int64_t B = loss_buckets(d);
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = b / d.C, c = b % d.C;
    double sm[3] = {0.0, 0.0, 0.0};
    if (d.batch) {
      for (int64_t k = 0; k < d.N; ++k)
        for (int i = 0; i < 3; ++i) sm[i] += d.sums[(k * d.C + c) * 3 + i];
    } else {
      for (int i = 0; i < 3; ++i) sm[i] = d.sums[b * 3 + i];
    }
    const bool kept = c >= d.first_class;
    const double w = !kept ? 0.0 : d.weight ? d.weight[(c - d.first_class) * d.weight_s] : d.weight_scalar;
    const DiceBucket bk = dice_bucket(sm[0], sm[1], sm[2], d.smooth_nr, d.smooth_dr, d.jaccard, d.sq, w, d.scale * w);
    for (int64_t k = d.batch ? 0 : n; k < (d.batch ? d.N : n + 1); ++k) {
      d.ca[k * d.C + c] = bk.a;
      d.cb[k * d.C + c] = bk.b;
    }
    if (d.reduction == 0) {
      if (kept)
        store_f(static_cast<T*>(d.loss), (d.batch ? 0 : n * d.loss_s0) + (d.per_class ? (c - d.first_class) * d.loss_s1 : 0),
                A(bk.loss));
    } else {
      d.losses[b] = kept ? bk.loss : 0.0;
    }
  }
}

// One block sums the bucket losses in a fixed order into the 0-d loss.
template <class T> __global__ void __launch_bounds__(1024) sum_kernel(DevDice d) {
  typedef typename AccOf<T>::type A;
  double acc = 0;
  for (int64_t b = threadIdx.x; b < loss_buckets(d); b += blockDim.x) acc += d.losses[b];
  acc = block_sum(acc);
  if (threadIdx.x == 0) store_f(static_cast<T*>(d.loss), 0, A(acc * d.scale));
}

// One thread per position: dloss/dp = a t + b p^(k-1), then through the activation.
template <class T> __global__ void __launch_bounds__(kThreads) grad_kernel(DevDice d) {
  typedef typename AccOf<T>::type A;
  const T* x = static_cast<const T*>(d.x);
  const T* t = static_cast<const T*>(d.t);
  T* g = static_cast<T*>(d.g);
  for (int64_t pos = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; pos < d.rows;
       pos += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = pos / d.M;
    const int64_t xo = row_offset(d.xg, pos), to = row_offset(d.tg, pos), go = row_offset(d.gg, pos);
    const int64_t y = d.tkind ? label_at(d, to, pos, false) : -1;
    A m = 0, inv = 1;
    if (d.act == 2) softmax_stats<T, A>(d, xo, &m, &inv);
    auto dldp = [&](int64_t c, A p) {
      const A tv = d.tkind ? (y == c ? A(1) : A(0)) : A(load_f(t, to + c * d.tcs));
      const A a = A(d.ca[n * d.C + c]), b = A(d.cb[n * d.C + c]);
      return a * tv + (d.sq ? b * p : b);
    };
    if (d.act == 2) {  // p_c (g_c - sum_j p_j g_j)
      A dot = 0;
      for (int64_t c = 0; c < d.C; ++c) {
        const A p = fexp(A(load_f(x, xo + c * d.xcs)) - m) * inv;
        dot += p * dldp(c, p);
      }
      for (int64_t c = 0; c < d.C; ++c) {
        const A p = fexp(A(load_f(x, xo + c * d.xcs)) - m) * inv;
        store_f(g, go + c * d.gcs, p * (dldp(c, p) - dot));
      }
    } else {
      for (int64_t c = 0; c < d.C; ++c) {
        A deriv = 1;
        const A p = activation<T, A>(d, A(load_f(x, xo + c * d.xcs)), m, inv, d.act == 1 ? &deriv : nullptr);
        store_f(g, go + c * d.gcs, dldp(c, p) * deriv);
      }
    }
  }
}

// Position dims of a canonical view (all but the class dim), adjacent dims merged where
// every view is contiguous across them (fewer divisions per position).
void position_geoms(const DiceParams& p, RowGeom* xg, RowGeom* tg, RowGeom* gg) {
  const int R = p.inputs.ndim - 1;
  const TensorView* v[3] = {&p.inputs, &p.targets, is_none(p.grad) ? &p.inputs : &p.grad};
  RowGeom* out[3] = {xg, tg, gg};
  int64_t shape[kMaxDims], strides[3][kMaxDims];
  int k = 0;
  for (int dd = 0; dd < R; ++dd) {
    bool merge = k > 0;
    for (int i = 0; merge && i < 3; ++i) merge = strides[i][k - 1] == v[i]->strides[dd] * v[i]->shape[dd];
    if (merge) {
      shape[k - 1] *= v[0]->shape[dd];
      for (int i = 0; i < 3; ++i) strides[i][k - 1] = v[i]->strides[dd];
    } else {
      shape[k] = v[0]->shape[dd];
      for (int i = 0; i < 3; ++i) strides[i][k] = v[i]->strides[dd];
      ++k;
    }
  }
  for (int i = 0; i < 3; ++i) {
    out[i]->rank = k;
    for (int dd = 0; dd < kMaxDims; ++dd) {
      out[i]->shape[dd] = dd < k ? shape[dd] : 1;
      out[i]->strides[dd] = dd < k ? strides[i][dd] : 0;
    }
  }
}

template <class T> void run(const DevDice& d, bool grad, cudaStream_t s) {
  if (d.rows > 0 && d.C > 0) stats_kernel<T><<<grid_for(d.rows, kThreads * kK, 8), kThreads, 0, s>>>(d);
  if (loss_buckets(d) > 0) finish_kernel<T><<<grid_for(loss_buckets(d), kThreads, 8), kThreads, 0, s>>>(d);
  if (d.reduction != 0) sum_kernel<T><<<1, 1024, 0, s>>>(d);
  if (grad && d.rows > 0 && d.C > 0) grad_kernel<T><<<grid_for(d.rows, kThreads, 8), kThreads, 0, s>>>(d);
}

}  // namespace

void dice_loss(const DiceParams& p, void* stream, void* workspace) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int R = p.inputs.ndim - 1;
  DevDice d;
  position_geoms(p, &d.xg, &d.tg, &d.gg);
  d.N = p.inputs.shape[0];
  d.C = p.inputs.shape[R];
  d.M = 1;
  for (int i = 1; i < R; ++i) d.M *= p.inputs.shape[i];
  d.rows = d.N * d.M;
  d.xcs = p.inputs.strides[R];
  d.tcs = p.int_targets ? 0 : p.targets.strides[R];
  d.gcs = is_none(p.grad) ? 0 : p.grad.strides[R];
  d.x = p.inputs.data;
  d.t = p.targets.data;
  d.g = is_none(p.grad) ? nullptr : p.grad.data;
  d.loss = p.loss.data;
  d.loss_s0 = p.reduction == Reduction::none && !p.batch ? p.loss.strides[0] : 0;
  d.loss_s1 = p.reduction == Reduction::none && p.per_class ? p.loss.strides[p.batch ? 0 : 1] : 0;
  d.tkind = !p.int_targets ? 0 : p.targets.dtype == DType::i32 ? 1 : 2;
  d.act = p.activation == DiceActivation::softmax ? 2 : p.activation == DiceActivation::sigmoid ? 1 : 0;
  d.sq = p.squared;
  d.per_class = p.per_class;
  d.reduction = p.reduction == Reduction::none ? 0 : p.reduction == Reduction::mean ? 1 : 2;
  d.smooth_nr = p.smooth_nr;
  d.smooth_dr = p.smooth_dr;
  d.jaccard = p.jaccard;
  d.batch = p.batch;
  d.first_class = p.first_class;
  d.weight = is_none(p.weight) ? nullptr : static_cast<const double*>(p.weight.data);
  d.weight_s = is_none(p.weight) ? 0 : p.weight.strides[0];
  d.weight_scalar = p.weight_scalar;
  const double count = static_cast<double>(dice_kept_buckets(p, d.N, d.C));
  d.scale = p.reduction == Reduction::mean ? (count > 0 ? 1.0 / count : 0.0) : 1.0;
  const int64_t B = d.N * d.C;
  d.hdr = static_cast<Header*>(workspace);
  d.sums = reinterpret_cast<double*>(d.hdr + 1);
  d.ca = d.sums + 3 * B;
  d.cb = d.ca + B;
  d.losses = d.cb + B;
  if (d.rows > 0 && d.C == 0 && p.int_targets)  // no class to name: every label is outside [0, 0)
    throw_index("targets" + index_string(p.targets.shape, p.targets.ndim, 0) + " is outside [0, 0)");
  FASTLOSS_CUDA_CHECK(cudaMemsetAsync(&d.hdr->first_bad, 0xFF, sizeof(unsigned long long), s));
  if (B > 0) FASTLOSS_CUDA_CHECK(cudaMemsetAsync(d.sums, 0, 3 * 8 * static_cast<size_t>(B), s));
  const bool grad = !is_none(p.grad);
  if (p.inputs.dtype == DType::f64) run<double>(d, grad, s);
  else if (p.inputs.dtype == DType::f32) run<float>(d, grad, s);
  else run<__half>(d, grad, s);
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
  if (!p.int_targets || d.rows == 0) return;
  Header host;
  FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&host, workspace, sizeof(Header), cudaMemcpyDeviceToHost, s));
  FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  if (host.first_bad == ~0ull) return;
  const TensorView& t = p.targets;
  int64_t off = 0, rr = static_cast<int64_t>(host.first_bad);
  for (int dd = t.ndim - 1; dd >= 0; --dd) {
    off += (rr % t.shape[dd]) * t.strides[dd];
    rr /= t.shape[dd];
  }
  int64_t y = 0;
  if (t.dtype == DType::i32) {
    int32_t v = 0;
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&v, static_cast<const int32_t*>(t.data) + off, 4, cudaMemcpyDeviceToHost, s));
    FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
    y = v;
  } else {
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&y, static_cast<const int64_t*>(t.data) + off, 8, cudaMemcpyDeviceToHost, s));
    FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  const int shown = t.ndim == 2 && t.shape[1] == 1 && t.strides[1] == 0 ? 1 : t.ndim;
  throw_index("targets" + index_string(t.shape, shown, static_cast<int64_t>(host.first_bad)) + " = " +
              std::to_string(y) + " is outside [0, " + std::to_string(d.C) + ")");
}

}  // namespace cuda
}  // namespace fastloss
