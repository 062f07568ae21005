// CPU emulation of the few CUDA runtime/device features fastloss kernels use: each block runs
// as blockDim std::threads with a real barrier for __syncthreads; the blocks of a cluster run
// together (their threads meet at a cluster barrier and see each other's dynamic shared
// memory), clusters run one after another.
//
// The device is one multiprocessor of a Hopper GPU, or with FASTLOSS_EMU_CC=8 of an A100
// (163 KB opt-in shared memory, no clusters). FASTLOSS_EMU_PTX=80 says the kernels were built
// for sm_80 only (JIT-compiled PTX on a newer GPU): the cluster helpers then trap, as they do
// there. Launches are refused as the GPU refuses them (cudaGetLastError says so): more
// dynamic shared memory than the kernel's limit (48 KB unless raised with
// cudaFuncSetAttribute), clusters below sm_90, more than 1024 threads.
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
#include <map>
#include <memory>
#include <mutex>
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
template <class T> inline T __ldcg(const T* p) { return std::atomic_ref<T>(*const_cast<T*>(p)).load(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
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
inline unsigned atomicAdd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_add(v); }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  std::atomic_ref<unsigned long long> a(*p);
  unsigned long long cur = a.load();
  while (v < cur && !a.compare_exchange_weak(cur, v)) {}
  return cur;
}

typedef void* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount, cudaDevAttrComputeCapabilityMajor, cudaDevAttrMaxSharedMemoryPerBlockOptin };
inline const char* cudaGetErrorString(cudaError_t e) { return e ? "emulated launch refused" : "emulated"; }
inline thread_local cudaError_t g_last_error = cudaSuccess;
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last_error;
  g_last_error = cudaSuccess;
  return e;
}
inline int emu_env(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
inline int emu_cc() { return emu_env("FASTLOSS_EMU_CC", 9); }
inline int emu_ptx() { return emu_env("FASTLOSS_EMU_PTX", 90); }
inline int emu_smem_optin() { return emu_cc() >= 9 ? 227 * 1024 : 163 * 1024; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) { std::memset(d, v, n); return cudaSuccess; }
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) { *p = std::malloc(n ? n : 1); return cudaSuccess; }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrComputeCapabilityMajor ? emu_cc() : a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? emu_smem_optin() : 1;
  return cudaSuccess;
}

// Each kernel's dynamic shared memory limit (cudaFuncAttributeMaxDynamicSharedMemorySize).
inline std::mutex g_func_mu;
inline std::map<const void*, int> g_func_smem;
inline int emu_smem_limit(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_func_mu);
  auto it = g_func_smem.find(kernel);
  return it == g_func_smem.end() ? 48 * 1024 : it->second;
}

inline void emu_launch(const void* kernel, unsigned grid, unsigned block, const std::function<void()>& f,
                       unsigned cluster = 1, size_t smem_bytes = 0) {
  if (block == 0 || block > 1024 || grid == 0 || grid % cluster != 0 || (cluster > 1 && emu_cc() < 9) ||
      smem_bytes > static_cast<size_t>(emu_smem_limit(kernel))) {
    g_last_error = cudaErrorInvalidValue;  // the GPU refuses the launch; nothing runs
    return;
  }
  gridDim = dim3(grid);
  blockDim = dim3(block);
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
struct cudaFuncAttributes {
  size_t sharedSizeBytes;
  int maxDynamicSharedSizeBytes;
  int ptxVersion;
};
template <class F> inline cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute, int v) {
  if (v < 0 || v > emu_smem_optin()) return g_last_error = cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(g_func_mu);
  g_func_smem[reinterpret_cast<const void*>(kernel)] = v;
  return cudaSuccess;
}
// Static shared memory is not known here (__shared__ is `static`): reported as none.
template <class F> inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, F* kernel) {
  a->sharedSizeBytes = 0;
  a->maxDynamicSharedSizeBytes = emu_smem_limit(reinterpret_cast<const void*>(kernel));
  a->ptxVersion = emu_ptx();
  return cudaSuccess;
}
// Few resident blocks, so a block or cluster loops over several rows.
template <class F> inline cudaError_t cudaOccupancyMaxActiveClusters(int* n, F, const cudaLaunchConfig_t*) {
  if (emu_cc() < 9) return g_last_error = cudaErrorInvalidValue;
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
  emu_launch(reinterpret_cast<const void*>(kernel), cfg->gridDim.x, cfg->blockDim.x, [&] { kernel(args...); }, cluster,
             cfg->dynamicSmemBytes);
  return cudaGetLastError();
}
