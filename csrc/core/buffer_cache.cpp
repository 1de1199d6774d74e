// See buffer_cache.h.
#include "core/buffer_cache.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "core/runtime.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pcn {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kPage = 4096;

// Each block starts with a header recording its capacity; the caller's memory follows it, so
// release_buffer needs only the pointer.
struct Header {
  size_t capacity;
};
static_assert(sizeof(Header) <= kAlignment);

size_t capacity_of(void* block) { return static_cast<Header*>(block)->capacity; }

struct Cache {
  std::mutex mutex;
  std::vector<void*> free_blocks;  // headers, oldest first
  size_t cached_bytes = 0;
  size_t limit_bytes = 0;
  int64_t hits = 0, misses = 0;

  Cache() {
    const int64_t physical = physical_memory_bytes();
    limit_bytes = physical > 0 ? size_t(physical) / 4 : size_t{1} << 30;
  }

  void free_all() {  // caller holds the mutex
    for (void* block : free_blocks) std::free(block);
    free_blocks.clear();
    cached_bytes = 0;
  }

  // Frees the oldest blocks until `bytes` have gone back to the system (or none are left).
  void evict(size_t bytes) {  // caller holds the mutex
    size_t freed = 0, kept = 0;
    for (size_t i = 0; i < free_blocks.size(); ++i) {
      void* block = free_blocks[i];
      if (freed < bytes) {
        freed += capacity_of(block);
        std::free(block);
      } else {
        free_blocks[kept++] = block;
      }
    }
    free_blocks.resize(kept);
    cached_bytes -= freed;
  }
};

// Never destroyed: arrays may release buffers while the interpreter shuts down.
Cache& cache() {
  static Cache* instance = new Cache;
  return *instance;
}

void* user_pointer(void* block) { return static_cast<char*>(block) + kAlignment; }
void* block_of(void* ptr) { return static_cast<char*>(ptr) - kAlignment; }

// Blocks of at least kHugeMinBytes start on a 2 MiB boundary and are advised to use transparent
// huge pages (Linux, where THP is "madvise" or "always"): the first write to each 2 MiB then
// costs one fault instead of 512. The cache misses these on every step when they are the largest
// arrays (AlexNet's classifier weight gradients, 151 and 67 MB: 55,700 -> 2,600 faults a step,
// the step 7-45 % faster over four noisy pairs). Not lower: from 8 MiB GoogLeNet's activations
// took huge pages too, its peak grew by 50-75 MiB (a partial huge page per block) and its step got
// no faster (each 2 MiB is zeroed at once, ahead of the kernel that writes it).
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugeMinBytes = size_t{64} << 20;

void* allocate_block(size_t capacity) {
  const size_t bytes = capacity + kAlignment;
  void* block = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (capacity >= kHugeMinBytes) {
    if (posix_memalign(&block, kHugePage, bytes) != 0) block = nullptr;
    if (block) madvise(block, bytes, MADV_HUGEPAGE);  // only advice: a refusal just keeps small pages
  } else
#endif
  {
    block = std::aligned_alloc(kAlignment, bytes);
  }
  if (block) static_cast<Header*>(block)->capacity = capacity;
  return block;
}

}  // namespace

void* acquire_buffer(size_t bytes) {
  if (bytes > SIZE_MAX - 2 * kPage) throw std::bad_alloc();
  const bool cacheable = bytes >= kCachedMinBytes;
  const size_t capacity = cacheable ? (bytes + kPage - 1) / kPage * kPage : (bytes + kAlignment - 1) / kAlignment * kAlignment;
  Cache& c = cache();
  if (cacheable) {
    std::lock_guard<std::mutex> lock(c.mutex);
    for (size_t i = c.free_blocks.size(); i-- > 0;) {  // the newest block of this size
      void* block = c.free_blocks[i];
      if (capacity_of(block) != capacity) continue;
      c.free_blocks.erase(c.free_blocks.begin() + i);
      c.cached_bytes -= capacity;
      ++c.hits;
      return user_pointer(block);
    }
    ++c.misses;
    c.evict(capacity);  // memory for the new block comes out of the cache, not on top of it
  }
  void* block = allocate_block(capacity);
  if (!block && cacheable) {  // the cache may be what is holding the memory
    std::lock_guard<std::mutex> lock(c.mutex);
    c.free_all();
    block = allocate_block(capacity);
  }
  if (!block) throw std::bad_alloc();
  return user_pointer(block);
}

void release_buffer(void* ptr) {
  if (!ptr) return;
  void* block = block_of(ptr);
  const size_t capacity = static_cast<Header*>(block)->capacity;
  if (capacity >= kCachedMinBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cached_bytes + capacity <= c.limit_bytes) {
      c.free_blocks.push_back(block);
      c.cached_bytes += capacity;
      return;
    }
  }
  std::free(block);
}

BufferCacheStats buffer_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return {int64_t(c.cached_bytes), int64_t(c.limit_bytes), c.hits, c.misses};
}

void empty_buffer_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.free_all();
}

}  // namespace pcn
