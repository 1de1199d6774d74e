// Bindings for softmax / log_softmax and the losses (cross_entropy, nll_loss, mse_loss, smooth_l1_loss
// and huber_loss, binary_cross_entropy with and without logits).
// Losses return a 0-d array for reduction mean/sum and a target-shaped array for none.
#include "bindings/common.h"
#include "bindings/descriptors.h"
#include "dispatch.h"

namespace pcn::bind {
namespace {

using SoftmaxKernel = void (*)(float*, const float*, const SoftmaxDesc&);
using SoftmaxBackwardKernel = void (*)(float*, const float*, const float*, const SoftmaxDesc&);

FloatArray softmax_call(const py::handle& x_obj, int64_t dim, const char* op, SoftmaxKernel KernelTable::*kernel) {
  FloatArray x = float_input(x_obj, op, "input");
  const SoftmaxDesc d = softmax_desc(shape_of(x), dim, op);
  FloatArray y = empty_float(shape_of(x));
  float* y_data = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    (kernels().*kernel)(y_data, x.data(), d);
  }
  return y;
}

FloatArray softmax_backward_call(const py::handle& dy_obj, const py::handle& y_obj, int64_t dim, const char* op,
                                 SoftmaxBackwardKernel KernelTable::*kernel) {
  FloatArray dy = float_input(dy_obj, op, "grad_output"), y = float_input(y_obj, op, "output");
  expect_shape(dy, shape_of(y), op, "grad_output");
  const SoftmaxDesc d = softmax_desc(shape_of(y), dim, op);
  FloatArray dx = empty_float(shape_of(y));
  float* dx_data = dx.mutable_data();
  {
    py::gil_scoped_release nogil;
    (kernels().*kernel)(dx_data, dy.data(), y.data(), d);
  }
  return dx;
}

// Input (N, C, d1, ...) and target (N, d1, ...): fills the descriptor, checks shapes and every
// target value, and returns the optional class weights (nullptr when None).
struct ClassTask {
  LossDesc d;
  FloatArray input;
  IndexArray target;
  FloatArray weight;
  const float* weight_data = nullptr;
  std::vector<int64_t> target_shape;
};

ClassTask class_task(const py::handle& input_obj, const std::vector<int64_t>& input_shape, const py::handle& target_obj,
                     const py::handle& weight_obj, int64_t ignore_index, int reduction, float label_smoothing,
                     const char* op) {
  ClassTask task;
  task.target = index_input(target_obj, op, "target");
  task.target_shape = shape_of(task.target);
  task.d = class_loss_desc(input_shape, task.target_shape, ignore_index, reduction, label_smoothing, op);
  const LossDesc& d = task.d;
  if (!weight_obj.is_none()) {
    task.weight = float_input(weight_obj, op, "weight");
    expect_shape(task.weight, {d.classes}, op, "weight");
    task.weight_data = task.weight.data();
  }
  const int64_t* t = task.target.data();
  for (int64_t i = 0, count = d.batch * d.inner; i < count; ++i)
    if (t[i] != ignore_index && (t[i] < 0 || t[i] >= d.classes))
      throw py::value_error(std::string(op) + ": target value " + std::to_string(t[i]) + " is out of bounds for " +
                            std::to_string(d.classes) + " classes (valid: 0 to " + std::to_string(d.classes - 1) +
                            ", or ignore_index=" + std::to_string(ignore_index) + ")");
  if (!input_obj.is_none()) {
    task.input = float_input(input_obj, op, "input");
    expect_shape(task.input, input_shape, op, "input");
  }
  return task;
}

FloatArray grad_loss_input(const py::handle& obj, const LossDesc& d, const std::vector<int64_t>& per_element,
                           const char* op) {
  FloatArray g = float_input(obj, op, "grad_output");
  expect_shape(g, loss_shape(d, per_element), op, "grad_output");
  return g;
}

// The element-wise losses: same-shaped float32 input and target viewed as flat arrays.
struct FlatTask {
  LossDesc d;
  FloatArray input, target, weight, pos_weight;
  const float* weight_data = nullptr;
  const float* pos_weight_data = nullptr;
  std::string op;
};

FlatTask flat_task(const py::handle& input_obj, const py::handle& target_obj, int reduction, const std::string& op,
                   float beta = 0.0f, bool huber = false) {
  FlatTask task;
  task.op = op;
  task.input = float_input(input_obj, op.c_str(), "input");
  task.target = float_input(target_obj, op.c_str(), "target");
  expect_shape(task.target, shape_of(task.input), op.c_str(), "target");
  task.d = flat_loss_desc(task.input.size(), reduction, beta, huber, op.c_str());
  return task;
}

// An optional input-shaped float32 array (None: nullptr).
const float* optional_elementwise(const py::handle& obj, FloatArray* array, const FlatTask& task, const char* name) {
  if (obj.is_none()) return nullptr;
  *array = float_input(obj, task.op.c_str(), name);
  expect_shape(*array, shape_of(task.input), task.op.c_str(), name);
  return array->data();
}

void expect_probabilities(const FloatArray& values, const std::string& op, const char* name) {
  const float* v = values.data();
  for (int64_t i = 0, count = values.size(); i < count; ++i)
    if (!(v[i] >= 0.0f && v[i] <= 1.0f))
      throw py::value_error(op + ": all elements of " + name + " should be between 0 and 1, got " +
                            std::to_string(v[i]) + " at flat index " + std::to_string(i));
}

FlatTask binary_task(const py::handle& input_obj, const py::handle& target_obj, const py::handle& weight_obj,
                     const py::handle& pos_weight_obj, int reduction, bool logits, const char* suffix) {
  const std::string op = binary_loss_op(logits, suffix);
  FlatTask task = flat_task(input_obj, target_obj, reduction, op);
  task.weight_data = optional_elementwise(weight_obj, &task.weight, task, "weight");
  task.pos_weight_data = optional_elementwise(pos_weight_obj, &task.pos_weight, task, "pos_weight");
  expect_pos_weight_allowed(logits, task.pos_weight_data != nullptr, op);
  if (!logits) {
    expect_probabilities(task.input, op, "input");
    expect_probabilities(task.target, op, "target");
  }
  return task;
}

// Runs kernel(loss) without the GIL into a fresh loss array (input-shaped for none, else 0-d).
template <class Kernel>
FloatArray flat_forward(const FlatTask& task, Kernel kernel) {
  FloatArray loss = empty_float(loss_shape(task.d, shape_of(task.input)));
  float* loss_data = loss.mutable_data();
  {
    py::gil_scoped_release nogil;
    kernel(loss_data);
  }
  return loss;
}

// Runs kernel(dinput, dtarget or nullptr) without the GIL; returns [dinput] or [dinput, dtarget].
template <class Kernel>
py::list flat_backward(const FlatTask& task, Kernel kernel, bool target_grad) {
  FloatArray dinput = empty_float(shape_of(task.input));
  FloatArray dtarget = target_grad ? empty_float(shape_of(task.input)) : FloatArray();
  float* dinput_data = dinput.mutable_data();
  float* dtarget_data = target_grad ? dtarget.mutable_data() : nullptr;
  {
    py::gil_scoped_release nogil;
    kernel(dinput_data, dtarget_data);
  }
  py::list result;
  result.append(dinput);
  if (target_grad) result.append(dtarget);
  return result;
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def("softmax_forward", [](const py::handle& x, int64_t dim) {
    return softmax_call(x, dim, "softmax", &KernelTable::softmax_forward);
  }, py::arg("input"), py::arg("dim"));
  m.def("log_softmax_forward", [](const py::handle& x, int64_t dim) {
    return softmax_call(x, dim, "log_softmax", &KernelTable::log_softmax_forward);
  }, py::arg("input"), py::arg("dim"));
  m.def("softmax_backward", [](const py::handle& dy, const py::handle& y, int64_t dim) {
    return softmax_backward_call(dy, y, dim, "softmax backward", &KernelTable::softmax_backward);
  }, py::arg("grad_output"), py::arg("output"), py::arg("dim"));
  m.def("log_softmax_backward", [](const py::handle& dy, const py::handle& y, int64_t dim) {
    return softmax_backward_call(dy, y, dim, "log_softmax backward", &KernelTable::log_softmax_backward);
  }, py::arg("grad_output"), py::arg("output"), py::arg("dim"));

  m.def(
      "cross_entropy_forward",
      [](const py::handle& input_obj, const py::handle& target_obj, const py::handle& weight_obj, int64_t ignore_index,
         int reduction, float label_smoothing) {
        FloatArray input = float_input(input_obj, "cross_entropy", "input");
        ClassTask task = class_task(input, shape_of(input), target_obj, weight_obj, ignore_index, reduction,
                                    label_smoothing, "cross_entropy");
        FloatArray loss = empty_float(loss_shape(task.d, task.target_shape));
        FloatArray log_probs = empty_float(shape_of(input));
        float *loss_data = loss.mutable_data(), *lp_data = log_probs.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().cross_entropy_forward(loss_data, lp_data, task.input.data(), task.target.data(), task.weight_data,
                                          task.d);
        }
        return py::make_tuple(loss, log_probs);
      },
      py::arg("input"), py::arg("target"), py::arg("weight"), py::arg("ignore_index"), py::arg("reduction"),
      py::arg("label_smoothing"));
  m.def(
      "cross_entropy_backward",
      [](const py::handle& grad_obj, const py::handle& lp_obj, const py::handle& target_obj, const py::handle& weight_obj,
         int64_t ignore_index, int reduction, float label_smoothing) {
        FloatArray log_probs = float_input(lp_obj, "cross_entropy backward", "log_probs");
        ClassTask task = class_task(log_probs, shape_of(log_probs), target_obj, weight_obj, ignore_index, reduction,
                                    label_smoothing, "cross_entropy backward");
        FloatArray grad = grad_loss_input(grad_obj, task.d, task.target_shape, "cross_entropy backward");
        FloatArray dlogits = empty_float(shape_of(log_probs));
        float* out = dlogits.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().cross_entropy_backward(out, grad.data(), task.input.data(), task.target.data(), task.weight_data,
                                           task.d);
        }
        return dlogits;
      },
      py::arg("grad_output"), py::arg("log_probs"), py::arg("target"), py::arg("weight"), py::arg("ignore_index"),
      py::arg("reduction"), py::arg("label_smoothing"));
  m.def(
      "nll_loss_forward",
      [](const py::handle& input_obj, const py::handle& target_obj, const py::handle& weight_obj, int64_t ignore_index,
         int reduction) {
        FloatArray input = float_input(input_obj, "nll_loss", "input");
        ClassTask task =
            class_task(input, shape_of(input), target_obj, weight_obj, ignore_index, reduction, 0.0f, "nll_loss");
        FloatArray loss = empty_float(loss_shape(task.d, task.target_shape));
        float* loss_data = loss.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().nll_loss_forward(loss_data, task.input.data(), task.target.data(), task.weight_data, task.d);
        }
        return loss;
      },
      py::arg("input"), py::arg("target"), py::arg("weight"), py::arg("ignore_index"), py::arg("reduction"));
  m.def(
      "nll_loss_backward",
      [](const py::handle& grad_obj, const py::handle& target_obj, const py::handle& weight_obj,
         std::vector<int64_t> input_shape, int64_t ignore_index, int reduction) {
        ClassTask task = class_task(py::none(), input_shape, target_obj, weight_obj, ignore_index, reduction, 0.0f,
                                    "nll_loss backward");
        FloatArray grad = grad_loss_input(grad_obj, task.d, task.target_shape, "nll_loss backward");
        FloatArray dinput = empty_float(input_shape);
        float* out = dinput.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().nll_loss_backward(out, grad.data(), task.target.data(), task.weight_data, task.d);
        }
        return dinput;
      },
      py::arg("grad_output"), py::arg("target"), py::arg("weight"), py::arg("input_shape"), py::arg("ignore_index"),
      py::arg("reduction"));

  m.def(
      "mse_loss_forward",
      [](const py::handle& input_obj, const py::handle& target_obj, int reduction) {
        FlatTask task = flat_task(input_obj, target_obj, reduction, "mse_loss");
        return flat_forward(task, [&task](float* loss) {
          kernels().mse_loss_forward(loss, task.input.data(), task.target.data(), task.d);
        });
      },
      py::arg("input"), py::arg("target"), py::arg("reduction"));
  m.def(
      "mse_loss_backward",
      [](const py::handle& grad_obj, const py::handle& input_obj, const py::handle& target_obj, int reduction) {
        FlatTask task = flat_task(input_obj, target_obj, reduction, "mse_loss backward");
        FloatArray grad = grad_loss_input(grad_obj, task.d, shape_of(task.input), "mse_loss backward");
        const py::list grads = flat_backward(task, [&](float* dinput, float*) {
          kernels().mse_loss_backward(dinput, grad.data(), task.input.data(), task.target.data(), task.d);
        }, false);
        return py::object(grads[0]);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("reduction"));
  m.def(
      "smooth_l1_loss_forward",
      [](const py::handle& input_obj, const py::handle& target_obj, int reduction, float beta, bool huber) {
        FlatTask task = flat_task(input_obj, target_obj, reduction, huber ? "huber_loss" : "smooth_l1_loss", beta, huber);
        return flat_forward(task, [&task](float* loss) {
          kernels().smooth_l1_loss_forward(loss, task.input.data(), task.target.data(), task.d);
        });
      },
      py::arg("input"), py::arg("target"), py::arg("reduction"), py::arg("beta"), py::arg("huber"),
      "beta 0: L1 loss; huber: beta (delta) times the smooth L1 loss.");
  m.def(
      "smooth_l1_loss_backward",
      [](const py::handle& grad_obj, const py::handle& input_obj, const py::handle& target_obj, int reduction,
         float beta, bool huber) {
        const char* op = huber ? "huber_loss backward" : "smooth_l1_loss backward";
        FlatTask task = flat_task(input_obj, target_obj, reduction, op, beta, huber);
        FloatArray grad = grad_loss_input(grad_obj, task.d, shape_of(task.input), op);
        const py::list grads = flat_backward(task, [&](float* dinput, float*) {
          kernels().smooth_l1_loss_backward(dinput, grad.data(), task.input.data(), task.target.data(), task.d);
        }, false);
        return py::object(grads[0]);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("reduction"), py::arg("beta"),
      py::arg("huber"));
  m.def(
      "binary_cross_entropy_forward",
      [](const py::handle& input_obj, const py::handle& target_obj, const py::handle& weight_obj,
         const py::handle& pos_weight_obj, int reduction, bool logits) {
        FlatTask task = binary_task(input_obj, target_obj, weight_obj, pos_weight_obj, reduction, logits, "");
        return flat_forward(task, [&task, logits](float* loss) {
          if (logits)
            kernels().bce_with_logits_forward(loss, task.input.data(), task.target.data(), task.weight_data,
                                              task.pos_weight_data, task.d);
          else
            kernels().binary_cross_entropy_forward(loss, task.input.data(), task.target.data(), task.weight_data,
                                                   task.d);
        });
      },
      py::arg("input"), py::arg("target"), py::arg("weight"), py::arg("pos_weight"), py::arg("reduction"),
      py::arg("logits"),
      "logits false: input holds probabilities (each in [0, 1]) and pos_weight must be None. weight and "
      "pos_weight are None or input-shaped.");
  m.def(
      "binary_cross_entropy_backward",
      [](const py::handle& grad_obj, const py::handle& input_obj, const py::handle& target_obj,
         const py::handle& weight_obj, const py::handle& pos_weight_obj, int reduction, bool logits,
         bool target_grad) {
        FlatTask task = binary_task(input_obj, target_obj, weight_obj, pos_weight_obj, reduction, logits, " backward");
        FloatArray grad = grad_loss_input(grad_obj, task.d, shape_of(task.input), task.op.c_str());
        return flat_backward(task, [&](float* dinput, float* dtarget) {
          if (logits)
            kernels().bce_with_logits_backward(dinput, dtarget, grad.data(), task.input.data(), task.target.data(),
                                               task.weight_data, task.pos_weight_data, task.d);
          else
            kernels().binary_cross_entropy_backward(dinput, dtarget, grad.data(), task.input.data(),
                                                    task.target.data(), task.weight_data, task.d);
        }, target_grad);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("weight"), py::arg("pos_weight"),
      py::arg("reduction"), py::arg("logits"), py::arg("target_grad"),
      "Returns [grad_input] or, with target_grad, [grad_input, grad_target].");
}

}  // namespace pcn::bind
