// GPU bindings for softmax / log_softmax and the losses (cuda/loss.cuh), mirroring
// bindings/loss.cpp with DeviceArrays for numpy arrays. Losses return a 0-d array for reduction
// mean/sum and a target-shaped array for none.
// The CPU binding also checks every class target and every binary_cross_entropy probability on the
// host; here that would wait for the device, so it is left out: an out-of-range class target gives
// a NaN loss and gradient (loss.cuh), a probability outside [0, 1] the clamped-log value.
#include "bindings/descriptors.h"
#include "cuda/bindings/common.h"
#include "cuda/loss.cuh"

namespace pcn::cuda::bind {
namespace {

using SoftmaxLauncher = void (*)(float*, const float*, const SoftmaxDesc&, cudaStream_t);
using SoftmaxBackwardLauncher = void (*)(float*, const float*, const float*, const SoftmaxDesc&, cudaStream_t);

DeviceArray softmax_call(const DeviceArray& x, int64_t dim, const char* op, SoftmaxLauncher launcher) {
  float_input(x, op, "input");
  const SoftmaxDesc d = softmax_desc(x.shape, dim, op);
  DeviceArray y = empty_like(x);
  cudaStream_t stream = launch_on(x);
  {
    py::gil_scoped_release nogil;
    launcher(y.data<float>(), x.data<float>(), d, stream);
  }
  return y;
}

DeviceArray softmax_backward_call(const DeviceArray& dy, const DeviceArray& y, int64_t dim, const char* op,
                                  SoftmaxBackwardLauncher launcher) {
  float_input(dy, op, "grad_output");
  float_input(y, op, "output");
  expect_shape(dy, y.shape, op, "grad_output");
  expect_same_device(op, {&y, &dy});
  const SoftmaxDesc d = softmax_desc(y.shape, dim, op);
  DeviceArray dx = empty_like(y);
  cudaStream_t stream = launch_on(y);
  {
    py::gil_scoped_release nogil;
    launcher(dx.data<float>(), dy.data<float>(), y.data<float>(), d, stream);
  }
  return dx;
}

// Input (N, C, d1, ...) and target (N, d1, ...): fills the descriptor, checks shapes and devices,
// and returns the optional class weights (nullptr when None).
struct ClassTask {
  LossDesc d;
  const float* weight_data = nullptr;
  std::vector<int64_t> target_shape;
};

ClassTask class_task(const DeviceArray* input, const std::vector<int64_t>& input_shape, const DeviceArray& target,
                     const std::optional<DeviceArray>& weight, int64_t ignore_index, int reduction,
                     float label_smoothing, const char* op) {
  ClassTask task;
  index_input(target, op, "target");
  task.target_shape = target.shape;
  task.d = class_loss_desc(input_shape, task.target_shape, ignore_index, reduction, label_smoothing, op);
  const LossDesc& d = task.d;
  if (weight) {
    float_input(*weight, op, "weight");
    expect_shape(*weight, {d.classes}, op, "weight");
    expect_same_device(op, {&target, &*weight});
    task.weight_data = weight->data<float>();
  }
  if (input) expect_same_device(op, {input, &target});
  return task;
}

void expect_grad_loss(const DeviceArray& g, const DeviceArray& like, const LossDesc& d,
                      const std::vector<int64_t>& per_element, const char* op) {
  float_input(g, op, "grad_output");
  expect_shape(g, loss_shape(d, per_element), op, "grad_output");
  expect_same_device(op, {&like, &g});
}

// The element-wise losses: same-shaped float32 input and target viewed as flat arrays.
struct FlatTask {
  LossDesc d;
  const float* weight_data = nullptr;
  const float* pos_weight_data = nullptr;
  std::string op;
};

FlatTask flat_task(const DeviceArray& input, const DeviceArray& target, int reduction, const std::string& op,
                   float beta = 0.0f, bool huber = false) {
  FlatTask task;
  task.op = op;
  float_input(input, op.c_str(), "input");
  float_input(target, op.c_str(), "target");
  expect_shape(target, input.shape, op.c_str(), "target");
  expect_same_device(op.c_str(), {&input, &target});
  task.d = flat_loss_desc(input.numel(), reduction, beta, huber, op.c_str());
  return task;
}

// An optional input-shaped float32 array (None: nullptr).
const float* optional_elementwise(const std::optional<DeviceArray>& array, const DeviceArray& input,
                                  const FlatTask& task, const char* name) {
  if (!array) return nullptr;
  float_input(*array, task.op.c_str(), name);
  expect_shape(*array, input.shape, task.op.c_str(), name);
  expect_same_device(task.op.c_str(), {&input, &*array});
  return array->data<float>();
}

FlatTask binary_task(const DeviceArray& input, const DeviceArray& target, const std::optional<DeviceArray>& weight,
                     const std::optional<DeviceArray>& pos_weight, int reduction, bool logits, const char* suffix) {
  const std::string op = binary_loss_op(logits, suffix);
  FlatTask task = flat_task(input, target, reduction, op);
  task.weight_data = optional_elementwise(weight, input, task, "weight");
  task.pos_weight_data = optional_elementwise(pos_weight, input, task, "pos_weight");
  expect_pos_weight_allowed(logits, task.pos_weight_data != nullptr, op);
  return task;
}

// Runs launch(loss, stream) without the GIL into a fresh loss array (input-shaped for none, else 0-d).
template <class Launch>
DeviceArray flat_forward(const DeviceArray& input, const FlatTask& task, Launch launch) {
  DeviceArray loss = empty(loss_shape(task.d, input.shape), Dtype::float32, input.device);
  cudaStream_t stream = launch_on(input);
  {
    py::gil_scoped_release nogil;
    launch(loss.data<float>(), stream);
  }
  return loss;
}

// Runs launch(dinput, dtarget or nullptr, stream) without the GIL; returns [dinput] or [dinput, dtarget].
template <class Launch>
std::vector<DeviceArray> flat_backward(const DeviceArray& input, Launch launch, bool target_grad) {
  std::vector<DeviceArray> grads{empty_like(input)};
  if (target_grad) grads.push_back(empty_like(input));
  float* dinput = grads[0].data<float>();
  float* dtarget = target_grad ? grads[1].data<float>() : nullptr;
  cudaStream_t stream = launch_on(input);
  {
    py::gil_scoped_release nogil;
    launch(dinput, dtarget, stream);
  }
  return grads;
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def("softmax_forward", [](const DeviceArray& x, int64_t dim) {
    return softmax_call(x, dim, "softmax", &softmax_forward);
  }, py::arg("input"), py::arg("dim"));
  m.def("log_softmax_forward", [](const DeviceArray& x, int64_t dim) {
    return softmax_call(x, dim, "log_softmax", &log_softmax_forward);
  }, py::arg("input"), py::arg("dim"));
  m.def("softmax_backward", [](const DeviceArray& dy, const DeviceArray& y, int64_t dim) {
    return softmax_backward_call(dy, y, dim, "softmax backward", &softmax_backward);
  }, py::arg("grad_output"), py::arg("output"), py::arg("dim"));
  m.def("log_softmax_backward", [](const DeviceArray& dy, const DeviceArray& y, int64_t dim) {
    return softmax_backward_call(dy, y, dim, "log_softmax backward", &log_softmax_backward);
  }, py::arg("grad_output"), py::arg("output"), py::arg("dim"));

  m.def(
      "cross_entropy_forward",
      [](const DeviceArray& input, const DeviceArray& target, const std::optional<DeviceArray>& weight,
         int64_t ignore_index, int reduction, float label_smoothing) {
        float_input(input, "cross_entropy", "input");
        const ClassTask task = class_task(&input, input.shape, target, weight, ignore_index, reduction, label_smoothing,
                                          "cross_entropy");
        DeviceArray loss = empty(loss_shape(task.d, task.target_shape), Dtype::float32, input.device);
        DeviceArray log_probs = empty_like(input);
        cudaStream_t stream = launch_on(input);
        {
          py::gil_scoped_release nogil;
          cross_entropy_forward(loss.data<float>(), log_probs.data<float>(), input.data<float>(),
                                target.data<int64_t>(), task.weight_data, task.d, stream);
        }
        return std::make_tuple(loss, log_probs);
      },
      py::arg("input"), py::arg("target"), py::arg("weight"), py::arg("ignore_index"), py::arg("reduction"),
      py::arg("label_smoothing"));
  m.def(
      "cross_entropy_backward",
      [](const DeviceArray& grad, const DeviceArray& log_probs, const DeviceArray& target,
         const std::optional<DeviceArray>& weight, int64_t ignore_index, int reduction, float label_smoothing) {
        const char* op = "cross_entropy backward";
        float_input(log_probs, op, "log_probs");
        const ClassTask task =
            class_task(&log_probs, log_probs.shape, target, weight, ignore_index, reduction, label_smoothing, op);
        expect_grad_loss(grad, log_probs, task.d, task.target_shape, op);
        DeviceArray dlogits = empty_like(log_probs);
        cudaStream_t stream = launch_on(log_probs);
        {
          py::gil_scoped_release nogil;
          cross_entropy_backward(dlogits.data<float>(), grad.data<float>(), log_probs.data<float>(),
                                 target.data<int64_t>(), task.weight_data, task.d, stream);
        }
        return dlogits;
      },
      py::arg("grad_output"), py::arg("log_probs"), py::arg("target"), py::arg("weight"), py::arg("ignore_index"),
      py::arg("reduction"), py::arg("label_smoothing"));
  m.def(
      "nll_loss_forward",
      [](const DeviceArray& input, const DeviceArray& target, const std::optional<DeviceArray>& weight,
         int64_t ignore_index, int reduction) {
        float_input(input, "nll_loss", "input");
        const ClassTask task =
            class_task(&input, input.shape, target, weight, ignore_index, reduction, 0.0f, "nll_loss");
        DeviceArray loss = empty(loss_shape(task.d, task.target_shape), Dtype::float32, input.device);
        cudaStream_t stream = launch_on(input);
        {
          py::gil_scoped_release nogil;
          nll_loss_forward(loss.data<float>(), input.data<float>(), target.data<int64_t>(), task.weight_data, task.d,
                           stream);
        }
        return loss;
      },
      py::arg("input"), py::arg("target"), py::arg("weight"), py::arg("ignore_index"), py::arg("reduction"));
  m.def(
      "nll_loss_backward",
      [](const DeviceArray& grad, const DeviceArray& target, const std::optional<DeviceArray>& weight,
         std::vector<int64_t> input_shape, int64_t ignore_index, int reduction) {
        const char* op = "nll_loss backward";
        const ClassTask task = class_task(nullptr, input_shape, target, weight, ignore_index, reduction, 0.0f, op);
        expect_grad_loss(grad, target, task.d, task.target_shape, op);
        DeviceArray dinput = empty(input_shape, Dtype::float32, target.device);
        cudaStream_t stream = launch_on(target);
        {
          py::gil_scoped_release nogil;
          nll_loss_backward(dinput.data<float>(), grad.data<float>(), target.data<int64_t>(), task.weight_data, task.d,
                            stream);
        }
        return dinput;
      },
      py::arg("grad_output"), py::arg("target"), py::arg("weight"), py::arg("input_shape"), py::arg("ignore_index"),
      py::arg("reduction"));

  m.def(
      "mse_loss_forward",
      [](const DeviceArray& input, const DeviceArray& target, int reduction) {
        const FlatTask task = flat_task(input, target, reduction, "mse_loss");
        return flat_forward(input, task, [&](float* loss, cudaStream_t stream) {
          mse_loss_forward(loss, input.data<float>(), target.data<float>(), task.d, stream);
        });
      },
      py::arg("input"), py::arg("target"), py::arg("reduction"));
  m.def(
      "mse_loss_backward",
      [](const DeviceArray& grad, const DeviceArray& input, const DeviceArray& target, int reduction) {
        const FlatTask task = flat_task(input, target, reduction, "mse_loss backward");
        expect_grad_loss(grad, input, task.d, input.shape, "mse_loss backward");
        return flat_backward(input, [&](float* dinput, float*, cudaStream_t stream) {
          mse_loss_backward(dinput, grad.data<float>(), input.data<float>(), target.data<float>(), task.d, stream);
        }, false)[0];
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("reduction"));
  m.def(
      "smooth_l1_loss_forward",
      [](const DeviceArray& input, const DeviceArray& target, int reduction, float beta, bool huber) {
        const FlatTask task = flat_task(input, target, reduction, huber ? "huber_loss" : "smooth_l1_loss", beta, huber);
        return flat_forward(input, task, [&](float* loss, cudaStream_t stream) {
          smooth_l1_loss_forward(loss, input.data<float>(), target.data<float>(), task.d, stream);
        });
      },
      py::arg("input"), py::arg("target"), py::arg("reduction"), py::arg("beta"), py::arg("huber"),
      "beta 0: L1 loss; huber: beta (delta) times the smooth L1 loss.");
  m.def(
      "smooth_l1_loss_backward",
      [](const DeviceArray& grad, const DeviceArray& input, const DeviceArray& target, int reduction, float beta,
         bool huber) {
        const char* op = huber ? "huber_loss backward" : "smooth_l1_loss backward";
        const FlatTask task = flat_task(input, target, reduction, op, beta, huber);
        expect_grad_loss(grad, input, task.d, input.shape, op);
        return flat_backward(input, [&](float* dinput, float*, cudaStream_t stream) {
          smooth_l1_loss_backward(dinput, grad.data<float>(), input.data<float>(), target.data<float>(), task.d,
                                  stream);
        }, false)[0];
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("reduction"), py::arg("beta"),
      py::arg("huber"));
  m.def(
      "binary_cross_entropy_forward",
      [](const DeviceArray& input, const DeviceArray& target, const std::optional<DeviceArray>& weight,
         const std::optional<DeviceArray>& pos_weight, int reduction, bool logits) {
        const FlatTask task = binary_task(input, target, weight, pos_weight, reduction, logits, "");
        return flat_forward(input, task, [&](float* loss, cudaStream_t stream) {
          if (logits)
            bce_with_logits_forward(loss, input.data<float>(), target.data<float>(), task.weight_data,
                                    task.pos_weight_data, task.d, stream);
          else
            binary_cross_entropy_forward(loss, input.data<float>(), target.data<float>(), task.weight_data, task.d,
                                         stream);
        });
      },
      py::arg("input"), py::arg("target"), py::arg("weight"), py::arg("pos_weight"), py::arg("reduction"),
      py::arg("logits"),
      "logits false: input holds probabilities (each in [0, 1], not checked on the GPU) and pos_weight must be "
      "None. weight and pos_weight are None or input-shaped.");
  m.def(
      "binary_cross_entropy_backward",
      [](const DeviceArray& grad, const DeviceArray& input, const DeviceArray& target,
         const std::optional<DeviceArray>& weight, const std::optional<DeviceArray>& pos_weight, int reduction,
         bool logits, bool target_grad) {
        const FlatTask task = binary_task(input, target, weight, pos_weight, reduction, logits, " backward");
        expect_grad_loss(grad, input, task.d, input.shape, task.op.c_str());
        return flat_backward(input, [&](float* dinput, float* dtarget, cudaStream_t stream) {
          if (logits)
            bce_with_logits_backward(dinput, dtarget, grad.data<float>(), input.data<float>(), target.data<float>(),
                                     task.weight_data, task.pos_weight_data, task.d, stream);
          else
            binary_cross_entropy_backward(dinput, dtarget, grad.data<float>(), input.data<float>(),
                                          target.data<float>(), task.weight_data, task.d, stream);
        }, target_grad);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("weight"), py::arg("pos_weight"),
      py::arg("reduction"), py::arg("logits"), py::arg("target_grad"),
      "Returns [grad_input] or, with target_grad, [grad_input, grad_target].");
}

}  // namespace pcn::cuda::bind
