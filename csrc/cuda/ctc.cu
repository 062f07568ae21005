// CTC loss for CuPy arrays. The math is the CPU kernel's (see csrc/cpu/ctc.cpp): log-space
// alpha over all t (kept in the workspace), then a backward sweep with two beta rows that
// writes the gradient row of each t as soon as its posterior is known.
//
// Launches on the caller's stream, in order:
//   0. (host) the per-sample table (input length, label length, label offset) is copied to
//      the workspace; lengths were checked on the host before anything runs;
//   1. labels_kernel: every used label in [0, C) and not blank; the first bad position goes
//      to a device flag, copied back and raised before the loss kernels run (one sync);
//   2. lse_kernel (from_logits only): one block per (t, b) row, the row's log-sum-exp;
//   3. ctc_kernel: one block per sample, threads over the extended states s (any number of
//      them: no label-length cap) and over the classes when writing gradient rows; each t
//      is one step with a block barrier; the recursion's rows, the labels and the posteriors
//      are in shared memory when they fit (else in the workspace), alpha of every t goes to
//      the workspace for the backward sweep; no floating-point atomics, so the same input
//      gives the same bits;
//   4. finish_kernel: the mean/sum over samples in a fixed order (deterministic).
// float16 input is computed in float32; float64 in double.
#include <vector>

#include "cuda_common.cuh"
#include "fastloss/ctc.h"

namespace fastloss {
namespace cuda {
namespace {

struct DevParams {
  const void* x;
  int64_t st_t, st_n, st_c;
  const void* labels;
  void* grad;
  int64_t gt_t, gt_n, gt_c;
  void* loss;
  int64_t loss_stride;
  int64_t T, N, C, L, Smax, blank;
  bool from_logits, zero_infinity;
  int reduction;  // 0 none, 1 mean, 2 sum
  unsigned char* ws;
  CtcWorkspaceLayout lay;
};

template <class A> __device__ __forceinline__ A* ws_ptr(const DevParams& d, size_t off) {
  return reinterpret_cast<A*>(d.ws + off);
}

template <class A> __device__ __forceinline__ A lse3(A a, A b, A c) {
  A m = a > b ? a : b;
  m = m > c ? m : c;
  if (m == ninf<A>()) return (isnan(a) || isnan(b) || isnan(c)) ? a + b + c : ninf<A>();
  return m + flog_ge1(fexp(a - m) + fexp(b - m) + fexp(c - m));
}

template <class L>
__global__ void labels_kernel(DevParams d) {
  const int64_t* info = ws_ptr<int64_t>(d, d.lay.info);
  unsigned long long* flag = ws_ptr<unsigned long long>(d, d.lay.flag);
  const L* labels = static_cast<const L*>(d.labels);
  const int64_t total = d.N * d.Smax;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / d.Smax, k = i % d.Smax;
    if (k >= info[4 * b + 1]) continue;
    const int64_t y = static_cast<int64_t>(labels[info[4 * b + 2] + k * info[4 * b + 3]]);
    if (y < 0 || y >= d.C || y == d.blank)
      atomicMin(flag, static_cast<unsigned long long>(b * (d.Smax + 1) + k));
  }
}

template <class T>
__global__ void lse_kernel(DevParams d) {
  typedef typename AccOf<T>::type A;
  __shared__ A smem[32 * 3];
  const int64_t* info = ws_ptr<int64_t>(d, d.lay.info);
  A* lse = ws_ptr<A>(d, d.lay.lse);
  const T* x = static_cast<const T*>(d.x);
  for (int64_t r = blockIdx.x; r < d.T * d.N; r += gridDim.x) {
    const int64_t t = r / d.N, b = r % d.N;
    if (t >= info[4 * b]) continue;  // block-uniform
    const int64_t off = t * d.st_t + b * d.st_n;
    MaxSum<A> ms;
    ms.init();
    for (int64_t c = threadIdx.x; c < d.C; c += blockDim.x) ms.add(static_cast<A>(load_f(x, off + c * d.st_c)));
    A dummy[1] = {A(0)};
    block_reduce<A, 1>(ms, dummy, smem);
    if (threadIdx.x == 0) lse[b * d.T + t] = ms.m == ninf<A>() ? ninf<A>() : ms.m + flog_ge1(ms.s);
    __syncthreads();  // smem is reused by the next row
  }
}

// One block per sample. The working set (see CtcSampleLayout) is in shared memory when it
// fits (on_chip), else in this sample's slice of the workspace; alpha of every t always goes
// to the workspace for the backward sweep.
template <class T, class Lb>
__global__ void __launch_bounds__(1024) ctc_kernel(DevParams d, bool on_chip) {
  typedef typename AccOf<T>::type A;
  __shared__ A sh_logz;
  const int64_t b = blockIdx.x;
  const int tid = threadIdx.x, nt = blockDim.x, lane = tid % 32, warp = tid / 32;
  const int64_t* info = ws_ptr<int64_t>(d, d.lay.info);
  const int64_t Tb = info[4 * b], Sb = info[4 * b + 1], loff = info[4 * b + 2], lstr = info[4 * b + 3];
  const int64_t L = 2 * Sb + 1;
  const T* x = static_cast<const T*>(d.x);
  const Lb* labels = static_cast<const Lb*>(d.labels);
  const CtcSampleLayout& lay = d.lay.sample;
  unsigned char* work = on_chip ? dynamic_smem() : d.ws + d.lay.samples + b * lay.total;
  int32_t* ext = reinterpret_cast<int32_t*>(work);
  int32_t* next = reinterpret_cast<int32_t*>(work + lay.next);
  int32_t* head = reinterpret_cast<int32_t*>(work + lay.head);
  A* rows = reinterpret_cast<A*>(work + lay.rows);
  A* gam = reinterpret_cast<A*>(work + lay.gam);
  A* wpart = reinterpret_cast<A*>(work + lay.wpart);
  A* alpha = ws_ptr<A>(d, d.lay.alpha) + b * d.T * d.L;  // every row, for the backward sweep
  const A* lse = ws_ptr<A>(d, d.lay.lse) + b * d.T;
  const A NINF = ninf<A>();

  for (int64_t s = tid; s < L; s += nt)
    ext[s] = s % 2 ? static_cast<int32_t>(labels[loff + (s / 2) * lstr]) : static_cast<int32_t>(d.blank);
  __syncthreads();

  auto lp = [&](int64_t t, int64_t s) -> A {
    const A v = static_cast<A>(load_f(x, t * d.st_t + b * d.st_n + ext[s] * d.st_c));
    return d.from_logits ? v - lse[t] : v;
  };
  auto skip_ok = [&](int64_t s) -> bool { return s % 2 == 1 && s >= 3 && ext[s] != ext[s - 2]; };

  // Forward. Each step's emission of the thread's first state is loaded before the barrier,
  // so its latency overlaps the wait; the recursion itself reads only on-chip rows.
  if (Tb > 0) {
    for (int64_t s = tid; s < L; s += nt) {
      const A a0 = s < 2 ? lp(0, s) : NINF;
      rows[s] = a0;
      alpha[s] = a0;
    }
    for (int64_t t = 1; t < Tb; ++t) {
      const A em0 = tid < L ? lp(t, tid) : A(0);
      __syncthreads();
      const A* prev = rows + ((t - 1) & 1) * d.L;
      A* cur = rows + (t & 1) * d.L;
      for (int64_t s = tid; s < L; s += nt) {
        const A a1 = prev[s], a2 = s >= 1 ? prev[s - 1] : NINF, a3 = skip_ok(s) ? prev[s - 2] : NINF;
        const A v = lse3(a1, a2, a3) + (s == tid ? em0 : lp(t, s));
        cur[s] = v;
        alpha[t * d.L + s] = v;
      }
    }
  }
  __syncthreads();
  if (tid == 0) {
    A logz;
    if (Tb == 0) {
      logz = Sb == 0 ? A(0) : NINF;
    } else {
      const A* last = rows + ((Tb - 1) & 1) * d.L;
      logz = lse3(last[L - 1], L > 1 ? last[L - 2] : NINF, NINF);
    }
    double loss = -static_cast<double>(logz);
    const bool infeasible = isinf(loss) && loss > 0;
    if (infeasible && d.zero_infinity) loss = 0.0;
    const double eps = sizeof(A) == 4 ? 1.1920928955078125e-07 : 2.220446049250313e-16;
    if (loss < 0 && (d.from_logits || loss > -8.0 * double(Tb + 1) * eps)) loss = 0.0;
    ws_ptr<double>(d, d.lay.loss)[b] = loss;
    if (d.reduction == 0) store_f(static_cast<T*>(d.loss), b * d.loss_stride, static_cast<A>(loss));
    sh_logz = logz;
  }
  __syncthreads();
  if (!d.grad) return;

  T* g = static_cast<T*>(d.grad);
  const A logz = sh_logz;
  const A scale = d.reduction == 1 ? static_cast<A>(1.0 / (double(Sb > 1 ? Sb : 1) * double(d.N))) : A(1);
  for (int64_t t = Tb; t < d.T; ++t)
    for (int64_t c = tid; c < d.C; c += nt) store_f(g, t * d.gt_t + b * d.gt_n + c * d.gt_c, A(0));
  if (Tb == 0) return;
  const bool infeasible = logz == NINF;
  if (infeasible || isnan(logz)) {
    const A fill = infeasible && d.zero_infinity ? A(0) : A(NAN);
    for (int64_t t = 0; t < Tb; ++t)
      for (int64_t c = tid; c < d.C; c += nt) store_f(g, t * d.gt_t + b * d.gt_n + c * d.gt_c, fill);
    return;
  }
  // Which odd states share a class: each class's chain of states in state order (labels
  // repeat, e.g. "hello"), walked by the class's thread when it writes the gradient.
  for (int64_t c = tid; c < d.C; c += nt) head[c] = -1;
  __syncthreads();
  for (int64_t s = 1 + 2 * int64_t(tid); s < L; s += 2 * int64_t(nt)) {
    int32_t after = -1;
    for (int64_t s2 = s + 2; s2 < L; s2 += 2)
      if (ext[s2] == ext[s]) { after = static_cast<int32_t>(s2); break; }
    next[s] = after;
    bool first = true;
    for (int64_t s2 = s - 2; s2 >= 1 && first; s2 -= 2) first = ext[s2] != ext[s];
    if (first) head[ext[s]] = static_cast<int32_t>(s);
  }
  // Backward: beta in the two rows (alpha's are free now). Step t stores the odd states'
  // posteriors and the blank's per-warp sums; after a barrier each class's thread adds its
  // own in a fixed order and writes the gradient entry.
  A* bcur = rows;
  A* bnext = rows + d.L;
  const int warps = nt / 32;  // nt is a multiple of 32
  for (int64_t t = Tb - 1; t >= 0; --t) {
    const A al0 = tid < L ? alpha[t * d.L + tid] : A(0), em0 = tid < L ? lp(t, tid) : A(0);
    __syncthreads();  // bnext complete; gam and wpart of step t+1 consumed
    A blank = 0;
    for (int64_t s = tid; s < L; s += nt) {
      A bx;
      if (t == Tb - 1) {
        bx = s >= L - 2 ? A(0) : NINF;
      } else {
        const A b1 = bnext[s], b2 = s + 1 < L ? bnext[s + 1] : NINF;
        const A b3 = s + 2 < L && skip_ok(s + 2) ? bnext[s + 2] : NINF;
        bx = lse3(b1, b2, b3);
      }
      const A post = fexp((s == tid ? al0 : alpha[t * d.L + s]) + bx - logz);
      bcur[s] = bx + (s == tid ? em0 : lp(t, s));
      if (s % 2) gam[s] = post;
      else blank += post;
    }
    blank = warp_sum(blank);
    if (lane == 0) wpart[warp] = blank;
    __syncthreads();
    const int64_t xo = t * d.st_t + b * d.st_n, go = t * d.gt_t + b * d.gt_n;
    for (int64_t c = tid; c < d.C; c += nt) {
      A post = 0;
      if (c == d.blank) {
        for (int w = 0; w < warps; ++w) post += wpart[w];
      } else {
        for (int32_t s = head[c]; s >= 0; s = next[s]) post += gam[s];
      }
      A v = -post;
      if (d.from_logits) v += fexp(static_cast<A>(load_f(x, xo + c * d.st_c)) - lse[t]);
      store_f(g, go + c * d.gt_c, v * scale);
    }
    A* tmp = bcur;
    bcur = bnext;
    bnext = tmp;
  }
}

template <class T>
__global__ void finish_kernel(DevParams d) {
  typedef typename AccOf<T>::type A;
  __shared__ double part[256];
  const int64_t* info = ws_ptr<int64_t>(d, d.lay.info);
  const double* loss = ws_ptr<double>(d, d.lay.loss);
  double acc = 0;
  for (int64_t b = threadIdx.x; b < d.N; b += blockDim.x) {
    const int64_t Sb = info[4 * b + 1];
    acc += d.reduction == 1 ? loss[b] / double(Sb > 1 ? Sb : 1) : loss[b];
  }
  part[threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (unsigned i = 0; i < blockDim.x; ++i) total += part[i];
    if (d.reduction == 1) total = d.N ? total / double(d.N) : 0.0;
    store_f(static_cast<T*>(d.loss), 0, static_cast<A>(total));
  }
}

template <class T, class Lb>
void launch(const DevParams& d, cudaStream_t s) {
  if (d.from_logits && d.T > 0 && d.N > 0) lse_kernel<T><<<grid_for(d.T * d.N, 1), 256, 0, s>>>(d);
  if (d.N > 0) {
    // Threads cover the states of the longest sample (one state each up to 1024) and at least
    // 256 columns of a gradient row.
    const int64_t want = (d.L + 31) / 32 * 32;
    const int threads = static_cast<int>(want > 1024 ? 1024 : want < 256 ? 256 : want);
    size_t smem = d.lay.sample.total;
    const bool on_chip = smem <= kernel_limits(ctc_kernel<T, Lb>).max_dynamic_smem;
    if (!on_chip) smem = 0;
    ctc_kernel<T, Lb><<<static_cast<unsigned>(d.N), threads, smem, s>>>(d, on_chip);
  }
  if (d.reduction != 0) finish_kernel<T><<<1, 256, 0, s>>>(d);
}

template <class T>
void launch_labels(const DevParams& d, bool l32, cudaStream_t s) {
  if (l32) launch<T, int32_t>(d, s);
  else launch<T, int64_t>(d, s);
}

}  // namespace

void ctc_loss(const CtcParams& p) {
  check_ctc_params(p);
  if (p.labels.dtype != DType::i32 && p.labels.dtype != DType::i64)
    throw_type(std::string("labels must be int32 or int64 on the GPU, got ") + dtype_name(p.labels.dtype));
  if (!p.workspace) throw_value("ctc_loss: the CUDA path needs a workspace (ctc_workspace_bytes)");
  cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  const TensorView& x = p.log_probs;
  const int64_t T = x.shape[0], N = x.shape[1], C = x.shape[2];
  const int64_t Smax = ctc_max_label_length(p);
  const bool f64 = x.dtype == DType::f64;
  const bool l32 = p.labels.dtype == DType::i32;

  DevParams d;
  d.x = x.data;
  d.st_t = x.strides[0];
  d.st_n = x.strides[1];
  d.st_c = x.strides[2];
  d.labels = p.labels.data;
  const bool want_grad = !is_none(p.grad);
  d.grad = want_grad ? p.grad.data : nullptr;
  d.gt_t = want_grad ? p.grad.strides[0] : 0;
  d.gt_n = want_grad ? p.grad.strides[1] : 0;
  d.gt_c = want_grad ? p.grad.strides[2] : 0;
  d.loss = p.loss.data;
  d.loss_stride = p.reduction == Reduction::none ? p.loss.strides[0] : 0;
  d.T = T;
  d.N = N;
  d.C = C;
  d.Smax = Smax;
  d.L = 2 * Smax + 1;
  d.blank = p.blank;
  d.from_logits = p.from_logits;
  d.zero_infinity = p.zero_infinity;
  d.reduction = p.reduction == Reduction::none ? 0 : p.reduction == Reduction::mean ? 1 : 2;
  d.ws = static_cast<unsigned char*>(p.workspace);
  d.lay = ctc_workspace_layout(T, N, C, Smax, p.from_logits, f64);

  // Per-sample table and the label flag (pageable copies: the host buffers may go away as
  // soon as cudaMemcpyAsync returns).
  std::vector<int64_t> info(static_cast<size_t>(4 * N + 1));
  std::vector<int64_t> offsets(static_cast<size_t>(N + 1));
  int64_t lstride = 0;
  ctc_label_offsets(p, offsets.data(), &lstride);
  for (int64_t b = 0; b < N; ++b) {
    info[4 * b] = p.input_lengths[b];
    info[4 * b + 1] = p.label_lengths[b];
    info[4 * b + 2] = offsets[b];
    info[4 * b + 3] = lstride;
  }
  if (N > 0)
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(d.ws + d.lay.info, info.data(), sizeof(int64_t) * 4 * N,
                                        cudaMemcpyHostToDevice, s));
  if (N > 0 && Smax > 0) {
    const unsigned long long none = ~0ull;
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(d.ws + d.lay.flag, &none, 8, cudaMemcpyHostToDevice, s));
    // A stride-0 (broadcast) label sequence repeats one value: its first label is checked.
    DevParams dl = d;
    dl.Smax = lstride == 0 ? 1 : Smax;
    const int blocks = grid_for(N * dl.Smax, 256);
    if (l32) labels_kernel<int32_t><<<blocks, 256, 0, s>>>(dl);
    else labels_kernel<int64_t><<<blocks, 256, 0, s>>>(dl);
    FASTLOSS_CUDA_CHECK(cudaGetLastError());
    unsigned long long bad = 0;
    FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&bad, d.ws + d.lay.flag, 8, cudaMemcpyDeviceToHost, s));
    FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
    if (bad != ~0ull) {
      const int64_t b = static_cast<int64_t>(bad / static_cast<unsigned long long>(dl.Smax + 1));
      const int64_t k = static_cast<int64_t>(bad % static_cast<unsigned long long>(dl.Smax + 1));
      const int64_t off = offsets[b] + k * lstride;
      int64_t y = 0;
      if (l32) {
        int32_t v = 0;
        FASTLOSS_CUDA_CHECK(cudaMemcpy(&v, static_cast<const int32_t*>(p.labels.data) + off, 4, cudaMemcpyDeviceToHost));
        y = v;
      } else {
        FASTLOSS_CUDA_CHECK(cudaMemcpy(&y, static_cast<const int64_t*>(p.labels.data) + off, 8, cudaMemcpyDeviceToHost));
      }
      ctc_bad_label(p, b, k, y);
    }
  }
  switch (x.dtype) {
    case DType::f64: launch_labels<double>(d, l32, s); break;
    case DType::f32: launch_labels<float>(d, l32, s); break;
    default: launch_labels<__half>(d, l32, s); break;
  }
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace fastloss
