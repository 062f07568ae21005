// Bi-tempered logistic loss (Amid et al., 2019) and the tempered softmax, as google-research's
// bi-tempered-loss TensorFlow reference computes them (tensorflow/loss.py):
//
//   log_t(u) = (u^(1-t) - 1) / (1-t),   exp_t(u) = max(1 + (1-t) u, 0)^(1/(1-t))   (log, exp at t=1)
//   p = exp_t(x - norm, t2), norm per row such that sum p = 1:
//     t2 > 1: num_iters fixed-point steps  a <- (x - max) * Z^(1-t2), Z = sum exp_t(a);
//     t2 < 1: num_iters bisection steps on [0, -log_t(1/#{x - max > -1/(1-t2)})];
//     t2 = 1: the exact softmax.
//   loss = sum_c y_c (log_t(y_c + 1e-10, t1) - log_t(p_c, t1)) - (y_c^(2-t1) - p_c^(2-t1)) / (2-t1)
//   grad = d - escort * sum(d),  d = (p - y) p^(t2-t1),  escort = p^t2 / sum p^t2
// (the reference's custom gradient: analytic, not the derivative of the iterations).
// Labels y: probabilities, or integer classes (one-hot); label_smoothing ls turns either into
// (1 - C/(C-1) ls) y + ls/(C-1). At t1 = t2 = 1 the loss is softmax cross-entropy (the CE
// kernel runs it). The binary form is the two-class loss of rows [0, x] with labels [1-t, t].
#pragma once
#include "fastloss/cross_entropy.h"
#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {

struct BiTemperedParams {
  // Class axis already moved last: activations (rows..., C). Binary: activations (n...) and
  // float targets of the same shape, each element one two-class row.
  TensorView activations;
  TensorView labels;          // integer (rows...) or, with soft_labels, float like activations
  bool soft_labels = false;
  bool binary = false;
  double t1 = 1.0, t2 = 1.0, label_smoothing = 0.0;
  int64_t num_iters = 5;
  Reduction reduction = Reduction::mean;
  TensorView loss;                // 0-d for mean/sum, (rows...) for none
  TensorView grad = none_view();  // like activations, or none
  // CUDA only: the stream and a workspace of bi_tempered_workspace_bytes(rows) device bytes.
  void* stream = nullptr;
  void* workspace = nullptr;
};

struct TemperedSoftmaxParams {
  TensorView activations;  // (rows..., C), class axis last
  TensorView out;          // like activations
  double t = 1.0;
  int64_t num_iters = 5;
  void* stream = nullptr;  // CUDA only
};

// A temperature within 1e-12 of 1 is 1: there exp_t(u) and exp(u) differ by (1-t) u^2 / 2,
// below double rounding for every u that matters, while the tempered forms would divide
// rounding errors by 1 - t (t = 1 - 1 ulp summed to 0.40) or bisect where softmax is exact.
inline double snap_temperature(double t) { return t - 1.0 <= 1e-12 && 1.0 - t <= 1e-12 ? 1.0 : t; }

// Argument checks shared by both devices (fastloss::Error naming the argument).
void check_bi_tempered_params(const BiTemperedParams& p);
void check_tempered_softmax_params(const TemperedSoftmaxParams& p);
// The t1 = t2 = 1 case as cross-entropy's parameters (both devices run that kernel for it).
CrossEntropyParams bi_tempered_as_cross_entropy(const BiTemperedParams& p);
// sum_c y_c log_t(y_c + 1e-10, t1) - y_c^(2-t1) / (2-t1), the labels-only part of the loss, for a
// one-hot row of C classes smoothed by ls (the reference's pow and log, in double).
double bi_tempered_onehot_label_const(double t1, double ls, int64_t C);

namespace cpu {
void bi_tempered_logistic_loss(const BiTemperedParams& p);
void tempered_softmax(const TemperedSoftmaxParams& p);
}  // namespace cpu

namespace cuda {
inline size_t bi_tempered_workspace_bytes(int64_t rows) { return 64 + 8 * static_cast<size_t>(rows); }
void bi_tempered_logistic_loss(const BiTemperedParams& p);
void tempered_softmax(const TemperedSoftmaxParams& p);
}  // namespace cuda

}  // namespace fastloss

// The per-ISA kernels (t1 = t2 = 1 never reaches them: the API routes it to cross-entropy).
FASTLOSS_CPU_KERNEL_DECL(void, bi_tempered_logistic_loss, (const ::fastloss::BiTemperedParams&))
FASTLOSS_CPU_KERNEL_DECL(void, tempered_softmax, (const ::fastloss::TemperedSoftmaxParams&))
