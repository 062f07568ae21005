// Process-wide runtime: thread count, SIMD level, small shared helpers.
#include "fastloss/runtime.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "fastloss/tensor.h"

namespace fastloss {
namespace {

int initial_threads() {
  if (const char* env = std::getenv("FASTLOSS_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return omp_get_max_threads();
}

std::atomic<int> g_threads{initial_threads()};

Isa detect_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2") &&
      __builtin_cpu_supports("popcnt"))
    return Isa::avx2;
  return Isa::baseline;
}

const Isa g_best = detect_isa();

Isa initial_isa() {
  // FASTLOSS_ISA=avx2|baseline lowers the level (for testing and for comparing paths).
  if (const char* env = std::getenv("FASTLOSS_ISA")) {
    const std::string s(env);
    if (s == "baseline") return Isa::baseline;
    if (s == "avx2" && g_best >= Isa::avx2) return Isa::avx2;
  }
  return g_best;
}

std::atomic<Isa> g_isa{initial_isa()};

}  // namespace

void throw_value(const std::string& m) { throw Error(ErrorKind::value, m); }
void throw_type(const std::string& m) { throw Error(ErrorKind::type, m); }
void throw_index(const std::string& m) { throw Error(ErrorKind::index, m); }

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n <= 0) throw_value("set_num_threads: n must be a positive integer, got " + std::to_string(n));
  g_threads.store(n);
}

Isa cpu_isa() { return g_isa.load(std::memory_order_relaxed); }
Isa best_supported_isa() { return g_best; }

void set_cpu_isa(Isa isa) {
  if (isa > g_best)
    throw_value(std::string("this CPU does not support the ") + isa_name(isa) + " kernels (best: " +
                isa_name(g_best) + ")");
  g_isa.store(isa);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "baseline";
  }
}

std::string shape_string(const TensorView& t) {
  std::string s = "(";
  for (int i = 0; i < t.ndim; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]) + (t.ndim == 1 ? "," : "");
  return s + ")";
}

std::string index_string(const int64_t* shape, int ndim, int64_t flat) {
  std::string idx[kMaxDims];
  for (int d = ndim - 1; d >= 0; --d) {
    idx[d] = std::to_string(shape[d] ? flat % shape[d] : 0);
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::string s = "[";
  for (int d = 0; d < ndim; ++d) s += (d ? ", " : "") + idx[d];
  return s + "]";
}

}  // namespace fastloss
