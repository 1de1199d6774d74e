// GPU bindings for the in-place optimiser updates (cuda/optim.cuh), mirroring bindings/optim.cpp
// with DeviceArrays for numpy arrays. Parameters and state are updated in place (a DeviceArray is
// always C-contiguous and writable); every array must lie on the parameter's device.
#include "bindings/descriptors.h"
#include "cuda/bindings/common.h"
#include "cuda/optim.cuh"

namespace pcn::cuda::bind {
namespace {

// A state buffer updated in place: float32 of the parameter's shape, on its device.
float* state_buffer(const DeviceArray& param, const DeviceArray& state, const char* op, const char* name) {
  float_input(state, op, name);
  expect_shape(state, param.shape, op, name);
  expect_same_device(op, {&param, &state});
  return state.data<float>();
}

// Checks the parameter (updated in place) and its gradient, which must have the parameter's shape.
void check_param_and_grad(const DeviceArray& param, const DeviceArray& grad, const char* op) {
  float_input(param, op, "param");
  float_input(grad, op, "grad");
  expect_shape(grad, param.shape, op, "grad");
  expect_same_device(op, {&param, &grad});
}

// A state buffer the update uses only when `needed` (nullptr otherwise); None is a ValueError
// naming `condition` when it is needed.
float* optional_state(const DeviceArray& param, const std::optional<DeviceArray>& state, bool needed, const char* op,
                      const char* name, const char* condition) {
  if (!state_needed(state.has_value(), needed, op, name, condition)) return nullptr;
  return state_buffer(param, *state, op, name);
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def(
      "sgd_update",
      [](const DeviceArray& param, const DeviceArray& grad, const std::optional<DeviceArray>& buf, double lr,
         double momentum, double dampening, double weight_decay, bool nesterov, bool maximize, bool first_step) {
        const char* op = "sgd_update";
        check_param_and_grad(param, grad, op);
        const SgdDesc d = sgd_desc(param.numel(), lr, momentum, dampening, weight_decay, nesterov, maximize, first_step);
        float* b = optional_state(param, buf, momentum != 0.0, op, "momentum_buffer", "momentum != 0");
        cudaStream_t stream = launch_on(param);
        {
          py::gil_scoped_release nogil;
          sgd_update(param.data<float>(), b, grad.data<float>(), d, stream);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::arg("lr"), py::arg("momentum"),
      py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"), py::arg("first_step"));
  m.def(
      "adam_update",
      [](const DeviceArray& param, const DeviceArray& grad, const DeviceArray& avg, const DeviceArray& sq,
         const std::optional<DeviceArray>& max_sq, int64_t step, double lr, double beta1, double beta2, double eps,
         double weight_decay, bool amsgrad, bool maximize, bool decoupled_weight_decay) {
        const char* op = "adam_update";
        check_param_and_grad(param, grad, op);
        float* a = state_buffer(param, avg, op, "exp_avg");
        float* s = state_buffer(param, sq, op, "exp_avg_sq");
        const AdamDesc d = adam_desc(param.numel(), step, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                                     decoupled_weight_decay);
        float* mx = optional_state(param, max_sq, amsgrad, op, "max_exp_avg_sq", "amsgrad=True");
        cudaStream_t stream = launch_on(param);
        {
          py::gil_scoped_release nogil;
          adam_update(param.data<float>(), a, s, mx, grad.data<float>(), d, stream);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"),
      py::arg("step"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("amsgrad"), py::arg("maximize"), py::arg("decoupled_weight_decay"));
  m.def(
      "rmsprop_update",
      [](const DeviceArray& param, const DeviceArray& grad, const DeviceArray& sq,
         const std::optional<DeviceArray>& avg, const std::optional<DeviceArray>& buf, double lr, double alpha,
         double eps, double weight_decay, double momentum, bool centered, bool maximize) {
        const char* op = "rmsprop_update";
        check_param_and_grad(param, grad, op);
        float* s = state_buffer(param, sq, op, "square_avg");
        const RmspropDesc d = rmsprop_desc(param.numel(), lr, alpha, eps, weight_decay, momentum, centered, maximize);
        float* a = optional_state(param, avg, centered, op, "grad_avg", "centered=True");
        float* b = optional_state(param, buf, momentum > 0.0, op, "momentum_buffer", "momentum > 0");
        cudaStream_t stream = launch_on(param);
        {
          py::gil_scoped_release nogil;
          rmsprop_update(param.data<float>(), s, a, b, grad.data<float>(), d, stream);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("grad_avg"), py::arg("momentum_buffer"),
      py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"),
      py::arg("centered"), py::arg("maximize"));
  m.def(
      "adagrad_update",
      [](const DeviceArray& param, const DeviceArray& grad, const DeviceArray& sum, int64_t step, double lr,
         double lr_decay, double eps, double weight_decay, bool maximize) {
        const char* op = "adagrad_update";
        check_param_and_grad(param, grad, op);
        float* s = state_buffer(param, sum, op, "state_sum");
        const AdagradDesc d = adagrad_desc(param.numel(), step, lr, lr_decay, eps, weight_decay, maximize);
        cudaStream_t stream = launch_on(param);
        {
          py::gil_scoped_release nogil;
          adagrad_update(param.data<float>(), s, grad.data<float>(), d, stream);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("state_sum"), py::arg("step"), py::arg("lr"), py::arg("lr_decay"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"));
  m.def(
      "adadelta_update",
      [](const DeviceArray& param, const DeviceArray& grad, const DeviceArray& sq, const DeviceArray& acc, double lr,
         double rho, double eps, double weight_decay, bool maximize) {
        const char* op = "adadelta_update";
        check_param_and_grad(param, grad, op);
        float* s = state_buffer(param, sq, op, "square_avg");
        float* a = state_buffer(param, acc, op, "acc_delta");
        const AdadeltaDesc d = adadelta_desc(param.numel(), lr, rho, eps, weight_decay, maximize);
        cudaStream_t stream = launch_on(param);
        {
          py::gil_scoped_release nogil;
          adadelta_update(param.data<float>(), s, a, grad.data<float>(), d, stream);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("acc_delta"), py::arg("lr"), py::arg("rho"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"));
}

}  // namespace pcn::cuda::bind
