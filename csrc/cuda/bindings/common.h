// Shared pieces of the GPU bindings (pyconvnet._C_cuda): argument checks with the same messages as the
// CPU bindings, and the per-family bind_* registration functions that module.cpp calls.
// Every binding takes DeviceArrays where the CPU binding takes numpy arrays (the Python layer passes a
// CudaArray's `.device_array`), checks dtype (TypeError) and shapes (ValueError) naming the op and the
// argument, fills the same descriptor as the CPU binding and validate()s it, allocates its outputs on
// the inputs' device, and launches on that device's stream without waiting for the kernel.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/checks.h"
#include "cuda/device_array.h"

namespace pcn::cuda::bind {

namespace py = pybind11;
using Pair = std::array<int64_t, 2>;

// TypeError unless `array` has `dtype` ("conv2d: input must be float32, got int64").
const DeviceArray& expect_dtype(const DeviceArray& array, Dtype dtype, const char* op, const char* name);
inline const DeviceArray& float_input(const DeviceArray& a, const char* op, const char* name) {
  return expect_dtype(a, Dtype::float32, op, name);
}
inline const DeviceArray& index_input(const DeviceArray& a, const char* op, const char* name) {
  return expect_dtype(a, Dtype::int64, op, name);
}
// ValueError unless `array` has `ndim` dimensions; `layout` describes them, e.g. "(N, C, H, W)".
void expect_ndim(const DeviceArray& array, int ndim, const char* op, const char* name, const char* layout);
// ValueError unless `array` has exactly `shape`.
void expect_shape(const DeviceArray& array, const std::vector<int64_t>& shape, const char* op, const char* name);
// ValueError unless every array lies on `first`'s device (names both devices, as torch does).
void expect_same_device(const char* op, std::initializer_list<const DeviceArray*> arrays);

// Makes the inputs' device current and returns its stream: every binding calls this before launching.
cudaStream_t launch_on(const DeviceArray& array);

void bind_runtime(py::module_& m);     // DeviceArray, transfers, device queries, allocator (module.cpp)
void bind_tensor_ops(py::module_& m);  // the numpy-facade primitives (tensor_ops.cu)
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_norm(py::module_& m);
void bind_activation(py::module_& m);
void bind_eltwise(py::module_& m);
void bind_loss(py::module_& m);
void bind_optim(py::module_& m);

}  // namespace pcn::cuda::bind
