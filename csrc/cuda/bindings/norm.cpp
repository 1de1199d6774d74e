// GPU bindings for batch norm, group / layer norm and local response norm: the functions of
// csrc/bindings/norm.cpp with the same names, arguments, checks, descriptors, results and in-place
// running-statistics updates, on DeviceArrays (kernels in cuda/norm.cu). Inputs are (N, C, *):
// everything after the channel axis is flattened into `spatial`.
#include "bindings/descriptors.h"
#include "cuda/bindings/common.h"
#include "cuda/norm.cuh"

namespace pcn::cuda::bind {
namespace {

using OptionalArray = std::optional<DeviceArray>;

// A (C,) float32 parameter or statistic on x's device; null for None.
float* channel_vector(const OptionalArray& a, const DeviceArray& x, const BatchNormDesc& d, const char* op,
                      const char* name) {
  if (!a) return nullptr;
  float_input(*a, op, name);
  expect_shape(*a, {d.channels}, op, name);
  expect_same_device(op, {&x, &*a});
  return a->data<float>();
}

const DeviceArray& same_shape_input(const DeviceArray& a, const DeviceArray& like, const char* op, const char* name) {
  float_input(a, op, name);
  expect_shape(a, like.shape, op, name);
  expect_same_device(op, {&like, &a});
  return a;
}

// A float32 output of `shape` when `wanted`, else None.
OptionalArray optional_output(bool wanted, const std::vector<int64_t>& shape, int device) {
  if (!wanted) return std::nullopt;
  return empty(shape, Dtype::float32, device);
}

float* data_or_null(const OptionalArray& a) { return a ? a->data<float>() : nullptr; }

using Gradients = std::tuple<OptionalArray, OptionalArray, OptionalArray>;

const float* norm_parameter(const OptionalArray& a, const DeviceArray& x, const GroupNormTask& task,
                            const char* name) {
  if (!a) return nullptr;
  float_input(*a, task.op.c_str(), name);
  expect_shape(*a, task.param_shape, task.op.c_str(), name);
  expect_same_device(task.op.c_str(), {&x, &*a});
  return a->data<float>();
}

std::tuple<DeviceArray, DeviceArray, DeviceArray> group_norm_forward_call(const DeviceArray& x, bool layer,
                                                                          int64_t groups_or_ndim,
                                                                          const OptionalArray& w,
                                                                          const OptionalArray& b, double eps) {
  float_input(x, layer ? "layer_norm" : "group_norm", "input");
  const GroupNormTask task = group_norm_task(x.shape, layer, groups_or_ndim, eps, "");
  const float* weight = norm_parameter(w, x, task, "weight");
  const float* bias = norm_parameter(b, x, task, "bias");
  const int64_t rows = task.d.batch * task.d.groups;
  DeviceArray y = empty_like(x), mean = empty({rows}, Dtype::float32, x.device),
              rstd = empty({rows}, Dtype::float32, x.device);
  const cudaStream_t stream = launch_on(x);
  {
    py::gil_scoped_release nogil;
    group_norm_forward(y.data<float>(), mean.data<float>(), rstd.data<float>(), x.data<float>(), weight, bias, task.d,
                       stream);
  }
  return {y, mean, rstd};
}

Gradients group_norm_backward_call(const DeviceArray& dy, const DeviceArray& x, const DeviceArray& mean,
                                   const DeviceArray& rstd, const OptionalArray& w, bool layer, int64_t groups_or_ndim,
                                   std::array<bool, 3> output_mask) {
  float_input(x, layer ? "layer_norm backward" : "group_norm backward", "input");
  const GroupNormTask task = group_norm_task(x.shape, layer, groups_or_ndim, 0.0, " backward");
  const char* op = task.op.c_str();
  same_shape_input(dy, x, op, "grad_output");
  float_input(mean, op, "mean");
  float_input(rstd, op, "rstd");
  expect_shape(mean, {task.d.batch * task.d.groups}, op, "mean");
  expect_shape(rstd, {task.d.batch * task.d.groups}, op, "rstd");
  expect_same_device(op, {&x, &mean, &rstd});
  const float* weight = norm_parameter(w, x, task, "weight");
  Gradients grads{optional_output(output_mask[0], x.shape, x.device),
                  optional_output(output_mask[1], task.param_shape, x.device),
                  optional_output(output_mask[2], task.param_shape, x.device)};
  const cudaStream_t stream = launch_on(x);
  {
    py::gil_scoped_release nogil;
    group_norm_backward(data_or_null(std::get<0>(grads)), data_or_null(std::get<1>(grads)),
                        data_or_null(std::get<2>(grads)), dy.data<float>(), x.data<float>(), mean.data<float>(),
                        rstd.data<float>(), weight, task.d, stream);
  }
  return grads;
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def(
      "batch_norm_forward_train",
      [](const DeviceArray& x, const OptionalArray& rm, const OptionalArray& rv, const OptionalArray& w,
         const OptionalArray& b, double momentum, double eps, bool relu) {
        float_input(x, "batch_norm", "input");
        BatchNormDesc d = bn_desc(x.shape, eps, momentum, true);
        d.relu = relu;
        // Updated in place: the caller's arrays share their storage with rm / rv.
        float* running_mean = channel_vector(rm, x, d, "batch_norm", "running_mean");
        float* running_var = channel_vector(rv, x, d, "batch_norm", "running_var");
        const float* weight = channel_vector(w, x, d, "batch_norm", "weight");
        const float* bias = channel_vector(b, x, d, "batch_norm", "bias");
        DeviceArray y = empty_like(x), mean = empty({d.channels}, Dtype::float32, x.device),
                    invstd = empty({d.channels}, Dtype::float32, x.device);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          batch_norm_forward_train(y.data<float>(), mean.data<float>(), invstd.data<float>(), running_mean,
                                   running_var, x.data<float>(), weight, bias, d, stream);
        }
        return std::make_tuple(y, mean, invstd);
      },
      py::arg("input"), py::arg("running_mean"), py::arg("running_var"), py::arg("weight"), py::arg("bias"),
      py::arg("momentum"), py::arg("eps"), py::arg("relu") = false,
      "Batch-statistics batch norm: returns (output, save_mean, save_invstd); updates the running "
      "statistics (float32, or None) in place. relu=True fuses a ReLU after it.");
  m.def(
      "batch_norm_forward_eval",
      [](const DeviceArray& x, const OptionalArray& rm, const OptionalArray& rv, const OptionalArray& w,
         const OptionalArray& b, double eps, bool relu) {
        float_input(x, "batch_norm", "input");
        BatchNormDesc d = bn_desc(x.shape, eps, 0.0, false);
        d.relu = relu;
        const float* mean = channel_vector(rm, x, d, "batch_norm", "running_mean");
        const float* var = channel_vector(rv, x, d, "batch_norm", "running_var");
        if (!mean || !var)
          throw py::value_error("batch_norm: running_mean and running_var are required when training=False");
        const float* weight = channel_vector(w, x, d, "batch_norm", "weight");
        const float* bias = channel_vector(b, x, d, "batch_norm", "bias");
        DeviceArray y = empty_like(x);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          batch_norm_forward_eval(y.data<float>(), x.data<float>(), mean, var, weight, bias, d, stream);
        }
        return y;
      },
      py::arg("input"), py::arg("running_mean"), py::arg("running_var"), py::arg("weight"), py::arg("bias"),
      py::arg("eps"), py::arg("relu") = false);
  m.def(
      "batch_norm_backward",
      [](const DeviceArray& dy, const DeviceArray& x, const OptionalArray& mean_a, const OptionalArray& invstd_a,
         const OptionalArray& w, bool training, std::array<bool, 3> output_mask, const OptionalArray& relu_output) {
        const char* op = "batch_norm backward";
        float_input(x, op, "input");
        same_shape_input(dy, x, op, "grad_output");
        if (relu_output) same_shape_input(*relu_output, x, op, "relu_output");
        // training=false here only selects the gradient formula; the size rule is the forward's.
        const BatchNormDesc d = bn_desc(x.shape, 0.0, 0.0, false);
        BatchNormDesc kd = d;
        kd.training = training;
        kd.relu = relu_output.has_value();
        const float* mean = channel_vector(mean_a, x, d, "batch_norm", "mean");
        const float* invstd = channel_vector(invstd_a, x, d, "batch_norm", "invstd");
        if (!mean || !invstd) throw py::value_error("batch_norm backward: mean and invstd are required");
        const float* weight = channel_vector(w, x, d, "batch_norm", "weight");
        Gradients grads{optional_output(output_mask[0], x.shape, x.device),
                        optional_output(output_mask[1], {d.channels}, x.device),
                        optional_output(output_mask[2], {d.channels}, x.device)};
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          batch_norm_backward(data_or_null(std::get<0>(grads)), data_or_null(std::get<1>(grads)),
                              data_or_null(std::get<2>(grads)), dy.data<float>(), x.data<float>(),
                              relu_output ? relu_output->data<float>() : nullptr, mean, invstd, weight, kd, stream);
        }
        return grads;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("mean"), py::arg("invstd"), py::arg("weight"),
      py::arg("training"), py::arg("output_mask"), py::arg("relu_output") = py::none(),
      "Gradients (input, weight, bias) of batch norm, each None unless output_mask asks for it. "
      "relu_output: the output of a forward with relu=True; dy then counts only where it is positive.");
  m.def(
      "group_norm_forward",
      [](const DeviceArray& x, int64_t num_groups, const OptionalArray& w, const OptionalArray& b, double eps) {
        return group_norm_forward_call(x, false, num_groups, w, b, eps);
      },
      py::arg("input"), py::arg("num_groups"), py::arg("weight"), py::arg("bias"), py::arg("eps"),
      "Group norm of an (N, C, *) input: returns (output, mean, rstd), the statistics (N * num_groups).");
  m.def(
      "layer_norm_forward",
      [](const DeviceArray& x, int64_t normalized_ndim, const OptionalArray& w, const OptionalArray& b, double eps) {
        return group_norm_forward_call(x, true, normalized_ndim, w, b, eps);
      },
      py::arg("input"), py::arg("normalized_ndim"), py::arg("weight"), py::arg("bias"), py::arg("eps"),
      "Layer norm over the last normalized_ndim dims: returns (output, mean, rstd), one statistic per row.");
  m.def(
      "group_norm_backward",
      [](const DeviceArray& dy, const DeviceArray& x, const DeviceArray& mean, const DeviceArray& rstd,
         const OptionalArray& w, int64_t num_groups, std::array<bool, 3> output_mask) {
        return group_norm_backward_call(dy, x, mean, rstd, w, false, num_groups, output_mask);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("mean"), py::arg("rstd"), py::arg("weight"),
      py::arg("num_groups"), py::arg("output_mask"), "Gradients (input, weight, bias), each None unless asked for.");
  m.def(
      "layer_norm_backward",
      [](const DeviceArray& dy, const DeviceArray& x, const DeviceArray& mean, const DeviceArray& rstd,
         const OptionalArray& w, int64_t normalized_ndim, std::array<bool, 3> output_mask) {
        return group_norm_backward_call(dy, x, mean, rstd, w, true, normalized_ndim, output_mask);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("mean"), py::arg("rstd"), py::arg("weight"),
      py::arg("normalized_ndim"), py::arg("output_mask"),
      "Gradients (input, weight, bias), each None unless asked for.");
  m.def(
      "lrn_forward",
      [](const DeviceArray& x, int64_t size, double alpha, double beta, double k) {
        float_input(x, "local_response_norm", "input");
        const LrnDesc d = lrn_desc(x.shape, size, alpha, beta, k);
        DeviceArray y = empty_like(x), scale = empty_like(x);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          lrn_forward(y.data<float>(), scale.data<float>(), x.data<float>(), d, stream);
        }
        return std::make_tuple(y, scale);
      },
      py::arg("input"), py::arg("size"), py::arg("alpha"), py::arg("beta"), py::arg("k"),
      "Local response norm across channels: returns (output, scale).");
  m.def(
      "lrn_backward",
      [](const DeviceArray& dy, const DeviceArray& x, const DeviceArray& y, const DeviceArray& scale, int64_t size,
         double alpha, double beta, double k) {
        const char* op = "local_response_norm backward";
        float_input(x, op, "input");
        same_shape_input(dy, x, op, "grad_output");
        same_shape_input(y, x, op, "output");
        same_shape_input(scale, x, op, "scale");
        const LrnDesc d = lrn_desc(x.shape, size, alpha, beta, k);
        DeviceArray dx = empty_like(x);
        const cudaStream_t stream = launch_on(x);
        {
          py::gil_scoped_release nogil;
          lrn_backward(dx.data<float>(), dy.data<float>(), x.data<float>(), y.data<float>(), scale.data<float>(), d,
                       stream);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("output"), py::arg("scale"), py::arg("size"),
      py::arg("alpha"), py::arg("beta"), py::arg("k"));
}

}  // namespace pcn::cuda::bind
