// Process-wide runtime: thread count, SIMD level, small shared helpers.
#include "fastloss/runtime.h"

#include <omp.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "fastloss/tensor.h"

namespace fastloss {
namespace {

std::vector<std::string>& warnings_list() {
  static std::vector<std::string> w;  // function-local: filled during static initialisation
  return w;
}

void warn(const std::string& m) { warnings_list().push_back(m); }

int thread_cap() {
  const int procs = omp_get_num_procs();
  return procs > 1024 ? procs : 1024;
}

// A positive decimal integer (surrounding blanks allowed), else -1; values beyond long long
// saturate so that they are reported as above the cap, not as garbage.
long long parse_count(const char* s) {
  while (std::isspace(static_cast<unsigned char>(*s))) ++s;
  if (*s == '+') ++s;
  if (!std::isdigit(static_cast<unsigned char>(*s))) return -1;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s, &end, 10);
  if (errno == ERANGE) v = std::numeric_limits<long long>::max();
  while (std::isspace(static_cast<unsigned char>(*end))) ++end;
  return *end ? -1 : v;
}

int initial_threads() {
  // OMP_NUM_THREADS may ask for anything; hold the default to the cap like set_num_threads.
  const int omp = omp_get_max_threads() < thread_cap() ? omp_get_max_threads() : thread_cap();
  const char* env = std::getenv("FASTLOSS_NUM_THREADS");
  if (!env || !*env) return omp;  // unset or empty: the default
  const long long n = parse_count(env);
  if (n >= 1 && n <= thread_cap()) return static_cast<int>(n);
  warn(std::string("FASTLOSS_NUM_THREADS='") + env + "' is not an integer in [1, " + std::to_string(thread_cap()) +
       "]; using the default of " + std::to_string(omp) + " threads");
  return omp;
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
  // FASTLOSS_ISA=avx512|avx2|baseline lowers the level (for testing and for comparing
  // paths); it never raises it above what the CPU runs. Anything else warns.
  const char* env = std::getenv("FASTLOSS_ISA");
  if (!env || !*env) return g_best;
  const std::string s(env);
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::baseline}) {
    if (s != isa_name(isa)) continue;
    if (isa <= g_best) return isa;
    warn("FASTLOSS_ISA='" + s + "' is above what this CPU supports; using " + isa_name(g_best));
    return g_best;
  }
  warn("FASTLOSS_ISA='" + s + "' is not one of 'avx512', 'avx2', 'baseline'; using " + isa_name(g_best));
  return g_best;
}

std::atomic<Isa> g_isa{initial_isa()};

}  // namespace

void throw_value(const std::string& m) { throw Error(ErrorKind::value, m); }
void throw_type(const std::string& m) { throw Error(ErrorKind::type, m); }
void throw_index(const std::string& m) { throw Error(ErrorKind::index, m); }

int num_threads() { return g_threads.load(std::memory_order_relaxed); }

int max_num_threads() { return thread_cap(); }

void set_num_threads(long long n) {
  if (n < 1 || n > thread_cap())
    throw_value("set_num_threads: n must be an integer in [1, " + std::to_string(thread_cap()) + "], got " +
                std::to_string(n));
  g_threads.store(static_cast<int>(n));
}

const std::vector<std::string>& environment_warnings() { return warnings_list(); }

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

std::string number_string(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
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
