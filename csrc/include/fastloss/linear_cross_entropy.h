// Fused linear cross-entropy (a language model's output layer and its loss without the
// (N, V) logits): the argument checks and the block plan. The binding
// (csrc/bindings/bind_linear_cross_entropy.cpp) drives the blocks: each block's three matrix
// products go to the call's array library (NumPy's BLAS, cuBLAS through CuPy) and its rows
// to the softmax cross-entropy row engine (cross_entropy.h), in place.
#pragma once
#include <cstdint>

#include "fastloss/runtime.h"
#include "fastloss/tensor.h"

namespace fastloss {

struct LinearCrossEntropyParams {
  TensorView hidden;               // (N, D)
  TensorView weight;               // (V, D), as torch.nn.Linear
  TensorView bias = none_view();   // (V,) or none
  TensorView labels;               // (N,) integer
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  double z_loss = 0.0;
  bool has_softcap = false;
  double softcap = 0.0;            // > 0 and finite when has_softcap
  Reduction reduction = Reduction::mean;
};

// Shapes, dtypes and option domains (throws fastloss::Error naming the argument).
void check_linear_cross_entropy_params(const LinearCrossEntropyParams& p);

// Checks every label (host memory, any integer dtype) against [0, V) unless it is
// ignore_index (IndexError naming its position) and returns the number of counted rows: the
// "mean" denominator, computed once for the whole batch.
int64_t count_linear_cross_entropy_labels(const TensorView& labels, int64_t V, int64_t ignore_index);

// The default block budget: the logits block(s) and the grad_weight accumulation chunk.
// 32 MiB: for N = 4096, D = 1024, V = 32768 (float32) that is 240 rows a block, GEMMs still
// large enough for the BLAS, and a call's peak growth (outputs included) about 1/8 of the
// unfused PyTorch's; 64 MiB cut the accumulation passes in half but not the peak.
constexpr int64_t kLinearCrossEntropyBlockBytes = int64_t(32) << 20;

// How a call is cut: `rows` rows of logits per block (one (rows, V) buffer, two with a
// softcap and a gradient) and `vocab_chunk` rows of grad_weight per accumulation product.
// Depends only on the shapes, the compute dtype, the options and the budget (never on the
// thread count), so every thread count gives the same bits.
struct LinearCrossEntropyPlan {
  int64_t rows;
  int64_t vocab_chunk;
  int buffers;
};
LinearCrossEntropyPlan plan_linear_cross_entropy(int64_t N, int64_t V, int64_t D, int item_bytes, bool grad,
                                                 bool softcap, int64_t block_bytes);

}  // namespace fastloss
