// SgdDesc and AdamDesc checks; see kernels/optim.h. Hyper-parameter ranges follow torch.optim.
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

}  // namespace

void validate(SgdDesc& d) {
  expect_count(d.count, "sgd_update");
  expect_at_least_zero(d.lr, "sgd_update", "lr");
  expect_at_least_zero(d.momentum, "sgd_update", "momentum");
  expect_at_least_zero(d.weight_decay, "sgd_update", "weight_decay");
  if (d.nesterov && (d.momentum <= 0.0 || d.dampening != 0.0))
    fail("sgd_update: nesterov momentum requires a momentum and zero dampening");
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
  if (d.step < 1) fail("adam_update: step must be >= 1 (the count of updates including this one), got " + std::to_string(d.step));
}

}  // namespace pcn
