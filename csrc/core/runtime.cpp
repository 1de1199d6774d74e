// Thread count and per-thread scratch memory; see runtime.h.
#include "core/runtime.h"

#include <omp.h>
#include <pthread.h>
#if defined(__linux__)
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#endif
#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace pcn {
namespace {

std::atomic<int> g_threads{0};
// Note [fork]: GNU libgomp's thread pool does not survive fork(). In a child forked after the
// parent ran a parallel region, a region with more than one thread waits forever for pool
// threads that do not exist there. So once more than one thread has been handed out, a forked
// child runs every kernel on one thread (as PyTorch does), whatever set_num_threads() says.
std::atomic<bool> g_pool_may_exist{false};
std::atomic<bool> g_single_threaded_child{false};

void after_fork_in_child() {
  if (g_pool_may_exist.load(std::memory_order_relaxed)) g_single_threaded_child.store(true, std::memory_order_relaxed);
}

const int g_fork_handler_registered = pthread_atfork(nullptr, nullptr, after_fork_in_child);

struct ScratchBuffer {
  float* data = nullptr;
  int64_t capacity = 0;
  ~ScratchBuffer() { std::free(data); }
};

}  // namespace

// Note [adaptive threads]: an OpenMP team is as fast as its slowest thread. While another process
// keeps one of the CPUs busy, a team with a thread per CPU waits at every barrier and join for a
// thread the scheduler has set aside, and GNU OpenMP's spinning waiters take the CPU from the very
// threads they wait for: on 2 CPUs beside one busy process a LeNet-5 step took 2.3x its quiet
// time and a ResNet-20 step 3.6x, where one thread takes 1.5x (bench/NOTES.md, "Sharing the
// machine"). So num_threads() measures, every kSamplePeriod, the CPU time other processes used on
// this process's CPUs: the busy time of those CPUs in /proc/stat minus this process's own
// (getrusage), whatever their priority: beside a busy process at nice 5, a LeNet-5 step on two
// threads took 193 ms against 3.9 ms on one. While others take whole CPUs, teams are that many
// threads smaller (never fewer than one, never more than the count set); when they stop, the
// count comes back. Fewer threads only leave others more CPU, so the measurement does
// not chase its own effect. The count set is kept when nobody else is busy, even above the CPU
// count.
namespace {

constexpr auto kSamplePeriod = std::chrono::milliseconds(300);

bool adaptive_default() {
  const char* setting = std::getenv("PYCONVNET_ADAPTIVE_THREADS");
  return !(setting && std::strcmp(setting, "0") == 0);
}

std::atomic<bool> g_adaptive{adaptive_default()};
std::atomic<int> g_cpus_taken{0};
std::atomic<double> g_others_cpus{0.0};
std::atomic<int> g_share_cpus{0};
std::atomic<int64_t> g_next_sample_ns{0};
std::mutex g_sample_mutex;

// Clock ticks summed over the CPUs this process may run on, and this process's own CPU time.
struct CpuTicks {
  double busy = 0, total = 0, own = 0;
  int cpus = 0;
};
CpuTicks g_previous_ticks;  // guarded by g_sample_mutex

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

#if defined(__linux__)
// Reads the per-CPU lines of /proc/stat (they come first; the file is read up to the first other
// line). False where it cannot be read; never throws, as it runs inside kernels' entry.
bool read_cpu_ticks(CpuTicks* ticks) {
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return false;
  const int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  static char text[1 << 18];  // guarded by g_sample_mutex; 256 KiB holds ~2,500 CPUs' lines
  size_t length = 0;
  for (ssize_t got; length < sizeof text - 1 && (got = read(fd, text + length, sizeof text - 1 - length)) > 0;)
    length += static_cast<size_t>(got);
  close(fd);
  text[length] = '\0';
  CpuTicks sum;
  for (const char* line = text; std::strncmp(line, "cpu", 3) == 0;) {
    char* cursor = nullptr;
    const long cpu = std::isdigit(static_cast<unsigned char>(line[3])) ? std::strtol(line + 3, &cursor, 10) : -1;
    if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &mask)) {
      // user nice system idle iowait irq softirq steal (guest time is already in user)
      double field[8] = {};
      for (double& value : field) value = std::strtod(cursor, &cursor);
      sum.busy += field[0] + field[1] + field[2] + field[5] + field[6] + field[7];
      sum.total += field[0] + field[1] + field[2] + field[3] + field[4] + field[5] + field[6] + field[7];
      ++sum.cpus;
    }
    line = std::strchr(line, '\n');
    if (!line) break;
    ++line;
  }
  rusage usage;
  if (sum.cpus == 0 || getrusage(RUSAGE_SELF, &usage) != 0) return false;
  const double seconds = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  sum.own = seconds * static_cast<double>(sysconf(_SC_CLK_TCK));
  *ticks = sum;
  return true;
}
#else
bool read_cpu_ticks(CpuTicks*) { return false; }
#endif

// At most once per kSamplePeriod, from whichever thread asks first.
void measure_cpu_share() {
  const int64_t now = steady_ns();
  if (now < g_next_sample_ns.load(std::memory_order_relaxed)) return;
  std::unique_lock<std::mutex> lock(g_sample_mutex, std::try_to_lock);
  if (!lock.owns_lock() || now < g_next_sample_ns.load(std::memory_order_relaxed)) return;
  g_next_sample_ns.store(now + std::chrono::nanoseconds(kSamplePeriod).count(), std::memory_order_relaxed);
  CpuTicks ticks;
  if (!read_cpu_ticks(&ticks)) return;
  const CpuTicks previous = g_previous_ticks;
  g_previous_ticks = ticks;
  const double elapsed = ticks.total - previous.total;  // ticks of all the CPUs together
  if (previous.cpus != ticks.cpus || elapsed <= 0) return;
  const double others =
      std::max(0.0, (ticks.busy - previous.busy) - (ticks.own - previous.own)) / elapsed * ticks.cpus;
  g_others_cpus.store(others, std::memory_order_relaxed);
  g_share_cpus.store(ticks.cpus, std::memory_order_relaxed);
  g_cpus_taken.store(cpus_taken_by_others(g_cpus_taken.load(std::memory_order_relaxed), others),
                     std::memory_order_relaxed);
}

}  // namespace

int cpus_taken_by_others(int taken, double others_cpus) {
  const int rounded_up = static_cast<int>(std::floor(others_cpus + 0.6));
  const int rounded_down = static_cast<int>(std::floor(others_cpus + 0.25));
  if (rounded_up > taken) return rounded_up;
  if (rounded_down < taken) return rounded_down;
  return taken;
}

int configured_threads() {
  int threads = g_threads.load(std::memory_order_relaxed);
  if (threads <= 0) {
    threads = omp_get_max_threads();
    g_threads.store(threads, std::memory_order_relaxed);
  }
  return threads;
}

int num_threads() {
  if (g_single_threaded_child.load(std::memory_order_relaxed)) return 1;
  int threads = configured_threads();
  if (threads > 1 && g_adaptive.load(std::memory_order_relaxed)) {
    measure_cpu_share();
    const int taken = g_cpus_taken.load(std::memory_order_relaxed);
    if (taken > 0) threads = std::clamp(g_share_cpus.load(std::memory_order_relaxed) - taken, 1, threads);
  }
  if (threads > 1 && !g_pool_may_exist.load(std::memory_order_relaxed))
    g_pool_may_exist.store(true, std::memory_order_relaxed);
  return threads;
}

void set_num_threads(int threads) { g_threads.store(threads, std::memory_order_relaxed); }

bool adaptive_threads_enabled() { return g_adaptive.load(std::memory_order_relaxed); }

void set_adaptive_threads(bool enabled) {
  std::lock_guard<std::mutex> lock(g_sample_mutex);
  g_adaptive.store(enabled, std::memory_order_relaxed);
  // Measure afresh from now: an old window would describe another time.
  g_cpus_taken.store(0, std::memory_order_relaxed);
  if (!enabled || !read_cpu_ticks(&g_previous_ticks)) g_previous_ticks = CpuTicks();
  g_next_sample_ns.store(steady_ns() + std::chrono::nanoseconds(kSamplePeriod).count(), std::memory_order_relaxed);
}

CpuShare last_cpu_share() {
  return {g_others_cpus.load(std::memory_order_relaxed), g_share_cpus.load(std::memory_order_relaxed)};
}

namespace {
bool winograd_default() {
  const char* setting = std::getenv("PYCONVNET_WINOGRAD");
  return !(setting && std::strcmp(setting, "0") == 0);
}
std::atomic<bool> g_winograd{winograd_default()};
}  // namespace

bool winograd_enabled() { return g_winograd.load(std::memory_order_relaxed); }
void set_winograd_enabled(bool enabled) { g_winograd.store(enabled, std::memory_order_relaxed); }

int64_t physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) return int64_t(pages) * page_size;
#endif
  return 0;
}

float* thread_scratch(Scratch slot, int64_t count) {
  thread_local ScratchBuffer buffers[static_cast<int>(Scratch::count_)];
  ScratchBuffer& buffer = buffers[static_cast<int>(slot)];
  if (count > buffer.capacity) {
    std::free(buffer.data);
    buffer.data = nullptr;
    buffer.capacity = 0;
    const size_t bytes = ((static_cast<size_t>(count) * sizeof(float) + 63) / 64) * 64;
    buffer.data = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!buffer.data) throw std::bad_alloc();
    buffer.capacity = count;
  }
  return buffer.data;
}

int64_t* thread_scratch_i64(Scratch slot, int64_t count) {
  static_assert(sizeof(int64_t) == 2 * sizeof(float), "index tables take two float slots per entry");
  return reinterpret_cast<int64_t*>(thread_scratch(slot, 2 * count));
}

}  // namespace pcn
