// GPU bindings for the element-wise activations and dropout (cuda/activation.cuh), mirroring
// bindings/activation.cpp: the same names, arguments, descriptors and messages, with DeviceArrays
// for numpy arrays. Forward kernels take an optional out= (a float32 array of the input's shape on
// its device, which may be the input itself: in-place).
#include "bindings/descriptors.h"
#include "cuda/activation.cuh"
#include "cuda/bindings/common.h"

namespace pcn::cuda::bind {
namespace {

using ForwardLauncher = void (*)(float*, const float*, const ActivationDesc&, cudaStream_t);
using BackwardLauncher = void (*)(float*, const float*, const float*, const ActivationDesc&, cudaStream_t);

// out= if given (checked), else a fresh array shaped like x.
DeviceArray output_like(const DeviceArray& x, const std::optional<DeviceArray>& out, const char* op) {
  if (!out) return empty_like(x);
  float_input(*out, op, "out");
  expect_shape(*out, x.shape, op, "out");
  expect_same_device(op, {&x, &*out});
  return *out;
}

DeviceArray run_forward(ForwardLauncher launcher, const DeviceArray& x, const std::optional<DeviceArray>& out,
                        double negative_slope, const char* op) {
  float_input(x, op, "input");
  const ActivationDesc d = activation_desc(x.shape, negative_slope);
  DeviceArray y = output_like(x, out, op);
  cudaStream_t stream = launch_on(x);
  {
    py::gil_scoped_release nogil;
    launcher(y.data<float>(), x.data<float>(), d, stream);
  }
  return y;
}

DeviceArray run_backward(BackwardLauncher launcher, const DeviceArray& dy, const DeviceArray& v, const char* v_name,
                         double negative_slope, const char* op) {
  float_input(v, op, v_name);
  float_input(dy, op, "grad_output");
  expect_shape(dy, v.shape, op, "grad_output");
  expect_same_device(op, {&v, &dy});
  const ActivationDesc d = activation_desc(v.shape, negative_slope);
  DeviceArray dx = empty_like(v);
  cudaStream_t stream = launch_on(v);
  {
    py::gil_scoped_release nogil;
    launcher(dx.data<float>(), dy.data<float>(), v.data<float>(), d, stream);
  }
  return dx;
}

}  // namespace

void bind_activation(py::module_& m) {
  const auto forward = [&m](const char* name, ForwardLauncher launcher, const char* op) {
    m.def(
        name,
        [launcher, op](const DeviceArray& x, const std::optional<DeviceArray>& out) {
          return run_forward(launcher, x, out, 0.0, op);
        },
        py::arg("input"), py::arg("out") = py::none());
  };
  // saved: what the gradient is computed from, "output" or "input".
  const auto backward = [&m](const char* name, BackwardLauncher launcher, const char* op, const char* saved) {
    m.def(
        name,
        [launcher, op, saved](const DeviceArray& dy, const DeviceArray& v) {
          return run_backward(launcher, dy, v, saved, 0.0, op);
        },
        py::arg("grad_output"), py::arg(saved));
  };
  forward("relu_forward", &relu_forward, "relu");
  backward("relu_backward", &relu_backward, "relu backward", "output");
  forward("sigmoid_forward", &sigmoid_forward, "sigmoid");
  backward("sigmoid_backward", &sigmoid_backward, "sigmoid backward", "output");
  forward("tanh_forward", &tanh_forward, "tanh");
  backward("tanh_backward", &tanh_backward, "tanh backward", "output");
  forward("gelu_forward", &gelu_forward, "gelu");
  backward("gelu_backward", &gelu_backward, "gelu backward", "input");
  forward("gelu_tanh_forward", &gelu_tanh_forward, "gelu");
  backward("gelu_tanh_backward", &gelu_tanh_backward, "gelu backward", "input");
  forward("silu_forward", &silu_forward, "silu");
  backward("silu_backward", &silu_backward, "silu backward", "input");
  forward("relu6_forward", &relu6_forward, "relu6");
  backward("relu6_backward", &relu6_backward, "relu6 backward", "output");
  forward("hardswish_forward", &hardswish_forward, "hardswish");
  backward("hardswish_backward", &hardswish_backward, "hardswish backward", "input");
  forward("hardsigmoid_forward", &hardsigmoid_forward, "hardsigmoid");
  backward("hardsigmoid_backward", &hardsigmoid_backward, "hardsigmoid backward", "input");
  m.def(
      "leaky_relu_forward",
      [](const DeviceArray& x, double negative_slope, const std::optional<DeviceArray>& out) {
        return run_forward(&leaky_relu_forward, x, out, negative_slope, "leaky_relu");
      },
      py::arg("input"), py::arg("negative_slope"), py::arg("out") = py::none());
  m.def(
      "leaky_relu_backward",
      [](const DeviceArray& dy, const DeviceArray& v, double negative_slope) {
        return run_backward(&leaky_relu_backward, dy, v, "input", negative_slope, "leaky_relu backward");
      },
      py::arg("grad_output"), py::arg("input"), py::arg("negative_slope"),
      "Gradient from the input, or from the output when negative_slope >= 0 (same sign).");
  m.def(
      "dropout_forward",
      [](const DeviceArray& x, double p, uint64_t seed, const std::optional<DeviceArray>& out, int64_t mask_ndim) {
        float_input(x, "dropout", "input");
        mask_ndim = dropout_mask_ndim(x.shape, mask_ndim);
        const DropoutDesc d = dropout_desc(x.shape, mask_ndim, p, seed);
        DeviceArray y = output_like(x, out, "dropout");
        DeviceArray mask = empty(std::vector<int64_t>(x.shape.begin(), x.shape.begin() + mask_ndim), Dtype::uint8, x.device);
        cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          dropout_forward(y.data<float>(), mask.data<uint8_t>(), x.data<float>(), d, stream);
        }
        return std::make_tuple(y, mask);
      },
      py::arg("input"), py::arg("p"), py::arg("seed"), py::arg("out") = py::none(), py::arg("mask_ndim") = -1,
      "Returns (output, mask); mask is uint8 (1 = kept) over the leading mask_ndim dims (all by default: one "
      "entry per element), a function of (seed, entry index) only: the CPU kernel's mask, bit for bit.");
  m.def(
      "dropout_backward",
      [](const DeviceArray& dy, const DeviceArray& mask, double p) {
        float_input(dy, "dropout backward", "grad_output");
        expect_dtype(mask, Dtype::uint8, "dropout backward", "mask");
        expect_dropout_mask(mask.shape, dy.shape);
        expect_same_device("dropout backward", {&dy, &mask});
        const DropoutDesc d = dropout_desc(dy.shape, mask.ndim(), p, 0);
        DeviceArray dx = empty_like(dy);
        cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          dropout_backward(dx.data<float>(), dy.data<float>(), mask.data<uint8_t>(), d, stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("mask"), py::arg("p"));
}

}  // namespace pcn::cuda::bind
