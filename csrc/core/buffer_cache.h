// A cache of large output buffers, reused across kernel calls.
//
// A training step allocates the same activation and gradient shapes every step. Fresh large
// allocations come from the OS as untouched pages, and the first write to each 4 KiB page is a
// page fault (about 2.8 us on the 2-core VM these were measured on: a ReLU over a fresh 51 MB
// output spent ~3/4 of its time faulting). Buffers of at least kCachedMinBytes are therefore
// kept when their array dies and handed out again for a request of the same page-rounded size.
// A request the cache cannot serve takes memory out of the cache (its blocks of the same kind):
// below 4 MiB it frees the oldest cached heap blocks as far as the heap blocks held would pass
// twice the most ever handed out at once, and takes a new one from malloc (whose heap recycles
// pages itself); from 4 MiB blocks are mappings of their own, and the oldest cached ones' pages are
// moved into the new block, so that reuse does not raise the process's peak (Linux mremap: page
// tables change hands, nothing is copied or faulted). Free bytes held are capped (a quarter
// of physical memory); empty_buffer_cache() returns them all to the system. Thread-safe; all
// memory is 64-byte aligned.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pcn {

constexpr size_t kCachedMinBytes = size_t{1} << 18;  // 256 KiB

// At least `bytes` of 64-byte aligned memory; std::bad_alloc if the system has none (after
// emptying the cache and retrying). Release with release_buffer(ptr).
void* acquire_buffer(size_t bytes);
void release_buffer(void* ptr);

struct BufferCacheStats {
  int64_t cached_bytes;  // free, held for reuse
  int64_t limit_bytes;   // cap on cached_bytes
  int64_t hits;          // requests served from the cache
  int64_t misses;        // requests of a cacheable size that no cached block had
  int64_t recycled_bytes;  // pages moved from cached blocks to serve misses, in bytes
  int64_t live_bytes;      // handed out and not yet released, every size (what outputs hold now)
};
BufferCacheStats buffer_cache_stats();
void empty_buffer_cache();

}  // namespace pcn
