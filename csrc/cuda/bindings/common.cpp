// Argument checks shared by the GPU bindings (bindings/common.h).
#include "cuda/bindings/common.h"

namespace pcn::cuda::bind {

const DeviceArray& expect_dtype(const DeviceArray& array, Dtype dtype, const char* op, const char* name) {
  if (array.dtype != dtype)
    throw py::type_error(std::string(op) + ": " + name + " must be a " + dtype_name(dtype) + " array, got a " +
                         dtype_name(array.dtype) + " array");
  return array;
}

void expect_ndim(const DeviceArray& array, int ndim, const char* op, const char* name, const char* layout) {
  if (array.ndim() != ndim)
    throw py::value_error(std::string(op) + ": " + name + " must be " + std::to_string(ndim) + "-D " + layout +
                          ", got shape " + shape_str(array.shape));
}

void expect_shape(const DeviceArray& array, const std::vector<int64_t>& shape, const char* op, const char* name) {
  if (array.shape != shape)
    throw py::value_error(std::string(op) + ": " + name + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(array.shape));
}

void expect_same_device(const char* op, std::initializer_list<const DeviceArray*> arrays) {
  const DeviceArray* first = nullptr;
  for (const DeviceArray* array : arrays) {
    if (array == nullptr) continue;
    if (first == nullptr) {
      first = array;
    } else if (array->device != first->device) {
      throw py::value_error(std::string(op) + ": expected all tensors to be on the same device, but found cuda:" +
                            std::to_string(first->device) + " and cuda:" + std::to_string(array->device));
    }
  }
}

cudaStream_t launch_on(const DeviceArray& array) {
  set_device(array.device);
  return stream(array.device);
}

}  // namespace pcn::cuda::bind
