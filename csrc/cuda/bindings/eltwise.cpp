// GPU bindings for same-shape element-wise ops, the deterministic sum and norm, concat / split and
// subsample_pad_channels
// (cuda/eltwise.cuh), mirroring bindings/eltwise.cpp with DeviceArrays for numpy arrays.
#include "bindings/descriptors.h"
#include "cuda/bindings/common.h"
#include "cuda/eltwise.cuh"

namespace pcn::cuda::bind {
namespace {

using BinaryLauncher = void (*)(float*, const float*, const float*, const EltwiseDesc&, cudaStream_t);

DeviceArray binary_call(const DeviceArray& a, const DeviceArray& b, const char* op, BinaryLauncher launcher) {
  float_input(a, op, "input");
  float_input(b, op, "other");
  const EltwiseDesc d = binary_desc(a.shape, b.shape, op);
  expect_same_device(op, {&a, &b});
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
  const EltwiseDesc d = reduction_desc(x.numel(), p);
  DeviceArray out = empty({}, Dtype::float32, x.device);
  cudaStream_t stream = launch_on(x);
  {
    py::gil_scoped_release nogil;
    launcher(out.data<float>(), x.data<float>(), d, stream);
  }
  return out;
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
        std::vector<std::vector<int64_t>> shapes;
        for (size_t i = 0; i < parts.size(); ++i) {
          float_input(parts[i], "cat", ("tensors[" + std::to_string(i) + "]").c_str());
          shapes.push_back(parts[i].shape);
        }
        const ConcatLayout layout = concat_layout(shapes, dim);
        std::vector<const float*> pointers;
        for (const DeviceArray& part : parts) {
          expect_same_device("cat", {&parts[0], &part});
          pointers.push_back(part.data<float>());
        }
        DeviceArray y = empty(with_extent(shapes[0], layout.dim, layout.d.total), Dtype::float32, parts[0].device);
        cudaStream_t stream = launch_on(parts[0]);
        {
          py::gil_scoped_release nogil;
          concat_forward(y.data<float>(), pointers.data(), layout.extents.data(), layout.d, stream);
        }
        return y;
      },
      py::arg("tensors"), py::arg("dim"));
  m.def(
      "split",
      [](const DeviceArray& y, std::vector<int64_t> extents, int64_t dim) {
        float_input(y, "split", "input");
        const ConcatLayout layout = split_layout(y.shape, std::move(extents), dim);
        std::vector<DeviceArray> outputs;
        std::vector<float*> pointers;
        for (int64_t extent : layout.extents) {
          outputs.push_back(empty(with_extent(y.shape, layout.dim, extent), Dtype::float32, y.device));
          pointers.push_back(outputs.back().data<float>());
        }
        cudaStream_t stream = launch_on(y);
        {
          py::gil_scoped_release nogil;
          split_forward(pointers.data(), y.data<float>(), layout.extents.data(), layout.d, stream);
        }
        return outputs;
      },
      py::arg("input"), py::arg("sizes"), py::arg("dim"));
  m.def(
      "subsample_pad_channels",
      [](const DeviceArray& x, int64_t stride, int64_t before, int64_t after) {
        float_input(x, "subsample_pad_channels", "input");
        const ChannelPadDesc d = channel_pad_desc(x.shape, stride, before, after);
        DeviceArray y = empty(channel_pad_output_shape(d), Dtype::float32, x.device);
        cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          subsample_pad_channels_forward(y.data<float>(), x.data<float>(), d, stream);
        }
        return y;
      },
      py::arg("input"), py::arg("stride"), py::arg("before"), py::arg("after"),
      "input[:, :, ::stride, ::stride] with `before` zero channels in front and `after` behind.");
  m.def(
      "subsample_pad_channels_backward",
      [](const DeviceArray& dy, const std::vector<int64_t>& input_shape, int64_t stride, int64_t before,
         int64_t after) {
        float_input(dy, "subsample_pad_channels backward", "grad_output");
        const ChannelPadDesc d = channel_pad_desc(input_shape, stride, before, after);
        expect_shape(dy, channel_pad_output_shape(d), "subsample_pad_channels backward", "grad_output");
        DeviceArray dx = empty(input_shape, Dtype::float32, dy.device);
        cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          subsample_pad_channels_backward(dx.data<float>(), dy.data<float>(), d, stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input_shape"), py::arg("stride"), py::arg("before"), py::arg("after"),
      "The gradient of subsample_pad_channels for an input of input_shape.");
}

}  // namespace pcn::cuda::bind
