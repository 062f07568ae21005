// Metric-learning losses: large-margin softmax (L-Softmax, Liu et al. 2016), center loss and
// the center update of Wen et al. 2016. One parameter block per entry point, the same entry
// points on the CPU and CUDA.
//
// L-Softmax runs in three steps around the array library's matrix products (BLAS / cuBLAS):
//   1. logits = features @ weight                       (the binding, in the array library)
//   2. large_margin_softmax_rows: replaces each target logit by its margin version, takes the
//      loss, and (with a gradient) overwrites `logits` by G = dloss/dlogits with the target
//      column scaled by dz_y/df_y; the rest of dz_y's gradient (the part of d/dx_i along x_i
//      itself, of d/dw_y along w_y itself) becomes one scalar per row (r) and per class (s)
//   3. grad_features = G @ weight.T, grad_weight = features.T @ G   (the binding, likewise)
//   4. large_margin_softmax_finish: grad_features[i] += r_i x_i, grad_weight[:, j] += s_j w_j
#pragma once
#include <cstddef>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {

constexpr int kMaxLargeMargin = 6;

struct LargeMarginParams {
  TensorView features;  // (N, D) float32/float64
  TensorView weight;    // (D, C), dtype of features
  TensorView labels;    // (N,) any integer dtype
  int margin = 2;       // 1..6
  double beta = 0.0;    // >= 0
  Reduction reduction = Reduction::mean;
  // Step 2: logits (N, C), dtype of features, unit column stride; loss 0-d or (N,).
  TensorView logits = none_view();
  TensorView loss = none_view();
  bool grad = false;
  // Steps 2 and 4 (with grad): per-row and per-class scalars, float64 (N,) and (C,).
  TensorView row_scale = none_view();
  TensorView class_scale = none_view();
  // Step 4: the products of step 3, shaped like features and weight.
  TensorView grad_features = none_view();
  TensorView grad_weight = none_view();
  // CUDA only: stream and a device workspace of large_margin_workspace_bytes().
  void* stream = nullptr;
  void* workspace = nullptr;
};

struct CenterLossParams {
  TensorView features;  // (N, D) float32/float64
  TensorView labels;    // (N,)
  TensorView centers;   // (K, D), dtype of features
  Reduction reduction = Reduction::mean;
  TensorView loss = none_view();  // 0-d or (N,)
  TensorView grad = none_view();  // like features, or none
  void* stream = nullptr;
  void* workspace = nullptr;
};

struct UpdateCentersParams {
  TensorView centers;   // (K, D) float32/float64
  TensorView features;  // (N, D), dtype of centers
  TensorView labels;    // (N,)
  double alpha = 0.5;
  TensorView out = none_view();  // (K, D), dtype of centers: the updated centers
  void* stream = nullptr;
  void* workspace = nullptr;
};

// The margin's constants, built once per call on the host: m, the blend weights beta/(1+beta)
// and 1/(1+beta) (apart, so that beta = 1e308 never forms beta * f), and cos(j*pi/m) for
// j = 1..m-1 (theta passes j*pi/m exactly when cos(theta) drops below it).
struct MarginConsts {
  int m = 1;
  double beta_w = 0.0, inv_1pb = 1.0;
  double cos_step[kMaxLargeMargin] = {};
};
MarginConsts margin_consts(int m, double beta);

// One row's target logit. From f = x.w_y, a = |x|, b = |w_y| and c = cos(theta) = f/(ab):
//   psi(c) = (-1)^k T_m(c) - 2k,  psi'(c) = (-1)^k m U_{m-1}(c)   (Chebyshev T and U, no acos)
//   z = (beta f + a b psi) / (1 + beta)
//   dz/dx = dz_df w_y + (b/a) along x,   dz/dw_y = dz_df x + (a/b) along w_y
// with dz_df = (beta + psi') / (1 + beta) and along = (psi - c psi') / (1 + beta). A zero
// norm gives c = 0 and z = beta f / (1 + beta), finite; the caller drops the 1/a or 1/b term.
// margin 1 is exactly the plain logit (z = f, dz_df = 1, along = 0), with no rounding from f/(ab).
struct MarginRow {
  double z, dz_df, along;
};

#if defined(__CUDACC__) || defined(FASTLOSS_CUDA_EMU)
#define FASTLOSS_HOST_DEVICE __host__ __device__
#else
#define FASTLOSS_HOST_DEVICE
#endif

// static: every translation unit (each SIMD level, each CUDA file) keeps its own copy.
static inline FASTLOSS_HOST_DEVICE MarginRow margin_row(const MarginConsts& k, double f, double a, double b) {
  MarginRow r;
  if (k.m == 1) {
    r.z = f;
    r.dz_df = 1.0;
    r.along = 0.0;
    return r;
  }
  const double ab = a * b;
  double c = ab > 0.0 ? f / ab : 0.0;
  c = c > 1.0 ? 1.0 : (c < -1.0 ? -1.0 : c);  // rounding may leave |c| a little above 1
  int piece = 0;
  for (int j = 1; j < k.m; ++j) piece += c < k.cos_step[j];
  double t_prev = 1.0, t = c;          // T_0, T_1
  double u_prev = 1.0, u = 2.0 * c;    // U_0, U_1
  for (int n = 1; n < k.m; ++n) {
    const double tn = 2.0 * c * t - t_prev;
    t_prev = t;
    t = tn;
  }
  for (int n = 2; n < k.m; ++n) {
    const double un = 2.0 * c * u - u_prev;
    u_prev = u;
    u = un;
  }
  const double sign = (piece & 1) ? -1.0 : 1.0;
  const double psi = sign * t - 2.0 * piece, dpsi = sign * k.m * u;
  r.z = k.beta_w * f + ab * psi * k.inv_1pb;
  r.dz_df = k.beta_w + dpsi * k.inv_1pb;
  r.along = (psi - c * dpsi) * k.inv_1pb;
  return r;
}

// Shape, dtype and option checks shared by both devices (throw fastloss::Error naming the
// argument). Labels are range-checked by the entry points (on CUDA after a device check).
void check_large_margin_params(const LargeMarginParams& p);
void check_center_loss_params(const CenterLossParams& p);
void check_update_centers_params(const UpdateCentersParams& p);

namespace cpu {
void large_margin_softmax_rows(const LargeMarginParams& p);
void large_margin_softmax_finish(const LargeMarginParams& p);
void center_loss(const CenterLossParams& p);
void update_centers(const UpdateCentersParams& p);
}  // namespace cpu

namespace cuda {
size_t large_margin_workspace_bytes(int64_t N, int64_t C);
size_t center_loss_workspace_bytes(int64_t N);
size_t update_centers_workspace_bytes(int64_t K);
void large_margin_softmax_rows(const LargeMarginParams& p);
void large_margin_softmax_finish(const LargeMarginParams& p);
void center_loss(const CenterLossParams& p);
void update_centers(const UpdateCentersParams& p);
}  // namespace cuda

}  // namespace fastloss

FASTLOSS_CPU_KERNEL_DECL(void, large_margin_softmax_rows, (const ::fastloss::LargeMarginParams&))
FASTLOSS_CPU_KERNEL_DECL(void, large_margin_softmax_finish, (const ::fastloss::LargeMarginParams&))
FASTLOSS_CPU_KERNEL_DECL(void, center_loss, (const ::fastloss::CenterLossParams&))
FASTLOSS_CPU_KERNEL_DECL(void, update_centers, (const ::fastloss::UpdateCentersParams&, const int64_t*))
