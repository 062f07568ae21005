// Batched edit distance for padded integer arrays on CuPy: one thread per pair.
//
// Each thread trims the common prefix and suffix, then
//   * unit costs and a shorter side of <= 64 elements: Myers/Hyyrö bit-parallel Levenshtein
//     on one 64-bit word (the pattern kept in a local array; the match mask of a text element
//     is built by comparing it with the pattern);
//   * anything else: the plain dynamic program over the shorter side (one row of int64 in a
//     stream-ordered scratch buffer, N x (min width + 1), allocated only when needed).
// Lengths outside [0, width] set a device flag (the smallest bad 2*row + side); the host
// reads it after the launch (one synchronisation, only when lengths were given) and raises.
#include "cuda_common.cuh"
#include "fastloss/myers.h"
#include "fastloss/edit_distance.h"

#include <algorithm>
#include <string>

namespace fastloss {
namespace cuda {
namespace {

struct DevParams {
  const void* a;
  const void* b;
  int64_t n, wa, wb, sa, sb;  // batch, widths, row strides (elements)
  const int64_t* alen;
  const int64_t* blen;
  int64_t alen_s, blen_s;
  int64_t ins, del, sub;
  bool normalize;
  int64_t cutoff;      // score_cutoff (INT64_MAX: none)
  double norm_cutoff;  // with normalize (1.0: none)
  int64_t* out_int;
  double* out_norm;
  int64_t* scratch;  // n x scratch_stride, or null
  int64_t scratch_stride;
  unsigned long long* flag;
};

template <class T>
__device__ int64_t myers64(const T* p, int64_t m, const T* t, int64_t n) {
  T pat[64];
  for (int64_t k = 0; k < m; ++k) pat[k] = p[k];
  MyersColumn col = myers_start(m);
  const uint64_t last = 1ull << (m - 1);
  for (int64_t j = 0; j < n; ++j) {
    const T c = t[j];
    uint64_t eq = 0;
    for (int64_t k = 0; k < m; ++k) eq |= static_cast<uint64_t>(pat[k] == c) << k;
    myers_step(col, eq, last);
  }
  return col.score;
}

// Rows over x (deleting costs del), columns over y (inserting costs ins); row in `row`.
template <class T>
__device__ int64_t dp(const T* x, int64_t m, const T* y, int64_t n, int64_t ins, int64_t del, int64_t sub,
                      int64_t* row) {
  for (int64_t j = 0; j <= n; ++j) row[j] = j * ins;
  for (int64_t i = 1; i <= m; ++i) {
    int64_t diag = row[0];
    row[0] = i * del;
    const T xi = x[i - 1];
    for (int64_t j = 1; j <= n; ++j) {
      const int64_t up = row[j];
      int64_t v = min(up + del, row[j - 1] + ins);
      v = min(v, diag + (xi == y[j - 1] ? 0 : sub));
      diag = up;
      row[j] = v;
    }
  }
  return row[n];
}

template <class T>
__global__ void edit_kernel(DevParams p) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= p.n) return;
  const int64_t la0 = p.alen ? p.alen[i * p.alen_s] : p.wa;
  const int64_t lb0 = p.blen ? p.blen[i * p.blen_s] : p.wb;
  if (la0 < 0 || la0 > p.wa) { atomicMin(p.flag, static_cast<unsigned long long>(2 * i)); return; }
  if (lb0 < 0 || lb0 > p.wb) { atomicMin(p.flag, static_cast<unsigned long long>(2 * i + 1)); return; }
  const T* a = static_cast<const T*>(p.a) + i * p.sa;
  const T* b = static_cast<const T*>(p.b) + i * p.sb;
  int64_t m = la0, n = lb0, d;
  if (p.ins == 0 && p.del == 0) {
    d = 0;
  } else {
    while (m && n && a[0] == b[0]) ++a, ++b, --m, --n;
    while (m && n && a[m - 1] == b[n - 1]) --m, --n;
    if (m == 0) d = n * p.ins;
    else if (n == 0) d = m * p.del;
    else if (p.ins == p.del && p.ins == p.sub && (m <= 64 || n <= 64))
      d = p.ins * (m <= n ? myers64(a, m, b, n) : myers64(b, n, a, m));
    else if (n <= m)  // columns over the shorter side
      d = dp(a, m, b, n, p.ins, p.del, p.sub, p.scratch + i * p.scratch_stride);
    else  // transposed: b along rows (its elements are inserted), a along columns
      d = dp(b, n, a, m, p.del, p.ins, p.sub, p.scratch + i * p.scratch_stride);
  }
  if (p.normalize) {
    const int64_t mx = edit_distance_maximum(la0, lb0, EditWeights{p.ins, p.del, p.sub});
    const double nd = mx ? static_cast<double>(d) / static_cast<double>(mx) : 0.0;
    p.out_norm[i] = nd <= p.norm_cutoff ? nd : 1.0;
  } else {
    p.out_int[i] = d <= p.cutoff ? d : p.cutoff + 1;
  }
}

}  // namespace

void edit_distance_padded(const EditPaddedParams& p) {
  check_edit_padded_params(p);
  const cudaStream_t s = static_cast<cudaStream_t>(p.stream);
  DevParams d{};
  d.a = p.a.data;
  d.b = p.b.data;
  d.n = p.a.shape[0];
  d.wa = p.a.shape[1];
  d.wb = p.b.shape[1];
  d.sa = p.a.strides[0];
  d.sb = p.b.strides[0];
  if (d.n > 0 && ((d.wa > 1 && p.a.strides[1] != 1) || (d.wb > 1 && p.b.strides[1] != 1)))
    throw_value("a and b must be contiguous along their length axis");
  if (!is_none(p.a_lengths)) {
    if (p.a_lengths.dtype != DType::i64) throw_type("a_lengths must be int64 on the GPU");
    d.alen = p.a_lengths.ptr<const int64_t>();
    d.alen_s = p.a_lengths.strides[0];
  }
  if (!is_none(p.b_lengths)) {
    if (p.b_lengths.dtype != DType::i64) throw_type("b_lengths must be int64 on the GPU");
    d.blen = p.b_lengths.ptr<const int64_t>();
    d.blen_s = p.b_lengths.strides[0];
  }
  d.ins = p.w.ins;
  d.del = p.w.del;
  d.sub = p.w.sub;
  d.normalize = p.normalize;
  d.cutoff = p.cutoff.dist;
  d.norm_cutoff = p.cutoff.norm;
  // The kernel computes in int64: refuse weights whose largest possible cell could overflow.
  {
    const int64_t wmax = std::max(p.w.ins, std::max(p.w.del, p.w.sub));
    if (__int128(d.wa + d.wb) * wmax >= __int128(INT64_MAX))
      throw_value("weights (" + std::to_string(p.w.ins) + ", " + std::to_string(p.w.del) + ", " +
                  std::to_string(p.w.sub) + ") make a distance that may not fit in int64 on the GPU; use smaller weights");
  }
  d.out_int = p.normalize ? nullptr : p.out.ptr<int64_t>();
  d.out_norm = p.normalize ? p.out.ptr<double>() : nullptr;
  d.flag = static_cast<unsigned long long*>(p.workspace);
  if (d.n == 0) return;
  const bool unit = p.w.ins == p.w.del && p.w.ins == p.w.sub;
  const int64_t wmin = d.wa < d.wb ? d.wa : d.wb;
  int64_t* scratch = nullptr;
  if (!unit || wmin > 64) {
    d.scratch_stride = wmin + 1;
    FASTLOSS_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&scratch),
                                        static_cast<size_t>(d.n) * d.scratch_stride * sizeof(int64_t), s));
    d.scratch = scratch;
  }
  const bool check = d.alen || d.blen;
  if (check) FASTLOSS_CUDA_CHECK(cudaMemsetAsync(d.flag, 0xFF, sizeof(unsigned long long), s));
  const int threads = 128;
  const int64_t blocks = (d.n + threads - 1) / threads;
  if (p.a.dtype == DType::i64) edit_kernel<int64_t><<<static_cast<unsigned>(blocks), threads, 0, s>>>(d);
  else if (p.a.dtype == DType::i32) edit_kernel<int32_t><<<static_cast<unsigned>(blocks), threads, 0, s>>>(d);
  else throw_type(std::string("a and b must be int32 or int64 on the GPU, got ") + dtype_name(p.a.dtype));
  FASTLOSS_CUDA_CHECK(cudaGetLastError());
  if (scratch) FASTLOSS_CUDA_CHECK(cudaFreeAsync(scratch, s));
  if (!check) return;
  unsigned long long bad = 0;
  FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&bad, d.flag, sizeof(bad), cudaMemcpyDeviceToHost, s));
  FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  if (bad == ~0ull) return;
  const int64_t row = static_cast<int64_t>(bad / 2);
  const bool is_b = bad % 2;
  const TensorView& lv = is_b ? p.b_lengths : p.a_lengths;
  int64_t v = 0;
  FASTLOSS_CUDA_CHECK(cudaMemcpyAsync(&v, lv.ptr<const int64_t>() + row * lv.strides[0], 8, cudaMemcpyDeviceToHost, s));
  FASTLOSS_CUDA_CHECK(cudaStreamSynchronize(s));
  throw_value(std::string(is_b ? "b_lengths" : "a_lengths") + "[" + std::to_string(row) + "] = " + std::to_string(v) +
              " is outside [0, " + std::to_string(is_b ? d.wb : d.wa) + "] (the padded width of " + (is_b ? "b" : "a") +
              ")");
}

}  // namespace cuda
}  // namespace fastloss
