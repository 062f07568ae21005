// Softmax cross-entropy and NLL for CuPy arrays. The math is the CPU kernel's (see
// csrc/cpu/cross_entropy.cpp): loss = A*lse - (row sums), grad = scale*(p*A' - coef).
//
// Launches on the caller's stream, in order:
//   1. labels_kernel: checks labels (first bad row -> device flag) and sums the "mean"
//      denominator (soft labels: the row count, known on the host, so skipped);
//   2. the row kernel: rows_kernel, one warp per row (C <= 1024) or one block per row, where
//      pass 1 reads the row for the online (max, sum) and the side sums and pass 2 reads it
//      again to write the gradient; or, for long rows with a gradient, cached_rows_kernel,
//      which keeps the row in the shared memory of a block or a cluster of blocks and so
//      reads it from device memory once;
//   3. finish_kernel: sums the per-row losses in a fixed order (deterministic) and scales.
// Integer labels need one device-to-host copy of the flag after the launches (an IndexError
// must be raised); probability labels run fully asynchronously.
#include <atomic>
#include <mutex>

#include "cuda_common.cuh"
#include "fastloss/cross_entropy.h"

namespace fastloss {
namespace cuda {
namespace {

struct Workspace {
  double denom;                  // "mean" denominator (hard labels), from labels_kernel
  unsigned long long first_bad;  // first row with a bad label, ~0 if none
  double weight_sum;             // sum of the class weights, from weight_sum_kernel
  unsigned blocks_done;          // labels_kernel's blocks that have written their partial
  unsigned unused;
  double pad[4];
  // followed by double row_loss[rows] (labels_kernel's per-block partials before that)
};

static_assert(sizeof(Workspace) == 64, "bind_cross_entropy.cpp sizes the workspace as 64 + 8 * rows");

struct DevParams {
  RowGeom logits_rows, labels_rows, grad_rows, loss_rows;
  int64_t C, rows;
  int64_t logits_cs, labels_cs, grad_cs, weight_stride;
  const void* logits;
  const void* labels;
  const void* weight;  // float32 or float64 (weight_f64)
  bool weight_f64;
  void* grad;
  void* loss;
  int64_t ignore_index;
  double eps, z;
  int reduction;  // 0 none, 1 mean, 2 sum
  double static_denom;  // soft labels: rows
  Workspace* ws;
};

template <class L> __device__ __forceinline__ int64_t load_label(const L* p, int64_t i) {
  return static_cast<int64_t>(p[i]);
}
template <class A> __device__ __forceinline__ A load_weight(const DevParams& p, int64_t c) {
  return p.weight_f64 ? static_cast<A>(static_cast<const double*>(p.weight)[c * p.weight_stride])
                      : static_cast<A>(static_cast<const float*>(p.weight)[c * p.weight_stride]);
}

// Checks the labels and sums the "mean" denominator in a fixed order, so that it has the same
// bits on every run (float64 weights included): each block sums its rows, writes its partial
// into the row-loss area (unused until the row kernels run; there are fewer blocks than
// rows), and the last block to finish adds the partials in block order.
constexpr int kLabelThreads = 256;
template <class L>
__global__ void __launch_bounds__(kLabelThreads) labels_kernel(DevParams p) {
  __shared__ bool last;
  double acc = 0;
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < p.rows; r += int64_t(gridDim.x) * blockDim.x) {
    const int64_t y = load_label(static_cast<const L*>(p.labels), row_offset(p.labels_rows, r));
    if (y == p.ignore_index) continue;
    if (y < 0 || y >= p.C) {
      atomicMin(&p.ws->first_bad, static_cast<unsigned long long>(r));
      continue;
    }
    acc += p.weight ? load_weight<double>(p, y) : 1.0;
  }
  acc = block_sum(acc);
  double* partial = reinterpret_cast<double*>(p.ws + 1);
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = acc;
    __threadfence();  // the partial is visible before the count that announces it
    last = atomicAdd(&p.ws->blocks_done, 1u) == gridDim.x - 1;
    if (last) __threadfence();  // acquire: the other blocks' partials, announced by the count
  }
  __syncthreads();  // also ends block_sum's use of its shared memory before the second call
  if (!last) return;
  double total = 0;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) total += __ldcg(partial + b);  // from L2, not a stale L1
  total = block_sum(total);
  if (threadIdx.x == 0) p.ws->denom = total;
}

// Four consecutive columns [4q, 4q+4) of a row: one 16-byte load when the row is contiguous
// and aligned, else four strided loads feeding the same arithmetic (so a strided view gives
// bit-for-bit the contiguous answer). Several quads per thread are in flight at once.
template <class T, class A>
__device__ __forceinline__ void load4(const T* base, int64_t o, int64_t cs, bool vec, A (&v)[4]) {
  if (sizeof(T) == 4 && vec) {
    const float4 q = __ldg(reinterpret_cast<const float4*>(base + o));
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = load_f(base, o + k * cs);
  }
}
template <class T, class A>
__device__ __forceinline__ void store4(T* base, int64_t o, int64_t cs, bool vec, const A (&v)[4]) {
  if (sizeof(T) == 4 && vec) {
    __stcs(reinterpret_cast<float4*>(base + o), make_float4(float(v[0]), float(v[1]), float(v[2]), float(v[3])));
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) store_f(base, o + k * cs, v[k]);
  }
}
template <class T> __device__ __forceinline__ bool aligned16(const T* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// The per-row math of both row kernels. consume() folds one column into the online
// (max, sum) and the side sums; finish() turns the row's totals into its loss and the
// gradient's factors; grad() is then one gradient entry.
template <class A, bool kSoft>
struct RowMath {
  const DevParams& p;
  A eps, eps_c, z, scale, wsum;
  bool weighted;
  // set by finish()
  int64_t y;
  A m, kA, kc, ky;

  __device__ explicit RowMath(const DevParams& params) : p(params) {
    eps = static_cast<A>(p.eps);
    eps_c = p.C ? eps / static_cast<A>(p.C) : A(0);
    z = static_cast<A>(p.z);
    weighted = p.weight != nullptr;
    const A denom = kSoft ? static_cast<A>(p.static_denom) : static_cast<A>(p.ws->denom);
    scale = p.reduction == 1 ? (denom != A(0) ? A(1) / denom : A(0)) : A(1);
    // sum of the class weights, computed once by weight_sum_kernel (only needed with smoothing)
    wsum = weighted && eps != A(0) ? static_cast<A>(p.ws->weight_sum) : static_cast<A>(p.C);
  }

  // side: soft labels: sum w t', sum w t' x; hard labels with smoothing: sum w x
  __device__ __forceinline__ void consume(MaxSum<A>& ms, A (&side)[2], int64_t c, A x, A t) const {
    ms.add(x);
    if (kSoft) {
      A wt = t * (A(1) - eps) + eps_c;
      if (weighted) wt *= load_weight<A>(p, c);
      side[0] += wt;
      side[1] += wt == A(0) ? A(0) : wt * x;
    } else if (eps != A(0)) {
      side[0] += weighted ? load_weight<A>(p, c) * x : x;
    }
  }

  __device__ __forceinline__ A finish(const MaxSum<A>& ms, const A (&side)[2], int64_t label, A xy) {
    const A log_s = flog_ge1(ms.s), lse = ms.m + log_s;
    A loss, Acoef;
    if (kSoft) {
      loss = side[0] * lse - side[1];
      Acoef = side[0];
    } else {
      const A wy = weighted ? load_weight<A>(p, label) : A(1);
      loss = (A(1) - eps) * wy * ((ms.m - xy) + log_s);
      if (eps != A(0)) loss += eps_c * (wsum * lse - side[0]);
      Acoef = (A(1) - eps) * wy + eps_c * wsum;
    }
    if (z != A(0)) {
      loss += z * lse * lse;
      Acoef += A(2) * z * lse;
    }
    y = label;
    m = ms.m;
    kA = scale * Acoef / ms.s;
    kc = scale * eps_c;
    ky = kSoft ? A(0) : scale * (A(1) - eps) * (weighted ? load_weight<A>(p, label) : A(1));
    return loss;
  }

  // p_c = exp(x_c - max) / sum: exact for huge flat rows (exp(x - lse) is not)
  __device__ __forceinline__ A grad(int64_t c, A x, A t) const {
    A coef = kSoft ? t * (scale * (A(1) - eps)) + kc : kc;
    if (weighted) coef *= load_weight<A>(p, c);
    if (!kSoft && c == y) coef += ky;
    return fexp(x - m) * kA - coef;
  }
};

// The start of a row: its label (hard labels), whether it is skipped, and x_y, read before
// anything can write the gradient (grad_out may be the logits).
template <class T, class L, bool kSoft>
__device__ __forceinline__ bool row_label(const DevParams& p, int64_t xo, int64_t lo, int64_t& y, typename AccOf<T>::type& xy) {
  y = -1;
  xy = 0;
  if (p.C == 0) return true;
  if (kSoft) return false;
  y = load_label(static_cast<const L*>(p.labels), lo);
  if (y == p.ignore_index || y < 0 || y >= p.C) return true;  // bad labels raise on the host
  xy = load_f(static_cast<const T*>(p.logits), xo + y * p.logits_cs);
  return false;
}

template <class T, class A> __device__ __forceinline__ void store_row_loss(const DevParams& p, int64_t r, A loss) {
  if (p.reduction == 0) store_f(static_cast<T*>(p.loss), row_offset(p.loss_rows, r), loss);
  else reinterpret_cast<double*>(p.ws + 1)[r] = static_cast<double>(loss);
}

// A group of threads cooperates on a row: a warp (kWarpRows, C <= 1024) or the whole block.
// Thread `lane` owns quads lane, lane + group, ... and then the tail columns 4*(C/4) + lane.
// Pass 1 reads the row for (max, sum), pass 2 reads it again to write the gradient (short
// rows and rows too long for cached_rows_kernel; the second read mostly hits L1/L2).
template <class T, class L, bool kSoft, bool kGrad, bool kWarpRows>
__global__ void __launch_bounds__(kWarpRows ? 256 : 512, kWarpRows ? 1 : 2) rows_kernel(DevParams p) {
  typedef typename AccOf<T>::type A;
  __shared__ A smem[32 * 4];
  const int lane = kWarpRows ? threadIdx.x % 32 : threadIdx.x;
  const int group = kWarpRows ? 32 : blockDim.x;
  const int64_t groups_per_block = kWarpRows ? blockDim.x / 32 : 1;
  const int64_t first = blockIdx.x * groups_per_block + (kWarpRows ? threadIdx.x / 32 : 0);
  const int64_t stride = int64_t(gridDim.x) * groups_per_block;
  const T* logits = static_cast<const T*>(p.logits);
  const T* targets = static_cast<const T*>(p.labels);
  RowMath<A, kSoft> math(p);
  const int64_t quads = p.C / 4;

  for (int64_t r = first; r < p.rows; r += stride) {  // uniform per group
    const int64_t xo = row_offset(p.logits_rows, r);
    const int64_t lo = row_offset(p.labels_rows, r);
    int64_t y;
    A xy;
    const bool skip = row_label<T, L, kSoft>(p, xo, lo, y, xy);
    A loss = 0;
    if (!skip) {
      const bool vx = p.logits_cs == 1 && aligned16(logits + xo);
      const bool vt = kSoft && p.labels_cs == 1 && aligned16(targets + lo);
      MaxSum<A> ms;
      ms.init();
      A side[2] = {0, 0};
      for (int64_t q = lane; q < quads; q += 2 * group) {
        A a[4], b[4], ta[4] = {0, 0, 0, 0}, tb[4] = {0, 0, 0, 0};
        const bool hb = q + group < quads;
        load4(logits, xo + 4 * q * p.logits_cs, p.logits_cs, vx, a);
        if (hb) load4(logits, xo + 4 * (q + group) * p.logits_cs, p.logits_cs, vx, b);
        if (kSoft) {
          load4(targets, lo + 4 * q * p.labels_cs, p.labels_cs, vt, ta);
          if (hb) load4(targets, lo + 4 * (q + group) * p.labels_cs, p.labels_cs, vt, tb);
        }
#pragma unroll
        for (int k = 0; k < 4; ++k) math.consume(ms, side, 4 * q + k, a[k], ta[k]);
        if (hb) {
#pragma unroll
          for (int k = 0; k < 4; ++k) math.consume(ms, side, 4 * (q + group) + k, b[k], tb[k]);
        }
      }
      for (int64_t c = 4 * quads + lane; c < p.C; c += group)
        math.consume(ms, side, c, load_f(logits, xo + c * p.logits_cs),
                     kSoft ? A(load_f(targets, lo + c * p.labels_cs)) : A(0));
      if (kWarpRows) {
        warp_maxsum(ms);
        side[0] = warp_sum(side[0]);
        side[1] = warp_sum(side[1]);
      } else {
        block_reduce<A, 2>(ms, side, smem);
      }
      loss = math.finish(ms, side, y, xy);
      if (kGrad) {
        T* g = static_cast<T*>(p.grad);
        const int64_t go = row_offset(p.grad_rows, r);
        const bool vg = p.grad_cs == 1 && aligned16(g + go);
        for (int64_t q = lane; q < quads; q += group) {
          A a[4], ta[4] = {0, 0, 0, 0}, out[4];
          load4(logits, xo + 4 * q * p.logits_cs, p.logits_cs, vx, a);
          if (kSoft) load4(targets, lo + 4 * q * p.labels_cs, p.labels_cs, vt, ta);
#pragma unroll
          for (int k = 0; k < 4; ++k) out[k] = math.grad(4 * q + k, a[k], ta[k]);
          store4(g, go + 4 * q * p.grad_cs, p.grad_cs, vg, out);
        }
        for (int64_t c = 4 * quads + lane; c < p.C; c += group)
          store_f(g, go + c * p.grad_cs,
                  math.grad(c, load_f(logits, xo + c * p.logits_cs), kSoft ? A(load_f(targets, lo + c * p.labels_cs)) : A(0)));
      }
    } else if (kGrad) {
      T* g = static_cast<T*>(p.grad);
      const int64_t go = row_offset(p.grad_rows, r);
      for (int64_t c = lane; c < p.C; c += group) store_f(g, go + c * p.grad_cs, A(0));
    }
    if (lane == 0) store_row_loss<T>(p, r, loss);
  }
}

// Four consecutive shared-memory values (16-byte vectors for 4-byte types: conflict-free when
// consecutive threads take consecutive quads).
template <class T, class A> __device__ __forceinline__ void smem_store4(T* s, const A (&v)[4]) {
  if (sizeof(T) == 4) {
    *reinterpret_cast<float4*>(s) = make_float4(float(v[0]), float(v[1]), float(v[2]), float(v[3]));
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) store_f(s, k, v[k]);
  }
}
template <class T, class A> __device__ __forceinline__ void smem_load4(const T* s, A (&v)[4]) {
  if (sizeof(T) == 4) {
    const float4 q = *reinterpret_cast<const float4*>(s);
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = load_shared(s, k);
  }
}

constexpr int kCachedThreads = 512;
constexpr int kCachedUnroll = 4;  // quads per thread in flight in pass 1

// Head of cached_rows_kernel's dynamic shared memory; the row chunk follows at
// cached_header_bytes() (then the targets chunk, for probability labels).
template <class A> struct CachedHeader {
  A slot[2][4];  // this block's partial (max, sum, side0, side1), read by the whole cluster;
                 // two slots by exchange parity, so one cluster barrier per row suffices
  A merged[4];   // the cluster's totals, from thread 0 to the block
  A reduce[32 * 4];
};
template <class A> __host__ __device__ constexpr size_t cached_header_bytes() { return (sizeof(CachedHeader<A>) + 15) / 16 * 16; }

// Rows held in shared memory, so the logits are read from device memory once. A cluster of K
// blocks (K = 1 on any GPU; 2, 4, 8 on sm_90) owns a row at a time, block `rank` the columns
// [rank * chunk, (rank + 1) * chunk) (chunk a multiple of 4). Pass 1 streams the chunk into
// shared memory while folding it into (max, sum) and the side sums; the blocks exchange their
// partial totals through distributed shared memory and all merge them in rank order (the same
// bits in every block); pass 2 writes the gradient from shared memory. Each thread reads back
// in pass 2 exactly the quads it stored in pass 1, so no barrier separates the passes beyond
// the reduction's.
template <class T, class L, bool kSoft, bool kGrad>
__global__ void __launch_bounds__(kCachedThreads, kSoft ? 1 : 2) cached_rows_kernel(DevParams p, int64_t chunk, int K) {
  typedef typename AccOf<T>::type A;
  unsigned char* raw = dynamic_smem();
  CachedHeader<A>& head = *reinterpret_cast<CachedHeader<A>*>(raw);
  T* xs = reinterpret_cast<T*>(raw + cached_header_bytes<A>());
  T* ts = xs + chunk;
  const T* logits = static_cast<const T*>(p.logits);
  const T* targets = static_cast<const T*>(p.labels);
  const unsigned rank = K > 1 ? cluster_rank() : 0u;
  const int64_t c0 = int64_t(rank) * chunk;
  const int64_t n = p.C > c0 ? min(chunk, p.C - c0) : 0, nq = n / 4;
  const int tid = threadIdx.x, nt = blockDim.x;
  RowMath<A, kSoft> math(p);
  unsigned exchanges = 0;

  for (int64_t r = blockIdx.x / K; r < p.rows; r += gridDim.x / K) {  // uniform per cluster
    const int64_t x_row = row_offset(p.logits_rows, r), l_row = row_offset(p.labels_rows, r);
    int64_t y;
    A xy;
    const bool skip = row_label<T, L, kSoft>(p, x_row, l_row, y, xy);
    const int64_t xo = x_row + c0 * p.logits_cs, lo = l_row + c0 * p.labels_cs;  // this block's chunk
    T* g = static_cast<T*>(p.grad);
    const int64_t go = kGrad ? row_offset(p.grad_rows, r) + c0 * p.grad_cs : 0;
    A loss = 0;
    if (!skip) {
      const bool vx = p.logits_cs == 1 && aligned16(logits + xo);
      const bool vt = kSoft && p.labels_cs == 1 && aligned16(targets + lo);
      MaxSum<A> ms;
      ms.init();
      A side[2] = {0, 0};
      for (int64_t q0 = tid; q0 < nq; q0 += kCachedUnroll * nt) {
        A a[kCachedUnroll][4], t[kCachedUnroll][4] = {};
#pragma unroll
        for (int u = 0; u < kCachedUnroll; ++u) {
          const int64_t q = q0 + int64_t(u) * nt;
          if (q < nq) {
            load4(logits, xo + 4 * q * p.logits_cs, p.logits_cs, vx, a[u]);
            if (kSoft) load4(targets, lo + 4 * q * p.labels_cs, p.labels_cs, vt, t[u]);
          }
        }
#pragma unroll
        for (int u = 0; u < kCachedUnroll; ++u) {
          const int64_t q = q0 + int64_t(u) * nt;
          if (q < nq) {
            smem_store4(xs + 4 * q, a[u]);
            if (kSoft) smem_store4(ts + 4 * q, t[u]);
#pragma unroll
            for (int k = 0; k < 4; ++k) math.consume(ms, side, c0 + 4 * q + k, a[u][k], t[u][k]);
          }
        }
      }
      for (int64_t c = 4 * nq + tid; c < n; c += nt) {
        const A x = load_f(logits, xo + c * p.logits_cs);
        const A t = kSoft ? A(load_f(targets, lo + c * p.labels_cs)) : A(0);
        store_f(xs, c, x);
        if (kSoft) store_f(ts, c, t);
        math.consume(ms, side, c0 + c, x, t);
      }
      block_reduce<A, 2>(ms, side, head.reduce);
      if (K > 1) {
        A* slot = head.slot[exchanges++ & 1];
        if (tid == 0) {
          slot[0] = ms.m;
          slot[1] = ms.s;
          slot[2] = side[0];
          slot[3] = side[1];
        }
        cluster_sync();
        if (tid == 0) {
          MaxSum<A> all;
          all.init();
          A s0 = 0, s1 = 0;
          for (int k = 0; k < K; ++k) {
            const A* other = cluster_map(slot, k);
            all.merge(other[0], other[1]);
            s0 += other[2];
            s1 += other[3];
          }
          head.merged[0] = all.m;
          head.merged[1] = all.s;
          head.merged[2] = s0;
          head.merged[3] = s1;
        }
        __syncthreads();
        ms.m = head.merged[0];
        ms.s = head.merged[1];
        side[0] = head.merged[2];
        side[1] = head.merged[3];
      }
      loss = math.finish(ms, side, y, xy);
      if (kGrad) {
        const bool vg = p.grad_cs == 1 && aligned16(g + go);
        for (int64_t q = tid; q < nq; q += nt) {
          A a[4], t[4] = {0, 0, 0, 0}, out[4];
          smem_load4(xs + 4 * q, a);
          if (kSoft) smem_load4(ts + 4 * q, t);
#pragma unroll
          for (int k = 0; k < 4; ++k) out[k] = math.grad(c0 + 4 * q + k, a[k], t[k]);
          store4(g, go + 4 * q * p.grad_cs, p.grad_cs, vg, out);
        }
        for (int64_t c = 4 * nq + tid; c < n; c += nt)
          store_f(g, go + c * p.grad_cs, math.grad(c0 + c, load_shared(xs, c), kSoft ? load_shared(ts, c) : A(0)));
      }
    } else if (kGrad) {
      for (int64_t c = tid; c < n; c += nt) store_f(g, go + c * p.grad_cs, A(0));
    }
    if (rank == 0 && tid == 0) store_row_loss<T>(p, r, loss);
  }
  if (K > 1) cluster_sync();  // no block may exit while another can still read its slots
}

// Sum of the class weights in double, once per call (label smoothing needs it on every row).
constexpr int kWeightSumThreads = 1024;
__global__ void __launch_bounds__(kWeightSumThreads) weight_sum_kernel(DevParams p) {
  double acc = 0;
  for (int64_t c = threadIdx.x; c < p.C; c += blockDim.x) acc += load_weight<double>(p, c);
  acc = block_sum(acc);
  if (threadIdx.x == 0) p.ws->weight_sum = acc;
}

// One block sums the row losses in a fixed order and writes the 0-d result.
constexpr int kFinishThreads = 1024;
template <class T>
__global__ void __launch_bounds__(kFinishThreads) finish_kernel(DevParams p, bool soft) {
  typedef typename AccOf<T>::type A;
  const double* row_loss = reinterpret_cast<const double*>(p.ws + 1);
  double acc = 0;
  for (int64_t r = threadIdx.x; r < p.rows; r += blockDim.x) acc += row_loss[r];
  acc = block_sum(acc);
  if (threadIdx.x == 0) {
    const double denom = soft ? p.static_denom : p.ws->denom;
    const double scale = p.reduction == 1 ? (denom != 0 ? 1.0 / denom : 0.0) : 1.0;
    store_f(static_cast<T*>(p.loss), 0, static_cast<A>(acc * scale));
  }
}

template <class T>
__global__ void nll_kernel(DevParams p) {
  typedef typename AccOf<T>::type A;
  double* row_loss = reinterpret_cast<double*>(p.ws + 1);
  const A denom = static_cast<A>(p.ws->denom);
  const A scale = p.reduction == 1 ? (denom != A(0) ? A(1) / denom : A(0)) : A(1);
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    // NLL labels arrive as int64 (the Python layer converts other integer dtypes)
    const int64_t yy = static_cast<const int64_t*>(p.labels)[row_offset(p.labels_rows, r)];
    const bool ok = yy != p.ignore_index && yy >= 0 && yy < p.C;
    const A wy = ok ? (p.weight ? load_weight<A>(p, yy) : A(1)) : A(0);
    if (threadIdx.x == 0) {
      const A loss = ok ? -wy * load_f(static_cast<const T*>(p.logits), row_offset(p.logits_rows, r) + yy * p.logits_cs) : A(0);
      if (p.reduction == 0) store_f(static_cast<T*>(p.loss), row_offset(p.loss_rows, r), loss);
      else row_loss[r] = static_cast<double>(loss);
    }
    if (p.grad) {
      T* g = static_cast<T*>(p.grad);
      const int64_t go = row_offset(p.grad_rows, r);
      for (int64_t c = threadIdx.x; c < p.C; c += blockDim.x)
        store_f(g, go + c * p.grad_cs, c == yy && ok ? -wy * scale : A(0));
    }
  }
}

DevParams make_dev_params(const CrossEntropyParams& p) {
  DevParams d;
  const int rank = p.logits.ndim - 1;
  d.C = p.logits.shape[rank];
  d.rows = 1;
  for (int i = 0; i < rank; ++i) d.rows *= p.logits.shape[i];
  d.logits_rows = row_geom(p.logits, rank);
  d.labels_rows = row_geom(p.labels, rank);
  d.grad_rows = row_geom(is_none(p.grad) ? p.logits : p.grad, rank);
  d.loss_rows = row_geom(p.reduction == Reduction::none ? p.loss : p.logits, rank);
  d.logits_cs = p.logits.strides[rank];
  d.labels_cs = p.soft_labels ? p.labels.strides[rank] : 0;
  d.grad_cs = is_none(p.grad) ? 0 : p.grad.strides[rank];
  d.logits = p.logits.data;
  d.labels = p.labels.data;
  d.weight = is_none(p.weight) ? nullptr : p.weight.data;
  d.weight_f64 = !is_none(p.weight) && p.weight.dtype == DType::f64;
  d.weight_stride = is_none(p.weight) ? 0 : p.weight.strides[0];
  d.grad = is_none(p.grad) ? nullptr : p.grad.data;
  d.loss = p.loss.data;
  d.ignore_index = p.ignore_index;
  d.eps = p.label_smoothing;
  d.z = p.z_loss;
  d.reduction = p.reduction == Reduction::none ? 0 : p.reduction == Reduction::mean ? 1 : 2;
  d.static_denom = static_cast<double>(d.rows);
  d.ws = static_cast<Workspace*>(p.workspace);
  return d;
}

// Shared-memory budget of one cached_rows_kernel block for its chunk of the row: two blocks
// of 512 threads fit on an SM (228 KB on Hopper) and overlap one's barriers with the other's
// loads. Rows longer than 8 chunks take the two-read rows_kernel.
constexpr int64_t kDefaultRowCacheBytes = 96 * 1024;
std::atomic<int64_t> g_row_cache_bytes{0};  // set_row_cache_bytes(): 0 default, < 0 never
std::mutex g_choice_mu;
RowCacheChoice g_last_choice;  // for tests, see last_row_cache_choice()

void record_choice(int planned, int launched, bool clusters) {
  std::lock_guard<std::mutex> lock(g_choice_mu);
  g_last_choice = RowCacheChoice{planned, launched, clusters};
}

struct CachePlan {
  int K = 0;  // blocks per cluster; 0: do not cache
  int64_t chunk = 0;
  size_t smem = 0;
};

// The smallest cluster whose blocks each hold their chunk of the row within the budget.
// Clusters of more than one block need sm_90 (see kernel_limits).
CachePlan plan_cached(int64_t C, size_t col_bytes, size_t header_bytes, const KernelLimits& limits) {
  const int64_t set = g_row_cache_bytes.load();
  if (set < 0) return {};
  const int64_t budget = set > 0 ? set : kDefaultRowCacheBytes;
  for (int K = 1; K <= 8; K *= 2) {
    if (K > 1 && !limits.clusters) break;
    const int64_t chunk = ((C + K - 1) / K + 3) / 4 * 4;
    const int64_t bytes = chunk * static_cast<int64_t>(col_bytes);
    if (bytes <= budget && header_bytes + bytes <= limits.max_dynamic_smem)
      return {K, chunk, header_bytes + static_cast<size_t>(bytes)};
  }
  return {};
}

// Launches cached_rows_kernel as a persistent grid of as many clusters as can be resident;
// false when the row does not fit or the launch is refused (the caller falls back).
template <class T, class L, bool kSoft, bool kGrad>
bool launch_cached(const DevParams& d, cudaStream_t s) {
  typedef typename AccOf<T>::type A;
  void (*kernel)(DevParams, int64_t, int) = cached_rows_kernel<T, L, kSoft, kGrad>;
  const KernelLimits limits = kernel_limits(kernel);
  const CachePlan plan = plan_cached(d.C, sizeof(T) * (kSoft ? 2 : 1), cached_header_bytes<A>(), limits);
  record_choice(plan.K, 0, limits.clusters);
  if (plan.K == 0) return false;
  cudaLaunchAttribute cluster[1];
  cluster[0].id = cudaLaunchAttributeClusterDimension;
  cluster[0].val.clusterDim.x = plan.K;
  cluster[0].val.clusterDim.y = 1;
  cluster[0].val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.blockDim = dim3(kCachedThreads);
  cfg.dynamicSmemBytes = plan.smem;
  cfg.stream = s;
  cfg.attrs = plan.K > 1 ? cluster : nullptr;
  cfg.numAttrs = plan.K > 1 ? 1 : 0;
  int active = 0;
  if (plan.K > 1) {
    cfg.gridDim = dim3(plan.K);
    if (cudaOccupancyMaxActiveClusters(&active, kernel, &cfg) != cudaSuccess) cudaGetLastError();
  } else if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&active, kernel, kCachedThreads, plan.smem) == cudaSuccess) {
    int dev = 0, sms = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    active *= sms;
  } else {
    cudaGetLastError();
  }
  if (active <= 0) return false;
  const int64_t clusters = d.rows < active ? d.rows : active;
  cfg.gridDim = dim3(static_cast<unsigned>(clusters * plan.K));
  if (cudaLaunchKernelEx(&cfg, kernel, d, plan.chunk, plan.K) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  record_choice(plan.K, plan.K, limits.clusters);
  return true;
}

template <class T, class L, bool kSoft, bool kGrad>
void launch_rows(const DevParams& d, cudaStream_t s) {
  if (d.C <= 1024) {
    const int warps = 8;
    rows_kernel<T, L, kSoft, kGrad, true><<<grid_for(d.rows, warps), warps * 32, 0, s>>>(d);
  } else {
    // Without a gradient there is no second pass to save.
    if constexpr (kGrad) {
      if (launch_cached<T, L, kSoft, kGrad>(d, s)) return;
    }
    const int threads = 512;  // two blocks per SM overlap one block's barriers with the other's loads
    rows_kernel<T, L, kSoft, kGrad, false><<<grid_for(d.rows, 1), threads, 0, s>>>(d);
  }
}

template <class T, class L>
void run_typed(const CrossEntropyParams& p, const DevParams& d, cudaStream_t s) {
  const bool grad = !is_none(p.grad);
  if (!is_none(p.weight) && p.label_smoothing != 0.0) weight_sum_kernel<<<1, kWeightSumThreads, 0, s>>>(d);
  if (p.soft_labels) {
    if (grad) launch_rows<T, T, true, true>(d, s);
    else launch_rows<T, T, true, false>(d, s);
  } else {
    labels_kernel<L><<<grid_for(d.rows, kLabelThreads), kLabelThreads, 0, s>>>(d);
    if (grad) launch_rows<T, L, false, true>(d, s);
    else launch_rows<T, L, false, false>(d, s);
  }
  if (p.reduction != Reduction::none) finish_kernel<T><<<1, kFinishThreads, 0, s>>>(d, p.soft_labels);
}

void raise_bad_label(const CrossEntropyParams& p, const Workspace& host_ws, cudaStream_t s) {
  const int rank = p.logits.ndim - 1;
  const int64_t r = static_cast<int64_t>(host_ws.first_bad);
  // Read the offending label back for the message.
  int64_t off = 0, rr = r;
  for (int d = rank - 1; d >= 0; --d) {
    off += (rr % p.labels.shape[d]) * p.labels.strides[d];
    rr /= p.labels.shape[d];
  }
  int64_t y = 0;
  if (p.labels.dtype == DType::i32) {
    int32_t v = 0;
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&v, static_cast<const int32_t*>(p.labels.data) + off, 4, cudaMemcpyDeviceToHost, s));
    FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
    y = v;
  } else {
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&y, static_cast<const int64_t*>(p.labels.data) + off, 8, cudaMemcpyDeviceToHost, s));
    FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  throw_index("labels" + index_string(p.labels.shape, rank, r) + " = " + std::to_string(y) + " is outside [0, " +
              std::to_string(p.logits.shape[rank]) + ") and is not ignore_index (" + std::to_string(p.ignore_index) + ")");
}

void check_labels_after(const CrossEntropyParams& p, cudaStream_t s) {
  Workspace host_ws;
  FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&host_ws, p.workspace, sizeof(Workspace), cudaMemcpyDeviceToHost, s));
  FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  if (host_ws.first_bad != ~0ull) raise_bad_label(p, host_ws, s);
}

// Device-side memsets (a pageable host-to-device copy could synchronise the stream);
// probability labels never read the header, so they skip even these.
void prepare_workspace(const CrossEntropyParams& p, cudaStream_t s) {
  if (p.soft_labels) return;
  Workspace* ws = static_cast<Workspace*>(p.workspace);
  FASTLOSS_CUDA_CHECK(cudaMemsetAsync(&ws->blocks_done, 0, sizeof(unsigned), s));
  FASTLOSS_CUDA_CHECK(cudaMemsetAsync(&ws->first_bad, 0xFF, sizeof(unsigned long long), s));
}

}  // namespace

void set_row_cache_bytes(int64_t bytes) { g_row_cache_bytes.store(bytes); }

RowCacheChoice last_row_cache_choice() {
  std::lock_guard<std::mutex> lock(g_choice_mu);
  return g_last_choice;
}

size_t cross_entropy_workspace_bytes(const CrossEntropyParams& p) {
  int64_t rows = 1;
  for (int i = 0; i < p.logits.ndim - 1; ++i) rows *= p.logits.shape[i];
  return sizeof(Workspace) + sizeof(double) * static_cast<size_t>(rows);
}

void softmax_cross_entropy(const CrossEntropyParams& p) {
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  DevParams d = make_dev_params(p);
  prepare_workspace(p, s);
  if (d.rows == 0) {
    if (p.reduction != Reduction::none) {
      if (p.logits.dtype == DType::f64) finish_kernel<double><<<1, 32, 0, s>>>(d, true);
      else if (p.logits.dtype == DType::f32) finish_kernel<float><<<1, 32, 0, s>>>(d, true);
      else finish_kernel<__half><<<1, 32, 0, s>>>(d, true);
    }
    FASTLOSS_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const bool l32 = p.labels.dtype == DType::i32;
  switch (p.logits.dtype) {
    case DType::f64: l32 ? run_typed<double, int32_t>(p, d, s) : run_typed<double, int64_t>(p, d, s); break;
    case DType::f32: l32 ? run_typed<float, int32_t>(p, d, s) : run_typed<float, int64_t>(p, d, s); break;
    default: l32 ? run_typed<__half, int32_t>(p, d, s) : run_typed<__half, int64_t>(p, d, s); break;
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
  if (!p.soft_labels) check_labels_after(p, s);
}

void nll_loss(const CrossEntropyParams& p) {
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  DevParams d = make_dev_params(p);
  prepare_workspace(p, s);
  if (d.rows > 0) {
    labels_kernel<int64_t><<<grid_for(d.rows, kLabelThreads), kLabelThreads, 0, s>>>(d);
    const int threads = d.C >= 1024 ? 256 : 32;
    switch (p.logits.dtype) {
      case DType::f64: nll_kernel<double><<<grid_for(d.rows, 1), threads, 0, s>>>(d); break;
      case DType::f32: nll_kernel<float><<<grid_for(d.rows, 1), threads, 0, s>>>(d); break;
      default: nll_kernel<__half><<<grid_for(d.rows, 1), threads, 0, s>>>(d); break;
    }
  }
  if (p.reduction != Reduction::none) {
    if (p.logits.dtype == DType::f64) finish_kernel<double><<<1, kFinishThreads, 0, s>>>(d, d.rows == 0);
    else if (p.logits.dtype == DType::f32) finish_kernel<float><<<1, kFinishThreads, 0, s>>>(d, d.rows == 0);
    else finish_kernel<__half><<<1, kFinishThreads, 0, s>>>(d, d.rows == 0);
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
  if (d.rows > 0) check_labels_after(p, s);
}

}  // namespace cuda
}  // namespace fastloss
