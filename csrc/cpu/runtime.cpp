// Process-wide runtime: thread count, SIMD level, small shared helpers.
#include "fastloss/runtime.h"

#include <omp.h>
#include <pthread.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
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
#if !(defined(__x86_64__) || defined(__i386__))
  return Isa::baseline;  // only the portable variant is compiled off x86
#else
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2") &&
      __builtin_cpu_supports("popcnt"))
    return Isa::avx2;
  return Isa::baseline;
#endif
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

// ---------------------------------------------------------------------------------------
// The worker pool behind run_tasks. A call posts a Job and works on it at once; workers that
// wake in time join it. The Job is reference counted because a worker may join (and find
// nothing left) after the caller has returned; only the counters are touched then, never the
// caller's task or context.

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

struct Job {
  std::atomic<int64_t> next{0};  // next task to claim
  std::atomic<int64_t> done{0};  // tasks finished
  std::atomic<int> refs{1};      // the caller, plus each worker that joined
  int64_t n = 0;
  void (*task)(void*, int64_t) = nullptr;
  void* ctx = nullptr;
  int slots = 0;  // workers still wanted (guarded by Pool::m)
};

void drop(Job* job) {
  if (job->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete job;
}

// Claims and runs tasks until none is left.
void work_on(Job* job) {
  for (;;) {
    const int64_t i = job->next.fetch_add(1, std::memory_order_relaxed);
    if (i >= job->n) return;
    job->task(job->ctx, i);
    job->done.fetch_add(1, std::memory_order_release);
  }
}

struct Pool {
  std::mutex m;
  std::condition_variable cv;
  std::deque<Job*> queue;       // jobs that still want workers
  std::atomic<int> queued{0};   // queue.size(), read without the lock by spinning workers
  int workers = 0;              // started
  int sleeping = 0;             // blocked on cv
};

// Leaked on purpose: workers may still sleep on it while the process exits.
Pool* g_pool = new Pool;

// A worker that just finished polls this long for the next job before it sleeps: back-to-back
// calls then find it awake. It only ever costs the worker's own time, never a caller's.
constexpr auto kWorkerSpin = std::chrono::microseconds(50);

void worker_main(Pool* pool) {
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    while (pool->queued.load(std::memory_order_relaxed) == 0) {
      for (int i = 0; i < 64; ++i) cpu_relax();
      if (std::chrono::steady_clock::now() - t0 > kWorkerSpin) break;
    }
    Job* job;
    {
      std::unique_lock<std::mutex> lk(pool->m);
      while (pool->queue.empty()) {
        ++pool->sleeping;
        pool->cv.wait(lk);
        --pool->sleeping;
      }
      job = pool->queue.front();
      if (--job->slots == 0) {
        pool->queue.pop_front();
        pool->queued.fetch_sub(1, std::memory_order_relaxed);
      }
      job->refs.fetch_add(1, std::memory_order_relaxed);
    }
    work_on(job);
    drop(job);
  }
}

// In a child forked while workers existed, those workers do not exist: start a fresh pool
// (the parent's may even have been locked by one of them at the fork).
void pool_after_fork() { g_pool = new Pool; }
const int g_atfork = pthread_atfork(nullptr, nullptr, pool_after_fork);

}  // namespace

void run_tasks(int64_t ntasks, int nt, void (*task)(void*, int64_t), void* ctx) {
  (void)g_atfork;
  Pool* pool = g_pool;
  Job* job = new Job;
  job->n = ntasks;
  job->task = task;
  job->ctx = ctx;
  const int64_t helpers = nt - 1 < ntasks - 1 ? nt - 1 : ntasks - 1;
  job->slots = static_cast<int>(helpers);
  int wake = 0;
  {
    std::lock_guard<std::mutex> lk(pool->m);
    // Workers start on first need and are kept; a thread that cannot be created is no error
    // (the caller claims its share).
    while (pool->workers < helpers) {
      try {
        std::thread(worker_main, pool).detach();
      } catch (...) {
        break;
      }
      ++pool->workers;
    }
    pool->queue.push_back(job);
    pool->queued.fetch_add(1, std::memory_order_relaxed);
    wake = pool->sleeping < helpers ? pool->sleeping : static_cast<int>(helpers);
  }
  for (int i = 0; i < wake; ++i) pool->cv.notify_one();
  work_on(job);
  // Every task is claimed: no worker may join any more.
  {
    std::lock_guard<std::mutex> lk(pool->m);
    if (job->slots > 0) {
      for (auto it = pool->queue.begin(); it != pool->queue.end(); ++it)
        if (*it == job) {
          pool->queue.erase(it);
          pool->queued.fetch_sub(1, std::memory_order_relaxed);
          break;
        }
      job->slots = 0;
    }
  }
  // Tasks claimed by workers that are still running them (a running worker, not one the OS
  // has yet to schedule): poll, then give the core away so a preempted worker can finish.
  for (int spins = 0; job->done.load(std::memory_order_acquire) < ntasks; ++spins) {
    if (spins < 256) cpu_relax();
    else std::this_thread::yield();
  }
  drop(job);
}

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
