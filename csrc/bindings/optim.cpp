// Bindings for the in-place optimiser updates. Parameters and state must be writable,
// C-contiguous float32 arrays (they are updated in place, never copied); the gradient may be any
// float32 array of the parameter's shape.
#include "bindings/common.h"
#include "bindings/descriptors.h"
#include "dispatch.h"

namespace pcn::bind {
namespace {

// The array itself as a writable float32 buffer of `shape` (the parameter's when given).
float* state_buffer(const py::handle& obj, const char* op, const char* name, const std::vector<int64_t>* shape,
                    FloatArray& keep) {
  keep = float_input(obj, op, name);
  if (keep.ptr() != obj.ptr())
    throw py::value_error(std::string(op) + ": " + name + " must be a C-contiguous array (it is updated in place)");
  if (shape) expect_shape(keep, *shape, op, name);
  return writable(keep, op, name);
}

// The parameter (updated in place) and its gradient, which must have the parameter's shape.
struct ParamAndGrad {
  FloatArray param, grad;
  float* data;
  std::vector<int64_t> shape;
};

ParamAndGrad param_and_grad(const py::handle& param_obj, const py::handle& grad_obj, const char* op) {
  ParamAndGrad pg;
  pg.data = state_buffer(param_obj, op, "param", nullptr, pg.param);
  pg.shape = shape_of(pg.param);
  pg.grad = float_input(grad_obj, op, "grad");
  expect_shape(pg.grad, pg.shape, op, "grad");
  return pg;
}

// A state buffer the update uses only when `needed` (nullptr otherwise); None is a ValueError
// naming `condition` when it is needed.
float* optional_state(const py::handle& obj, bool needed, const char* op, const char* name, const char* condition,
                      const std::vector<int64_t>& shape, FloatArray& keep) {
  if (!state_needed(!obj.is_none(), needed, op, name, condition)) return nullptr;
  return state_buffer(obj, op, name, &shape, keep);
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def(
      "sgd_update",
      [](const py::handle& param_obj, const py::handle& grad_obj, const py::handle& buf_obj, double lr, double momentum,
         double dampening, double weight_decay, bool nesterov, bool maximize, bool first_step) {
        const char* op = "sgd_update";
        ParamAndGrad pg = param_and_grad(param_obj, grad_obj, op);
        const SgdDesc d = sgd_desc(pg.param.size(), lr, momentum, dampening, weight_decay, nesterov, maximize, first_step);
        FloatArray buf;
        float* b = optional_state(buf_obj, momentum != 0.0, op, "momentum_buffer", "momentum != 0", pg.shape, buf);
        {
          py::gil_scoped_release nogil;
          kernels().sgd_update(pg.data, b, pg.grad.data(), d);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::arg("lr"), py::arg("momentum"),
      py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"), py::arg("first_step"));
  m.def(
      "sgd_update_many",
      [](const py::list& params, const py::list& grads, const py::list& buffers, const py::list& first_steps, double lr,
         double momentum, double dampening, double weight_decay, bool nesterov, bool maximize) {
        // sgd_update over lists of parameters: one call for an optimiser's group, where a call
        // per parameter cost more in Python and argument conversion than a small layer's update.
        const char* op = "sgd_update_many";
        const size_t count = params.size();
        if (grads.size() != count || buffers.size() != count || first_steps.size() != count)
          throw py::value_error(std::string(op) + ": params, grads, momentum_buffers and first_steps must have the "
                                "same length, got " + std::to_string(count) + ", " + std::to_string(grads.size()) +
                                ", " + std::to_string(buffers.size()) + " and " + std::to_string(first_steps.size()));
        std::vector<ParamAndGrad> updates;
        std::vector<FloatArray> kept(count);
        std::vector<float*> buffer_data(count);
        std::vector<SgdDesc> descs;
        updates.reserve(count);
        descs.reserve(count);
        for (size_t i = 0; i < count; ++i) {
          updates.push_back(param_and_grad(params[i], grads[i], op));
          descs.push_back(sgd_desc(updates[i].param.size(), lr, momentum, dampening, weight_decay, nesterov, maximize,
                                   first_steps[i].cast<bool>()));
          buffer_data[i] = optional_state(buffers[i], momentum != 0.0, op, "momentum_buffer", "momentum != 0",
                                          updates[i].shape, kept[i]);
        }
        py::gil_scoped_release nogil;
        for (size_t i = 0; i < count; ++i)
          kernels().sgd_update(updates[i].data, buffer_data[i], updates[i].grad.data(), descs[i]);
      },
      py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("first_steps"), py::arg("lr"),
      py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"));
  m.def(
      "adam_update",
      [](const py::handle& param_obj, const py::handle& grad_obj, const py::handle& avg_obj, const py::handle& sq_obj,
         const py::handle& max_obj, int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
         bool amsgrad, bool maximize, bool decoupled_weight_decay) {
        const char* op = "adam_update";
        ParamAndGrad pg = param_and_grad(param_obj, grad_obj, op);
        FloatArray avg, sq, max_sq;
        float* a = state_buffer(avg_obj, op, "exp_avg", &pg.shape, avg);
        float* s = state_buffer(sq_obj, op, "exp_avg_sq", &pg.shape, sq);
        const AdamDesc d = adam_desc(pg.param.size(), step, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                                     decoupled_weight_decay);
        float* mx = optional_state(max_obj, amsgrad, op, "max_exp_avg_sq", "amsgrad=True", pg.shape, max_sq);
        {
          py::gil_scoped_release nogil;
          kernels().adam_update(pg.data, a, s, mx, pg.grad.data(), d);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"),
      py::arg("step"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("amsgrad"), py::arg("maximize"), py::arg("decoupled_weight_decay"));
  m.def(
      "rmsprop_update",
      [](const py::handle& param_obj, const py::handle& grad_obj, const py::handle& sq_obj, const py::handle& avg_obj,
         const py::handle& buf_obj, double lr, double alpha, double eps, double weight_decay, double momentum,
         bool centered, bool maximize) {
        const char* op = "rmsprop_update";
        ParamAndGrad pg = param_and_grad(param_obj, grad_obj, op);
        FloatArray sq, avg, buf;
        float* s = state_buffer(sq_obj, op, "square_avg", &pg.shape, sq);
        const RmspropDesc d = rmsprop_desc(pg.param.size(), lr, alpha, eps, weight_decay, momentum, centered, maximize);
        float* a = optional_state(avg_obj, centered, op, "grad_avg", "centered=True", pg.shape, avg);
        float* b = optional_state(buf_obj, momentum > 0.0, op, "momentum_buffer", "momentum > 0", pg.shape, buf);
        {
          py::gil_scoped_release nogil;
          kernels().rmsprop_update(pg.data, s, a, b, pg.grad.data(), d);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("grad_avg"), py::arg("momentum_buffer"),
      py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"),
      py::arg("centered"), py::arg("maximize"));
  m.def(
      "adagrad_update",
      [](const py::handle& param_obj, const py::handle& grad_obj, const py::handle& sum_obj, int64_t step, double lr,
         double lr_decay, double eps, double weight_decay, bool maximize) {
        const char* op = "adagrad_update";
        ParamAndGrad pg = param_and_grad(param_obj, grad_obj, op);
        FloatArray sum;
        float* s = state_buffer(sum_obj, op, "state_sum", &pg.shape, sum);
        const AdagradDesc d = adagrad_desc(pg.param.size(), step, lr, lr_decay, eps, weight_decay, maximize);
        {
          py::gil_scoped_release nogil;
          kernels().adagrad_update(pg.data, s, pg.grad.data(), d);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("state_sum"), py::arg("step"), py::arg("lr"), py::arg("lr_decay"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"));
  m.def(
      "adadelta_update",
      [](const py::handle& param_obj, const py::handle& grad_obj, const py::handle& sq_obj, const py::handle& acc_obj,
         double lr, double rho, double eps, double weight_decay, bool maximize) {
        const char* op = "adadelta_update";
        ParamAndGrad pg = param_and_grad(param_obj, grad_obj, op);
        FloatArray sq, acc;
        float* s = state_buffer(sq_obj, op, "square_avg", &pg.shape, sq);
        float* a = state_buffer(acc_obj, op, "acc_delta", &pg.shape, acc);
        const AdadeltaDesc d = adadelta_desc(pg.param.size(), lr, rho, eps, weight_decay, maximize);
        {
          py::gil_scoped_release nogil;
          kernels().adadelta_update(pg.data, s, a, pg.grad.data(), d);
        }
      },
      py::arg("param"), py::arg("grad"), py::arg("square_avg"), py::arg("acc_delta"), py::arg("lr"), py::arg("rho"),
      py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"));
}

}  // namespace pcn::bind
