// Bindings for same-shape element-wise ops, the deterministic sum, and concat/split.
#include "bindings/common.h"
#include "dispatch.h"

namespace pcn::bind {
namespace {

using BinaryKernel = void (*)(float*, const float*, const float*, const EltwiseDesc&);

FloatArray binary_call(const py::handle& a_obj, const py::handle& b_obj, const char* op, BinaryKernel KernelTable::*kernel) {
  FloatArray a = float_input(a_obj, op, "input"), b = float_input(b_obj, op, "other");
  if (shape_of(a) != shape_of(b))
    throw py::value_error(std::string(op) + ": input and other must have the same shape, got " + shape_str(shape_of(a)) +
                          " and " + shape_str(shape_of(b)));
  EltwiseDesc d;
  d.count = a.size();
  validate(d);
  FloatArray y = empty_float(shape_of(a));
  float* y_data = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    (kernels().*kernel)(y_data, a.data(), b.data(), d);
  }
  return y;
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
  m.def("add", [](const py::handle& a, const py::handle& b) { return binary_call(a, b, "add", &KernelTable::add_forward); },
        py::arg("input"), py::arg("other"));
  m.def("mul", [](const py::handle& a, const py::handle& b) { return binary_call(a, b, "mul", &KernelTable::mul_forward); },
        py::arg("input"), py::arg("other"));
  m.def("add_relu",
        [](const py::handle& a, const py::handle& b) { return binary_call(a, b, "add_relu", &KernelTable::add_relu_forward); },
        py::arg("input"), py::arg("other"));
  m.def(
      "round_bf16",
      [](const py::handle& x_obj) {
        FloatArray x = float_input(x_obj, "round_bf16", "input");
        EltwiseDesc d;
        d.count = x.size();
        validate(d);
        FloatArray y = empty_float(shape_of(x));
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().round_bf16_forward(y_data, x.data(), d);
        }
        return y;
      },
      py::arg("input"), "input's values rounded to bfloat16 (nearest, ties to even), as float32.");
  m.def(
      "sum",
      [](const py::handle& x_obj) {
        FloatArray x = float_input(x_obj, "sum", "input");
        EltwiseDesc d;
        d.count = x.size();
        validate(d);
        FloatArray out = empty_float({});
        float* out_data = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().sum_forward(out_data, x.data(), d);
        }
        return out;
      },
      py::arg("input"));
  m.def(
      "norm",
      [](const py::handle& x_obj, double p) {
        FloatArray x = float_input(x_obj, "norm", "input");
        EltwiseDesc d;
        d.count = x.size();
        d.p = p;
        validate(d);
        FloatArray out = empty_float({});
        float* out_data = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().norm_forward(out_data, x.data(), d);
        }
        return out;
      },
      py::arg("input"), py::arg("p"), "The p-norm of all elements (p in [0, inf]), as a 0-d array.");
  m.def(
      "concat",
      [](const py::sequence& tensors, int64_t dim) {
        const int64_t inputs = static_cast<int64_t>(py::len(tensors));
        if (inputs == 0) throw py::value_error("cat: expected a non-empty list of tensors");
        std::vector<FloatArray> parts;
        for (int64_t i = 0; i < inputs; ++i)
          parts.push_back(float_input(tensors[i], "cat", ("tensors[" + std::to_string(i) + "]").c_str()));
        const std::vector<int64_t> first = shape_of(parts[0]);
        if (first.empty()) throw py::value_error("cat: zero-dimensional tensors cannot be concatenated");
        dim = concat_dim(dim, static_cast<int64_t>(first.size()), "cat");
        std::vector<int64_t> extents(inputs);
        std::vector<const float*> pointers(inputs);
        for (int64_t i = 0; i < inputs; ++i) {
          std::vector<int64_t> shape = shape_of(parts[i]);
          bool match = shape.size() == first.size();
          for (size_t k = 0; match && k < shape.size(); ++k) match = static_cast<int64_t>(k) == dim || shape[k] == first[k];
          if (!match)
            throw py::value_error("cat: sizes of tensors must match except in dimension " + std::to_string(dim) +
                                  ": tensors[0] has shape " + shape_str(first) + " but tensors[" + std::to_string(i) +
                                  "] has shape " + shape_str(shape));
          extents[i] = shape[dim];
          pointers[i] = parts[i].data();
        }
        ConcatDesc d = concat_desc(first, dim, inputs);
        validate(d, extents.data());
        std::vector<int64_t> out_shape = first;
        out_shape[dim] = d.total;
        FloatArray y = empty_float(out_shape);
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().concat_forward(y_data, pointers.data(), extents.data(), d);
        }
        return y;
      },
      py::arg("tensors"), py::arg("dim"));
  m.def(
      "split",
      [](const py::handle& y_obj, std::vector<int64_t> extents, int64_t dim) {
        FloatArray y = float_input(y_obj, "split", "input");
        const std::vector<int64_t> shape = shape_of(y);
        if (shape.empty()) throw py::value_error("split: input must have at least one dimension");
        dim = concat_dim(dim, static_cast<int64_t>(shape.size()), "split");
        if (extents.empty()) throw py::value_error("split: sizes must not be empty");
        ConcatDesc d = concat_desc(shape, dim, static_cast<int64_t>(extents.size()));
        validate(d, extents.data());
        if (d.total != shape[dim])
          throw py::value_error("split: sizes " + shape_str(extents) + " must add up to dimension " + std::to_string(dim) +
                                " of input shape " + shape_str(shape));
        py::list outputs;
        std::vector<float*> pointers;
        for (int64_t extent : extents) {
          std::vector<int64_t> part_shape = shape;
          part_shape[dim] = extent;
          FloatArray part = empty_float(part_shape);
          pointers.push_back(part.mutable_data());
          outputs.append(part);
        }
        {
          py::gil_scoped_release nogil;
          kernels().split_forward(pointers.data(), y.data(), extents.data(), d);
        }
        return outputs;
      },
      py::arg("input"), py::arg("sizes"), py::arg("dim"));
}

}  // namespace pcn::bind
