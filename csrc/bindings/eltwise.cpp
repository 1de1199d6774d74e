// Bindings for same-shape element-wise ops, the deterministic sum, concat/split and
// subsample_pad_channels.
#include "bindings/common.h"
#include "bindings/descriptors.h"
#include "dispatch.h"

namespace pcn::bind {
namespace {

using BinaryKernel = void (*)(float*, const float*, const float*, const EltwiseDesc&);

FloatArray binary_call(const py::handle& a_obj, const py::handle& b_obj, const char* op, BinaryKernel KernelTable::*kernel) {
  FloatArray a = float_input(a_obj, op, "input"), b = float_input(b_obj, op, "other");
  const EltwiseDesc d = binary_desc(shape_of(a), shape_of(b), op);
  FloatArray y = empty_float(shape_of(a));
  float* y_data = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    (kernels().*kernel)(y_data, a.data(), b.data(), d);
  }
  return y;
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
        const EltwiseDesc d = reduction_desc(x.size(), 2.0);
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
        const EltwiseDesc d = reduction_desc(x.size(), p);
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
        std::vector<FloatArray> parts;
        std::vector<std::vector<int64_t>> shapes;
        for (size_t i = 0; i < py::len(tensors); ++i) {
          parts.push_back(float_input(tensors[i], "cat", ("tensors[" + std::to_string(i) + "]").c_str()));
          shapes.push_back(shape_of(parts.back()));
        }
        const ConcatLayout layout = concat_layout(shapes, dim);
        std::vector<const float*> pointers;
        for (const FloatArray& part : parts) pointers.push_back(part.data());
        FloatArray y = empty_float(with_extent(shapes[0], layout.dim, layout.d.total));
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().concat_forward(y_data, pointers.data(), layout.extents.data(), layout.d);
        }
        return y;
      },
      py::arg("tensors"), py::arg("dim"));
  m.def(
      "split",
      [](const py::handle& y_obj, std::vector<int64_t> extents, int64_t dim) {
        FloatArray y = float_input(y_obj, "split", "input");
        const std::vector<int64_t> shape = shape_of(y);
        const ConcatLayout layout = split_layout(shape, std::move(extents), dim);
        py::list outputs;
        std::vector<float*> pointers;
        for (int64_t extent : layout.extents) {
          FloatArray part = empty_float(with_extent(shape, layout.dim, extent));
          pointers.push_back(part.mutable_data());
          outputs.append(part);
        }
        {
          py::gil_scoped_release nogil;
          kernels().split_forward(pointers.data(), y.data(), layout.extents.data(), layout.d);
        }
        return outputs;
      },
      py::arg("input"), py::arg("sizes"), py::arg("dim"));
  m.def(
      "subsample_pad_channels",
      [](const py::handle& x_obj, int64_t stride, int64_t before, int64_t after) {
        FloatArray x = float_input(x_obj, "subsample_pad_channels", "input");
        const ChannelPadDesc d = channel_pad_desc(shape_of(x), stride, before, after);
        FloatArray y = empty_float(channel_pad_output_shape(d));
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().subsample_pad_channels_forward(y_data, x.data(), d);
        }
        return y;
      },
      py::arg("input"), py::arg("stride"), py::arg("before"), py::arg("after"),
      "input[:, :, ::stride, ::stride] with `before` zero channels in front and `after` behind.");
  m.def(
      "subsample_pad_channels_backward",
      [](const py::handle& dy_obj, const std::vector<int64_t>& input_shape, int64_t stride, int64_t before,
         int64_t after) {
        FloatArray dy = float_input(dy_obj, "subsample_pad_channels backward", "grad_output");
        const ChannelPadDesc d = channel_pad_desc(input_shape, stride, before, after);
        expect_shape(dy, channel_pad_output_shape(d), "subsample_pad_channels backward", "grad_output");
        FloatArray dx = empty_float(input_shape);
        float* dx_data = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().subsample_pad_channels_backward(dx_data, dy.data(), d);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input_shape"), py::arg("stride"), py::arg("before"), py::arg("after"),
      "The gradient of subsample_pad_channels for an input of input_shape.");
}

}  // namespace pcn::bind
