// Argument conversion helpers for the bindings; see common.h.
#include "bindings/common.h"

#include <cstdio>

#include "core/buffer_cache.h"
#include "core/runtime.h"

namespace pcn::bind {
namespace {

// "16.0 TiB"
std::string human_bytes(int64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) value /= 1024.0, ++unit;
  char text[32];
  std::snprintf(text, sizeof text, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
  return text;
}

// Note [outputs larger than memory]: an output within kMaxElements can still be far larger than
// the machine. Linux overcommits, so such an allocation may succeed and the kernel writing it is
// then killed by the OOM killer: a crash, not an exception. Anything larger than physical memory
// is refused before allocating, as a MemoryError naming the shape and the bytes it needs.
void check_fits_in_memory(const std::vector<int64_t>& shape, int64_t element_size, const char* dtype) {
  const int64_t bytes = checked_numel(shape, "output") * element_size;  // <= 2^46 * 8: no overflow
  static const int64_t physical = physical_memory_bytes();
  if (physical > 0 && bytes > physical) {
    const std::string message = "output of shape " + shape_str(shape) + " (" + dtype + ") needs " + human_bytes(bytes) +
                                " (" + std::to_string(bytes) + " bytes), more than this machine's " +
                                human_bytes(physical) + " of physical memory";
    PyErr_SetString(PyExc_MemoryError, message.c_str());
    throw py::error_already_set();
  }
}

std::string describe_type(const py::handle& obj) {
  if (py::isinstance<py::array>(obj)) return "numpy array of dtype " + std::string(py::str(obj.attr("dtype")));
  return "object of type " + std::string(py::str(py::type::handle_of(obj).attr("__name__")));
}

template <class T>
py::array_t<T, py::array::c_style> typed_input(const py::handle& obj, const char* op, const char* name,
                                               const char* dtype_name) {
  // dtype equality is byte-order aware: a big-endian float32 array is rejected, not misread.
  if (!py::isinstance<py::array>(obj) || !py::reinterpret_borrow<py::array>(obj).dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(op) + ": " + name + " must be a " + dtype_name + " array, got " +
                         describe_type(obj));
  return py::array_t<T, py::array::c_style>::ensure(obj);
}

}  // namespace

FloatArray float_input(const py::handle& obj, const char* op, const char* name) {
  return typed_input<float>(obj, op, name, "float32");
}

IndexArray index_input(const py::handle& obj, const char* op, const char* name) {
  return typed_input<int64_t>(obj, op, name, "int64");
}

std::vector<int64_t> shape_of(const py::array& array) {
  return std::vector<int64_t>(array.shape(), array.shape() + array.ndim());
}

void expect_ndim(const py::array& array, int ndim, const char* op, const char* name, const char* layout) {
  if (array.ndim() != ndim)
    throw py::value_error(std::string(op) + ": " + name + " must be " + std::to_string(ndim) + "-D " + layout +
                          ", got shape " + shape_str(shape_of(array)));
}

void expect_shape(const py::array& array, const std::vector<int64_t>& shape, const char* op, const char* name) {
  if (shape_of(array) != shape)
    throw py::value_error(std::string(op) + ": " + name + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(shape_of(array)));
}

// Outputs live in buffers from the cache (core/buffer_cache.h); the array's base is a capsule
// that hands the buffer back when the last view of it dies.
template <class T>
py::array_t<T, py::array::c_style> empty_cached(const std::vector<int64_t>& shape, const char* dtype) {
  check_fits_in_memory(shape, sizeof(T), dtype);
  void* data = acquire_buffer(size_t(checked_numel(shape, "output")) * sizeof(T));
  py::capsule owner;
  try {
    owner = py::capsule(data, [](void* ptr) { release_buffer(ptr); });
  } catch (...) {
    release_buffer(data);
    throw;
  }
  return py::array_t<T, py::array::c_style>(std::vector<py::ssize_t>(shape.begin(), shape.end()),
                                             static_cast<T*>(data), owner);
}

FloatArray empty_float(const std::vector<int64_t>& shape) { return empty_cached<float>(shape, "float32"); }

IndexArray empty_index(const std::vector<int64_t>& shape) { return empty_cached<int64_t>(shape, "int64"); }

float* writable(FloatArray& array, const char* op, const char* name) {
  if (!array.writeable()) throw py::value_error(std::string(op) + ": " + name + " must be writable");
  return array.mutable_data();
}

FloatArray inplace_float(const py::handle& obj, const std::vector<int64_t>& shape, const char* op, const char* name) {
  FloatArray array = float_input(obj, op, name);  // TypeError unless float32
  if (!array.is(obj) || !(array.flags() & py::array::c_style))
    throw py::value_error(std::string(op) + ": " + name + " must be C-contiguous to be updated in place");
  expect_shape(array, shape, op, name);
  writable(array, op, name);
  return array;
}

IndexArray argmax_input(const py::handle& obj, const char* op, const std::vector<int64_t>& out_shape) {
  IndexArray indices = index_input(obj, op, "indices");
  expect_shape(indices, out_shape, op, "indices");
  return indices;
}

void report_invalid_index(const IndexArray& indices, int64_t first_invalid, const char* op, int64_t plane_size,
                          const char* plane) {
  if (first_invalid < 0) return;
  throw py::value_error(std::string(op) + ": indices must lie in [0, " + std::to_string(plane_size) + ") (" + plane +
                        "; -1 marks an empty window), got " + std::to_string(indices.data()[first_invalid]) +
                        " at flat position " + std::to_string(first_invalid));
}

}  // namespace pcn::bind
