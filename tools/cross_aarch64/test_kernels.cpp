// A few kernels of the portable (baseline) build, checked against plain double references:
// run under qemu-user by tools/cross_aarch64.sh after a cross build for aarch64. Exits nonzero
// and says what failed. Also checks that the thread pool gives the same bits for 1 and 3 threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fastloss/cross_entropy.h"
#include "fastloss/edit_distance.h"
#include "fastloss/elementwise.h"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

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

float mse(const std::vector<float>& x, const std::vector<float>& t, std::vector<float>& g) {
  float loss = 0;
  fastloss::ElementwiseParams p;
  p.kind = fastloss::ElementwiseLoss::mse_loss;
  const int64_t n = static_cast<int64_t>(x.size());
  p.pred = view(const_cast<float*>(x.data()), fastloss::DType::f32, {n});
  p.target = view(const_cast<float*>(t.data()), fastloss::DType::f32, {n});
  p.grad = view(g.data(), fastloss::DType::f32, {n});
  p.loss = view(&loss, fastloss::DType::f32, {});
  fastloss::cpu::elementwise_loss(p);
  return loss;
}

int64_t levenshtein(const std::string& a, const std::string& b) {
  std::vector<int64_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diag = row[0];
    row[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

int main() {
  std::printf("fastloss on %s, %d threads\n", fastloss::isa_name(fastloss::cpu_isa()), fastloss::num_threads());
  expect(fastloss::cpu_isa() == fastloss::Isa::baseline, "the portable baseline level is the one in use");
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;

  // mse_loss, loss + grad, against float64; then 1 vs 3 threads bit for bit (the pool).
  {
    const int64_t n = 300001;
    std::vector<float> x(n), t(n), g(n), g3(n);
    for (int64_t i = 0; i < n; ++i) x[i] = normal(rng), t[i] = normal(rng);
    fastloss::set_num_threads(1);
    const float l1 = mse(x, t, g);
    double ref = 0, gerr = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = double(x[i]) - t[i];
      ref += d * d;
      gerr = std::max(gerr, std::fabs(g[i] - 2 * d / n));
    }
    ref /= n;
    expect(std::fabs(l1 - ref) <= 1e-5 * ref, "mse_loss value");
    expect(gerr <= 1e-9, "mse_loss gradient");
    fastloss::set_num_threads(3);
    const float l3 = mse(x, t, g3);
    fastloss::set_num_threads(1);
    expect(std::memcmp(&l1, &l3, sizeof(float)) == 0 && std::memcmp(g.data(), g3.data(), n * sizeof(float)) == 0,
           "mse_loss: 1 and 3 threads give the same bits");
  }

  // softmax_cross_entropy (mean) with its gradient, against float64.
  {
    const int64_t N = 64, C = 37;
    std::vector<float> x(N * C), g(N * C);
    std::vector<int64_t> y(N);
    for (auto& v : x) v = 3 * normal(rng);
    for (auto& v : y) v = rng() % C;
    float loss = 0;
    fastloss::CrossEntropyParams p;
    p.logits = view(x.data(), fastloss::DType::f32, {N, C});
    p.labels = view(y.data(), fastloss::DType::i64, {N});
    p.loss = view(&loss, fastloss::DType::f32, {});
    p.grad = view(g.data(), fastloss::DType::f32, {N, C});
    fastloss::cpu::softmax_cross_entropy(p);
    double ref = 0, gerr = 0;
    for (int64_t r = 0; r < N; ++r) {
      double m = -INFINITY, s = 0;
      for (int64_t c = 0; c < C; ++c) m = std::max(m, double(x[r * C + c]));
      for (int64_t c = 0; c < C; ++c) s += std::exp(x[r * C + c] - m);
      ref += (m + std::log(s) - x[r * C + y[r]]) / N;
      for (int64_t c = 0; c < C; ++c) {
        const double want = (std::exp(x[r * C + c] - m) / s - (c == y[r])) / N;
        gerr = std::max(gerr, std::fabs(g[r * C + c] - want));
      }
    }
    expect(std::fabs(loss - ref) <= 1e-5 * std::fabs(ref), "softmax_cross_entropy value");
    expect(gerr <= 1e-7, "softmax_cross_entropy gradient");
  }

  // edit distance: one pair, and a batch that takes the SIMD lanes (>= 32 short byte pairs).
  {
    const fastloss::SeqRef a{"kitten", 6, 1}, b{"sitting", 7, 1};
    expect(fastloss::cpu::edit_distance_pair(a, b, fastloss::EditWeights{}, INT64_MAX) == 3, "edit_distance kitten/sitting");
    const int64_t n = 200;
    std::vector<std::string> sa(n), sb(n);
    std::vector<fastloss::SeqRef> ra(n), rb(n);
    for (int64_t i = 0; i < n; ++i) {
      for (int k = 0, l = 1 + rng() % 70; k < l; ++k) sa[i].push_back('a' + rng() % 4);
      for (int k = 0, l = rng() % 70; k < l; ++k) sb[i].push_back('a' + rng() % 4);
      ra[i] = {sa[i].data(), static_cast<int64_t>(sa[i].size()), 1};
      rb[i] = {sb[i].data(), static_cast<int64_t>(sb[i].size()), 1};
    }
    std::vector<int64_t> out(n);
    fastloss::EditBatchParams p;
    p.a = ra.data();
    p.b = rb.data();
    p.n = n;
    p.out_int = out.data();
    fastloss::set_num_threads(2);
    fastloss::cpu::edit_distance_batch(p);
    fastloss::set_num_threads(1);
    bool same = true;
    for (int64_t i = 0; i < n; ++i) same &= out[i] == levenshtein(sa[i], sb[i]);
    expect(same, "edit_distance batch of 200 pairs");
  }
  std::printf("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
