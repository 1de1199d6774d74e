// GPU bindings for max/avg/adaptive pooling and resampling (interpolate), forward and backward: the
// functions of csrc/bindings/pool.cpp with the same names, arguments, checks, descriptors and results,
// on DeviceArrays (kernels in cuda/pool.cu). One difference: the max backward passes cannot report an
// argmax index outside the plane without waiting for the GPU; an index outside its window is dropped
// (see pool.cuh).
#include "bindings/descriptors.h"
#include "cuda/bindings/common.h"
#include "cuda/pool.cuh"

namespace pcn::cuda::bind {
namespace {

const DeviceArray& pool_input(const DeviceArray& a, const char* op, const char* name) {
  float_input(a, op, name);
  expect_ndim(a, 4, op, name, "(N, C, H, W)");
  return a;
}

// The argmax indices handed back to a backward pass, of the right shape and on grad_output's device.
const DeviceArray& argmax_input(const DeviceArray& indices, const DeviceArray& dy, const char* op,
                                const std::vector<int64_t>& out_shape) {
  index_input(indices, op, "indices");
  expect_shape(indices, out_shape, op, "indices");
  expect_same_device(op, {&dy, &indices});
  return indices;
}

using ResampleLauncher = void (*)(float*, const float*, const ResampleDesc&, cudaStream_t);

ResampleLauncher resample_launcher(const std::string& mode, bool backward) {
  if (resample_bilinear(mode)) return backward ? &upsample_bilinear2d_backward : &upsample_bilinear2d_forward;
  return backward ? &upsample_nearest2d_backward : &upsample_nearest2d_forward;
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
        DeviceArray y = empty(pool_output_shape(d), Dtype::float32, x.device);
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
            resample_desc(op, pool_input_shape_arg(in_shape, op), {dy.shape[2], dy.shape[3]}, scales, align_corners);
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        DeviceArray dx = empty(pool_input_shape(d), Dtype::float32, dy.device);
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
        DeviceArray y = empty(pool_output_shape(d), Dtype::float32, x.device);
        DeviceArray indices = empty(pool_output_shape(d), Dtype::int64, x.device);
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
        const Pool2dDesc d = pool_desc(op, pool_input_shape_arg(in_shape, op), kernel, stride, padding, dilation, ceil_mode);
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        argmax_input(indices, dy, op, pool_output_shape(d));
        DeviceArray dx = empty(pool_input_shape(d), Dtype::float32, dy.device);
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
        DeviceArray y = empty(pool_output_shape(d), Dtype::float32, x.device);
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
        Pool2dDesc d = pool_desc(op, pool_input_shape_arg(in_shape, op), kernel, stride, padding, {1, 1}, ceil_mode);
        d.count_include_pad = count_include_pad;
        d.divisor_override = divisor_override;
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        DeviceArray dx = empty(pool_input_shape(d), Dtype::float32, dy.device);
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
        DeviceArray y = empty(pool_output_shape(d), Dtype::float32, x.device);
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
        const AdaptivePool2dDesc d = adaptive_desc(op, pool_input_shape_arg(in_shape, op), {dy.shape[2], dy.shape[3]});
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        DeviceArray dx = empty(pool_input_shape(d), Dtype::float32, dy.device);
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
        DeviceArray y = empty(pool_output_shape(d), Dtype::float32, x.device);
        DeviceArray indices = empty(pool_output_shape(d), Dtype::int64, x.device);
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
        const AdaptivePool2dDesc d = adaptive_desc(op, pool_input_shape_arg(in_shape, op), {dy.shape[2], dy.shape[3]});
        expect_shape(dy, pool_output_shape(d), op, "grad_output");
        argmax_input(indices, dy, op, pool_output_shape(d));
        DeviceArray dx = empty(pool_input_shape(d), Dtype::float32, dy.device);
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
