// Bindings for max/avg/adaptive pooling and resampling (interpolate), forward and backward.
#include "bindings/common.h"
#include "dispatch.h"

namespace pcn::bind {
namespace {

FloatArray pool_input(const py::handle& obj, const char* op, const char* name) {
  FloatArray a = float_input(obj, op, name);
  expect_ndim(a, 4, op, name, "(N, C, H, W)");
  return a;
}

std::vector<int64_t> input_shape_arg(const std::vector<int64_t>& shape, const char* op) {
  if (shape.size() != 4)
    throw py::value_error(std::string(op) + " backward: input_shape must have 4 entries, got " + shape_str(shape));
  checked_numel(shape, op);
  return shape;
}

// A descriptor with its op and input extents from an (N, C, H, W) shape.
template <class Desc>
Desc desc_for_input(const char* op, const std::vector<int64_t>& input_shape) {
  Desc d;
  d.op = op;
  d.batch = input_shape[0];
  d.channels = input_shape[1];
  d.in_h = input_shape[2];
  d.in_w = input_shape[3];
  return d;
}

Pool2dDesc pool_desc(const char* op, const std::vector<int64_t>& input_shape, Pair kernel, Pair stride, Pair padding,
                     Pair dilation, bool ceil_mode) {
  Pool2dDesc d = desc_for_input<Pool2dDesc>(op, input_shape);
  d.kernel_h = kernel[0];
  d.kernel_w = kernel[1];
  d.stride_h = stride[0];
  d.stride_w = stride[1];
  d.pad_h = padding[0];
  d.pad_w = padding[1];
  d.dilation_h = dilation[0];
  d.dilation_w = dilation[1];
  d.ceil_mode = ceil_mode;
  validate(d);
  return d;
}

AdaptivePool2dDesc adaptive_desc(const char* op, const std::vector<int64_t>& input_shape, Pair output_size) {
  AdaptivePool2dDesc d = desc_for_input<AdaptivePool2dDesc>(op, input_shape);
  d.out_h = output_size[0];
  d.out_w = output_size[1];
  validate(d);
  return d;
}

// The argmax indices handed back to a backward pass, of the right shape. Their values are checked
// by the kernel as it scatters (an index outside the plane is skipped, never written through):
// report_invalid_index turns what it found into the error.
IndexArray argmax_input(const py::handle& obj, const char* op, const std::vector<int64_t>& out_shape) {
  IndexArray indices = index_input(obj, op, "indices");
  expect_shape(indices, out_shape, op, "indices");
  return indices;
}

void report_invalid_index(const IndexArray& indices, int64_t first_invalid, const char* op, int64_t in_plane) {
  if (first_invalid < 0) return;
  throw py::value_error(std::string(op) + ": indices must lie in [0, " + std::to_string(in_plane) +
                        ") (the input plane size; -1 marks an empty window), got " +
                        std::to_string(indices.data()[first_invalid]) + " at flat position " +
                        std::to_string(first_invalid));
}

template <class Desc>
std::vector<int64_t> output_shape(const Desc& d) {
  return {d.batch, d.channels, d.out_h, d.out_w};
}

template <class Desc>
std::vector<int64_t> input_shape(const Desc& d) {
  return {d.batch, d.channels, d.in_h, d.in_w};
}

// scales: torch's per-axis scale_factor, or <= 0 where none was given (then in / out is used).
ResampleDesc resample_desc(const char* op, const std::vector<int64_t>& input_shape, Pair output_size,
                           std::array<double, 2> scales, bool align_corners) {
  ResampleDesc d = desc_for_input<ResampleDesc>(op, input_shape);
  d.out_h = output_size[0];
  d.out_w = output_size[1];
  d.align_corners = align_corners;
  const auto scale = [align_corners](int64_t in, int64_t out, double factor) {
    if (align_corners) return out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f;
    return factor > 0.0 ? static_cast<float>(1.0 / factor) : static_cast<float>(in) / static_cast<float>(out);
  };
  if (d.out_h > 0 && d.out_w > 0) {
    d.scale_h = scale(d.in_h, d.out_h, scales[0]);
    d.scale_w = scale(d.in_w, d.out_w, scales[1]);
  }
  validate(d);
  return d;
}

using ResampleKernel = void (*)(float*, const float*, const ResampleDesc&);

ResampleKernel KernelTable::*resample_kernel(const std::string& mode, bool backward) {
  if (mode == "nearest") return backward ? &KernelTable::upsample_nearest2d_backward : &KernelTable::upsample_nearest2d_forward;
  if (mode == "bilinear")
    return backward ? &KernelTable::upsample_bilinear2d_backward : &KernelTable::upsample_bilinear2d_forward;
  throw py::value_error("interpolate: mode must be 'nearest' or 'bilinear', got '" + mode + "'");
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
        FloatArray y = empty_float(output_shape(d));
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
            resample_desc(op, input_shape_arg(in_shape, op), {dy.shape(2), dy.shape(3)}, scales, align_corners);
        expect_shape(dy, output_shape(d), op, "grad_output");
        FloatArray dx = empty_float(input_shape(d));
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
        FloatArray y = empty_float(output_shape(d));
        IndexArray indices = empty_index(output_shape(d));
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
        const Pool2dDesc d = pool_desc(op, input_shape_arg(in_shape, op), kernel, stride, padding, dilation, ceil_mode);
        expect_shape(dy, output_shape(d), op, "grad_output");
        IndexArray indices = argmax_input(i_obj, op, output_shape(d));
        FloatArray dx = empty_float(input_shape(d));
        float* dx_data = dx.mutable_data();
        int64_t first_invalid;
        {
          py::gil_scoped_release nogil;
          kernels().max_pool2d_backward(dx_data, &first_invalid, dy.data(), indices.data(), d);
        }
        report_invalid_index(indices, first_invalid, op, d.in_h * d.in_w);
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
        FloatArray y = empty_float(output_shape(d));
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
        Pool2dDesc d = pool_desc(op, input_shape_arg(in_shape, op), kernel, stride, padding, {1, 1}, ceil_mode);
        d.count_include_pad = count_include_pad;
        d.divisor_override = divisor_override;
        expect_shape(dy, output_shape(d), op, "grad_output");
        FloatArray dx = empty_float(input_shape(d));
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
        FloatArray y = empty_float(output_shape(d));
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
        const AdaptivePool2dDesc d = adaptive_desc(op, input_shape_arg(in_shape, op), {dy.shape(2), dy.shape(3)});
        expect_shape(dy, output_shape(d), op, "grad_output");
        FloatArray dx = empty_float(input_shape(d));
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
        FloatArray y = empty_float(output_shape(d));
        IndexArray indices = empty_index(output_shape(d));
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
        const AdaptivePool2dDesc d = adaptive_desc(op, input_shape_arg(in_shape, op), {dy.shape(2), dy.shape(3)});
        expect_shape(dy, output_shape(d), op, "grad_output");
        IndexArray indices = argmax_input(i_obj, op, output_shape(d));
        FloatArray dx = empty_float(input_shape(d));
        float* dx_data = dx.mutable_data();
        int64_t first_invalid;
        {
          py::gil_scoped_release nogil;
          kernels().adaptive_max_pool2d_backward(dx_data, &first_invalid, dy.data(), indices.data(), d);
        }
        report_invalid_index(indices, first_invalid, op, d.in_h * d.in_w);
        return dx;
      },
      py::arg("grad_output"), py::arg("indices"), py::arg("input_shape"));
}

}  // namespace pcn::bind
