// The GPU side's storage type and runtime helpers: a C-contiguous array in device memory (the
// storage of a pyconvnet Tensor on a CUDA device), the one stream each device's kernels run on, and
// error checks that turn CUDA failures into C++ exceptions (pybind11 makes them Python errors).
// Plain C++ (no device code): included by the .cu kernel files and the g++-compiled bindings alike.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pcn::cuda {

enum class Dtype : int32_t { float32 = 0, int64 = 1, bool_ = 2, uint8 = 3 };
int64_t itemsize(Dtype dtype);
const char* dtype_name(Dtype dtype);  // numpy's names: "float32", "int64", "bool", "uint8"
// A dtype no CUDA array holds (Python: TypeError).
struct DtypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
Dtype dtype_from_name(const std::string& name);  // DtypeError for any other name

// A C-contiguous array on one device. `storage` owns a caching-allocator block and is shared by
// views (reshape, contiguous slices), which differ only in `offset`, `shape` and `dtype`.
struct DeviceArray {
  std::shared_ptr<void> storage;  // the block's base pointer; the deleter returns it to the cache
  int64_t storage_bytes = 0;      // the block's usable size (views are bounds-checked against it)
  int64_t offset = 0;             // bytes from the block's start
  std::vector<int64_t> shape;
  Dtype dtype = Dtype::float32;
  int device = 0;

  int64_t numel() const;
  int64_t nbytes() const { return numel() * itemsize(dtype); }
  int ndim() const { return static_cast<int>(shape.size()); }
  void* raw() const { return static_cast<char*>(storage.get()) + offset; }
  template <class T>
  T* data() const { return static_cast<T*>(raw()); }
};

// A new uninitialised array on `device` from the caching allocator. ValueError past kMaxElements;
// OutOfMemory (Python: MemoryError) when the device has no room even after the cache is emptied.
DeviceArray empty(const std::vector<int64_t>& shape, Dtype dtype, int device);
// The same shape, dtype and device as `like`.
DeviceArray empty_like(const DeviceArray& like);

// The stream all of `device`'s kernels and copies run on, in order (created on first use, non-blocking
// with respect to the legacy default stream). One stream keeps the caching allocator simple: a block
// freed on the host may be handed out again at once, because any later use is ordered after the last.
cudaStream_t stream(int device);
// Makes `device` current for this host thread (cheap when it already is).
void set_device(int device);

// Throws std::runtime_error naming `what` and CUDA's message when status is not cudaSuccess
// (an out-of-memory status becomes OutOfMemory, which Python sees as MemoryError).
void check(cudaError_t status, const char* what);
// check(cudaGetLastError()) after a kernel launch, naming the kernel.
void check_launch(const char* kernel);

// Blocks of 256 threads covering `count` elements (grid-stride loops cover anything past the grid cap).
inline unsigned grid_for(int64_t count, unsigned block = 256) {
  const int64_t blocks = (count + block - 1) / block;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

// Host<->device copies made through the bindings (from_numpy, to_numpy, item), counted so a test can
// check that a training step makes only the copies its user asked for.
struct TransferCounts {
  int64_t host_to_device = 0, device_to_host = 0;
};
TransferCounts& transfer_counts();

}  // namespace pcn::cuda
