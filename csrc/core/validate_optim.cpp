// The optimiser descriptors' checks; see kernels/optim.h. Hyper-parameter ranges follow torch.optim.
#include <cmath>
#include <sstream>

#include "core/checks.h"
#include "kernels/optim.h"

namespace pcn {
namespace {

void expect_count(int64_t count, const char* op) {
  if (count < 0) fail(std::string(op) + ": parameter element count must be non-negative, got " + std::to_string(count));
  checked_numel({count}, op);
}

void expect_at_least_zero(double value, const char* op, const char* name) {
  if (!(value >= 0.0)) {
    std::ostringstream out;
    out << op << ": " << name << " must be >= 0, got " << value;
    fail(out.str());
  }
}

void expect_step(int64_t step, const char* op) {
  if (step < 1)
    fail(std::string(op) + ": step must be >= 1 (the count of updates including this one), got " + std::to_string(step));
}

}  // namespace

void validate(SgdDesc& d) {
  expect_count(d.count, "sgd_update");
  expect_at_least_zero(d.lr, "sgd_update", "lr");
  expect_at_least_zero(d.momentum, "sgd_update", "momentum");
  expect_at_least_zero(d.weight_decay, "sgd_update", "weight_decay");
  if (d.nesterov && (d.momentum <= 0.0 || d.dampening != 0.0))
    fail("sgd_update: nesterov momentum requires a momentum and zero dampening");
}

AdamScalars adam_scalars(const AdamDesc& d) {
  const double step = static_cast<double>(d.step);
  const double correction1 = 1.0 - std::pow(d.beta1, step), correction2 = 1.0 - std::pow(d.beta2, step);
  AdamScalars s;
  s.step_size = static_cast<float>(d.lr / correction1);
  s.correction2_sqrt = static_cast<float>(std::sqrt(correction2));
  s.decay_scale = static_cast<float>(1.0 - d.lr * d.weight_decay);
  s.avg_weight = static_cast<float>(1.0 - d.beta1);
  s.beta2 = static_cast<float>(d.beta2);
  s.sq_weight = static_cast<float>(1.0 - d.beta2);
  s.eps = static_cast<float>(d.eps);
  s.decay = static_cast<float>(d.weight_decay);
  s.sign = d.maximize ? -1.0f : 1.0f;
  s.decoupled = d.decoupled_weight_decay && d.weight_decay != 0.0;
  s.coupled = !d.decoupled_weight_decay && d.weight_decay != 0.0;
  s.amsgrad = d.amsgrad;
  return s;
}

void validate(AdamDesc& d) {
  expect_count(d.count, "adam_update");
  expect_at_least_zero(d.lr, "adam_update", "lr");
  expect_at_least_zero(d.eps, "adam_update", "eps");
  expect_at_least_zero(d.weight_decay, "adam_update", "weight_decay");
  if (!(d.beta1 >= 0.0 && d.beta1 < 1.0) || !(d.beta2 >= 0.0 && d.beta2 < 1.0)) {
    std::ostringstream out;
    out << "adam_update: betas must lie in [0, 1), got (" << d.beta1 << ", " << d.beta2 << ")";
    fail(out.str());
  }
  expect_step(d.step, "adam_update");
}

void validate(RmspropDesc& d) {
  const char* op = "rmsprop_update";
  expect_count(d.count, op);
  expect_at_least_zero(d.lr, op, "lr");
  expect_at_least_zero(d.alpha, op, "alpha");
  expect_at_least_zero(d.eps, op, "eps");
  expect_at_least_zero(d.weight_decay, op, "weight_decay");
  expect_at_least_zero(d.momentum, op, "momentum");
}

void validate(AdagradDesc& d) {
  const char* op = "adagrad_update";
  expect_count(d.count, op);
  expect_at_least_zero(d.lr, op, "lr");
  expect_at_least_zero(d.lr_decay, op, "lr_decay");
  expect_at_least_zero(d.eps, op, "eps");
  expect_at_least_zero(d.weight_decay, op, "weight_decay");
  expect_step(d.step, op);
}

void validate(AdadeltaDesc& d) {
  const char* op = "adadelta_update";
  expect_count(d.count, op);
  expect_at_least_zero(d.lr, op, "lr");
  expect_at_least_zero(d.eps, op, "eps");
  expect_at_least_zero(d.weight_decay, op, "weight_decay");
  if (!(d.rho >= 0.0 && d.rho <= 1.0)) {
    std::ostringstream out;
    out << op << ": rho must lie in [0, 1], got " << d.rho;
    fail(out.str());
  }
}

}  // namespace pcn
