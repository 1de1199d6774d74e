// See buffer_cache.h.
#include "core/buffer_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/runtime.h"

namespace pcn {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kPage = 4096;

// From this size blocks are mappings of their own whose pages a miss of another size can take
// over (mremap). Below it moving pages costs more than it saves: a block of 1-2 MB is a few
// hundred faults, about what the system calls and the TLB shootdowns of a move cost on a VM, and
// small blocks split the cache's pages into ever smaller pieces (LeNet-5's step went from 5 to
// 7-12 ms when its 1.2 MB outputs were recycled that way). Those come from malloc, whose heap
// recycles their pages without system calls.
constexpr size_t kMappedMinBytes = size_t{4} << 20;
// No moved piece is smaller, so that a block is at most a few pieces and the number of
// mappings stays bounded by the memory held (pieces left shorter go back to the system).
constexpr size_t kMinPieceBytes = size_t{1} << 20;

// Blocks of at least kHugeMinBytes start on a 2 MiB boundary and are advised to use transparent
// huge pages (Linux, where THP is "madvise" or "always"): the first write to each 2 MiB then
// costs one fault instead of 512 (AlexNet's classifier weight gradients, 151 and 67 MB and fresh
// each step before pages were recycled: 55,700 -> 2,600 faults a step). Not lower: from 8 MiB
// GoogLeNet's peak grew by 50-75 MiB (a partial huge page per block) and its step got no faster.
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugeMinBytes = size_t{64} << 20;

// Pages that lie within one kernel mapping, which is what mremap can move in one call.
struct Segment {
  char* address;
  size_t bytes;
};

// A mapped block: `bytes` of contiguous addresses made of one or more segments in order.
struct Block {
  char* address;
  size_t bytes;
  std::vector<Segment> segments;
};

// Fresh pages (untouched: each faults on first write), or null when the system has none.
char* map_fresh(size_t bytes) {
  if (bytes < kHugeMinBytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  // Over-map by a huge page and trim both ends to land on a 2 MiB boundary.
  void* p = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  char* raw = static_cast<char*>(p);
  char* start = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) & ~(kHugePage - 1));
  if (start > raw) munmap(raw, start - raw);
  munmap(start + bytes, raw + kHugePage - start);
#if defined(MADV_HUGEPAGE)
  madvise(start, bytes, MADV_HUGEPAGE);  // only advice: a refusal just keeps small pages
#endif
  return start;
}

// Moves the pages of `from` (touched ones stay touched) to `to`, replacing what was mapped
// there; false where the system cannot move pages.
bool move_pages(const Segment& from, char* to) {
#if defined(__linux__)
  return mremap(from.address, from.bytes, from.bytes, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED;
#else
  (void)from, (void)to;
  return false;
#endif
}

// A moved segment mostly stays a kernel mapping of its own (the kernel seldom merges it with its
// new neighbours), and a process may hold only so many (Linux: vm.max_map_count, 65,530 by
// default). Past this many pieces the cache stops moving them (they go back to the system and
// blocks take fresh pages) until fragmented blocks have been let go; kMinPieceBytes keeps
// ordinary models far below it.
constexpr size_t kMaxSegments = 4096;

// Heap blocks start with a header recording their capacity; the caller's memory follows it.
struct Header {
  size_t capacity;
};
static_assert(sizeof(Header) <= kAlignment);

size_t capacity_of(void* heap_block) { return static_cast<Header*>(heap_block)->capacity; }

// Moves the newest entry of `list` whose size (size_of) is `bytes` into *out; false if none.
template <typename Entry, typename SizeOf>
bool take_newest(std::vector<Entry>& list, size_t bytes, SizeOf size_of, Entry* out) {
  for (size_t i = list.size(); i-- > 0;) {
    if (size_of(list[i]) != bytes) continue;
    *out = std::move(list[i]);
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
    return true;
  }
  return false;
}

struct Cache {
  std::mutex mutex;
  std::vector<void*> heap_free;                          // cached heap blocks (headers), oldest first
  std::vector<Block> mapped_free;                        // cached mapped blocks, oldest first
  std::unordered_map<void*, std::vector<Segment>> live;  // mapped blocks in use, by address
  size_t cached_bytes = 0;
  size_t limit_bytes = 0;
  // Cacheable heap blocks: bytes cached, bytes handed out, and the most handed out at once since
  // the cache was last emptied (see heap_miss).
  size_t heap_cached = 0, heap_live = 0, heap_live_peak = 0;
  int64_t hits = 0, misses = 0, recycled_bytes = 0;
  size_t segment_count = 0;  // in live and cached mapped blocks

  Cache() {
    const int64_t physical = physical_memory_bytes();
    limit_bytes = physical > 0 ? size_t(physical) / 4 : size_t{1} << 30;
  }

  // A mapped block leaving the cache's books: its pages go back to the system.
  void unmap(const Block& block) {  // caller holds the mutex
    munmap(block.address, block.bytes);
    segment_count -= block.segments.size();
  }

  void free_all() {  // caller holds the mutex
    for (void* block : heap_free) std::free(block);
    for (const Block& block : mapped_free) unmap(block);
    heap_free.clear();
    mapped_free.clear();
    cached_bytes = 0;
    heap_cached = 0;
    heap_live_peak = heap_live;
  }

  // Frees the oldest heap blocks until `bytes` have gone back to malloc (or none are left), so
  // that a new block comes out of the cache, not on top of it.
  void evict_heap(size_t bytes) {  // caller holds the mutex
    size_t freed = 0, kept = 0;
    for (void* block : heap_free) {
      if (freed < bytes) {
        freed += capacity_of(block);
        std::free(block);
      } else {
        heap_free[kept++] = block;
      }
    }
    heap_free.resize(kept);
    cached_bytes -= freed;
    heap_cached -= freed;
  }

  void hand_out_heap(size_t capacity) {  // caller holds the mutex
    heap_live += capacity;
    heap_live_peak = std::max(heap_live_peak, heap_live);
  }

  // A heap request of `capacity` that no cached block fits, counted as handed out: the oldest
  // blocks are freed only as far as the heap blocks held (cached and handed out) would pass twice
  // the most ever handed out at once. A training step asks for the same sizes every time, so all
  // its blocks stay and it finds them again; freeing the request's worth on every miss instead
  // evicted blocks of sizes still to come in the step, for ever (LeNet-5 missed 4 of its 8
  // requests a step, each a trip through malloc, which faults pages in again once the heap has
  // been trimmed, e.g. by another library's frees).
  void heap_miss(size_t capacity) {  // caller holds the mutex
    ++misses;
    hand_out_heap(capacity);
    const size_t held = heap_cached + heap_live;
    if (held > 2 * heap_live_peak) evict_heap(held - 2 * heap_live_peak);
  }

  // A new mapped block of `bytes` whose pages come, as far as they reach, from the oldest cached
  // mapped blocks: moved, not copied, so pages that earlier outputs touched are not faulted in
  // again, and the memory the process holds does not grow by what the cache already holds.
  Block assemble(size_t bytes) {  // caller holds the mutex
    char* address = map_fresh(bytes);
    if (!address) {  // the cache may be what is holding the memory
      free_all();
      address = map_fresh(bytes);
      if (!address) throw std::bad_alloc();
    }
    Block block{address, bytes, {}};
    size_t taken = 0, filled = 0;  // bytes taken out of the cache; of those, bytes moved in
    while (taken < bytes && !mapped_free.empty()) {
      Block& oldest = mapped_free.front();
      Segment& source = oldest.segments.front();
      const Segment piece{source.address, std::min(source.bytes, bytes - taken)};
      // A remainder too short to keep goes back to the system.
      const size_t dropped = source.bytes - piece.bytes < kMinPieceBytes ? source.bytes - piece.bytes : 0;
      if (piece.bytes >= kMinPieceBytes && segment_count < kMaxSegments && move_pages(piece, address + filled)) {
        block.segments.push_back({address + filled, piece.bytes});
        ++segment_count;
        filled += piece.bytes;
        recycled_bytes += int64_t(piece.bytes);
      } else {
        munmap(piece.address, piece.bytes);
      }
      if (dropped > 0) munmap(piece.address + piece.bytes, dropped);
      taken += piece.bytes;
      cached_bytes -= piece.bytes + dropped;
      source.address += piece.bytes + dropped;
      source.bytes -= piece.bytes + dropped;
      oldest.address += piece.bytes + dropped;
      oldest.bytes -= piece.bytes + dropped;
      if (source.bytes == 0) {
        oldest.segments.erase(oldest.segments.begin());
        --segment_count;
      }
      if (oldest.segments.empty()) mapped_free.erase(mapped_free.begin());
    }
    if (filled < bytes) {  // the rest of the fresh mapping, untouched
      block.segments.push_back({address + filled, bytes - filled});
      ++segment_count;
    }
    return block;
  }
};

// Bytes handed out and not yet released, every size (small blocks bypass the cache's lock).
std::atomic<int64_t> live_bytes{0};

// Never destroyed: arrays may release buffers while the interpreter shuts down.
Cache& cache() {
  static Cache* instance = new Cache;
  return *instance;
}

void* heap_allocate(size_t capacity) {
  void* block = std::aligned_alloc(kAlignment, capacity + kAlignment);
  if (block) static_cast<Header*>(block)->capacity = capacity;
  return block;
}

}  // namespace

void* acquire_buffer(size_t bytes) {
  if (bytes > SIZE_MAX - 2 * kHugePage) throw std::bad_alloc();
  Cache& c = cache();
  if (bytes < kMappedMinBytes) {
    const bool cacheable = bytes >= kCachedMinBytes;
    const size_t capacity = cacheable ? (bytes + kPage - 1) / kPage * kPage : (bytes + kAlignment - 1) / kAlignment * kAlignment;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(c.mutex);
      void* block = nullptr;
      if (take_newest(c.heap_free, capacity, capacity_of, &block)) {
        c.cached_bytes -= capacity;
        c.heap_cached -= capacity;
        c.hand_out_heap(capacity);
        ++c.hits;
        live_bytes.fetch_add(int64_t(capacity), std::memory_order_relaxed);
        return static_cast<char*>(block) + kAlignment;
      }
      c.heap_miss(capacity);
    }
    void* block = heap_allocate(capacity);
    if (!block && cacheable) {  // the cache may be what is holding the memory
      std::lock_guard<std::mutex> lock(c.mutex);
      c.free_all();
      block = heap_allocate(capacity);
      if (!block) c.heap_live -= capacity;
    }
    if (!block) throw std::bad_alloc();
    live_bytes.fetch_add(int64_t(capacity), std::memory_order_relaxed);
    return static_cast<char*>(block) + kAlignment;
  }
  const size_t size = (bytes + kPage - 1) / kPage * kPage;
  std::lock_guard<std::mutex> lock(c.mutex);
  Block block;
  if (take_newest(c.mapped_free, size, [](const Block& b) { return b.bytes; }, &block)) {
    c.cached_bytes -= size;
    ++c.hits;
  } else {
    ++c.misses;
    block = c.assemble(size);
  }
  c.live.emplace(block.address, std::move(block.segments));
  live_bytes.fetch_add(int64_t(size), std::memory_order_relaxed);
  return block.address;
}

void release_buffer(void* ptr) {
  if (!ptr) return;
  Cache& c = cache();
  // Mapped blocks start on a page; anything else is a heap block, and small ones need no lock.
  const bool on_page = reinterpret_cast<uintptr_t>(ptr) % kPage == 0;
  if (!on_page && capacity_of(static_cast<char*>(ptr) - kAlignment) < kCachedMinBytes) {
    live_bytes.fetch_sub(int64_t(capacity_of(static_cast<char*>(ptr) - kAlignment)), std::memory_order_relaxed);
    std::free(static_cast<char*>(ptr) - kAlignment);
    return;
  }
  std::lock_guard<std::mutex> lock(c.mutex);
  const auto it = on_page ? c.live.find(ptr) : c.live.end();
  if (it != c.live.end()) {
    Block block{static_cast<char*>(ptr), 0, std::move(it->second)};
    c.live.erase(it);
    for (const Segment& segment : block.segments) block.bytes += segment.bytes;
    live_bytes.fetch_sub(int64_t(block.bytes), std::memory_order_relaxed);
    if (c.cached_bytes + block.bytes <= c.limit_bytes) {
      c.cached_bytes += block.bytes;
      c.mapped_free.push_back(std::move(block));
    } else {
      c.unmap(block);
    }
    return;
  }
  void* block = static_cast<char*>(ptr) - kAlignment;
  const size_t capacity = capacity_of(block);
  live_bytes.fetch_sub(int64_t(capacity), std::memory_order_relaxed);
  if (capacity < kCachedMinBytes) {  // a small block that happens to start on a page
    std::free(block);
    return;
  }
  c.heap_live -= capacity;
  if (c.cached_bytes + capacity <= c.limit_bytes) {
    c.heap_free.push_back(block);
    c.cached_bytes += capacity;
    c.heap_cached += capacity;
    return;
  }
  std::free(block);
}

BufferCacheStats buffer_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return {int64_t(c.cached_bytes), int64_t(c.limit_bytes), c.hits, c.misses, c.recycled_bytes,
          live_bytes.load(std::memory_order_relaxed)};
}

void empty_buffer_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.free_all();
}

}  // namespace pcn
