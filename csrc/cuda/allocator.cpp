// The caching device allocator (allocator.h). One free list per device, ordered by size; a request
// takes the smallest cached block that fits and is less than twice its size, else a new cudaMalloc.
#include "cuda/allocator.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda/device_array.h"

namespace pcn::cuda {
namespace {

constexpr size_t kSmallStep = 512;
constexpr size_t kLargeThreshold = size_t(1) << 20;
constexpr size_t kLargeStep = size_t(2) << 20;

struct DevicePool {
  std::multimap<size_t, void*> cached;       // size -> block, free for reuse
  std::unordered_map<void*, size_t> in_use;  // block -> size
  AllocatorStats stats;
};

std::mutex pool_mutex;

// Leaked on purpose: arrays released during interpreter shutdown still find their pool.
std::vector<DevicePool>& pools() {
  static auto* all = new std::vector<DevicePool>();
  return *all;
}

DevicePool& pool_for(int device) {
  auto& all = pools();
  if (device >= static_cast<int>(all.size())) all.resize(device + 1);
  return all[device];
}

size_t round_size(size_t bytes) {
  const size_t step = bytes < kLargeThreshold ? kSmallStep : kLargeStep;
  return std::max(step, (bytes + step - 1) / step * step);
}

// Frees every cached block of `device` (caller holds the lock). Waits for the device first, since a
// block released on the host may still be read by a queued kernel.
void free_cached(int device, DevicePool& pool) {
  if (pool.cached.empty()) return;
  set_device(device);
  check(cudaDeviceSynchronize(), "emptying the allocator cache");
  for (auto& [size, block] : pool.cached) {
    check(cudaFree(block), "cudaFree");
    pool.stats.reserved -= static_cast<int64_t>(size);
  }
  pool.cached.clear();
}

std::string mib(int64_t bytes) { return std::to_string(bytes / (1 << 20)) + " MiB"; }

}  // namespace

void* allocate(int device, size_t bytes, size_t* block_bytes) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(pool_mutex);
  DevicePool& pool = pool_for(device);
  void* block = nullptr;
  size_t block_size = size;
  auto hit = pool.cached.lower_bound(size);
  if (hit != pool.cached.end() && hit->first < 2 * size) {
    block_size = hit->first;
    block = hit->second;
    pool.cached.erase(hit);
  } else {
    set_device(device);
    cudaError_t status = cudaMalloc(&block, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the sticky-free error state before retrying
      free_cached(device, pool);
      status = cudaMalloc(&block, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw OutOfMemory("CUDA out of memory: tried to allocate " + mib(static_cast<int64_t>(size)) + " on cuda:" +
                        std::to_string(device) + " (" + mib(pool.stats.allocated) + " allocated by pyconvnet, " +
                        mib(pool.stats.reserved) + " reserved)");
    }
    check(status, "cudaMalloc");
    pool.stats.reserved += static_cast<int64_t>(size);
    pool.stats.max_reserved = std::max(pool.stats.max_reserved, pool.stats.reserved);
    pool.stats.driver_allocations += 1;
  }
  pool.in_use.emplace(block, block_size);
  pool.stats.allocated += static_cast<int64_t>(block_size);
  pool.stats.max_allocated = std::max(pool.stats.max_allocated, pool.stats.allocated);
  *block_bytes = block_size;
  return block;
}

void release(int device, void* pointer) {
  std::lock_guard<std::mutex> lock(pool_mutex);
  DevicePool& pool = pool_for(device);
  auto it = pool.in_use.find(pointer);
  if (it == pool.in_use.end()) return;  // not ours: nothing to do (never happens through DeviceArray)
  pool.stats.allocated -= static_cast<int64_t>(it->second);
  pool.cached.emplace(it->second, pointer);
  pool.in_use.erase(it);
}

AllocatorStats allocator_stats(int device) {
  std::lock_guard<std::mutex> lock(pool_mutex);
  return pool_for(device).stats;
}

void reset_peak_stats(int device) {
  std::lock_guard<std::mutex> lock(pool_mutex);
  AllocatorStats& stats = pool_for(device).stats;
  stats.max_allocated = stats.allocated;
  stats.max_reserved = stats.reserved;
}

void empty_cache() {
  std::lock_guard<std::mutex> lock(pool_mutex);
  auto& all = pools();
  for (int device = 0; device < static_cast<int>(all.size()); ++device) free_cached(device, all[device]);
}

}  // namespace pcn::cuda
