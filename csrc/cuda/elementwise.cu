// The CUDA engine of the elementwise losses: one generic grid-stride kernel, instantiated
// per loss functor (elementwise_losses.h) and compute type. Each thread computes loss and
// gradient of its elements in one pass; a "mean"/"sum" loss is summed per thread (compute
// type), per block (double, fixed order) into the workspace, and by one finishing block in
// block order, so the result has the same bits every run. A whole-call statistic (balanced
// CE's beta, hinge's label check) comes from a first counting kernel; beta is read from the
// workspace on the device (no synchronisation), bad hinge labels are reported after a sync.
#include <cuda_fp16.h>

#include <cstdint>
#include <string>

#include "cuda_common.cuh"
#include "fastloss/elementwise.h"
#include "fastloss/elementwise_losses.h"

namespace fastloss {
namespace cuda {
namespace {

// The functors' math on device scalars.
template <class S_> struct DevMath;
template <> struct DevMath<float> {
  typedef float S;
  typedef float V;
  static __host__ __device__ __forceinline__ float c(float s) { return s; }
  static __host__ __device__ __forceinline__ float exp(float x) { return ::expf(x); }
  static __host__ __device__ __forceinline__ float exp_nonpos(float x) { return ::expf(x); }
  static __host__ __device__ __forceinline__ float log(float x) { return ::logf(x); }
  static __host__ __device__ __forceinline__ float log1p01(float e) { return ::log1pf(e); }
  static __host__ __device__ __forceinline__ float abs(float x) { return ::fabsf(x); }
  static __host__ __device__ __forceinline__ float recip(float x) { return 1.0f / x; }
  static __host__ __device__ __forceinline__ float fma(float a, float b, float c) { return ::fmaf(a, b, c); }
};
template <> struct DevMath<double> {
  typedef double S;
  typedef double V;
  static __host__ __device__ __forceinline__ double c(double s) { return s; }
  static __host__ __device__ __forceinline__ double exp(double x) { return ::exp(x); }
  static __host__ __device__ __forceinline__ double exp_nonpos(double x) { return ::exp(x); }
  static __host__ __device__ __forceinline__ double log(double x) { return ::log(x); }
  static __host__ __device__ __forceinline__ double log1p01(double e) { return ::log1p(e); }
  static __host__ __device__ __forceinline__ double abs(double x) { return ::fabs(x); }
  static __host__ __device__ __forceinline__ double recip(double x) { return 1.0 / x; }
  static __host__ __device__ __forceinline__ double fma(double a, double b, double c) { return ::fma(a, b, c); }
};

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;  // grid-stride beyond this; also the workspace's partials
enum { kX, kT, kW, kC, kG, kL, kViews };

// Workspace layout: the target statistics, one double per block (loss partials), five
// counters per block (target statistics).
struct DevStats {
  unsigned long long zeros, ones, minus_ones, others, first_other;
  double first_other_value;
};
constexpr size_t kPartialsOffset = 64;
static_assert(sizeof(DevStats) <= kPartialsOffset, "stats header");

struct DevView {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int64_t strides[kMaxDims] = {};
};

struct DevParams {
  int ndim;
  int64_t n;
  int64_t shape[kMaxDims];
  bool contiguous;  // every view present is C-contiguous in pred's shape: offset = flat index
  DevView v[kViews];
  bool want_sum;
  double gscale;    // gradient scale (1/denominator for mean)
  double lscale;    // loss scale for the finishing block
  const DevStats* beta_stats;  // balanced CE with beta from the call: beta = zeros / n
  DevStats* stats;
  double* partials;
  unsigned long long* block_stats;
  void* loss_out;
  DType loss_dtype;
};

template <class S> __device__ __forceinline__ S load_any(const DevView& v, int64_t off) {
  switch (v.dtype) {
    case DType::f32: return static_cast<S>(static_cast<const float*>(v.data)[off]);
    case DType::f64: return static_cast<S>(static_cast<const double*>(v.data)[off]);
    default: return static_cast<S>(__half2float(static_cast<const __half*>(v.data)[off]));
  }
}
template <class S> __device__ __forceinline__ void store_any(const DevView& v, int64_t off, S x) {
  switch (v.dtype) {
    case DType::f32: static_cast<float*>(const_cast<void*>(v.data))[off] = static_cast<float>(x); break;
    case DType::f64: static_cast<double*>(const_cast<void*>(v.data))[off] = static_cast<double>(x); break;
    default: static_cast<__half*>(const_cast<void*>(v.data))[off] = __float2half_rn(static_cast<float>(x)); break;
  }
}

template <class L, class S>
__global__ void __launch_bounds__(kThreads) elementwise_kernel(DevParams d, elementwise::Consts<S> k) {
  if (d.beta_stats) k.a = d.n ? static_cast<S>(static_cast<double>(d.beta_stats->zeros) / static_cast<double>(d.n)) : S(0);
  const S gscale = static_cast<S>(d.gscale);
  S acc = 0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < d.n; i += step) {
    int64_t off[kViews];
    if (d.contiguous) {
      for (int v = 0; v < kViews; ++v) off[v] = i;
    } else {
      for (int v = 0; v < kViews; ++v) off[v] = 0;
      int64_t r = i;
      for (int dim = d.ndim - 1; dim >= 0; --dim) {
        const int64_t idx = r % d.shape[dim];
        r /= d.shape[dim];
        for (int v = 0; v < kViews; ++v) off[v] += idx * d.v[v].strides[dim];
      }
    }
    const S x = load_any<S>(d.v[kX], off[kX]);
    const S t = load_any<S>(d.v[kT], off[kT]);
    const S c = d.v[kC].data ? load_any<S>(d.v[kC], off[kC]) : S(1);
    S l, g;
    L::eval(k, x, t, c, l, g);
    if (d.v[kW].data) {
      const S w = load_any<S>(d.v[kW], off[kW]);
      l *= w;
      g *= w;
    }
    if (d.v[kG].data) store_any<S>(d.v[kG], off[kG], g * gscale);
    if (d.v[kL].data) store_any<S>(d.v[kL], off[kL], l);
    else acc += l;
  }
  if (!d.want_sum) return;
  const double total = block_sum<double>(static_cast<double>(acc));
  if (threadIdx.x == 0) d.partials[blockIdx.x] = total;
}

// Adds the block partials in block order and writes the scaled loss.
__global__ void __launch_bounds__(kThreads) finish_kernel(DevParams d, int blocks) {
  double s = 0;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) s += d.partials[b];
  s = block_sum<double>(s);
  if (threadIdx.x == 0) {
    DevView out;
    out.data = d.loss_out;
    out.dtype = d.loss_dtype;
    store_any<double>(out, 0, s * d.lscale);
  }
}

// Counts target values 0, 1, -1 and others, and the smallest flat index of an "other", per
// block (threads' counts added by thread 0 in thread order) into the workspace.
__global__ void __launch_bounds__(kThreads) stats_kernel(DevParams d) {
  unsigned long long c[5] = {0, 0, 0, 0, ~0ull};  // zeros, ones, minus ones, others, first other
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < d.n; i += step) {
    int64_t off = 0, r = i;
    for (int dim = d.ndim - 1; dim >= 0; --dim) {
      off += (r % d.shape[dim]) * d.v[kT].strides[dim];
      r /= d.shape[dim];
    }
    const double t = load_any<double>(d.v[kT], off);
    if (t == 0) ++c[0];
    else if (t == 1) ++c[1];
    else if (t == -1) ++c[2];
    else {
      if (!c[3]) c[4] = static_cast<unsigned long long>(i);
      ++c[3];
    }
  }
  __shared__ unsigned long long sh[5][kThreads];
  for (int j = 0; j < 5; ++j) sh[j][threadIdx.x] = c[j];
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long* out = d.block_stats + 5 * static_cast<int64_t>(blockIdx.x);
    for (int j = 0; j < 4; ++j) {
      unsigned long long s = 0;
      for (unsigned k = 0; k < blockDim.x; ++k) s += sh[j][k];
      out[j] = s;
    }
    unsigned long long first = ~0ull;
    for (unsigned k = 0; k < blockDim.x; ++k) first = sh[4][k] < first ? sh[4][k] : first;
    out[4] = first;
  }
}

// Adds the blocks' counts in block order into the stats header, with the value at the first
// "other" index (for the error message).
__global__ void stats_finish_kernel(DevParams d, int blocks) {
  DevStats s{0, 0, 0, 0, ~0ull, 0.0};
  for (int b = 0; b < blocks; ++b) {
    const unsigned long long* c = d.block_stats + 5 * b;
    s.zeros += c[0];
    s.ones += c[1];
    s.minus_ones += c[2];
    s.others += c[3];
    s.first_other = c[4] < s.first_other ? c[4] : s.first_other;
  }
  if (s.first_other != ~0ull) {
    int64_t off = 0, r = static_cast<int64_t>(s.first_other);
    for (int dim = d.ndim - 1; dim >= 0; --dim) {
      off += (r % d.shape[dim]) * d.v[kT].strides[dim];
      r /= d.shape[dim];
    }
    s.first_other_value = load_any<double>(d.v[kT], off);
  }
  *d.stats = s;
}

bool c_contiguous(const TensorView& v, const TensorView& like) {
  int64_t expect = 1;
  for (int i = like.ndim - 1; i >= 0; --i) {
    if (like.shape[i] != 1 && v.strides[i] != expect) return false;
    expect *= like.shape[i];
  }
  return true;
}

template <class L, class S>
void launch(const DevParams& d, const ElementwiseConsts& kd, int blocks, cudaStream_t s) {
  const elementwise::Consts<S> k{static_cast<S>(kd.a), static_cast<S>(kd.b), static_cast<S>(kd.c), kd.n};
  if (d.n) elementwise_kernel<L, S><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(d, k);
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

template <template <class> class F>
void launch_loss(const DevParams& d, DType dt, const ElementwiseConsts& k, int blocks, cudaStream_t s) {
  if (dt == DType::f64) launch<F<DevMath<double>>, double>(d, k, blocks, s);
  else launch<F<DevMath<float>>, float>(d, k, blocks, s);
}

}  // namespace

size_t elementwise_workspace_bytes(int64_t) {
  return kPartialsOffset + (sizeof(double) + 5 * sizeof(unsigned long long)) * kMaxBlocks;
}

void elementwise_loss(ElementwiseParams& p) {
  ElementwiseConsts k = check_elementwise_params(p);
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  if (!p.workspace) throw_value("the CUDA elementwise losses need a workspace");
  DevParams d{};
  d.ndim = p.pred.ndim;
  d.n = p.pred.numel();
  for (int i = 0; i < d.ndim; ++i) d.shape[i] = p.pred.shape[i];
  const bool none = p.reduction == Reduction::none;
  const TensorView* views[kViews] = {&p.pred, &p.target, is_none(p.weight) ? nullptr : &p.weight,
                                     is_none(p.pos_weight) ? nullptr : &p.pos_weight,
                                     is_none(p.grad) ? nullptr : &p.grad, none ? &p.loss : nullptr};
  d.contiguous = true;
  for (int v = 0; v < kViews; ++v) {
    if (!views[v]) continue;
    d.v[v].data = views[v]->data;
    d.v[v].dtype = views[v]->dtype;
    for (int i = 0; i < d.ndim; ++i) d.v[v].strides[i] = views[v]->strides[i];
    d.contiguous = d.contiguous && c_contiguous(*views[v], p.pred);
  }
  const int64_t denom = elementwise_denominator(p);
  const bool mean = p.reduction == Reduction::mean;
  d.gscale = mean ? (denom > 0 ? 1.0 / static_cast<double>(denom) : 0.0) : 1.0;
  d.lscale = mean ? (denom > 0 ? 1.0 / static_cast<double>(denom) : 0.0) : 1.0;
  d.want_sum = !none;
  d.stats = static_cast<DevStats*>(p.workspace);
  d.partials = reinterpret_cast<double*>(static_cast<char*>(p.workspace) + kPartialsOffset);
  d.block_stats = reinterpret_cast<unsigned long long*>(static_cast<char*>(p.workspace) + kPartialsOffset +
                                                        sizeof(double) * kMaxBlocks);
  d.loss_out = p.loss.data;
  d.loss_dtype = p.loss.dtype;
  const int64_t want = (d.n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(want < 1 ? 1 : (want > kMaxBlocks ? kMaxBlocks : want));

  const bool balanced_auto = p.kind == ElementwiseLoss::balanced_sigmoid_cross_entropy && p.beta_from_targets;
  if ((balanced_auto || p.kind == ElementwiseLoss::hinge_loss) && d.n) {
    stats_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(d);
    FASTLOSS_CUDA_CHECK(cudaGetLastError());
    stats_finish_kernel<<<1, 1, 0, s>>>(d, blocks);
    FASTLOSS_CUDA_CHECK(cudaGetLastError());
    if (balanced_auto) d.beta_stats = d.stats;
    if (p.kind == ElementwiseLoss::hinge_loss) {
      // The label check must finish before the first write (an error leaves outputs alone).
      DevStats h{};
      FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&h, d.stats, sizeof(h), cudaMemcpyDeviceToHost, s));
      FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
      TargetStats ts;
      ts.zeros = static_cast<int64_t>(h.zeros);
      ts.ones = static_cast<int64_t>(h.ones);
      ts.minus_ones = static_cast<int64_t>(h.minus_ones);
      ts.others = static_cast<int64_t>(h.others);
      ts.first_other = h.others ? static_cast<int64_t>(h.first_other) : -1;
      ts.first_other_value = h.first_other_value;
      check_hinge_labels(p, ts);
    }
  }

  switch (p.kind) {
#define FASTLOSS_LAUNCH_ENTRY(name, functor)                                        \
  case ElementwiseLoss::name:                                                       \
    launch_loss<elementwise::functor>(d, p.pred.dtype, k, blocks, s);               \
    break;
    FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_LAUNCH_ENTRY)
#undef FASTLOSS_LAUNCH_ENTRY
  }
  if (!none) {
    finish_kernel<<<1, kThreads, 0, s>>>(d, d.n ? blocks : 0);
    FASTLOSS_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace cuda
}  // namespace fastloss
