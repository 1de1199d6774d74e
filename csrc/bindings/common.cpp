// Argument conversion helpers for the bindings; see common.h.
#include "bindings/common.h"

#include "core/buffer_cache.h"

namespace pcn::bind {
namespace {

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
py::array_t<T, py::array::c_style> empty_cached(const std::vector<int64_t>& shape) {
  const int64_t numel = checked_numel(shape, "output");
  void* data = acquire_buffer(size_t(numel) * sizeof(T));
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

FloatArray empty_float(const std::vector<int64_t>& shape) { return empty_cached<float>(shape); }

IndexArray empty_index(const std::vector<int64_t>& shape) { return empty_cached<int64_t>(shape); }

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

}  // namespace pcn::bind
