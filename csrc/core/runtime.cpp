// Thread count and per-thread scratch memory; see runtime.h.
#include "core/runtime.h"

#include <omp.h>
#include <pthread.h>
#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>
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

int num_threads() {
  if (g_single_threaded_child.load(std::memory_order_relaxed)) return 1;
  int threads = g_threads.load(std::memory_order_relaxed);
  if (threads <= 0) {
    threads = omp_get_max_threads();
    g_threads.store(threads, std::memory_order_relaxed);
  }
  if (threads > 1 && !g_pool_may_exist.load(std::memory_order_relaxed))
    g_pool_may_exist.store(true, std::memory_order_relaxed);
  return threads;
}

void set_num_threads(int threads) { g_threads.store(threads, std::memory_order_relaxed); }

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
