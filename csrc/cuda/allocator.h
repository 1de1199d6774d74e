// The caching device allocator: plain cudaMalloc blocks, kept in a per-device free list when released
// and handed out again for a request of a similar size, so a training step after the first allocates
// nothing from the driver. Sizes round up to 512 bytes (to 2 MiB steps past 1 MiB) so freed blocks fit
// later requests; a cudaMalloc that fails empties the cache and tries once more before MemoryError.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>

namespace pcn::cuda {

struct AllocatorStats {
  int64_t allocated = 0;      // bytes in blocks handed out now
  int64_t max_allocated = 0;  // peak of `allocated` since the last reset
  int64_t reserved = 0;       // bytes held from the driver (handed out + cached)
  int64_t max_reserved = 0;
  int64_t driver_allocations = 0;  // cudaMalloc calls made
};

// Raised when the device has no room even after the cache is emptied (Python: MemoryError).
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void* allocate(int device, size_t bytes, size_t* block_bytes);  // block_bytes: the rounded size
void release(int device, void* pointer);
AllocatorStats allocator_stats(int device);
void reset_peak_stats(int device);
void empty_cache();  // cudaFree every cached block on every device

}  // namespace pcn::cuda
