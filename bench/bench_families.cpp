// Microbenchmarks of the CPU kernels outside the elementwise and row engines (float32 unless
// said): CTC, edit distance, dice, the bi-tempered family and the metric-learning losses. Each
// calls the same cpu:: entry point as the Python binding (checks included), at the SIMD level
// and thread count of the process (FASTLOSS_ISA, FASTLOSS_NUM_THREADS). Filters:
//   Ctc, EditDistance, Dice, BiTempered, TemperedSoftmax, LargeMargin, CenterLoss
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fastloss/bi_tempered.h"
#include "fastloss/ctc.h"
#include "fastloss/dice.h"
#include "fastloss/edit_distance.h"
#include "fastloss/metric.h"

namespace {

using fastloss::DType;

fastloss::TensorView view(void* data, DType dt, std::vector<int64_t> shape) {
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

std::vector<float> normal_floats(int64_t n, unsigned seed = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

void label(benchmark::State& state, int64_t items, int64_t bytes) {
  state.SetItemsProcessed(state.iterations() * items);
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetLabel(fastloss::isa_name(fastloss::cpu_isa()));
}

// --- CTC: (T, N, C) log-probabilities from logits, labels of length S, loss + grad -------------
void Ctc(benchmark::State& state) {
  const int64_t T = state.range(0), N = state.range(1), C = state.range(2), S = state.range(3);
  std::vector<float> x = normal_floats(T * N * C), g(T * N * C);
  std::vector<int64_t> labels(N * S), in_len(N, T), lab_len(N, S);
  std::mt19937 rng(1);
  for (auto& y : labels) y = 1 + rng() % (C - 1);
  float loss = 0;
  fastloss::CtcParams p;
  p.log_probs = view(x.data(), DType::f32, {T, N, C});
  p.labels = view(labels.data(), DType::i64, {N, S});
  p.input_lengths = in_len.data();
  p.label_lengths = lab_len.data();
  p.from_logits = true;
  p.loss = view(&loss, DType::f32, {});
  p.grad = view(g.data(), DType::f32, {T, N, C});
  for (auto _ : state) {
    fastloss::cpu::ctc_loss(p);
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  label(state, T * N * (2 * S + 1), T * N * C * int64_t(sizeof(float)) * 2);
}

// --- edit distance: n pairs of byte strings of length ~len (batch), or an na x nb matrix ------
struct Strings {
  std::vector<std::string> s;
  std::vector<fastloss::SeqRef> refs;
  Strings(int64_t n, int64_t len, unsigned seed) : s(n), refs(n) {
    std::mt19937 rng(seed);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t l = len - len / 4 + static_cast<int64_t>(rng() % (len / 2 + 1));
      for (int64_t k = 0; k < l; ++k) s[i].push_back(static_cast<char>('a' + rng() % 12));
      refs[i].data = s[i].data();
      refs[i].len = static_cast<int64_t>(s[i].size());
      refs[i].kind = 1;
    }
  }
  int64_t chars() const {
    int64_t c = 0;
    for (const auto& x : s) c += static_cast<int64_t>(x.size());
    return c;
  }
};

void EditDistanceBatch(benchmark::State& state) {
  const int64_t n = state.range(0), len = state.range(1);
  Strings a(n, len, 2), b(n, len, 3);
  std::vector<int64_t> out(n);
  fastloss::EditBatchParams p;
  p.a = a.refs.data();
  p.b = b.refs.data();
  p.n = n;
  p.out_int = out.data();
  for (auto _ : state) {
    fastloss::cpu::edit_distance_batch(p);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  label(state, n, a.chars() + b.chars());
}

void EditDistancePairwise(benchmark::State& state) {
  const int64_t na = state.range(0), nb = state.range(1), len = state.range(2);
  Strings a(na, len, 4), b(nb, len, 5);
  std::vector<int64_t> out(na * nb);
  fastloss::EditPairwiseParams p;
  p.a = a.refs.data();
  p.na = na;
  p.b = b.refs.data();
  p.nb = nb;
  p.out = view(out.data(), DType::i64, {na, nb});
  for (auto _ : state) {
    fastloss::cpu::edit_distance_pairwise(p);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  label(state, na * nb, 0);
}

// --- dice: (N, C, H, W) with axis=1, integer labels, loss + grad (softmax or sigmoid) ---------
void Dice(benchmark::State& state) {  // activation 0: softmax, 1: sigmoid
  const int64_t N = state.range(0), C = state.range(1), H = state.range(2), W = H;
  std::vector<float> x = normal_floats(N * C * H * W), g(N * C * H * W);
  std::vector<int64_t> t(N * H * W);
  std::mt19937 rng(6);
  for (auto& y : t) y = rng() % C;
  float loss = 0;
  fastloss::DiceParams p;
  p.activation = state.range(3) == 0 ? fastloss::DiceActivation::softmax : fastloss::DiceActivation::sigmoid;
  fastloss::dice_layout(p, view(x.data(), DType::f32, {N, C, H, W}), view(t.data(), DType::i64, {N, H, W}), 1);
  p.loss = view(&loss, DType::f32, {});
  p.grad = fastloss::dice_canonical_grad(view(g.data(), DType::f32, {N, C, H, W}), 1);
  for (auto _ : state) {
    fastloss::cpu::dice_loss(p);
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  label(state, N * C * H * W, N * C * H * W * int64_t(sizeof(float)) * 2 + N * H * W * int64_t(sizeof(int64_t)));
}

// --- bi-tempered: (N, C) rows with integer labels, or the binary form on N x C elements --------
void BiTempered(benchmark::State& state) {  // binary 0: rows, 1: elementwise binary form
  const int64_t N = state.range(0), C = state.range(1);
  const bool binary = state.range(2) != 0;
  std::vector<float> x = normal_floats(N * C), g(N * C), soft(N * C);
  std::vector<int64_t> y(N);
  std::mt19937 rng(7);
  for (auto& v : y) v = rng() % C;
  for (auto& v : soft) v = (rng() % 4 == 0) ? 1.f : 0.f;
  float loss = 0;
  fastloss::BiTemperedParams p;
  p.activations = view(x.data(), DType::f32, {N, C});
  p.binary = binary;
  p.soft_labels = binary;
  p.labels = binary ? view(soft.data(), DType::f32, {N, C}) : view(y.data(), DType::i64, {N});
  p.t1 = 0.8;
  p.t2 = 1.2;
  p.loss = view(&loss, DType::f32, {});
  p.grad = view(g.data(), DType::f32, {N, C});
  for (auto _ : state) {
    fastloss::cpu::bi_tempered_logistic_loss(p);
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  label(state, N * C, N * C * int64_t(sizeof(float)) * (binary ? 3 : 2));
}

void TemperedSoftmax(benchmark::State& state) {
  const int64_t N = state.range(0), C = state.range(1);
  std::vector<float> x = normal_floats(N * C), out(N * C);
  fastloss::TemperedSoftmaxParams p;
  p.activations = view(x.data(), DType::f32, {N, C});
  p.out = view(out.data(), DType::f32, {N, C});
  p.t = 1.2;
  for (auto _ : state) {
    fastloss::cpu::tempered_softmax(p);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  label(state, N * C, N * C * int64_t(sizeof(float)) * 2);
}

// --- metric learning: the L-Softmax row pass over given (N, C) logits, and center loss --------
void LargeMarginRows(benchmark::State& state) {
  const int64_t N = state.range(0), D = state.range(1), C = state.range(2);
  std::vector<float> f = normal_floats(N * D, 8), w = normal_floats(D * C, 9), logits0 = normal_floats(N * C, 10);
  std::vector<float> logits(N * C);
  std::vector<double> rs(N), cs(C);
  std::vector<int64_t> y(N);
  std::mt19937 rng(11);
  for (auto& v : y) v = rng() % C;
  float loss = 0;
  fastloss::LargeMarginParams p;
  p.features = view(f.data(), DType::f32, {N, D});
  p.weight = view(w.data(), DType::f32, {D, C});
  p.labels = view(y.data(), DType::i64, {N});
  p.margin = static_cast<int>(state.range(3));
  p.logits = view(logits.data(), DType::f32, {N, C});
  p.loss = view(&loss, DType::f32, {});
  p.grad = true;
  p.row_scale = view(rs.data(), DType::f64, {N});
  p.class_scale = view(cs.data(), DType::f64, {C});
  for (auto _ : state) {
    state.PauseTiming();
    logits = logits0;  // the pass overwrites the logits with their gradient
    state.ResumeTiming();
    fastloss::cpu::large_margin_softmax_rows(p);
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  label(state, N * C, N * C * int64_t(sizeof(float)) * 2);
}

void CenterLoss(benchmark::State& state) {
  const int64_t N = state.range(0), D = state.range(1), K = state.range(2);
  std::vector<float> f = normal_floats(N * D, 12), c = normal_floats(K * D, 13), g(N * D);
  std::vector<int64_t> y(N);
  std::mt19937 rng(14);
  for (auto& v : y) v = rng() % K;
  float loss = 0;
  fastloss::CenterLossParams p;
  p.features = view(f.data(), DType::f32, {N, D});
  p.labels = view(y.data(), DType::i64, {N});
  p.centers = view(c.data(), DType::f32, {K, D});
  p.loss = view(&loss, DType::f32, {});
  p.grad = view(g.data(), DType::f32, {N, D});
  for (auto _ : state) {
    fastloss::cpu::center_loss(p);
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  label(state, N * D, N * D * int64_t(sizeof(float)) * 2);
}

}  // namespace

// Shapes: CTC as in bench/compare_ctc.py's speech-like case; edit distance at the issue's
// 30-character pairs (the 200000-pair figure is the first case) and a pairwise matrix; dice at
// the (8, 21, 256, 256); the rest at typical classifier / embedding sizes.
BENCHMARK(Ctc)->ArgNames({"T", "N", "C", "S"})->Args({200, 32, 64, 40})->Args({50, 256, 30, 12})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(EditDistanceBatch)->ArgNames({"n", "len"})->Args({200000, 30})->Args({10, 30})->Args({20000, 200})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(EditDistancePairwise)->ArgNames({"na", "nb", "len"})->Args({1000, 1000, 20})->Args({100, 100, 300})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Dice)->ArgNames({"N", "C", "HW", "sigmoid"})->Args({8, 21, 256, 0})->Args({8, 21, 256, 1})->Args({4, 3, 64, 0})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BiTempered)->ArgNames({"N", "C", "binary"})->Args({4096, 1000, 0})->Args({256, 10, 0})->Args({100000, 80, 1})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(TemperedSoftmax)->ArgNames({"N", "C"})->Args({4096, 1000})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(LargeMarginRows)->ArgNames({"N", "D", "C", "m"})->Args({4096, 128, 1000, 2})->Args({4096, 128, 1000, 4})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(CenterLoss)->ArgNames({"N", "D", "K"})->Args({16384, 512, 1000})->Args({256, 64, 10})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
