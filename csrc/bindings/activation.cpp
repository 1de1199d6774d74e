// Bindings for the element-wise activations and dropout (kernels/activation.h). Arrays of any
// shape; forward kernels take an optional out= (a writable C-contiguous float32 array of the
// input's shape, which may be the input itself: in-place).
#include "bindings/common.h"
#include "bindings/descriptors.h"
#include "dispatch.h"

namespace pcn::bind {
namespace {

using MaskArray = py::array_t<uint8_t, py::array::c_style>;
using ForwardKernel = void (*)(float*, const float*, const ActivationDesc&);
using BackwardKernel = void (*)(float*, const float*, const float*, const ActivationDesc&);

// out= if given (checked), else a fresh array shaped like x.
FloatArray output_like(const FloatArray& x, const py::handle& out_obj, const char* op) {
  if (out_obj.is_none()) return empty_float(shape_of(x));
  return inplace_float(out_obj, shape_of(x), op, "out");
}

FloatArray run_forward(ForwardKernel KernelTable::*kernel, const py::handle& x_obj, const py::handle& out_obj,
                       double negative_slope, const char* op) {
  FloatArray x = float_input(x_obj, op, "input");
  const ActivationDesc d = activation_desc(shape_of(x), negative_slope);
  FloatArray y = output_like(x, out_obj, op);
  float* y_data = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    (kernels().*kernel)(y_data, x.data(), d);
  }
  return y;
}

FloatArray run_backward(BackwardKernel KernelTable::*kernel, const py::handle& dy_obj, const py::handle& v_obj,
                        const char* v_name, double negative_slope, const char* op) {
  FloatArray v = float_input(v_obj, op, v_name), dy = float_input(dy_obj, op, "grad_output");
  expect_shape(dy, shape_of(v), op, "grad_output");
  const ActivationDesc d = activation_desc(shape_of(v), negative_slope);
  FloatArray dx = empty_float(shape_of(v));
  float* dx_data = dx.mutable_data();
  {
    py::gil_scoped_release nogil;
    (kernels().*kernel)(dx_data, dy.data(), v.data(), d);
  }
  return dx;
}

MaskArray mask_input(const py::handle& obj, const char* op) {
  if (!py::isinstance<py::array>(obj) || !py::reinterpret_borrow<py::array>(obj).dtype().equal(py::dtype::of<uint8_t>()))
    throw py::type_error(std::string(op) + ": mask must be a uint8 array");
  return MaskArray::ensure(obj);
}

}  // namespace

void bind_activation(py::module_& m) {
  const auto forward = [&m](const char* name, ForwardKernel KernelTable::*kernel, const char* op) {
    m.def(
        name,
        [kernel, op](const py::handle& x, const py::handle& out) { return run_forward(kernel, x, out, 0.0, op); },
        py::arg("input"), py::arg("out") = py::none());
  };
  // saved: what the gradient is computed from, "output" or "input".
  const auto backward = [&m](const char* name, BackwardKernel KernelTable::*kernel, const char* op, const char* saved) {
    m.def(
        name,
        [kernel, op, saved](const py::handle& dy, const py::handle& v) {
          return run_backward(kernel, dy, v, saved, 0.0, op);
        },
        py::arg("grad_output"), py::arg(saved));
  };
  forward("relu_forward", &KernelTable::relu_forward, "relu");
  backward("relu_backward", &KernelTable::relu_backward, "relu backward", "output");
  forward("sigmoid_forward", &KernelTable::sigmoid_forward, "sigmoid");
  backward("sigmoid_backward", &KernelTable::sigmoid_backward, "sigmoid backward", "output");
  forward("tanh_forward", &KernelTable::tanh_forward, "tanh");
  backward("tanh_backward", &KernelTable::tanh_backward, "tanh backward", "output");
  forward("gelu_forward", &KernelTable::gelu_forward, "gelu");
  backward("gelu_backward", &KernelTable::gelu_backward, "gelu backward", "input");
  forward("gelu_tanh_forward", &KernelTable::gelu_tanh_forward, "gelu");
  backward("gelu_tanh_backward", &KernelTable::gelu_tanh_backward, "gelu backward", "input");
  forward("silu_forward", &KernelTable::silu_forward, "silu");
  backward("silu_backward", &KernelTable::silu_backward, "silu backward", "input");
  forward("relu6_forward", &KernelTable::relu6_forward, "relu6");
  backward("relu6_backward", &KernelTable::relu6_backward, "relu6 backward", "output");
  forward("hardswish_forward", &KernelTable::hardswish_forward, "hardswish");
  backward("hardswish_backward", &KernelTable::hardswish_backward, "hardswish backward", "input");
  forward("hardsigmoid_forward", &KernelTable::hardsigmoid_forward, "hardsigmoid");
  backward("hardsigmoid_backward", &KernelTable::hardsigmoid_backward, "hardsigmoid backward", "input");
  m.def(
      "leaky_relu_forward",
      [](const py::handle& x, double negative_slope, const py::handle& out) {
        return run_forward(&KernelTable::leaky_relu_forward, x, out, negative_slope, "leaky_relu");
      },
      py::arg("input"), py::arg("negative_slope"), py::arg("out") = py::none());
  m.def(
      "leaky_relu_backward",
      [](const py::handle& dy, const py::handle& v, double negative_slope) {
        return run_backward(&KernelTable::leaky_relu_backward, dy, v, "input", negative_slope, "leaky_relu backward");
      },
      py::arg("grad_output"), py::arg("input"), py::arg("negative_slope"),
      "Gradient from the input, or from the output when negative_slope >= 0 (same sign).");
  m.def(
      "dropout_forward",
      [](const py::handle& x_obj, double p, uint64_t seed, const py::handle& out_obj, int64_t mask_ndim) {
        FloatArray x = float_input(x_obj, "dropout", "input");
        mask_ndim = dropout_mask_ndim(shape_of(x), mask_ndim);
        const DropoutDesc d = dropout_desc(shape_of(x), mask_ndim, p, seed);
        FloatArray y = output_like(x, out_obj, "dropout");
        MaskArray mask(std::vector<py::ssize_t>(x.shape(), x.shape() + mask_ndim));
        float* y_data = y.mutable_data();
        uint8_t* mask_data = mask.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().dropout_forward(y_data, mask_data, x.data(), d);
        }
        return py::make_tuple(y, mask);
      },
      py::arg("input"), py::arg("p"), py::arg("seed"), py::arg("out") = py::none(), py::arg("mask_ndim") = -1,
      "Returns (output, mask); mask is uint8 (1 = kept) over the leading mask_ndim dims (all by default: one "
      "entry per element), a function of (seed, entry index) only.");
  m.def(
      "dropout_backward",
      [](const py::handle& dy_obj, const py::handle& mask_obj, double p) {
        FloatArray dy = float_input(dy_obj, "dropout backward", "grad_output");
        MaskArray mask = mask_input(mask_obj, "dropout backward");
        expect_dropout_mask(shape_of(mask), shape_of(dy));
        const DropoutDesc d = dropout_desc(shape_of(dy), mask.ndim(), p, 0);
        FloatArray dx = empty_float(shape_of(dy));
        float* dx_data = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().dropout_backward(dx_data, dy.data(), mask.data(), d);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("mask"), py::arg("p"));
}

}  // namespace pcn::bind
