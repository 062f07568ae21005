// Process-wide settings shared by all kernels: reductions, CPU threads, SIMD dispatch.
#pragma once
#include <string>
#include <vector>

namespace fastloss {

enum class Reduction { none, mean, sum };

// Threads the CPU kernels use: FASTLOSS_NUM_THREADS, else OpenMP's default (all cores).
int num_threads();
// n in [1, max_num_threads()], else ValueError naming n (a 64-bit argument, so that any
// value a caller can hold is refused by the same rule rather than truncated first).
void set_num_threads(long long n);
// The cap: 1024, or the processor count on a machine with more. No CPU kernel gains from
// more threads than hardware threads; the cap is generous enough that code written for the
// largest machines (a few hundred hardware threads) runs unchanged on a laptop, and small
// enough that libgomp can always create the team (1024 threads: ~0.5 s on 2 cores, tested);
// 100000 used to crash the process and 2**31-1 made libgomp abort.
int max_num_threads();

// Problems with FASTLOSS_NUM_THREADS / FASTLOSS_ISA found while reading them at load time
// (the value was ignored); the Python package turns each into a warning at import.
const std::vector<std::string>& environment_warnings();

// Threads worth waking for `work` units when a thread should get at least `min_per_thread`
// of them. Each kernel measures its own `min_per_thread` (the work whose time equals
// OpenMP's fork/join cost on this machine) and writes it next to its constant. Tiny calls
// get 1 thread and, through `if(nt > 1)` on the parallel region, never wake the pool.
inline int threads_for(long long work, long long min_per_thread) {
  const long long useful = min_per_thread > 0 ? work / min_per_thread : work;
  const int nt = num_threads();
  return useful <= 1 ? 1 : (useful < nt ? static_cast<int>(useful) : nt);
}

// SIMD level of the CPU kernels, picked once from CPUID; set_cpu_isa() may lower it
// (tests run every level on one machine) but never raise it above what the CPU has.
enum class Isa { baseline = 0, avx2 = 1, avx512 = 2 };
Isa cpu_isa();
Isa best_supported_isa();
void set_cpu_isa(Isa isa);
const char* isa_name(Isa isa);

}  // namespace fastloss

// Declares a kernel entry once per SIMD level: fastloss::cpu::<isa>::name.
#define FASTLOSS_CPU_KERNEL_DECL(ret, name, params)      \
  namespace fastloss { namespace cpu {                   \
  namespace avx512 { ret name params; }                  \
  namespace avx2 { ret name params; }                    \
  namespace baseline { ret name params; }                \
  } }

// Calls the variant for the SIMD level picked at run time.
#define FASTLOSS_CPU_DISPATCH(name, ...)                                     \
  do {                                                                       \
    switch (::fastloss::cpu_isa()) {                                         \
      case ::fastloss::Isa::avx512: return ::fastloss::cpu::avx512::name(__VA_ARGS__); \
      case ::fastloss::Isa::avx2: return ::fastloss::cpu::avx2::name(__VA_ARGS__);     \
      default: return ::fastloss::cpu::baseline::name(__VA_ARGS__);                   \
    }                                                                        \
  } while (0)
