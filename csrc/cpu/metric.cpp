// Metric-learning kernels on the CPU (compiled once per SIMD level): the L-Softmax row pass
// and its gradient epilogue, center loss, center update. See metric.h for the formulas.
#include "fastloss/cpu_kernel.h"
#include "fastloss/metric.h"
#include "fastloss/row_softmax.h"

namespace fastloss {
namespace cpu {
namespace FASTLOSS_ISA {
namespace {

constexpr int kMaxThreads = 256;

// Gradients bigger than this go around the cache (streaming stores).
constexpr int64_t kStreamBytes = int64_t(8) << 20;

// Elements of streaming work (read + write) per thread below which waking a second thread
// costs more than it saves: OpenMP's fork/join is a few microseconds, about the time of 16K
// elements of these passes (an estimate, not measured per kernel).
constexpr int64_t kMinElemsPerThread = int64_t(1) << 14;

template <class S> constexpr DType dtype_of() { return sizeof(S) == 4 ? DType::f32 : DType::f64; }

// ||row i of a (rows, cols) view||^2 in double.
template <class S> double row_sq_norm(const TensorView& t, int64_t i, int64_t cols) {
  const S* base = t.ptr<const S>() + i * t.strides[0];
  const int64_t cs = t.strides[1];
  double acc = 0;
  if (cs == 1) {
    typedef vec_t<S> V;
    constexpr int W = Vec<S>::W;
    V a0 = V{}, a1 = V{};
    int64_t j = 0;
    for (; j + 2 * W <= cols; j += 2 * W) {
      const V x0 = load(base + j), x1 = load(base + j + W);
      a0 = fmadd(x0, x0, a0);
      a1 = fmadd(x1, x1, a1);
    }
    for (; j + W <= cols; j += W) {
      const V x0 = load(base + j);
      a0 = fmadd(x0, x0, a0);
    }
    if (j < cols) {
      const V x0 = load_partial(base + j, cols - j, S(0));
      a1 = fmadd(x0, x0, a1);
    }
    // lanes summed in double: each lane holds at most cols/W products
    const V s = a0 + a1;
    for (int l = 0; l < W; ++l) acc += static_cast<double>(s[l]);
  } else {
    for (int64_t j = 0; j < cols; ++j) {
      const double v = base[j * cs];
      acc += v * v;
    }
  }
  return acc;
}

// ---------------------------------------------------------------------------------------
// L-Softmax row pass.
template <class S> void large_margin_rows_impl(const LargeMarginParams& p) {
  typedef vec_t<S> V;
  const int64_t N = p.features.shape[0], D = p.features.shape[1], C = p.weight.shape[1];
  const bool none = p.reduction == Reduction::none;
  if (N == 0 || C == 0) {  // (C == 0 with N > 0 was refused by the label check)
    if (!none) store_as<double>(p.loss, 0, 0.0);
    if (p.grad) for (int64_t j = 0; j < C; ++j) p.class_scale.ptr<double>()[j * p.class_scale.strides[0]] = 0.0;
    return;
  }
  const MarginConsts mk = margin_consts(p.margin, p.beta);
  const double scale = p.reduction == Reduction::mean ? 1.0 / static_cast<double>(N) : 1.0;
  const int nt0 = threads_for(N * C, kMinElemsPerThread), nt = nt0 < kMaxThreads ? nt0 : kMaxThreads;

  // Norms: |x_i|^2 for every row, |w_j|^2 for every column (margin 1 needs neither).
  ScratchBuffer norm_buf;
  double* xsq = norm_buf.get<double>(N + C);
  double* wsq = xsq + N;
  const bool need_norms = p.margin > 1;
  if (need_norms) {
    const int64_t wrs = p.weight.strides[0], wcs = p.weight.strides[1];
    parallel_parts(nt, [&](int part, int nparts) {
      const int tid = part, ntt = nparts;
      int64_t i0, i1;
      thread_range(N, tid, ntt, &i0, &i1);
      for (int64_t i = i0; i < i1; ++i) xsq[i] = row_sq_norm<S>(p.features, i, D);
      // columns of weight: rows of weight streamed, each thread owning a range of columns
      int64_t j0, j1;
      thread_range(C, tid, ntt, &j0, &j1);
      for (int64_t j = j0; j < j1; ++j) wsq[j] = 0.0;
      const S* w = p.weight.ptr<const S>();
      for (int64_t d = 0; d < D; ++d) {
        const S* wr = w + d * wrs;
        if (wcs == 1) {
          for (int64_t j = j0; j < j1; ++j) {
            const double v = wr[j];
            wsq[j] += v * v;
          }
        } else {
          for (int64_t j = j0; j < j1; ++j) {
            const double v = wr[j * wcs];
            wsq[j] += v * v;
          }
        }
      }
    });
  }

  const RowBlocks<S> rb{C};
  const int64_t lrs = p.logits.strides[0], ys = p.labels.strides[0];
  double partial[kMaxThreads] = {0};
  double* row_scale = p.grad ? p.row_scale.ptr<double>() : nullptr;
  const int64_t rss = p.grad ? p.row_scale.strides[0] : 0;
  parallel_parts(nt, [&](int part, int nparts) {
    const int tid = part;
    int64_t r0, r1;
    thread_range(N, tid, nparts, &r0, &r1);
    ScratchBuffer ebuf, bbuf;
    S* exps = ebuf.get<S>(C + Vec<S>::W);
    S* bmax = bbuf.get<S>(rb.count());
    double acc = 0;
    for (int64_t i = r0; i < r1; ++i) {
      S* row = p.logits.ptr<S>() + i * lrs;
      const int64_t y = load_index(p.labels, i * ys);
      const double a = need_norms ? std::sqrt(xsq[i]) : 0.0, b = need_norms ? std::sqrt(wsq[y]) : 0.0;
      const MarginRow mr = margin_row(mk, static_cast<double>(row[y]), a, b);
      const S zy = static_cast<S>(mr.z);
      row[y] = zy;
      SoftmaxStats<S> st;
      if (p.grad) st = softmax_stats<S, true>(row, rb, exps, bmax);
      else st = softmax_stats<S, false>(row, rb, nullptr, nullptr);
      // (max - z_y) + log(sum): exact when the row is flat and its values huge
      const double loss = static_cast<double>(st.max - zy) + std::log(static_cast<double>(st.sum));
      if (none) store_as<double>(p.loss, i * p.loss.strides[0], loss);
      else acc += loss;
      if (!p.grad) continue;
      const S sc = static_cast<S>(scale);
      const V vsc = splat(sc);
      for_each_prob(exps, bmax, rb, st, misaligned_prefix(row, C),
                    [&](int64_t j, V pv, int64_t n) { put_vec(row, j, pv * vsc, n, false); });
      // the target column: (p_y - 1) times dz_y/df_y; the rest of dz_y goes to row/class scales
      const double py = std::exp(static_cast<double>(zy) - static_cast<double>(st.max)) / static_cast<double>(st.sum);
      const double gy = scale * (py - 1.0);
      row[y] = static_cast<S>(gy * mr.dz_df);
      row_scale[i * rss] = a > 0.0 ? gy * mr.along * (b / a) : 0.0;
    }
    partial[tid] = acc;
  });
  if (!none) {
    store_reduced_loss(p.loss, partial, nt, scale);
  }
  if (p.grad) {
    // s_j = sum_{y_i = j} g_i along_i a_i / b_j = sum r_i a_i^2 / b_j^2, in row order.
    double* s = p.class_scale.ptr<double>();
    const int64_t css = p.class_scale.strides[0];
    for (int64_t j = 0; j < C; ++j) s[j * css] = 0.0;
    if (need_norms) {
      for (int64_t i = 0; i < N; ++i) {
        const int64_t y = load_index(p.labels, i * ys);
        s[y * css] += row_scale[i * rss] * xsq[i];
      }
      for (int64_t j = 0; j < C; ++j) s[j * css] = wsq[j] > 0.0 ? s[j * css] / wsq[j] : 0.0;
    }
  }
}

// out[i, :] += k_i * src[i, :] over the rows of two (rows, cols) views, k_i = 0 rows skipped
// (so an infinite src element meets no 0 * inf).
template <class S>
void add_scaled_rows(const TensorView& out, const TensorView& src, const double* k, int64_t ks, int nt) {
  const int64_t rows = out.shape[0], cols = out.shape[1];
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  parallel_parts(nt, [&](int part, int nparts) {
    int64_t i0, i1;
    thread_range(rows, part, nparts, &i0, &i1);
    for (int64_t i = i0; i < i1; ++i) {
      const double ki = k[i * ks];
      if (ki == 0.0) continue;
      S* o = out.ptr<S>() + i * out.strides[0];
      const S* x = src.ptr<const S>() + i * src.strides[0];
      const int64_t ocs = out.strides[1], xcs = src.strides[1];
      const S kk = static_cast<S>(ki);
      if (ocs == 1 && xcs == 1) {
        const V vk = splat(kk);
        int64_t j = 0;
        for (; j + W <= cols; j += W) store(o + j, fmadd(vk, load(x + j), load(o + j)));
        for (; j < cols; ++j) o[j] = o[j] + kk * x[j];
      } else {
        for (int64_t j = 0; j < cols; ++j) o[j * ocs] = o[j * ocs] + kk * x[j * xcs];
      }
    }
  });
}

template <class S> void large_margin_finish_impl(const LargeMarginParams& p) {
  if (p.margin == 1) return;  // the products are the whole gradient
  const int64_t N = p.features.shape[0], D = p.features.shape[1], C = p.weight.shape[1];
  const int nt_x = threads_for(N * D, kMinElemsPerThread), nt_w = threads_for(D * C, kMinElemsPerThread);
  // grad_features[i, :] += r_i x_i
  add_scaled_rows<S>(p.grad_features, p.features, p.row_scale.ptr<const double>(), p.row_scale.strides[0], nt_x);
  // grad_weight[d, j] += s_j w[d, j]: rows d of weight, the class scales along them
  const TensorView& gw = p.grad_weight;
  const TensorView& w = p.weight;
  const double* s = p.class_scale.ptr<const double>();
  const int64_t css = p.class_scale.strides[0];
  ScratchBuffer sbuf;
  S* sv = sbuf.get<S>(C);
  for (int64_t j = 0; j < C; ++j) sv[j] = static_cast<S>(s[j * css]);
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  parallel_parts(nt_w, [&](int part, int nparts) {
    int64_t d0, d1;
    thread_range(D, part, nparts, &d0, &d1);
    for (int64_t d = d0; d < d1; ++d) {
      S* o = gw.ptr<S>() + d * gw.strides[0];
      const S* x = w.ptr<const S>() + d * w.strides[0];
      const int64_t ocs = gw.strides[1], xcs = w.strides[1];
      if (ocs == 1 && xcs == 1) {
        int64_t j = 0;
        for (; j + W <= C; j += W) {
          const V k = load(sv + j);
          const V g = load(o + j);
          store(o + j, k == S(0) ? g : fmadd(k, load(x + j), g));  // no 0 * inf for untouched classes
        }
        for (; j < C; ++j)
          if (sv[j] != S(0)) o[j] = o[j] + sv[j] * x[j];
      } else {
        for (int64_t j = 0; j < C; ++j)
          if (sv[j] != S(0)) o[j * ocs] = o[j * ocs] + sv[j] * x[j * xcs];
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Center loss: loss_i = 0.5 |x_i - c_{y_i}|^2, grad_i = scale (x_i - c_{y_i}). One read of
// each row, one write of its gradient.
template <class S> void center_loss_impl(const CenterLossParams& p) {
  typedef vec_t<S> V;
  constexpr int W = Vec<S>::W;
  const int64_t N = p.features.shape[0], D = p.features.shape[1];
  const bool none = p.reduction == Reduction::none, want_grad = !is_none(p.grad);
  const double scale = p.reduction == Reduction::mean ? (N ? 1.0 / static_cast<double>(N) : 0.0) : 1.0;
  const int nt0 = threads_for(N * D, kMinElemsPerThread), nt = nt0 < kMaxThreads ? nt0 : kMaxThreads;
  double partial[kMaxThreads] = {0};
  const TensorView &x = p.features, &c = p.centers, &g = p.grad;
  const int64_t ys = p.labels.strides[0];
  const bool contiguous = x.strides[1] == 1 && c.strides[1] == 1 && (!want_grad || g.strides[1] == 1);
  const S sc = static_cast<S>(scale);
  // A gradient bigger than the caches goes around them (written once, not read back here).
  const bool stream = want_grad && N * D * static_cast<int64_t>(sizeof(S)) > kStreamBytes;
  parallel_parts(nt, [&](int part, int nparts) {
    const int tid = part;
    int64_t i0, i1;
    thread_range(N, tid, nparts, &i0, &i1);
    double acc = 0;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t y = load_index(p.labels, i * ys);
      const S* xr = x.ptr<const S>() + i * x.strides[0];
      const S* cr = c.ptr<const S>() + y * c.strides[0];
      S* gr = want_grad ? g.ptr<S>() + i * g.strides[0] : nullptr;
      double ss = 0;
      if (contiguous) {
        const V vsc = splat(sc);
        V a0 = V{}, a1 = V{};
        int64_t j = 0;
        int folds = 0;
        for (; j + 2 * W <= D; j += 2 * W) {
          const V d0 = load(xr + j) - load(cr + j), d1 = load(xr + j + W) - load(cr + j + W);
          a0 = fmadd(d0, d0, a0);
          a1 = fmadd(d1, d1, a1);
          if (want_grad) {
            put_vec(gr, j, d0 * vsc, W, stream);
            put_vec(gr, j + W, d1 * vsc, W, stream);
          }
          if (++folds == 32) {  // into float64 every 64 vectors: long rows sum to float32 rounding
            const V s = a0 + a1;
            for (int l = 0; l < W; ++l) ss += static_cast<double>(s[l]);
            a0 = a1 = V{};
            folds = 0;
          }
        }
        for (; j < D; j += W) {
          const int64_t n = D - j < W ? D - j : W;
          const V d0 = n == W ? load(xr + j) - load(cr + j) : load_partial(xr + j, n, S(0)) - load_partial(cr + j, n, S(0));
          a0 = fmadd(d0, d0, a0);
          if (want_grad) {
            if (n == W) store(gr + j, d0 * vsc);
            else store_partial(gr + j, d0 * vsc, n);
          }
        }
        const V s = a0 + a1;
        for (int l = 0; l < W; ++l) ss += static_cast<double>(s[l]);
      } else {
        for (int64_t j = 0; j < D; ++j) {
          const S d = xr[j * x.strides[1]] - cr[j * c.strides[1]];
          ss += static_cast<double>(d) * d;
          if (want_grad) gr[j * g.strides[1]] = d * sc;
        }
      }
      const double li = 0.5 * ss;
      if (none) store_as<double>(p.loss, i * p.loss.strides[0], li);
      else acc += li;
    }
    partial[tid] = acc;
  });
  if (stream) stream_fence();
  if (!none) {
    store_reduced_loss(p.loss, partial, nt, scale);
  }
}

// ---------------------------------------------------------------------------------------
// Center update: c_j <- c_j - alpha (n_j c_j - sum_{y_i = j} x_i) / (1 + n_j). The rows are
// listed by class (a counting sort, rows in order within a class); each class is then summed
// by one thread into a float64 row that stays in L1, reading every feature row once. Each
// class's sum runs in row order whatever the thread count: the same bits on every run.
template <class S> void update_centers_impl(const UpdateCentersParams& p, const int64_t* counts) {
  const int64_t K = p.centers.shape[0], D = p.centers.shape[1], N = p.features.shape[0];
  const TensorView &c = p.centers, &x = p.features, &o = p.out;
  const int64_t ys = p.labels.strides[0], xcs = x.strides[1], ccs = c.strides[1], ocs = o.strides[1];
  ScratchBuffer order_buf;
  int64_t* start = order_buf.get<int64_t>(K + 1 + N);
  int64_t* order = start + K + 1;
  start[0] = 0;
  for (int64_t k = 0; k < K; ++k) start[k + 1] = start[k] + counts[k];
  {
    ScratchBuffer fill_buf;
    int64_t* fill = fill_buf.get<int64_t>(K);
    for (int64_t k = 0; k < K; ++k) fill[k] = start[k];
    for (int64_t i = 0; i < N; ++i) order[fill[load_index(p.labels, i * ys)]++] = i;
  }
  const int nt = threads_for(N * D + K * D, kMinElemsPerThread);
  Claim claim(K, 4);
  parallel_parts(nt, [&](int, int) {
    ScratchBuffer acc_buf;
    double* acc = acc_buf.get<double>(D);
    for (int64_t k0, k1; claim.take(&k0, &k1);)
    for (int64_t k = k0; k < k1; ++k) {
      const S* cr = c.ptr<const S>() + k * c.strides[0];
      S* orow = o.ptr<S>() + k * o.strides[0];
      const int64_t n = counts[k];
      if (n == 0) {  // absent: unchanged, bit for bit
        for (int64_t j = 0; j < D; ++j) orow[j * ocs] = cr[j * ccs];
        continue;
      }
      for (int64_t j = 0; j < D; ++j) acc[j] = 0.0;
      for (int64_t r = start[k]; r < start[k + 1]; ++r) {
        const S* xr = x.ptr<const S>() + order[r] * x.strides[0];
        if (xcs == 1)
          for (int64_t j = 0; j < D; ++j) acc[j] += static_cast<double>(xr[j]);
        else
          for (int64_t j = 0; j < D; ++j) acc[j] += static_cast<double>(xr[j * xcs]);
      }
      const double nn = static_cast<double>(n), k1 = p.alpha / (1.0 + nn);
      for (int64_t j = 0; j < D; ++j) {
        const double cj = static_cast<double>(cr[j * ccs]);
        orow[j * ocs] = static_cast<S>(cj - k1 * (nn * cj - acc[j]));
      }
    }
  });
}

}  // namespace

void large_margin_softmax_rows(const LargeMarginParams& p) {
  if (p.features.dtype == DType::f64) large_margin_rows_impl<double>(p);
  else large_margin_rows_impl<float>(p);
}
void large_margin_softmax_finish(const LargeMarginParams& p) {
  if (p.features.dtype == DType::f64) large_margin_finish_impl<double>(p);
  else large_margin_finish_impl<float>(p);
}
void center_loss(const CenterLossParams& p) {
  if (p.features.dtype == DType::f64) center_loss_impl<double>(p);
  else center_loss_impl<float>(p);
}
void update_centers(const UpdateCentersParams& p, const int64_t* counts) {
  if (p.centers.dtype == DType::f64) update_centers_impl<double>(p, counts);
  else update_centers_impl<float>(p, counts);
}

}  // namespace FASTLOSS_ISA
}  // namespace cpu
}  // namespace fastloss
