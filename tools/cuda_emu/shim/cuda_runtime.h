// CPU emulation of the few CUDA runtime/device features fastloss kernels use: each block runs
// as blockDim std::threads with a real barrier for __syncthreads, blocks run one after another.
#pragma once
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

struct dim3 { unsigned x = 1, y = 1, z = 1; dim3(unsigned a = 1) : x(a) {} };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* g_bar = nullptr;
inline void __syncthreads() { g_bar->arrive_and_wait(); }

// Warp shuffles synchronise only their warp (a barrier per 32 threads), so a warp may take
// part in shuffles that other warps of its block skip, as on the GPU.
inline double g_shfl[4096];
inline std::vector<std::barrier<>*> g_warp_bar;
template <class T> inline T __shfl_xor_sync(unsigned, T v, int o) {
  const unsigned t = threadIdx.x;
  std::barrier<>* bar = g_warp_bar[t / 32];
  g_shfl[t] = static_cast<double>(v);
  bar->arrive_and_wait();
  const unsigned src = (t & ~31u) | ((t & 31u) ^ unsigned(o));
  T r = static_cast<T>(g_shfl[src]);
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
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount };
inline const char* cudaGetErrorString(cudaError_t) { return "emulated"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) { std::memset(d, v, n); return cudaSuccess; }
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) { *p = std::malloc(n ? n : 1); return cudaSuccess; }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) { *v = 1; return cudaSuccess; }

inline void emu_launch(unsigned grid, unsigned block, const std::function<void()>& f) {
  gridDim = dim3(grid);
  blockDim = dim3(block);
  for (unsigned b = 0; b < grid; ++b) {
    std::barrier<> bar(block);
    g_bar = &bar;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    g_warp_bar.clear();
    for (unsigned w = 0; w * 32 < block; ++w) {
      warps.emplace_back(new std::barrier<>(std::min(32u, block - w * 32)));
      g_warp_bar.push_back(warps.back().get());
    }
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < block; ++t)
      ts.emplace_back([&, t, b] { threadIdx = dim3(t); blockIdx = dim3(b); f(); });
    for (auto& th : ts) th.join();
  }
}
