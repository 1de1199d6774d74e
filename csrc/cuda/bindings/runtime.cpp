// Bindings for the GPU runtime: the DeviceArray type, host<->device copies, device queries, the
// allocator's statistics and the transfer counters.
#include <pybind11/numpy.h>

#include <cstring>

#include "cuda/allocator.h"
#include "cuda/bindings/common.h"

namespace pcn::cuda::bind {
namespace {

Dtype dtype_of(const py::array& array) {
  const py::dtype dt = array.dtype();
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'f' && size == 4) return Dtype::float32;
  if (kind == 'i' && size == 8) return Dtype::int64;
  if (kind == 'b' && size == 1) return Dtype::bool_;
  if (kind == 'u' && size == 1) return Dtype::uint8;
  throw py::type_error("from_numpy: a CUDA array holds float32, int64, bool or uint8, got " +
                       std::string(py::str(dt)));
}

py::dtype numpy_dtype(Dtype dtype) {
  switch (dtype) {
    case Dtype::float32: return py::dtype::of<float>();
    case Dtype::int64: return py::dtype::of<int64_t>();
    case Dtype::bool_: return py::dtype::of<bool>();
    case Dtype::uint8: return py::dtype::of<uint8_t>();
  }
  return py::dtype::of<float>();
}

int checked_device(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    count = 0;
  }
  if (device < 0 || device >= count)
    throw py::value_error("CUDA device index " + std::to_string(device) + " is out of range (" +
                          std::to_string(count) + " device(s) present)");
  return device;
}

DeviceArray from_numpy(const py::array& source, int device) {
  const py::array array = py::array::ensure(source, py::array::c_style);
  if (!array) throw py::type_error("from_numpy: expected a numpy array");
  std::vector<int64_t> shape(array.shape(), array.shape() + array.ndim());
  DeviceArray out = empty(shape, dtype_of(array), checked_device(device));
  if (out.nbytes() > 0) {
    const void* host = array.data();
    py::gil_scoped_release nogil;
    set_device(device);
    check(cudaMemcpyAsync(out.raw(), host, out.nbytes(), cudaMemcpyHostToDevice, stream(device)), "host-to-device copy");
    // Pageable memory: the copy is staged before cudaMemcpyAsync returns, so `host` may go at once.
  }
  transfer_counts().host_to_device += 1;
  return out;
}

py::array to_numpy(const DeviceArray& source) {
  py::array out(numpy_dtype(source.dtype), std::vector<py::ssize_t>(source.shape.begin(), source.shape.end()));
  if (source.nbytes() > 0) {
    void* host = out.mutable_data();
    py::gil_scoped_release nogil;
    set_device(source.device);
    cudaStream_t s = stream(source.device);
    check(cudaMemcpyAsync(host, source.raw(), source.nbytes(), cudaMemcpyDeviceToHost, s), "device-to-host copy");
    check(cudaStreamSynchronize(s), "device-to-host copy");
  }
  transfer_counts().device_to_host += 1;
  return out;
}

void copy_into(const DeviceArray& dst, const DeviceArray& src) {
  if (dst.dtype != src.dtype || dst.numel() != src.numel())
    throw py::value_error("copy_: destination " + shape_str(dst.shape) + " " + dtype_name(dst.dtype) +
                          " and source " + shape_str(src.shape) + " " + dtype_name(src.dtype) +
                          " differ in dtype or element count");
  if (dst.nbytes() == 0) return;
  py::gil_scoped_release nogil;
  if (dst.device == src.device) {
    check(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDeviceToDevice, launch_on(dst)),
          "device-to-device copy");
  } else {
    // Order after the source's pending work, then copy on the destination's stream.
    set_device(src.device);
    check(cudaStreamSynchronize(stream(src.device)), "cross-device copy");
    check(cudaMemcpyPeerAsync(dst.raw(), dst.device, src.raw(), src.device, dst.nbytes(), launch_on(dst)),
          "cross-device copy");
  }
}

DeviceArray view(const DeviceArray& base, const std::vector<int64_t>& shape, int64_t offset_elements,
                 const std::optional<std::string>& dtype) {
  DeviceArray out = base;
  out.shape = shape;
  if (dtype) out.dtype = dtype_from_name(*dtype);
  const int64_t count = checked_numel(shape, "view");
  if (offset_elements < 0)
    throw py::value_error("view: negative offset " + std::to_string(offset_elements));
  out.offset = base.offset + checked_mul(offset_elements, itemsize(out.dtype), "view: offset");
  if (out.offset + count * itemsize(out.dtype) > base.storage_bytes)
    throw py::value_error("view: shape " + shape_str(shape) + " at element offset " + std::to_string(offset_elements) +
                          " reaches past the storage of " + std::to_string(base.storage_bytes) + " bytes");
  return out;
}

std::string unavailable_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    int driver = 0;
    cudaDriverGetVersion(&driver);
    std::string reason = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    if (driver == 0) return "no NVIDIA driver found (" + reason + ")";
    return reason + " (driver supports CUDA " + std::to_string(driver / 1000) + "." +
           std::to_string(driver % 1000 / 10) + ", this build needs " + std::to_string(CUDART_VERSION / 1000) + "." +
           std::to_string(CUDART_VERSION % 1000 / 10) + ")";
  }
  if (count == 0) return "no CUDA device found";
  return "";
}

}  // namespace

void bind_runtime(py::module_& m) {
  py::class_<DeviceArray>(m, "DeviceArray", "A C-contiguous array in GPU memory (the storage of a CUDA tensor).")
      .def_property_readonly("shape", [](const DeviceArray& a) { return py::tuple(py::cast(a.shape)); })
      .def_property_readonly("dtype", [](const DeviceArray& a) { return dtype_name(a.dtype); })
      .def_property_readonly("device", [](const DeviceArray& a) { return a.device; })
      .def_property_readonly("ptr", [](const DeviceArray& a) { return reinterpret_cast<uintptr_t>(a.raw()); })
      .def_property_readonly("nbytes", &DeviceArray::nbytes)
      .def_property_readonly("numel", &DeviceArray::numel)
      .def_property_readonly("ndim", &DeviceArray::ndim)
      .def("view", &view, py::arg("shape"), py::arg("offset_elements") = 0, py::arg("dtype") = py::none(),
           "A view sharing this array's storage (ValueError if it reaches past the storage).")
      .def("shares_storage", [](const DeviceArray& a, const DeviceArray& b) { return a.storage == b.storage; })
      .def("__repr__", [](const DeviceArray& a) {
        return "DeviceArray(shape=" + shape_str(a.shape) + ", dtype=" + dtype_name(a.dtype) + ", device=cuda:" +
               std::to_string(a.device) + ")";
      });

  m.def("empty", [](const std::vector<int64_t>& shape, const std::string& dtype, int device) {
    return empty(shape, dtype_from_name(dtype), checked_device(device));
  }, py::arg("shape"), py::arg("dtype"), py::arg("device"));
  m.def("from_numpy", &from_numpy, py::arg("array"), py::arg("device"));
  m.def("to_numpy", &to_numpy, py::arg("array"));
  m.def("copy_", &copy_into, py::arg("dst"), py::arg("src"));

  m.def("unavailable_reason", &unavailable_reason, "'' when a GPU can be used, else why not.");
  m.def("device_count", []() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return count;
  });
  m.def("device_name", [](int device) {
    cudaDeviceProp props;
    check(cudaGetDeviceProperties(&props, checked_device(device)), "cudaGetDeviceProperties");
    return std::string(props.name);
  }, py::arg("device"));
  m.def("device_capability", [](int device) {
    cudaDeviceProp props;
    check(cudaGetDeviceProperties(&props, checked_device(device)), "cudaGetDeviceProperties");
    return py::make_tuple(props.major, props.minor);
  }, py::arg("device"));
  m.def("device_memory", [](int device) {
    set_device(checked_device(device));
    size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    return py::make_tuple(free_bytes, total_bytes);
  }, py::arg("device"), "(free, total) bytes on the device, as the driver reports them.");
  m.def("synchronize", [](int device) {
    py::gil_scoped_release nogil;
    set_device(checked_device(device));
    check(cudaStreamSynchronize(stream(device)), "synchronize");
  }, py::arg("device"), "Waits for every kernel queued on the device; raises any asynchronous kernel error.");
  m.def("built_architectures", []() { return std::string(PCN_CUDA_ARCHITECTURES); });
  m.def("runtime_version", []() { return CUDART_VERSION; });

  m.def("memory_allocated", [](int device) { return allocator_stats(device).allocated; }, py::arg("device"));
  m.def("max_memory_allocated", [](int device) { return allocator_stats(device).max_allocated; }, py::arg("device"));
  m.def("memory_reserved", [](int device) { return allocator_stats(device).reserved; }, py::arg("device"));
  m.def("max_memory_reserved", [](int device) { return allocator_stats(device).max_reserved; }, py::arg("device"));
  m.def("driver_allocations", [](int device) { return allocator_stats(device).driver_allocations; },
        py::arg("device"), "cudaMalloc calls the caching allocator has made on the device.");
  m.def("reset_peak_memory_stats", &reset_peak_stats, py::arg("device"));
  m.def("empty_cache", []() {
    py::gil_scoped_release nogil;
    empty_cache();
  });

  m.def("transfer_counts", []() {
    const TransferCounts& counts = transfer_counts();
    return py::make_tuple(counts.host_to_device, counts.device_to_host);
  }, "(host_to_device, device_to_host) copies made through from_numpy and to_numpy since the last reset.");
  m.def("reset_transfer_counts", []() { transfer_counts() = TransferCounts{}; });
}

}  // namespace pcn::cuda::bind
