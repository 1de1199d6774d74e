// GPU bindings for same-shape element-wise ops, the deterministic sum and norm, and concat / split
// (cuda/eltwise.cuh), mirroring bindings/eltwise.cpp with DeviceArrays for numpy arrays.
#include "cuda/bindings/common.h"
#include "cuda/eltwise.cuh"

namespace pcn::cuda::bind {
namespace {

using BinaryLauncher = void (*)(float*, const float*, const float*, const EltwiseDesc&, cudaStream_t);

DeviceArray binary_call(const DeviceArray& a, const DeviceArray& b, const char* op, BinaryLauncher launcher) {
  float_input(a, op, "input");
  float_input(b, op, "other");
  if (a.shape != b.shape)
    throw py::value_error(std::string(op) + ": input and other must have the same shape, got " + shape_str(a.shape) +
                          " and " + shape_str(b.shape));
  expect_same_device(op, {&a, &b});
  EltwiseDesc d;
  d.count = a.numel();
  validate(d);
  DeviceArray y = empty_like(a);
  cudaStream_t stream = launch_on(a);
  {
    py::gil_scoped_release nogil;
    launcher(y.data<float>(), a.data<float>(), b.data<float>(), d, stream);
  }
  return y;
}

// The 0-d result of a whole-array reduction (sum, norm).
DeviceArray reduce_call(const DeviceArray& x, const char* op, double p,
                        void (*launcher)(float*, const float*, const EltwiseDesc&, cudaStream_t)) {
  float_input(x, op, "input");
  EltwiseDesc d;
  d.count = x.numel();
  d.p = p;
  validate(d);
  DeviceArray out = empty({}, Dtype::float32, x.device);
  cudaStream_t stream = launch_on(x);
  {
    py::gil_scoped_release nogil;
    launcher(out.data<float>(), x.data<float>(), d, stream);
  }
  return out;
}

// Normalises `dim` for `ndim` dimensions (negative counts from the end).
int64_t concat_dim(int64_t dim, int64_t ndim, const char* op) {
  if (dim < -ndim || dim >= ndim)
    throw py::value_error(std::string(op) + ": dim " + std::to_string(dim) + " is out of range for " +
                          std::to_string(ndim) + "-D tensors");
  return dim < 0 ? dim + ndim : dim;
}

// outer = prod(shape[:dim]), inner = prod(shape[dim+1:]).
ConcatDesc concat_desc(const std::vector<int64_t>& shape, int64_t dim, int64_t inputs) {
  ConcatDesc d;
  d.outer = d.inner = 1;
  for (int64_t i = 0; i < dim; ++i) d.outer = checked_mul(d.outer, shape[i], "cat");
  for (size_t i = dim + 1; i < shape.size(); ++i) d.inner = checked_mul(d.inner, shape[i], "cat");
  d.inputs = inputs;
  return d;
}

}  // namespace

void bind_eltwise(py::module_& m) {
  m.def("add", [](const DeviceArray& a, const DeviceArray& b) { return binary_call(a, b, "add", &add_forward); },
        py::arg("input"), py::arg("other"));
  m.def("mul", [](const DeviceArray& a, const DeviceArray& b) { return binary_call(a, b, "mul", &mul_forward); },
        py::arg("input"), py::arg("other"));
  m.def("add_relu",
        [](const DeviceArray& a, const DeviceArray& b) { return binary_call(a, b, "add_relu", &add_relu_forward); },
        py::arg("input"), py::arg("other"));
  m.def("sum", [](const DeviceArray& x) { return reduce_call(x, "sum", 2.0, &sum_forward); }, py::arg("input"));
  m.def("norm", [](const DeviceArray& x, double p) { return reduce_call(x, "norm", p, &norm_forward); },
        py::arg("input"), py::arg("p"), "The p-norm of all elements (p in [0, inf]), as a 0-d array.");
  m.def(
      "concat",
      [](const std::vector<DeviceArray>& parts, int64_t dim) {
        const int64_t inputs = static_cast<int64_t>(parts.size());
        if (inputs == 0) throw py::value_error("cat: expected a non-empty list of tensors");
        for (int64_t i = 0; i < inputs; ++i) float_input(parts[i], "cat", ("tensors[" + std::to_string(i) + "]").c_str());
        const std::vector<int64_t>& first = parts[0].shape;
        if (first.empty()) throw py::value_error("cat: zero-dimensional tensors cannot be concatenated");
        dim = concat_dim(dim, static_cast<int64_t>(first.size()), "cat");
        std::vector<int64_t> extents(inputs);
        std::vector<const float*> pointers(inputs);
        for (int64_t i = 0; i < inputs; ++i) {
          const std::vector<int64_t>& shape = parts[i].shape;
          bool match = shape.size() == first.size();
          for (size_t k = 0; match && k < shape.size(); ++k) match = static_cast<int64_t>(k) == dim || shape[k] == first[k];
          if (!match)
            throw py::value_error("cat: sizes of tensors must match except in dimension " + std::to_string(dim) +
                                  ": tensors[0] has shape " + shape_str(first) + " but tensors[" + std::to_string(i) +
                                  "] has shape " + shape_str(shape));
          expect_same_device("cat", {&parts[0], &parts[i]});
          extents[i] = shape[dim];
          pointers[i] = parts[i].data<float>();
        }
        ConcatDesc d = concat_desc(first, dim, inputs);
        validate(d, extents.data());
        std::vector<int64_t> out_shape = first;
        out_shape[dim] = d.total;
        DeviceArray y = empty(out_shape, Dtype::float32, parts[0].device);
        cudaStream_t stream = launch_on(parts[0]);
        {
          py::gil_scoped_release nogil;
          concat_forward(y.data<float>(), pointers.data(), extents.data(), d, stream);
        }
        return y;
      },
      py::arg("tensors"), py::arg("dim"));
  m.def(
      "split",
      [](const DeviceArray& y, std::vector<int64_t> extents, int64_t dim) {
        float_input(y, "split", "input");
        const std::vector<int64_t>& shape = y.shape;
        if (shape.empty()) throw py::value_error("split: input must have at least one dimension");
        dim = concat_dim(dim, static_cast<int64_t>(shape.size()), "split");
        if (extents.empty()) throw py::value_error("split: sizes must not be empty");
        ConcatDesc d = concat_desc(shape, dim, static_cast<int64_t>(extents.size()));
        validate(d, extents.data());
        if (d.total != shape[dim])
          throw py::value_error("split: sizes " + shape_str(extents) + " must add up to dimension " + std::to_string(dim) +
                                " of input shape " + shape_str(shape));
        std::vector<DeviceArray> outputs;
        std::vector<float*> pointers;
        for (int64_t extent : extents) {
          std::vector<int64_t> part_shape = shape;
          part_shape[dim] = extent;
          outputs.push_back(empty(part_shape, Dtype::float32, y.device));
          pointers.push_back(outputs.back().data<float>());
        }
        cudaStream_t stream = launch_on(y);
        {
          py::gil_scoped_release nogil;
          split_forward(pointers.data(), y.data<float>(), extents.data(), d, stream);
        }
        return outputs;
      },
      py::arg("input"), py::arg("sizes"), py::arg("dim"));
}

}  // namespace pcn::cuda::bind
