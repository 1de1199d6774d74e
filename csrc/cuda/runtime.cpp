// The GPU runtime pieces of device_array.h: dtypes, array allocation, per-device streams, error checks
// and the transfer counters.
#include <mutex>
#include <stdexcept>
#include <vector>

#include "core/checks.h"
#include "cuda/allocator.h"
#include "cuda/device_array.h"

namespace pcn::cuda {

int64_t itemsize(Dtype dtype) {
  switch (dtype) {
    case Dtype::float32: return 4;
    case Dtype::int64: return 8;
    case Dtype::bool_:
    case Dtype::uint8: return 1;
  }
  return 1;
}

const char* dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::float32: return "float32";
    case Dtype::int64: return "int64";
    case Dtype::bool_: return "bool";
    case Dtype::uint8: return "uint8";
  }
  return "?";
}

Dtype dtype_from_name(const std::string& name) {
  if (name == "float32") return Dtype::float32;
  if (name == "int64") return Dtype::int64;
  if (name == "bool") return Dtype::bool_;
  if (name == "uint8") return Dtype::uint8;
  throw DtypeError("dtype must be float32, int64, bool or uint8 on a CUDA device, got " + name);
}

int64_t DeviceArray::numel() const {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  return count;
}

DeviceArray empty(const std::vector<int64_t>& shape, Dtype dtype, int device) {
  const int64_t count = checked_numel(shape, "CUDA array");
  DeviceArray array;
  array.shape = shape;
  array.dtype = dtype;
  array.device = device;
  size_t block_bytes = 0;
  void* block = allocate(device, static_cast<size_t>(std::max<int64_t>(count * itemsize(dtype), 1)), &block_bytes);
  array.storage = std::shared_ptr<void>(block, [device](void* pointer) { release(device, pointer); });
  array.storage_bytes = static_cast<int64_t>(block_bytes);
  return array;
}

DeviceArray empty_like(const DeviceArray& like) { return empty(like.shape, like.dtype, like.device); }

void set_device(int device) {
  thread_local int current = -1;
  if (device == current) return;
  check(cudaSetDevice(device), "cudaSetDevice");
  current = device;
}

cudaStream_t stream(int device) {
  static std::mutex mutex;
  static auto* streams = new std::vector<cudaStream_t>();  // leaked: used until the process ends
  std::lock_guard<std::mutex> lock(mutex);
  if (device >= static_cast<int>(streams->size())) streams->resize(device + 1, nullptr);
  cudaStream_t& s = (*streams)[device];
  if (s == nullptr) {
    set_device(device);
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  }
  return s;
}

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  const std::string message = std::string("CUDA error in ") + what + ": " + cudaGetErrorName(status) + " (" +
                              cudaGetErrorString(status) + ")";
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw OutOfMemory(message);
  }
  throw std::runtime_error(message);
}

void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

TransferCounts& transfer_counts() {
  static TransferCounts counts;
  return counts;
}

}  // namespace pcn::cuda
