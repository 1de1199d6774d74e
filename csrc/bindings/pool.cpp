// Bindings for max/avg/adaptive pooling and resampling (interpolate), forward and backward.
#include "bindings/common.h"
#include "bindings/descriptors.h"
#include "dispatch.h"

namespace pcn::bind {
namespace {

FloatArray pool_input(const py::handle& obj, const char* op, const char* name) {
  FloatArray a = float_input(obj, op, name);
  expect_ndim(a, 4, op, name, "(N, C, H, W)");
  return a;
}

using ResampleKernel = void (*)(float*, const float*, const ResampleDesc&);

ResampleKernel KernelTable::*resample_kernel(const std::string& mode, bool backward) {
  if (resample_bilinear(mode))
    return backward ? &KernelTable::upsample_bilinear2d_backward : &KernelTable::upsample_bilinear2d_forward;
  return backward ? &KernelTable::upsample_nearest2d_backward : &KernelTable::upsample_nearest2d_forward;
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "interpolate_forward",
      [](const py::handle& x_obj, Pair output_size, std::array<double, 2> scales, const std::string& mode,
         bool align_corners) {
        FloatArray x = pool_input(x_obj, "interpolate", "input");
        const ResampleKernel KernelTable::*kernel = resample_kernel(mode, false);
        const ResampleDesc d = resample_desc("interpolate", shape_of(x), output_size, scales, align_corners);
        FloatArray y = empty_float(pool_output_shape(d));
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          (kernels().*kernel)(y_data, x.data(), d);
        }
        return y;
      },
      py::arg("input"), py::arg("output_size"), py::arg("scales"), py::arg("mode"), py::arg("align_corners"),
      "Resample an (N, C, H, W) input to output_size; scales are torch's scale_factor per axis (<= 0: none).");
  m.def(
      "interpolate_backward",
      [](const py::handle& dy_obj, const std::vector<int64_t>& in_shape, std::array<double, 2> scales,
         const std::string& mode, bool align_corners) {
        const char* op = "interpolate backward";
        FloatArray dy = pool_input(dy_obj, op, "grad_output");
        const ResampleKernel KernelTable::*kernel = resample_kernel(mode, true);
        const ResampleDesc d =
            resample_desc(op, pool_input_shape_arg(in_shape, op), {dy.shape(2), dy.shape(3)}, scales, align_corners);
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        FloatArray dx = empty_float(pool_input_shape(d));
        float* dx_data = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          (kernels().*kernel)(dx_data, dy.data(), d);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input_shape"), py::arg("scales"), py::arg("mode"), py::arg("align_corners"));
  m.def(
      "max_pool2d_forward",
      [](const py::handle& x_obj, Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
        FloatArray x = pool_input(x_obj, "max_pool2d", "input");
        const Pool2dDesc d = pool_desc("max_pool2d", shape_of(x), kernel, stride, padding, dilation, ceil_mode);
        FloatArray y = empty_float(pool_output_shape(d));
        IndexArray indices = empty_index(pool_output_shape(d));
        float* y_data = y.mutable_data();
        int64_t* i_data = indices.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().max_pool2d_forward(y_data, i_data, x.data(), d);
        }
        return py::make_tuple(y, indices);
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      py::arg("ceil_mode"));
  m.def(
      "max_pool2d_backward",
      [](const py::handle& dy_obj, const py::handle& i_obj, const std::vector<int64_t>& in_shape, Pair kernel,
         Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
        const char* op = "max_pool2d backward";
        FloatArray dy = pool_input(dy_obj, op, "grad_output");
        const Pool2dDesc d = pool_desc(op, pool_input_shape_arg(in_shape, op), kernel, stride, padding, dilation, ceil_mode);
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        IndexArray indices = argmax_input(i_obj, op, pool_output_shape(d));
        FloatArray dx = empty_float(pool_input_shape(d));
        float* dx_data = dx.mutable_data();
        int64_t first_invalid;
        {
          py::gil_scoped_release nogil;
          kernels().max_pool2d_backward(dx_data, &first_invalid, dy.data(), indices.data(), d);
        }
        report_invalid_index(indices, first_invalid, op, d.in_h * d.in_w, "the input plane size");
        return dx;
      },
      py::arg("grad_output"), py::arg("indices"), py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"));
  m.def(
      "avg_pool2d_forward",
      [](const py::handle& x_obj, Pair kernel, Pair stride, Pair padding, bool ceil_mode, bool count_include_pad,
         int64_t divisor_override) {
        FloatArray x = pool_input(x_obj, "avg_pool2d", "input");
        Pool2dDesc d = pool_desc("avg_pool2d", shape_of(x), kernel, stride, padding, {1, 1}, ceil_mode);
        d.count_include_pad = count_include_pad;
        d.divisor_override = divisor_override;
        FloatArray y = empty_float(pool_output_shape(d));
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().avg_pool2d_forward(y_data, x.data(), d);
        }
        return y;
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
      py::arg("count_include_pad"), py::arg("divisor_override"));
  m.def(
      "avg_pool2d_backward",
      [](const py::handle& dy_obj, const std::vector<int64_t>& in_shape, Pair kernel, Pair stride, Pair padding,
         bool ceil_mode, bool count_include_pad, int64_t divisor_override) {
        const char* op = "avg_pool2d backward";
        FloatArray dy = pool_input(dy_obj, op, "grad_output");
        Pool2dDesc d = pool_desc(op, pool_input_shape_arg(in_shape, op), kernel, stride, padding, {1, 1}, ceil_mode);
        d.count_include_pad = count_include_pad;
        d.divisor_override = divisor_override;
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        FloatArray dx = empty_float(pool_input_shape(d));
        float* dx_data = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().avg_pool2d_backward(dx_data, dy.data(), d);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"));
  m.def(
      "adaptive_avg_pool2d_forward",
      [](const py::handle& x_obj, Pair output_size) {
        FloatArray x = pool_input(x_obj, "adaptive_avg_pool2d", "input");
        const AdaptivePool2dDesc d = adaptive_desc("adaptive_avg_pool2d", shape_of(x), output_size);
        FloatArray y = empty_float(pool_output_shape(d));
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().adaptive_avg_pool2d_forward(y_data, x.data(), d);
        }
        return y;
      },
      py::arg("input"), py::arg("output_size"));
  m.def(
      "adaptive_avg_pool2d_backward",
      [](const py::handle& dy_obj, const std::vector<int64_t>& in_shape) {
        const char* op = "adaptive_avg_pool2d backward";
        FloatArray dy = pool_input(dy_obj, op, "grad_output");
        const AdaptivePool2dDesc d = adaptive_desc(op, pool_input_shape_arg(in_shape, op), {dy.shape(2), dy.shape(3)});
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        FloatArray dx = empty_float(pool_input_shape(d));
        float* dx_data = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().adaptive_avg_pool2d_backward(dx_data, dy.data(), d);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input_shape"));
  m.def(
      "adaptive_max_pool2d_forward",
      [](const py::handle& x_obj, Pair output_size) {
        FloatArray x = pool_input(x_obj, "adaptive_max_pool2d", "input");
        const AdaptivePool2dDesc d = adaptive_desc("adaptive_max_pool2d", shape_of(x), output_size);
        FloatArray y = empty_float(pool_output_shape(d));
        IndexArray indices = empty_index(pool_output_shape(d));
        float* y_data = y.mutable_data();
        int64_t* i_data = indices.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().adaptive_max_pool2d_forward(y_data, i_data, x.data(), d);
        }
        return py::make_tuple(y, indices);
      },
      py::arg("input"), py::arg("output_size"));
  m.def(
      "adaptive_max_pool2d_backward",
      [](const py::handle& dy_obj, const py::handle& i_obj, const std::vector<int64_t>& in_shape) {
        const char* op = "adaptive_max_pool2d backward";
        FloatArray dy = pool_input(dy_obj, op, "grad_output");
        const AdaptivePool2dDesc d = adaptive_desc(op, pool_input_shape_arg(in_shape, op), {dy.shape(2), dy.shape(3)});
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        IndexArray indices = argmax_input(i_obj, op, pool_output_shape(d));
        FloatArray dx = empty_float(pool_input_shape(d));
        float* dx_data = dx.mutable_data();
        int64_t first_invalid;
        {
          py::gil_scoped_release nogil;
          kernels().adaptive_max_pool2d_backward(dx_data, &first_invalid, dy.data(), indices.data(), d);
        }
        report_invalid_index(indices, first_invalid, op, d.in_h * d.in_w, "the input plane size");
        return dx;
      },
      py::arg("grad_output"), py::arg("indices"), py::arg("input_shape"));
}

}  // namespace pcn::bind
