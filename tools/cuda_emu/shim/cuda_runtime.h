// CPU emulation of the few CUDA runtime/device features fastloss kernels use: each block runs
// as blockDim std::threads with a real barrier for __syncthreads; the blocks of a cluster run
// together (their threads meet at a cluster barrier and see each other's dynamic shared
// memory), clusters run one after another.
#pragma once
#define FASTLOSS_CUDA_EMU 1
#include <immintrin.h>
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

// What a thread knows of its block: its barrier, its dynamic shared memory, its rank in the
// cluster; the cluster's barrier and every block's shared memory are global (one cluster runs
// at a time).
struct EmuBlock {
  std::barrier<>* bar;
  unsigned char* smem;
  unsigned rank;
};
inline thread_local EmuBlock* t_block = nullptr;
inline std::barrier<>* g_cluster_bar = nullptr;
inline std::vector<unsigned char*> g_cluster_smem;
inline void __syncthreads() { t_block->bar->arrive_and_wait(); }
inline unsigned char* emu_dynamic_smem() { return t_block->smem; }
[[noreturn]] inline void __trap() { std::abort(); }

// Warp shuffles synchronise only their warp (a barrier per 32 threads), so a warp may take
// part in shuffles that other warps of its block skip, as on the GPU.
inline double g_shfl[8 * 1024];
inline std::vector<std::barrier<>*> g_warp_bar;
inline unsigned emu_warps_per_block() { return (blockDim.x + 31) / 32; }
template <class T> inline T __shfl_xor_sync(unsigned, T v, int o) {
  const unsigned t = threadIdx.x, base = t_block->rank * emu_warps_per_block() * 32;
  std::barrier<>* bar = g_warp_bar[t_block->rank * emu_warps_per_block() + t / 32];
  g_shfl[base + t] = static_cast<double>(v);
  bar->arrive_and_wait();
  const unsigned src = (t & ~31u) | ((t & 31u) ^ unsigned(o));
  T r = static_cast<T>(g_shfl[base + src]);
  bar->arrive_and_wait();
  return r;
}

template <class T> inline T __ldg(const T* p) { return *p; }
struct float4 { float x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
using std::isnan;
using std::min;
using std::max;
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clzll(long long v) { return v ? __builtin_clzll(static_cast<unsigned long long>(v)) : 64; }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
using std::isinf;
using std::exp;
using std::log;

inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline double atomicAdd(double* p, double v) { return std::atomic_ref<double>(*p).fetch_add(v); }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  std::atomic_ref<unsigned long long> a(*p);
  unsigned long long cur = a.load();
  while (v < cur && !a.compare_exchange_weak(cur, v)) {}
  return cur;
}

typedef void* cudaStream_t;
enum cudaError_t { cudaSuccess = 0 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount, cudaDevAttrComputeCapabilityMajor, cudaDevAttrMaxSharedMemoryPerBlockOptin };
inline const char* cudaGetErrorString(cudaError_t) { return "emulated"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) { std::memset(d, v, n); return cudaSuccess; }
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) { *p = std::malloc(n ? n : 1); return cudaSuccess; }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
// One multiprocessor of a Hopper GPU.
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrComputeCapabilityMajor ? 9 : a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? 227 * 1024 : 1;
  return cudaSuccess;
}

inline void emu_launch(unsigned grid, unsigned block, const std::function<void()>& f, unsigned cluster = 1,
                       size_t smem_bytes = 0) {
  gridDim = dim3(grid);
  blockDim = dim3(block);
  if (grid % cluster != 0) std::abort();  // as the GPU refuses the launch
  const unsigned warps = emu_warps_per_block();
  if (cluster * warps * 32 > sizeof(g_shfl) / sizeof(g_shfl[0])) std::abort();
  for (unsigned first = 0; first < grid; first += cluster) {
    std::vector<std::unique_ptr<std::barrier<>>> bars, warp_bars;
    std::vector<std::vector<unsigned char>> smem(cluster, std::vector<unsigned char>(smem_bytes + 16));
    std::vector<EmuBlock> blocks(cluster);
    std::barrier<> cluster_bar(cluster * block);
    g_cluster_bar = &cluster_bar;
    g_cluster_smem.clear();
    g_warp_bar.clear();
    for (unsigned k = 0; k < cluster; ++k) {
      bars.emplace_back(new std::barrier<>(block));
      unsigned char* p = smem[k].data();
      p += (16 - reinterpret_cast<uintptr_t>(p) % 16) % 16;
      blocks[k] = EmuBlock{bars.back().get(), p, k};
      g_cluster_smem.push_back(p);
      for (unsigned w = 0; w < warps; ++w) {
        warp_bars.emplace_back(new std::barrier<>(std::min(32u, block - w * 32)));
        g_warp_bar.push_back(warp_bars.back().get());
      }
    }
    std::vector<std::thread> ts;
    for (unsigned k = 0; k < cluster; ++k)
      for (unsigned t = 0; t < block; ++t)
        ts.emplace_back([&, t, k] {
          threadIdx = dim3(t);
          blockIdx = dim3(first + k);
          t_block = &blocks[k];
          f();
        });
    for (auto& th : ts) th.join();
  }
}

// Launches with attributes (cluster dimensions) and dynamic shared memory.
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
enum cudaLaunchAttributeID { cudaLaunchAttributeClusterDimension };
struct cudaLaunchAttribute {
  cudaLaunchAttributeID id;
  struct { struct { unsigned x, y, z; } clusterDim; } val;
};
struct cudaLaunchConfig_t {
  dim3 gridDim, blockDim;
  size_t dynamicSmemBytes = 0;
  cudaStream_t stream = nullptr;
  cudaLaunchAttribute* attrs = nullptr;
  unsigned numAttrs = 0;
};
template <class F> inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) { return cudaSuccess; }
// Few resident blocks, so a block or cluster loops over several rows.
template <class F> inline cudaError_t cudaOccupancyMaxActiveClusters(int* n, F, const cudaLaunchConfig_t*) {
  *n = 3;
  return cudaSuccess;
}
template <class F> inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, F, int, size_t) {
  *n = 2;
  return cudaSuccess;
}
template <class... P, class... A>
inline cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* cfg, void (*kernel)(P...), A&&... args) {
  unsigned cluster = 1;
  for (unsigned i = 0; i < cfg->numAttrs; ++i)
    if (cfg->attrs[i].id == cudaLaunchAttributeClusterDimension) cluster = cfg->attrs[i].val.clusterDim.x;
  emu_launch(cfg->gridDim.x, cfg->blockDim.x, [&] { kernel(args...); }, cluster, cfg->dynamicSmemBytes);
  return cudaSuccess;
}
