// Microbenchmarks of the CPU elementwise engine: every loss on n contiguous float32 elements
// with the fused gradient (bytes: pred and target read, gradient written), and a thread sweep
// of mse_loss at small n (where kMinPerThread in csrc/cpu/elementwise.cpp comes from).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fastloss/elementwise.h"

namespace {

fastloss::TensorView view1d(void* data, int64_t n) {
  fastloss::TensorView v;
  v.data = data;
  v.dtype = fastloss::DType::f32;
  v.ndim = 1;
  v.shape[0] = n;
  v.strides[0] = 1;
  return v;
}

void run(benchmark::State& state, fastloss::ElementwiseLoss kind, int64_t n) {
  std::vector<float> x(n), t(n), g(n);
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform;
  const bool sigmoid = kind <= fastloss::ElementwiseLoss::truncated_sigmoid_cross_entropy;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = 3 * normal(rng);
    t[i] = sigmoid || kind == fastloss::ElementwiseLoss::hinge_loss ? (uniform(rng) < 0.3f ? 1.f : 0.f)
           : kind == fastloss::ElementwiseLoss::kl_div ? uniform(rng) : normal(rng);
  }
  float loss = 0;
  for (auto _ : state) {
    fastloss::ElementwiseParams p;  // the checks broadcast in place: a fresh block per call
    p.kind = kind;
    p.pred = view1d(x.data(), n);
    p.target = view1d(t.data(), n);
    p.grad = view1d(g.data(), n);
    p.loss.data = &loss;
    p.loss.ndim = 0;
    fastloss::cpu::elementwise_loss(p);
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * int64_t(sizeof(float)) * 3);
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(std::string(fastloss::elementwise_loss_name(kind)) + " " + fastloss::isa_name(fastloss::cpu_isa()));
}

void Elementwise(benchmark::State& state) {
  run(state, static_cast<fastloss::ElementwiseLoss>(state.range(0)), state.range(1));
}

void ElementwiseThreads(benchmark::State& state) {
  const int before = fastloss::num_threads();
  fastloss::set_num_threads(static_cast<int>(state.range(1)));
  run(state, fastloss::ElementwiseLoss::mse_loss, state.range(0));
  fastloss::set_num_threads(before);
}

}  // namespace

BENCHMARK(Elementwise)
    ->ArgNames({"loss", "n"})
    ->ArgsProduct({benchmark::CreateDenseRange(0, 10, 1), {1 << 16, 1 << 24}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Args: (mse_loss, n) on 1 and 2 threads; the crossing is kMinPerThread.
BENCHMARK(ElementwiseThreads)
    ->ArgNames({"n", "threads"})
    ->ArgsProduct({{1 << 12, 1 << 14, 1 << 15, 1 << 16, 1 << 18}, {1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
