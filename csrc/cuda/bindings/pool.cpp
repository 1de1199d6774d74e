// GPU bindings for max/avg/adaptive pooling and resampling (interpolate), forward and backward: the
// functions of csrc/bindings/pool.cpp with the same names, arguments, checks, descriptors and results,
// on DeviceArrays (kernels in cuda/pool.cu). One difference: the max backward passes cannot report an
// argmax index outside the plane without waiting for the GPU; an index outside its window is dropped
// (see pool.cuh).
#include "cuda/bindings/common.h"
#include "cuda/pool.cuh"

namespace pcn::cuda::bind {
namespace {

const DeviceArray& pool_input(const DeviceArray& a, const char* op, const char* name) {
  float_input(a, op, name);
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

// The argmax indices handed back to a backward pass, of the right shape and on grad_output's device.
const DeviceArray& argmax_input(const DeviceArray& indices, const DeviceArray& dy, const char* op,
                                const std::vector<int64_t>& out_shape) {
  index_input(indices, op, "indices");
  expect_shape(indices, out_shape, op, "indices");
  expect_same_device(op, {&dy, &indices});
  return indices;
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

using ResampleLauncher = void (*)(float*, const float*, const ResampleDesc&, cudaStream_t);

ResampleLauncher resample_launcher(const std::string& mode, bool backward) {
  if (mode == "nearest") return backward ? &upsample_nearest2d_backward : &upsample_nearest2d_forward;
  if (mode == "bilinear") return backward ? &upsample_bilinear2d_backward : &upsample_bilinear2d_forward;
  throw py::value_error("interpolate: mode must be 'nearest' or 'bilinear', got '" + mode + "'");
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "interpolate_forward",
      [](const DeviceArray& x, Pair output_size, std::array<double, 2> scales, const std::string& mode,
         bool align_corners) {
        pool_input(x, "interpolate", "input");
        const ResampleLauncher launcher = resample_launcher(mode, false);
        const ResampleDesc d = resample_desc("interpolate", x.shape, output_size, scales, align_corners);
        DeviceArray y = empty(output_shape(d), Dtype::float32, x.device);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          launcher(y.data<float>(), x.data<float>(), d, stream);
        }
        return y;
      },
      py::arg("input"), py::arg("output_size"), py::arg("scales"), py::arg("mode"), py::arg("align_corners"),
      "Resample an (N, C, H, W) input to output_size; scales are torch's scale_factor per axis (<= 0: none).");
  m.def(
      "interpolate_backward",
      [](const DeviceArray& dy, const std::vector<int64_t>& in_shape, std::array<double, 2> scales,
         const std::string& mode, bool align_corners) {
        const char* op = "interpolate backward";
        pool_input(dy, op, "grad_output");
        const ResampleLauncher launcher = resample_launcher(mode, true);
        const ResampleDesc d =
            resample_desc(op, input_shape_arg(in_shape, op), {dy.shape[2], dy.shape[3]}, scales, align_corners);
        expect_shape(dy, output_shape(d), op, "grad_output");
        DeviceArray dx = empty(input_shape(d), Dtype::float32, dy.device);
        const cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          launcher(dx.data<float>(), dy.data<float>(), d, stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input_shape"), py::arg("scales"), py::arg("mode"), py::arg("align_corners"));
  m.def(
      "max_pool2d_forward",
      [](const DeviceArray& x, Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
        pool_input(x, "max_pool2d", "input");
        const Pool2dDesc d = pool_desc("max_pool2d", x.shape, kernel, stride, padding, dilation, ceil_mode);
        DeviceArray y = empty(output_shape(d), Dtype::float32, x.device);
        DeviceArray indices = empty(output_shape(d), Dtype::int64, x.device);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          max_pool2d_forward(y.data<float>(), indices.data<int64_t>(), x.data<float>(), d, stream);
        }
        return std::make_tuple(y, indices);
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      py::arg("ceil_mode"));
  m.def(
      "max_pool2d_backward",
      [](const DeviceArray& dy, const DeviceArray& indices, const std::vector<int64_t>& in_shape, Pair kernel,
         Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
        const char* op = "max_pool2d backward";
        pool_input(dy, op, "grad_output");
        const Pool2dDesc d = pool_desc(op, input_shape_arg(in_shape, op), kernel, stride, padding, dilation, ceil_mode);
        expect_shape(dy, output_shape(d), op, "grad_output");
        argmax_input(indices, dy, op, output_shape(d));
        DeviceArray dx = empty(input_shape(d), Dtype::float32, dy.device);
        const cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          max_pool2d_backward(dx.data<float>(), dy.data<float>(), indices.data<int64_t>(), d, stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("indices"), py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"));
  m.def(
      "avg_pool2d_forward",
      [](const DeviceArray& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode, bool count_include_pad,
         int64_t divisor_override) {
        pool_input(x, "avg_pool2d", "input");
        Pool2dDesc d = pool_desc("avg_pool2d", x.shape, kernel, stride, padding, {1, 1}, ceil_mode);
        d.count_include_pad = count_include_pad;
        d.divisor_override = divisor_override;
        DeviceArray y = empty(output_shape(d), Dtype::float32, x.device);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          avg_pool2d_forward(y.data<float>(), x.data<float>(), d, stream);
        }
        return y;
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
      py::arg("count_include_pad"), py::arg("divisor_override"));
  m.def(
      "avg_pool2d_backward",
      [](const DeviceArray& dy, const std::vector<int64_t>& in_shape, Pair kernel, Pair stride, Pair padding,
         bool ceil_mode, bool count_include_pad, int64_t divisor_override) {
        const char* op = "avg_pool2d backward";
        pool_input(dy, op, "grad_output");
        Pool2dDesc d = pool_desc(op, input_shape_arg(in_shape, op), kernel, stride, padding, {1, 1}, ceil_mode);
        d.count_include_pad = count_include_pad;
        d.divisor_override = divisor_override;
        expect_shape(dy, output_shape(d), op, "grad_output");
        DeviceArray dx = empty(input_shape(d), Dtype::float32, dy.device);
        const cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          avg_pool2d_backward(dx.data<float>(), dy.data<float>(), d, stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"));
  m.def(
      "adaptive_avg_pool2d_forward",
      [](const DeviceArray& x, Pair output_size) {
        pool_input(x, "adaptive_avg_pool2d", "input");
        const AdaptivePool2dDesc d = adaptive_desc("adaptive_avg_pool2d", x.shape, output_size);
        DeviceArray y = empty(output_shape(d), Dtype::float32, x.device);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          adaptive_avg_pool2d_forward(y.data<float>(), x.data<float>(), d, stream);
        }
        return y;
      },
      py::arg("input"), py::arg("output_size"));
  m.def(
      "adaptive_avg_pool2d_backward",
      [](const DeviceArray& dy, const std::vector<int64_t>& in_shape) {
        const char* op = "adaptive_avg_pool2d backward";
        pool_input(dy, op, "grad_output");
        const AdaptivePool2dDesc d = adaptive_desc(op, input_shape_arg(in_shape, op), {dy.shape[2], dy.shape[3]});
        expect_shape(dy, output_shape(d), op, "grad_output");
        DeviceArray dx = empty(input_shape(d), Dtype::float32, dy.device);
        const cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          adaptive_avg_pool2d_backward(dx.data<float>(), dy.data<float>(), d, stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input_shape"));
  m.def(
      "adaptive_max_pool2d_forward",
      [](const DeviceArray& x, Pair output_size) {
        pool_input(x, "adaptive_max_pool2d", "input");
        const AdaptivePool2dDesc d = adaptive_desc("adaptive_max_pool2d", x.shape, output_size);
        DeviceArray y = empty(output_shape(d), Dtype::float32, x.device);
        DeviceArray indices = empty(output_shape(d), Dtype::int64, x.device);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          adaptive_max_pool2d_forward(y.data<float>(), indices.data<int64_t>(), x.data<float>(), d, stream);
        }
        return std::make_tuple(y, indices);
      },
      py::arg("input"), py::arg("output_size"));
  m.def(
      "adaptive_max_pool2d_backward",
      [](const DeviceArray& dy, const DeviceArray& indices, const std::vector<int64_t>& in_shape) {
        const char* op = "adaptive_max_pool2d backward";
        pool_input(dy, op, "grad_output");
        const AdaptivePool2dDesc d = adaptive_desc(op, input_shape_arg(in_shape, op), {dy.shape[2], dy.shape[3]});
        expect_shape(dy, output_shape(d), op, "grad_output");
        argmax_input(indices, dy, op, output_shape(d));
        DeviceArray dx = empty(input_shape(d), Dtype::float32, dy.device);
        const cudaStream_t stream = launch_on(dy);
        {
          py::gil_scoped_release nogil;
          adaptive_max_pool2d_backward(dx.data<float>(), dy.data<float>(), indices.data<int64_t>(), d, stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("indices"), py::arg("input_shape"));
}

}  // namespace pcn::cuda::bind
