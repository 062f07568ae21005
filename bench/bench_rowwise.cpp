// Microbenchmarks of the CPU row-wise losses (float32, loss + gradient where the loss has one):
// focal and truncated cross-entropy on the row engine beside cross-entropy itself, the
// multiclass hinge losses, the divergences and l2_loss. Bytes count the input rows read plus
// the gradient written (the memory floor's bytes).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "fastloss/cross_entropy.h"
#include "fastloss/rowwise.h"

namespace {

fastloss::TensorView view(void* data, fastloss::DType dt, std::vector<int64_t> shape) {
  fastloss::TensorView v;
  v.data = data;
  v.dtype = dt;
  v.ndim = static_cast<int>(shape.size());
  int64_t stride = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    v.shape[d] = shape[d];
    v.strides[d] = stride;
    stride *= shape[d];
  }
  return v;
}

// Inputs shared by the cases: N x C standard normal logits (or Dirichlet-like probabilities
// for the divergences), integer labels, a gradient buffer and a 0-d loss.
struct Rows {
  int64_t N, C;
  std::vector<float> x, q, g;
  std::vector<int64_t> y;
  float loss = 0;
  Rows(int64_t n, int64_t c, bool probabilities) : N(n), C(c), x(n * c), q(n * c), g(n * c), y(n) {
    std::mt19937 rng(0);
    std::normal_distribution<float> normal;
    std::exponential_distribution<float> expo;
    for (int64_t r = 0; r < N; ++r) {
      float sx = 0, sq = 0;
      for (int64_t c = 0; c < C; ++c) {
        float& a = x[r * C + c];
        float& b = q[r * C + c];
        a = probabilities ? expo(rng) : normal(rng);
        b = probabilities ? expo(rng) : normal(rng);
        sx += a;
        sq += b;
      }
      if (probabilities)
        for (int64_t c = 0; c < C; ++c) x[r * C + c] /= sx, q[r * C + c] /= sq;
      y[r] = rng() % C;
    }
  }
  fastloss::CrossEntropyParams ce() {
    fastloss::CrossEntropyParams p;
    p.logits = view(x.data(), fastloss::DType::f32, {N, C});
    p.labels = view(y.data(), fastloss::DType::i64, {N});
    p.loss = view(&loss, fastloss::DType::f32, {});
    p.grad = view(g.data(), fastloss::DType::f32, {N, C});
    return p;
  }
  void count(benchmark::State& state, int inputs, bool grad) {
    state.SetBytesProcessed(state.iterations() * N * C * int64_t(sizeof(float)) * (inputs + (grad ? 1 : 0)));
    state.SetItemsProcessed(state.iterations() * N * C);
    state.SetLabel(fastloss::isa_name(fastloss::cpu_isa()));
  }
};

template <class F> void loop(benchmark::State& state, Rows& rows, F&& f) {
  for (auto _ : state) {
    f();
    benchmark::DoNotOptimize(rows.loss);
    benchmark::ClobberMemory();
  }
}

void CrossEntropyRef(benchmark::State& state) {  // the yardstick for focal, truncated, hinge
  Rows rows(state.range(0), state.range(1), false);
  const fastloss::CrossEntropyParams p = rows.ce();
  loop(state, rows, [&] { fastloss::cpu::softmax_cross_entropy(p); });
  rows.count(state, 1, true);
}

void SoftmaxFocal(benchmark::State& state) {
  Rows rows(state.range(0), state.range(1), false);
  fastloss::SoftmaxFocalParams p;
  p.rows = rows.ce();
  p.gamma = 2.0;
  loop(state, rows, [&] { fastloss::cpu::softmax_focal_loss(p); });
  rows.count(state, 1, true);
}

void TruncatedCrossEntropy(benchmark::State& state) {
  Rows rows(state.range(0), state.range(1), false);
  fastloss::TruncatedCrossEntropyParams p;
  p.rows = rows.ce();
  p.soft = state.range(2) != 0;
  p.softness = 10.0;
  loop(state, rows, [&] { fastloss::cpu::truncated_cross_entropy(p); });
  rows.count(state, 1, true);
}

void MulticlassHinge(benchmark::State& state) {  // kind 0: Weston-Watkins, 1: Crammer-Singer
  Rows rows(state.range(0), state.range(1), false);
  fastloss::MulticlassHingeParams p;
  p.scores = view(rows.x.data(), fastloss::DType::f32, {rows.N, rows.C});
  p.labels = view(rows.y.data(), fastloss::DType::i64, {rows.N});
  p.crammer_singer = state.range(2) != 0;
  p.loss = view(&rows.loss, fastloss::DType::f32, {});
  p.grad = view(rows.g.data(), fastloss::DType::f32, {rows.N, rows.C});
  loop(state, rows, [&] { fastloss::cpu::multiclass_hinge_loss(p); });
  rows.count(state, 1, true);
}

void Divergence(benchmark::State& state) {  // kind 0: entropy, 1: KL, 2: JS
  Rows rows(state.range(0), state.range(1), true);
  std::vector<float> out(rows.N);
  fastloss::DivergenceParams p;
  p.kind = static_cast<fastloss::Divergence>(state.range(2));
  p.p = view(rows.x.data(), fastloss::DType::f32, {rows.N, rows.C});
  if (p.kind != fastloss::Divergence::entropy) p.q = view(rows.q.data(), fastloss::DType::f32, {rows.N, rows.C});
  p.out = view(out.data(), fastloss::DType::f32, {rows.N});
  loop(state, rows, [&] { fastloss::cpu::divergence(p); });
  rows.count(state, p.kind == fastloss::Divergence::entropy ? 1 : 2, false);
}

void L2Loss(benchmark::State& state) {
  Rows rows(state.range(0), state.range(1), false);
  fastloss::L2LossParams p;
  p.pred = view(rows.x.data(), fastloss::DType::f32, {rows.N, rows.C});
  p.target = view(rows.q.data(), fastloss::DType::f32, {rows.N, rows.C});
  p.loss = view(&rows.loss, fastloss::DType::f32, {});
  p.grad = view(rows.g.data(), fastloss::DType::f32, {rows.N, rows.C});
  loop(state, rows, [&] { fastloss::cpu::l2_loss(p); });
  rows.count(state, 2, true);
}

}  // namespace

// The shapes: (4096, 32000) for focal and truncated beside cross-entropy, (16384, 1000)
// for the hinge losses, (10000, 1000) for the divergences.
BENCHMARK(CrossEntropyRef)->ArgNames({"N", "C"})->Args({4096, 32000})->Args({16384, 1000})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(SoftmaxFocal)->ArgNames({"N", "C"})->Args({4096, 32000})->Args({16384, 100})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(TruncatedCrossEntropy)->ArgNames({"N", "C", "soft"})->Args({4096, 32000, 0})->Args({4096, 32000, 1})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(MulticlassHinge)->ArgNames({"N", "C", "crammer_singer"})->ArgsProduct({{16384}, {1000}, {0, 1}})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Divergence)->ArgNames({"N", "C", "kind"})->ArgsProduct({{10000}, {1000}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(L2Loss)->ArgNames({"N", "C"})->Args({16384, 128})->Args({1024, 4096})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
