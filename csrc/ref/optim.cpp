// Reference SGD, Adam/AdamW, RMSprop, Adagrad and Adadelta updates: torch.optim's single-tensor
// rules written out in double (state rounded to float32 after each update). The oracle for tests.
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

void rmsprop_update(float* param, float* square_avg, float* grad_avg, float* momentum_buffer, const float* grad,
                    const RmspropDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    double g = d.maximize ? -static_cast<double>(grad[i]) : grad[i];
    g += d.weight_decay * param[i];
    const double sq = d.alpha * square_avg[i] + (1.0 - d.alpha) * g * g;
    square_avg[i] = static_cast<float>(sq);
    double variance = sq;
    if (d.centered) {
      const double mean = d.alpha * grad_avg[i] + (1.0 - d.alpha) * g;
      grad_avg[i] = static_cast<float>(mean);
      variance -= mean * mean;
    }
    double step = g / (std::sqrt(variance) + d.eps);
    if (d.momentum > 0.0) {
      step += d.momentum * momentum_buffer[i];
      momentum_buffer[i] = static_cast<float>(step);
    }
    param[i] = static_cast<float>(param[i] - d.lr * step);
  }
}

void adagrad_update(float* param, float* state_sum, const float* grad, const AdagradDesc& d) {
  const double clr = d.lr / (1.0 + static_cast<double>(d.step - 1) * d.lr_decay);
  for (int64_t i = 0; i < d.count; ++i) {
    double g = d.maximize ? -static_cast<double>(grad[i]) : grad[i];
    g += d.weight_decay * param[i];
    const double sum = state_sum[i] + g * g;
    state_sum[i] = static_cast<float>(sum);
    param[i] = static_cast<float>(param[i] - clr * g / (std::sqrt(sum) + d.eps));
  }
}

void adadelta_update(float* param, float* square_avg, float* acc_delta, const float* grad, const AdadeltaDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    double g = d.maximize ? -static_cast<double>(grad[i]) : grad[i];
    g += d.weight_decay * param[i];
    const double sq = d.rho * square_avg[i] + (1.0 - d.rho) * g * g;
    square_avg[i] = static_cast<float>(sq);
    const double delta = std::sqrt(acc_delta[i] + d.eps) / std::sqrt(sq + d.eps) * g;
    acc_delta[i] = static_cast<float>(d.rho * acc_delta[i] + (1.0 - d.rho) * delta * delta);
    param[i] = static_cast<float>(param[i] - d.lr * delta);
  }
}

}  // namespace pcn::reference
