// Reference SGD and Adam/AdamW updates: torch.optim's single-tensor rules written out in double
// (state rounded to float32 after each update). The oracle for tests.
#include <cmath>

#include "kernels/optim.h"

namespace pcn::reference {

void sgd_update(float* param, float* momentum_buffer, const float* grad, const SgdDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    double g = d.maximize ? -static_cast<double>(grad[i]) : grad[i];
    g += d.weight_decay * param[i];
    if (d.momentum != 0.0) {
      const double buf = d.first_step ? g : d.momentum * momentum_buffer[i] + (1.0 - d.dampening) * g;
      momentum_buffer[i] = static_cast<float>(buf);
      g = d.nesterov ? g + d.momentum * buf : buf;
    }
    param[i] = static_cast<float>(param[i] - d.lr * g);
  }
}

void adam_update(float* param, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq, const float* grad,
                 const AdamDesc& d) {
  const double correction1 = 1.0 - std::pow(d.beta1, static_cast<double>(d.step));
  const double correction2 = 1.0 - std::pow(d.beta2, static_cast<double>(d.step));
  for (int64_t i = 0; i < d.count; ++i) {
    double g = d.maximize ? -static_cast<double>(grad[i]) : grad[i];
    double p = param[i];
    if (d.decoupled_weight_decay)
      p *= 1.0 - d.lr * d.weight_decay;
    else
      g += d.weight_decay * p;
    const double m = d.beta1 * static_cast<double>(exp_avg[i]) + (1.0 - d.beta1) * g;
    double v = d.beta2 * static_cast<double>(exp_avg_sq[i]) + (1.0 - d.beta2) * g * g;
    exp_avg[i] = static_cast<float>(m);
    exp_avg_sq[i] = static_cast<float>(v);
    if (d.amsgrad) {
      v = std::fmax(static_cast<double>(max_exp_avg_sq[i]), v);
      max_exp_avg_sq[i] = static_cast<float>(v);
    }
    const double denom = std::sqrt(v) / std::sqrt(correction2) + d.eps;
    param[i] = static_cast<float>(p - d.lr / correction1 * m / denom);
  }
}

}  // namespace pcn::reference
