// Shared pieces of the pybind11 layer: argument conversion with clear errors, output allocation,
// and the per-family bind_* registration functions that module.cpp calls.
// Every binding: converts and checks its arguments (TypeError for dtype, ValueError for shapes,
// naming the op and argument), fills the family's descriptor and validate()s it, allocates the
// outputs, then releases the GIL around the kernel table call.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/checks.h"

namespace pcn::bind {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style>;
using IndexArray = py::array_t<int64_t, py::array::c_style>;
using Pair = std::array<int64_t, 2>;

// A C-contiguous float32 view of `obj` (copied only if it was not contiguous). Anything that is
// not a float32 numpy array is a TypeError naming `op` and `name`.
FloatArray float_input(const py::handle& obj, const char* op, const char* name);
// The same for int64 arrays (labels, argmax indices).
IndexArray index_input(const py::handle& obj, const char* op, const char* name);
// ValueError unless `array` has `ndim` dimensions; `layout` describes them, e.g. "(N, C, H, W)".
void expect_ndim(const py::array& array, int ndim, const char* op, const char* name, const char* layout);
// ValueError unless `array` has exactly `shape`.
void expect_shape(const py::array& array, const std::vector<int64_t>& shape, const char* op, const char* name);
std::vector<int64_t> shape_of(const py::array& array);
// Uninitialised C-contiguous outputs. ValueError past kMaxElements; MemoryError, naming the shape
// and bytes, when larger than the machine's physical memory (Note [outputs larger than memory]).
FloatArray empty_float(const std::vector<int64_t>& shape);
IndexArray empty_index(const std::vector<int64_t>& shape);
// ValueError unless the array is writable (for in-place outputs such as running statistics).
float* writable(FloatArray& array, const char* op, const char* name);
// An array the kernel writes in place (running statistics, out=): must already be a writable,
// C-contiguous float32 array of exactly `shape` (no conversion copy that would lose the writes).
FloatArray inplace_float(const py::handle& obj, const std::vector<int64_t>& shape, const char* op, const char* name);
// The argmax indices handed back to a backward pass, of the right shape. Their values are checked
// by the kernel as it scatters (an index outside the plane is skipped, never written through):
// report_invalid_index turns what it found (first_invalid, -1 for none) into the error, `plane`
// saying what the `plane_size` indices point into.
IndexArray argmax_input(const py::handle& obj, const char* op, const std::vector<int64_t>& out_shape);
void report_invalid_index(const IndexArray& indices, int64_t first_invalid, const char* op, int64_t plane_size,
                          const char* plane);

void bind_backend(py::module_& m);
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_loss(py::module_& m);
void bind_optim(py::module_& m);
void bind_eltwise(py::module_& m);
void bind_norm(py::module_& m);
void bind_activation(py::module_& m);
void bind_peak(py::module_& m);

}  // namespace pcn::bind
