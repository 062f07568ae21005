// Process-wide settings shared by all kernels: reductions, CPU threads, SIMD dispatch.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
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
// of them. Each kernel measures its own `min_per_thread` (the work whose time equals the
// cost of waking a thread on this machine) and writes it next to its constant. Tiny calls
// get 1 thread and never wake the pool (parallel_tasks runs them inline).
inline int threads_for(long long work, long long min_per_thread) {
  const long long useful = min_per_thread > 0 ? work / min_per_thread : work;
  const int nt = num_threads();
  return useful <= 1 ? 1 : (useful < nt ? static_cast<int>(useful) : nt);
}

// Runs task(ctx, i) once for every i in [0, ntasks), on this thread and up to nt - 1 workers
// of a persistent pool. Tasks are claimed one at a time from an atomic counter: the calling
// thread claims too, from the start, and returns as soon as every task has finished. It never
// waits for a worker that has not started (on a busy machine the OS may run it milliseconds
// later): a late worker finds nothing left to claim. Which thread runs which task varies from
// call to call, so a task's result may depend only on its index (partial sums per task,
// combined by the caller in task order, give the same bits for every thread count). Tasks
// must not throw. Callable from any number of threads at once (they share the pool).
void run_tasks(int64_t ntasks, int nt, void (*task)(void* ctx, int64_t i), void* ctx);

// run_tasks for a callable f(int64_t i); one thread or one task runs inline, waking nothing.
template <class F> inline void parallel_tasks(int64_t ntasks, int nt, F&& f) {
  if (ntasks <= 0) return;
  if (nt <= 1 || ntasks == 1) {
    for (int64_t i = 0; i < ntasks; ++i) f(i);
    return;
  }
  typedef std::remove_reference_t<F> Fn;
  run_tasks(ntasks, nt, [](void* c, int64_t i) { (*static_cast<Fn*>(c))(i); },
            const_cast<void*>(static_cast<const void*>(&f)));
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

// Calls the variant for the SIMD level picked at run time. Off x86 only the baseline variant
// is compiled (CMakeLists.txt), and cpu_isa() is always baseline there.
#if !(defined(__x86_64__) || defined(__i386__))
#define FASTLOSS_CPU_DISPATCH(name, ...) return ::fastloss::cpu::baseline::name(__VA_ARGS__)
#else
#define FASTLOSS_CPU_DISPATCH(name, ...)                                     \
  do {                                                                       \
    switch (::fastloss::cpu_isa()) {                                         \
      case ::fastloss::Isa::avx512: return ::fastloss::cpu::avx512::name(__VA_ARGS__); \
      case ::fastloss::Isa::avx2: return ::fastloss::cpu::avx2::name(__VA_ARGS__);     \
      default: return ::fastloss::cpu::baseline::name(__VA_ARGS__);                   \
    }                                                                        \
  } while (0)
#endif
