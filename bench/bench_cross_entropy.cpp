// Microbenchmarks of the CPU cross-entropy kernel at several (N, C), with and without the
// gradient. Bytes/s counts logits read plus gradient written (the memory floor's bytes).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "fastloss/cross_entropy.h"

namespace {

fastloss::TensorView view2d(void* data, fastloss::DType dt, int64_t n, int64_t c) {
  fastloss::TensorView v;
  v.data = data;
  v.dtype = dt;
  v.ndim = 2;
  v.shape[0] = n;
  v.shape[1] = c;
  v.strides[0] = c;
  v.strides[1] = 1;
  return v;
}

void CrossEntropy(benchmark::State& state) {
  const int64_t N = state.range(0), C = state.range(1);
  const bool grad = state.range(2) != 0;
  std::vector<float> logits(N * C), g(grad ? N * C : 0);
  std::vector<int64_t> labels(N);
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  for (auto& x : logits) x = normal(rng);
  for (auto& y : labels) y = rng() % C;
  float loss = 0;
  fastloss::CrossEntropyParams p;
  p.logits = view2d(logits.data(), fastloss::DType::f32, N, C);
  p.labels = view2d(labels.data(), fastloss::DType::i64, N, 1);
  p.labels.ndim = 1;
  p.loss.data = &loss;
  p.loss.dtype = fastloss::DType::f32;
  p.loss.ndim = 0;
  if (grad) p.grad = view2d(g.data(), fastloss::DType::f32, N, C);
  for (auto _ : state) {
    fastloss::cpu::softmax_cross_entropy(p);
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * N * C * int64_t(sizeof(float)) * (grad ? 2 : 1));
  state.SetItemsProcessed(state.iterations() * N * C);
  state.SetLabel(fastloss::isa_name(fastloss::cpu_isa()));
}

}  // namespace

BENCHMARK(CrossEntropy)
    ->ArgNames({"N", "C", "grad"})
    ->Args({4096, 32000, 0})
    ->Args({4096, 32000, 1})
    ->Args({512, 128000, 1})
    ->Args({8192, 1000, 1})
    ->Args({65536, 10, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

// Small and medium calls, loss only and with the gradient: a loss-only call must never be
// slower than the same call with the gradient, and tiny calls must not wake threads.
BENCHMARK(CrossEntropy)
    ->Name("CrossEntropySmall")
    ->ArgNames({"N", "C", "grad"})
    ->ArgsProduct({{8, 256}, {10, 100}, {0, 1}})
    ->Args({16384, 10, 0})->Args({16384, 10, 1})
    ->Args({16384, 32, 0})->Args({16384, 32, 1})
    ->Args({16384, 100, 0})->Args({16384, 100, 1})
    ->Args({8192, 1000, 0})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->MinTime(1.0);
