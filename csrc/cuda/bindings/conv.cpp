// GPU bindings for conv2d forward and backward: the CPU bindings (bindings/conv.cpp) with
// DeviceArrays, same names, arguments, errors and descriptor; launch cuda/conv.cu's kernels.
#include "bindings/descriptors.h"
#include "cuda/bindings/common.h"
#include "cuda/conv.cuh"

namespace pcn::cuda::bind {
namespace {

const DeviceArray& conv_input(const DeviceArray& a, const char* name) {
  float_input(a, "conv2d", name);
  expect_ndim(a, 4, "conv2d", name, "(N, C, H, W)");
  return a;
}

const DeviceArray& weight_input(const DeviceArray& w) {
  float_input(w, "conv2d", "weight");
  expect_ndim(w, 4, "conv2d", "weight", "(out_channels, in_channels/groups, kH, kW)");
  return w;
}

void expect_grad_output(const DeviceArray& dy, const Conv2dDesc& d) {
  expect_shape(dy, {d.batch, d.out_channels, d.out_h, d.out_w}, "conv2d backward", "grad_output");
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](const DeviceArray& x, const DeviceArray& w, const std::optional<DeviceArray>& b, Pair stride, Pair padding,
         Pair dilation, int64_t groups) {
        conv_input(x, "input");
        weight_input(w);
        const Conv2dDesc d = conv_desc(x.shape, w.shape, stride, padding, dilation, groups);
        if (b) {
          float_input(*b, "conv2d", "bias");
          expect_shape(*b, {d.out_channels}, "conv2d", "bias");
          expect_same_device("conv2d", {&x, &w, &*b});
        } else {
          expect_same_device("conv2d", {&x, &w});
        }
        DeviceArray y = empty({d.batch, d.out_channels, d.out_h, d.out_w}, Dtype::float32, x.device);
        const float* bias = b ? b->data<float>() : nullptr;
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          cuda::conv2d_forward(y.data<float>(), x.data<float>(), w.data<float>(), bias, d, stream);
        }
        return y;
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"));
  m.def(
      "conv2d_backward_data",
      [](const DeviceArray& dy, const DeviceArray& w, std::vector<int64_t> input_shape, Pair stride, Pair padding,
         Pair dilation, int64_t groups) {
        conv_input(dy, "grad_output");
        weight_input(w);
        if (input_shape.size() != 4)
          throw py::value_error("conv2d backward: input_shape must have 4 entries, got " + shape_str(input_shape));
        checked_numel(input_shape, "output");  // the CPU binding's output allocation check, before the descriptor
        const Conv2dDesc d = conv_desc(input_shape, w.shape, stride, padding, dilation, groups);
        expect_grad_output(dy, d);
        expect_same_device("conv2d", {&dy, &w});
        DeviceArray dx = empty(input_shape, Dtype::float32, dy.device);
        const cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          cuda::conv2d_backward_data(dx.data<float>(), dy.data<float>(), w.data<float>(), d, stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("weight"), py::arg("input_shape"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"));
  m.def(
      "conv2d_backward_weight",
      [](const DeviceArray& dy, const DeviceArray& x, std::vector<int64_t> weight_shape, Pair stride, Pair padding,
         Pair dilation, int64_t groups) {
        conv_input(dy, "grad_output");
        conv_input(x, "input");
        if (weight_shape.size() != 4)
          throw py::value_error("conv2d backward: weight_shape must have 4 entries, got " + shape_str(weight_shape));
        const Conv2dDesc d = conv_desc(x.shape, weight_shape, stride, padding, dilation, groups);
        expect_grad_output(dy, d);
        expect_same_device("conv2d", {&dy, &x});
        DeviceArray dw = empty(weight_shape, Dtype::float32, x.device);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          cuda::conv2d_backward_weight(dw.data<float>(), dy.data<float>(), x.data<float>(), d, stream);
        }
        return dw;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"));
  m.def(
      "conv2d_backward_bias",
      [](const DeviceArray& dy) {
        conv_input(dy, "grad_output");
        Conv2dDesc d;  // only the output geometry matters for the bias gradient
        d.batch = dy.shape[0];
        d.out_channels = dy.shape[1];
        d.out_h = dy.shape[2];
        d.out_w = dy.shape[3];
        DeviceArray db = empty({d.out_channels}, Dtype::float32, dy.device);
        const cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          cuda::conv2d_backward_bias(db.data<float>(), dy.data<float>(), d, stream);
        }
        return db;
      },
      py::arg("grad_output"));
}

}  // namespace pcn::cuda::bind
