// Bindings for batch norm, group / layer norm and local response norm (kernels/norm.h). Inputs are (N, C, *):
// everything after the channel axis is flattened into `spatial`.
#include "bindings/common.h"
#include "bindings/descriptors.h"
#include "dispatch.h"

namespace pcn::bind {
namespace {

// A (C,) float32 parameter or statistic; null for None.
const float* channel_vector(const py::handle& obj, FloatArray& holder, const BatchNormDesc& d, const char* name) {
  if (obj.is_none()) return nullptr;
  holder = float_input(obj, "batch_norm", name);
  expect_shape(holder, {d.channels}, "batch_norm", name);
  return holder.data();
}

FloatArray same_shape_input(const py::handle& obj, const FloatArray& like, const char* op, const char* name) {
  FloatArray a = float_input(obj, op, name);
  expect_shape(a, shape_of(like), op, name);
  return a;
}

py::object optional(const FloatArray& a, bool present) { return present ? py::object(a) : py::object(py::none()); }

const float* norm_parameter(const py::handle& obj, FloatArray& holder, const GroupNormTask& task, const char* name) {
  if (obj.is_none()) return nullptr;
  holder = float_input(obj, task.op.c_str(), name);
  expect_shape(holder, task.param_shape, task.op.c_str(), name);
  return holder.data();
}

py::tuple group_norm_forward_call(const py::handle& x_obj, bool layer, int64_t groups_or_ndim, const py::handle& w_obj,
                                  const py::handle& b_obj, double eps) {
  FloatArray x = float_input(x_obj, layer ? "layer_norm" : "group_norm", "input");
  const GroupNormTask task = group_norm_task(shape_of(x), layer, groups_or_ndim, eps, "");
  FloatArray w, b;
  const float* weight = norm_parameter(w_obj, w, task, "weight");
  const float* bias = norm_parameter(b_obj, b, task, "bias");
  FloatArray y = empty_float(shape_of(x)), mean = empty_float({task.d.batch * task.d.groups}),
             rstd = empty_float({task.d.batch * task.d.groups});
  float *y_data = y.mutable_data(), *mean_data = mean.mutable_data(), *rstd_data = rstd.mutable_data();
  {
    py::gil_scoped_release nogil;
    kernels().group_norm_forward(y_data, mean_data, rstd_data, x.data(), weight, bias, task.d);
  }
  return py::make_tuple(y, mean, rstd);
}

py::tuple group_norm_backward_call(const py::handle& dy_obj, const py::handle& x_obj, const py::handle& mean_obj,
                                   const py::handle& rstd_obj, const py::handle& w_obj, bool layer,
                                   int64_t groups_or_ndim, std::array<bool, 3> output_mask) {
  FloatArray x = float_input(x_obj, layer ? "layer_norm backward" : "group_norm backward", "input");
  const GroupNormTask task = group_norm_task(shape_of(x), layer, groups_or_ndim, 0.0, " backward");
  const char* op = task.op.c_str();
  FloatArray dy = same_shape_input(dy_obj, x, op, "grad_output");
  FloatArray mean = float_input(mean_obj, op, "mean"), rstd = float_input(rstd_obj, op, "rstd"), w;
  expect_shape(mean, {task.d.batch * task.d.groups}, op, "mean");
  expect_shape(rstd, {task.d.batch * task.d.groups}, op, "rstd");
  const float* weight = norm_parameter(w_obj, w, task, "weight");
  FloatArray dx = empty_float(output_mask[0] ? shape_of(x) : std::vector<int64_t>{0});
  FloatArray dw = empty_float(output_mask[1] ? task.param_shape : std::vector<int64_t>{0});
  FloatArray db = empty_float(output_mask[2] ? task.param_shape : std::vector<int64_t>{0});
  float* dx_data = output_mask[0] ? dx.mutable_data() : nullptr;
  float* dw_data = output_mask[1] ? dw.mutable_data() : nullptr;
  float* db_data = output_mask[2] ? db.mutable_data() : nullptr;
  {
    py::gil_scoped_release nogil;
    kernels().group_norm_backward(dx_data, dw_data, db_data, dy.data(), x.data(), mean.data(), rstd.data(), weight,
                                  task.d);
  }
  return py::make_tuple(optional(dx, output_mask[0]), optional(dw, output_mask[1]), optional(db, output_mask[2]));
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def(
      "batch_norm_forward_train",
      [](const py::handle& x_obj, const py::handle& rm_obj, const py::handle& rv_obj, const py::handle& w_obj,
         const py::handle& b_obj, double momentum, double eps, bool relu) {
        FloatArray x = float_input(x_obj, "batch_norm", "input");
        BatchNormDesc d = bn_desc(shape_of(x), eps, momentum, true);
        d.relu = relu;
        FloatArray rm, rv, w, b;
        float* rm_data = rm_obj.is_none() ? nullptr : (rm = inplace_float(rm_obj, {d.channels}, "batch_norm", "running_mean")).mutable_data();
        float* rv_data = rv_obj.is_none() ? nullptr : (rv = inplace_float(rv_obj, {d.channels}, "batch_norm", "running_var")).mutable_data();
        const float* weight = channel_vector(w_obj, w, d, "weight");
        const float* bias = channel_vector(b_obj, b, d, "bias");
        FloatArray y = empty_float(shape_of(x)), mean = empty_float({d.channels}), invstd = empty_float({d.channels});
        float *y_data = y.mutable_data(), *mean_data = mean.mutable_data(), *invstd_data = invstd.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().batch_norm_forward_train(y_data, mean_data, invstd_data, rm_data, rv_data, x.data(), weight, bias, d);
        }
        return py::make_tuple(y, mean, invstd);
      },
      py::arg("input"), py::arg("running_mean"), py::arg("running_var"), py::arg("weight"), py::arg("bias"),
      py::arg("momentum"), py::arg("eps"), py::arg("relu") = false,
      "Batch-statistics batch norm: returns (output, save_mean, save_invstd); updates the running "
      "statistics (float32, C-contiguous, or None) in place. relu=True fuses a ReLU after it.");
  m.def(
      "batch_norm_forward_eval",
      [](const py::handle& x_obj, const py::handle& rm_obj, const py::handle& rv_obj, const py::handle& w_obj,
         const py::handle& b_obj, double eps, bool relu) {
        FloatArray x = float_input(x_obj, "batch_norm", "input");
        BatchNormDesc d = bn_desc(shape_of(x), eps, 0.0, false);
        d.relu = relu;
        FloatArray rm, rv, w, b;
        const float* mean = channel_vector(rm_obj, rm, d, "running_mean");
        const float* var = channel_vector(rv_obj, rv, d, "running_var");
        if (!mean || !var) throw py::value_error("batch_norm: running_mean and running_var are required when training=False");
        const float* weight = channel_vector(w_obj, w, d, "weight");
        const float* bias = channel_vector(b_obj, b, d, "bias");
        FloatArray y = empty_float(shape_of(x));
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().batch_norm_forward_eval(y_data, x.data(), mean, var, weight, bias, d);
        }
        return y;
      },
      py::arg("input"), py::arg("running_mean"), py::arg("running_var"), py::arg("weight"), py::arg("bias"),
      py::arg("eps"), py::arg("relu") = false);
  m.def(
      "batch_norm_backward",
      [](const py::handle& dy_obj, const py::handle& x_obj, const py::handle& mean_obj, const py::handle& invstd_obj,
         const py::handle& w_obj, bool training, std::array<bool, 3> output_mask, const py::handle& relu_obj) {
        FloatArray x = float_input(x_obj, "batch_norm backward", "input");
        FloatArray dy = same_shape_input(dy_obj, x, "batch_norm backward", "grad_output");
        FloatArray relu_output;
        if (!relu_obj.is_none()) relu_output = same_shape_input(relu_obj, x, "batch_norm backward", "relu_output");
        // training=false here only selects the gradient formula; the size rule is the forward's.
        const BatchNormDesc d = bn_desc(shape_of(x), 0.0, 0.0, false);
        BatchNormDesc kd = d;
        kd.training = training;
        kd.relu = !relu_obj.is_none();
        FloatArray mean_a, invstd_a, w;
        const float* mean = channel_vector(mean_obj, mean_a, d, "mean");
        const float* invstd = channel_vector(invstd_obj, invstd_a, d, "invstd");
        if (!mean || !invstd) throw py::value_error("batch_norm backward: mean and invstd are required");
        const float* weight = channel_vector(w_obj, w, d, "weight");
        FloatArray dx = empty_float(output_mask[0] ? shape_of(x) : std::vector<int64_t>{0});
        FloatArray dw = empty_float({output_mask[1] ? d.channels : 0}), db = empty_float({output_mask[2] ? d.channels : 0});
        float* dx_data = output_mask[0] ? dx.mutable_data() : nullptr;
        float* dw_data = output_mask[1] ? dw.mutable_data() : nullptr;
        float* db_data = output_mask[2] ? db.mutable_data() : nullptr;
        {
          py::gil_scoped_release nogil;
          kernels().batch_norm_backward(dx_data, dw_data, db_data, dy.data(), x.data(),
                                        kd.relu ? relu_output.data() : nullptr, mean, invstd, weight, kd);
        }
        return py::make_tuple(optional(dx, output_mask[0]), optional(dw, output_mask[1]), optional(db, output_mask[2]));
      },
      py::arg("grad_output"), py::arg("input"), py::arg("mean"), py::arg("invstd"), py::arg("weight"),
      py::arg("training"), py::arg("output_mask"), py::arg("relu_output") = py::none(),
      "Gradients (input, weight, bias) of batch norm, each None unless output_mask asks for it. "
      "relu_output: the output of a forward with relu=True; dy then counts only where it is positive.");
  m.def(
      "group_norm_forward",
      [](const py::handle& x, int64_t num_groups, const py::handle& w, const py::handle& b, double eps) {
        return group_norm_forward_call(x, false, num_groups, w, b, eps);
      },
      py::arg("input"), py::arg("num_groups"), py::arg("weight"), py::arg("bias"), py::arg("eps"),
      "Group norm of an (N, C, *) input: returns (output, mean, rstd), the statistics (N * num_groups).");
  m.def(
      "layer_norm_forward",
      [](const py::handle& x, int64_t normalized_ndim, const py::handle& w, const py::handle& b, double eps) {
        return group_norm_forward_call(x, true, normalized_ndim, w, b, eps);
      },
      py::arg("input"), py::arg("normalized_ndim"), py::arg("weight"), py::arg("bias"), py::arg("eps"),
      "Layer norm over the last normalized_ndim dims: returns (output, mean, rstd), one statistic per row.");
  m.def(
      "group_norm_backward",
      [](const py::handle& dy, const py::handle& x, const py::handle& mean, const py::handle& rstd, const py::handle& w,
         int64_t num_groups, std::array<bool, 3> output_mask) {
        return group_norm_backward_call(dy, x, mean, rstd, w, false, num_groups, output_mask);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("mean"), py::arg("rstd"), py::arg("weight"),
      py::arg("num_groups"), py::arg("output_mask"), "Gradients (input, weight, bias), each None unless asked for.");
  m.def(
      "layer_norm_backward",
      [](const py::handle& dy, const py::handle& x, const py::handle& mean, const py::handle& rstd, const py::handle& w,
         int64_t normalized_ndim, std::array<bool, 3> output_mask) {
        return group_norm_backward_call(dy, x, mean, rstd, w, true, normalized_ndim, output_mask);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("mean"), py::arg("rstd"), py::arg("weight"),
      py::arg("normalized_ndim"), py::arg("output_mask"), "Gradients (input, weight, bias), each None unless asked for.");
  m.def(
      "lrn_forward",
      [](const py::handle& x_obj, int64_t size, double alpha, double beta, double k) {
        FloatArray x = float_input(x_obj, "local_response_norm", "input");
        const LrnDesc d = lrn_desc(shape_of(x), size, alpha, beta, k);
        FloatArray y = empty_float(shape_of(x)), scale = empty_float(shape_of(x));
        float *y_data = y.mutable_data(), *scale_data = scale.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().lrn_forward(y_data, scale_data, x.data(), d);
        }
        return py::make_tuple(y, scale);
      },
      py::arg("input"), py::arg("size"), py::arg("alpha"), py::arg("beta"), py::arg("k"),
      "Local response norm across channels: returns (output, scale).");
  m.def(
      "lrn_backward",
      [](const py::handle& dy_obj, const py::handle& x_obj, const py::handle& y_obj, const py::handle& scale_obj,
         int64_t size, double alpha, double beta, double k) {
        const char* op = "local_response_norm backward";
        FloatArray x = float_input(x_obj, op, "input");
        FloatArray dy = same_shape_input(dy_obj, x, op, "grad_output"), y = same_shape_input(y_obj, x, op, "output"),
                   scale = same_shape_input(scale_obj, x, op, "scale");
        const LrnDesc d = lrn_desc(shape_of(x), size, alpha, beta, k);
        FloatArray dx = empty_float(shape_of(x));
        float* dx_data = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().lrn_backward(dx_data, dy.data(), x.data(), y.data(), scale.data(), d);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("output"), py::arg("scale"), py::arg("size"),
      py::arg("alpha"), py::arg("beta"), py::arg("k"));
}

}  // namespace pcn::bind
