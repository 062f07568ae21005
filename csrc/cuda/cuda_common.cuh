// Device-side helpers shared by every CUDA kernel: error checks, strided views, typed loads,
// warp/block reductions, the online (max, sum-of-exp) pair.
#pragma once
#include <cooperative_groups.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "fastloss/errors.h"
#include "fastloss/tensor.h"

namespace fastloss {
namespace cuda {

// Blocks for `work` items at `per_block` each, capped at `per_sm` blocks per SM of the current
// device (grid-stride loops do the rest).
inline int grid_for(int64_t work, int64_t per_block, int per_sm = 32) {
  int dev = 0, sms = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const int64_t want = (work + per_block - 1) / per_block;
  const int64_t cap = int64_t(sms > 0 ? sms : 80) * per_sm;
  return static_cast<int>(want < 1 ? 1 : want < cap ? want : cap);
}

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(ErrorKind::runtime, std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}
#define FASTLOSS_CUDA_CHECK(expr) ::fastloss::cuda::check((expr), #expr)

// What the current device lets a kernel do, looked up once per (kernel, device):
//  - max_dynamic_smem: the dynamic shared memory a launch may ask for. The kernel's limit is
//    raised to the device's opt-in maximum less the kernel's static shared memory. It is
//    always set to that one value, never to a call's own size: the attribute belongs to the
//    kernel, so per-call values would race between host threads launching different sizes.
//    (A cudaDeviceReset() would put it back to 48 KB behind this cache: launches above that
//    then fail loudly in CTC and fall back to the two-read kernel in cross-entropy.)
//  - clusters: thread-block clusters can run. That needs an sm_90 device *and* code compiled
//    for sm_90: a package built for older targets runs JIT-compiled PTX where the cluster
//    helpers below are traps.
struct KernelLimits {
  size_t max_dynamic_smem = 0;
  bool clusters = false;
};

template <class Kernel> KernelLimits kernel_limits(Kernel* kernel) {
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, KernelLimits> known;
  int dev = 0;
  cudaGetDevice(&dev);
  const std::pair<const void*, int> key(reinterpret_cast<const void*>(kernel), dev);
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  KernelLimits k;
  int major = 0, optin = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  cudaFuncAttributes fa{};
  if (cudaFuncGetAttributes(&fa, kernel) != cudaSuccess) {
    cudaGetLastError();
    return k;  // not cached: a later call may succeed
  }
  const int most = optin - static_cast<int>(fa.sharedSizeBytes);
  k.max_dynamic_smem = static_cast<size_t>(fa.maxDynamicSharedSizeBytes > 0 ? fa.maxDynamicSharedSizeBytes : 0);
  if (most > fa.maxDynamicSharedSizeBytes) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, most) == cudaSuccess)
      k.max_dynamic_smem = static_cast<size_t>(most);
    else
      cudaGetLastError();  // clear only this refusal, not an earlier launch's error
  }
  k.clusters = major >= 9 && fa.ptxVersion >= 90;
  known.emplace(key, k);
  return k;
}

// A view's row geometry by value: offsets of row r (leading `rank` dims, C-ordered).
struct RowGeom {
  int rank;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};

inline RowGeom row_geom(const TensorView& t, int rank) {
  RowGeom g;
  g.rank = rank;
  for (int d = 0; d < kMaxDims; ++d) {
    g.shape[d] = d < rank ? t.shape[d] : 1;
    g.strides[d] = d < rank && t.data ? t.strides[d] : 0;
  }
  return g;
}

__device__ __forceinline__ int64_t row_offset(const RowGeom& g, int64_t r) {
  int64_t off = 0;
  for (int d = g.rank - 1; d >= 0; --d) {
    const int64_t n = g.shape[d];
    off += (r % n) * g.strides[d];
    r /= n;
  }
  return off;
}

// The block's dynamic shared memory (the launch's dynamicSmemBytes), 16-byte aligned.
__device__ __forceinline__ unsigned char* dynamic_smem() {
#ifdef FASTLOSS_CUDA_EMU
  return emu_dynamic_smem();
#else
  extern __shared__ __align__(16) unsigned char fastloss_dynamic_smem[];
  return fastloss_dynamic_smem;
#endif
}

// Thread-block clusters (sm_90): this block's rank in its cluster, a barrier over the whole
// cluster (release/acquire: shared-memory writes before it are visible to every block after
// it), and the address of the same shared-memory variable in another block of the cluster.
// Other architectures never launch clusters (the host checks the device), so there these
// trap instead of compiling to nothing.
#if defined(FASTLOSS_CUDA_EMU) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900)
#define FASTLOSS_HAS_CLUSTERS 1
#endif
__device__ __forceinline__ unsigned cluster_rank() {
#ifdef FASTLOSS_HAS_CLUSTERS
  return cooperative_groups::this_cluster().block_rank();
#else
  __trap();
  return 0;
#endif
}
__device__ __forceinline__ void cluster_sync() {
#ifdef FASTLOSS_HAS_CLUSTERS
  cooperative_groups::this_cluster().sync();
#else
  __trap();
#endif
}
template <class T> __device__ __forceinline__ T* cluster_map(T* p, unsigned rank) {
#ifdef FASTLOSS_HAS_CLUSTERS
  return cooperative_groups::this_cluster().map_shared_rank(p, rank);
#else
  __trap();
  return p;
#endif
}

template <class T> struct AccOf { typedef float type; };
template <> struct AccOf<double> { typedef double type; };

template <class A> __device__ __forceinline__ A to_acc(float v) { return static_cast<A>(v); }
__device__ __forceinline__ float load_f(const float* p, int64_t i) { return __ldg(p + i); }
__device__ __forceinline__ double load_f(const double* p, int64_t i) { return __ldg(p + i); }
__device__ __forceinline__ float load_f(const __half* p, int64_t i) { return __half2float(p[i]); }
// Plain loads (shared memory: no read-only-cache path).
__device__ __forceinline__ float load_shared(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ double load_shared(const double* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_shared(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void store_f(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store_f(double* p, int64_t i, double v) { p[i] = v; }
__device__ __forceinline__ void store_f(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }

__device__ __forceinline__ float fexp(float x) { return __expf(x); }
__device__ __forceinline__ double fexp(double x) { return exp(x); }
// log(x) for x >= 1 (a sum of exponentials whose largest term is 1), to float rounding.
// --use_fast_math turns logf into __logf, whose absolute error (~4e-7 near 1) would be a large
// relative error in the loss of a confidently right row; it leaves log1pf alone, and x - 1 is
// exact here.
__device__ __forceinline__ float flog_ge1(float x) { return log1pf(x - 1.f); }
__device__ __forceinline__ double flog_ge1(double x) { return log(x); }

template <class A> __device__ __forceinline__ A ninf() { return -INFINITY; }

// Online softmax statistics: running max m and sum s of exp(x - m).
template <class A> struct MaxSum {
  A m, s;
  __device__ __forceinline__ void init() { m = ninf<A>(); s = 0; }
  __device__ __forceinline__ void add(A x) {
    if (x > m) {
      s = s * fexp(m - x) + A(1);  // m = -inf: exp(-inf) = 0
      m = x;
    } else if (isnan(x)) {
      s = x;
    } else if (x != ninf<A>()) {
      s += fexp(x - m);
    }
  }
  __device__ __forceinline__ void merge(A om, A os) {
    const A nm = om > m ? om : m;
    if (nm == ninf<A>()) { s += os; return; }
    s = s * fexp(m - nm) + os * fexp(om - nm);
    m = nm;
  }
};

template <class A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class A> __device__ __forceinline__ void warp_maxsum(MaxSum<A>& ms) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const A om = __shfl_xor_sync(0xffffffffu, ms.m, o);
    const A os = __shfl_xor_sync(0xffffffffu, ms.s, o);
    ms.merge(om, os);
  }
}

// Sum over the block (fixed order: deterministic); thread 0 holds the result.
template <class A> __device__ A block_sum(A v) {
  __shared__ A smem[32];
  v = warp_sum(v);
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) v = warp_sum(threadIdx.x < (blockDim.x + 31) / 32 ? smem[threadIdx.x] : A(0));
  return v;
}

// Block-wide reduction of kN sums plus one MaxSum; every thread gets the result.
// `smem` needs 32 * (kN + 2) values of A. Call from all threads of the block.
template <class A, int kN>
__device__ void block_reduce(MaxSum<A>& ms, A (&v)[kN], A* smem) {
  warp_maxsum(ms);
#pragma unroll
  for (int k = 0; k < kN; ++k) v[k] = warp_sum(v[k]);
  const int warps = (blockDim.x + 31) / 32, lane = threadIdx.x % 32, wid = threadIdx.x / 32;
  if (warps == 1) return;
  __syncthreads();
  if (lane == 0) {
    smem[wid] = ms.m;
    smem[32 + wid] = ms.s;
#pragma unroll
    for (int k = 0; k < kN; ++k) smem[64 + 32 * k + wid] = v[k];
  }
  __syncthreads();
  MaxSum<A> r;
  r.m = lane < warps ? smem[lane] : ninf<A>();
  r.s = lane < warps ? smem[32 + lane] : A(0);
  warp_maxsum(r);
  ms = r;
#pragma unroll
  for (int k = 0; k < kN; ++k) v[k] = warp_sum(lane < warps ? smem[64 + 32 * k + lane] : A(0));
}

}  // namespace cuda
}  // namespace fastloss
