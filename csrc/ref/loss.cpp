// Reference softmax / log-softmax / cross-entropy / NLL / element-wise losses: direct loops over the definitions,
// in double. The oracle for tests.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/loss.h"

namespace pcn::reference {
namespace {

int64_t at(int64_t n, int64_t c, int64_t j, int64_t classes, int64_t inner) { return (n * classes + c) * inner + j; }

// Log-probabilities of x in double, same layout.
std::vector<double> log_softmax_of(const float* x, int64_t outer, int64_t classes, int64_t inner) {
  std::vector<double> out(outer * classes * inner);
  for (int64_t n = 0; n < outer; ++n)
    for (int64_t j = 0; j < inner; ++j) {
      double top = -INFINITY, sum = 0.0;
      for (int64_t c = 0; c < classes; ++c) top = std::fmax(top, x[at(n, c, j, classes, inner)]);
      for (int64_t c = 0; c < classes; ++c) sum += std::exp(x[at(n, c, j, classes, inner)] - top);
      for (int64_t c = 0; c < classes; ++c) {
        const int64_t i = at(n, c, j, classes, inner);
        out[i] = x[i] - top - std::log(sum);
      }
    }
  return out;
}

double weight_of(const float* class_weight, int64_t c) { return class_weight ? class_weight[c] : 1.0; }

double mean_divisor(const int64_t* target, const float* class_weight, const LossDesc& d) {
  double total = 0.0;
  for (int64_t i = 0; i < d.batch * d.inner; ++i)
    if (target[i] != d.ignore_index) total += weight_of(class_weight, target[i]);
  return total;
}

// Writes per-element values, or their sum (divided by `divisor` for mean) into loss[0].
void reduce_into(float* loss, const std::vector<double>& values, int reduction, double divisor) {
  if (reduction == kReductionNone) {
    for (size_t i = 0; i < values.size(); ++i) loss[i] = static_cast<float>(values[i]);
    return;
  }
  double total = 0.0;
  for (double v : values) total += v;
  loss[0] = static_cast<float>(reduction == kReductionMean ? total / divisor : total);
}

double grad_scale(const float* dloss, int64_t i, int reduction, double divisor) {
  if (reduction == kReductionNone) return dloss[i];
  return reduction == kReductionMean ? dloss[0] / divisor : dloss[0];
}

// log(1 + exp(v)) without overflow.
double softplus(double v) { return std::max(v, 0.0) + std::log1p(std::exp(-std::fabs(v))); }

}  // namespace

void softmax_forward(float* y, const float* x, const SoftmaxDesc& d) {
  const std::vector<double> lp = log_softmax_of(x, d.outer, d.classes, d.inner);
  for (size_t i = 0; i < lp.size(); ++i) y[i] = static_cast<float>(std::exp(lp[i]));
}

void log_softmax_forward(float* y, const float* x, const SoftmaxDesc& d) {
  const std::vector<double> lp = log_softmax_of(x, d.outer, d.classes, d.inner);
  for (size_t i = 0; i < lp.size(); ++i) y[i] = static_cast<float>(lp[i]);
}

void softmax_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d) {
  for (int64_t n = 0; n < d.outer; ++n)
    for (int64_t j = 0; j < d.inner; ++j) {
      double dot = 0.0;
      for (int64_t c = 0; c < d.classes; ++c) dot += static_cast<double>(dy[at(n, c, j, d.classes, d.inner)]) * y[at(n, c, j, d.classes, d.inner)];
      for (int64_t c = 0; c < d.classes; ++c) {
        const int64_t i = at(n, c, j, d.classes, d.inner);
        dx[i] = static_cast<float>(y[i] * (dy[i] - dot));
      }
    }
}

void log_softmax_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d) {
  for (int64_t n = 0; n < d.outer; ++n)
    for (int64_t j = 0; j < d.inner; ++j) {
      double total = 0.0;
      for (int64_t c = 0; c < d.classes; ++c) total += dy[at(n, c, j, d.classes, d.inner)];
      for (int64_t c = 0; c < d.classes; ++c) {
        const int64_t i = at(n, c, j, d.classes, d.inner);
        dx[i] = static_cast<float>(dy[i] - std::exp(static_cast<double>(y[i])) * total);
      }
    }
}

void cross_entropy_forward(float* loss, float* log_probs, const float* logits, const int64_t* target,
                           const float* class_weight, const LossDesc& d) {
  const std::vector<double> lp = log_softmax_of(logits, d.batch, d.classes, d.inner);
  for (size_t i = 0; i < lp.size(); ++i) log_probs[i] = static_cast<float>(lp[i]);
  std::vector<double> values(d.batch * d.inner, 0.0);
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t j = 0; j < d.inner; ++j) {
      const int64_t t = target[n * d.inner + j];
      if (t == d.ignore_index) continue;
      double smooth = 0.0;
      for (int64_t c = 0; c < d.classes; ++c) smooth -= weight_of(class_weight, c) * lp[at(n, c, j, d.classes, d.inner)];
      const double nll = -weight_of(class_weight, t) * lp[at(n, t, j, d.classes, d.inner)];
      values[n * d.inner + j] = (1.0 - d.label_smoothing) * nll + d.label_smoothing / d.classes * smooth;
    }
  reduce_into(loss, values, d.reduction, mean_divisor(target, class_weight, d));
}

void cross_entropy_backward(float* dlogits, const float* dloss, const float* log_probs, const int64_t* target,
                            const float* class_weight, const LossDesc& d) {
  const double divisor = mean_divisor(target, class_weight, d);
  std::vector<double> dlp(d.classes);
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t j = 0; j < d.inner; ++j) {
      const int64_t t = target[n * d.inner + j];
      const double g = t == d.ignore_index ? 0.0 : grad_scale(dloss, n * d.inner + j, d.reduction, divisor);
      double total = 0.0;
      for (int64_t c = 0; c < d.classes; ++c) {
        dlp[c] = -g * d.label_smoothing / d.classes * weight_of(class_weight, c);
        if (c == t) dlp[c] -= g * (1.0 - d.label_smoothing) * weight_of(class_weight, t);
        total += dlp[c];
      }
      for (int64_t c = 0; c < d.classes; ++c) {
        const int64_t i = at(n, c, j, d.classes, d.inner);
        dlogits[i] = static_cast<float>(dlp[c] - std::exp(static_cast<double>(log_probs[i])) * total);
      }
    }
}

void nll_loss_forward(float* loss, const float* log_probs, const int64_t* target, const float* class_weight,
                      const LossDesc& d) {
  std::vector<double> values(d.batch * d.inner, 0.0);
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t j = 0; j < d.inner; ++j) {
      const int64_t t = target[n * d.inner + j];
      if (t != d.ignore_index) values[n * d.inner + j] = -weight_of(class_weight, t) * log_probs[at(n, t, j, d.classes, d.inner)];
    }
  reduce_into(loss, values, d.reduction, mean_divisor(target, class_weight, d));
}

void nll_loss_backward(float* dlog_probs, const float* dloss, const int64_t* target, const float* class_weight,
                       const LossDesc& d) {
  const double divisor = mean_divisor(target, class_weight, d);
  for (int64_t i = 0; i < d.batch * d.classes * d.inner; ++i) dlog_probs[i] = 0.0f;
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t j = 0; j < d.inner; ++j) {
      const int64_t t = target[n * d.inner + j];
      if (t == d.ignore_index) continue;
      const double g = grad_scale(dloss, n * d.inner + j, d.reduction, divisor);
      dlog_probs[at(n, t, j, d.classes, d.inner)] = static_cast<float>(-g * weight_of(class_weight, t));
    }
}

void mse_loss_forward(float* loss, const float* input, const float* target, const LossDesc& d) {
  std::vector<double> values(d.batch);
  for (int64_t i = 0; i < d.batch; ++i) {
    const double diff = static_cast<double>(input[i]) - target[i];
    values[i] = diff * diff;
  }
  reduce_into(loss, values, d.reduction, static_cast<double>(d.batch));
}

void mse_loss_backward(float* dinput, const float* dloss, const float* input, const float* target, const LossDesc& d) {
  for (int64_t i = 0; i < d.batch; ++i)
    dinput[i] = static_cast<float>(2.0 * grad_scale(dloss, i, d.reduction, static_cast<double>(d.batch)) *
                                   (static_cast<double>(input[i]) - target[i]));
}

void smooth_l1_loss_forward(float* loss, const float* input, const float* target, const LossDesc& d) {
  std::vector<double> values(d.batch);
  for (int64_t i = 0; i < d.batch; ++i) {
    const double diff = std::fabs(static_cast<double>(input[i]) - target[i]);
    values[i] = (d.huber ? d.beta : 1.0) * (diff < d.beta ? 0.5 * diff * diff / d.beta : diff - 0.5 * d.beta);
  }
  reduce_into(loss, values, d.reduction, static_cast<double>(d.batch));
}

void smooth_l1_loss_backward(float* dinput, const float* dloss, const float* input, const float* target,
                             const LossDesc& d) {
  for (int64_t i = 0; i < d.batch; ++i) {
    const double diff = static_cast<double>(input[i]) - target[i];
    const double slope = std::fabs(diff) < d.beta ? diff / d.beta : (std::isnan(diff) ? diff : (diff > 0.0) - (diff < 0.0));
    dinput[i] = static_cast<float>(grad_scale(dloss, i, d.reduction, static_cast<double>(d.batch)) *
                                   (d.huber ? d.beta : 1.0) * slope);
  }
}

void binary_cross_entropy_forward(float* loss, const float* input, const float* target, const float* weight,
                                  const LossDesc& d) {
  std::vector<double> values(d.batch);
  for (int64_t i = 0; i < d.batch; ++i) {
    const double x = input[i], t = target[i];
    const double log_x = std::max(std::log(x), -100.0), log_1mx = std::max(std::log(1.0 - x), -100.0);
    values[i] = -(weight ? weight[i] : 1.0) * (t * log_x + (1.0 - t) * log_1mx);
  }
  reduce_into(loss, values, d.reduction, static_cast<double>(d.batch));
}

void binary_cross_entropy_backward(float* dinput, float* dtarget, const float* dloss, const float* input,
                                   const float* target, const float* weight, const LossDesc& d) {
  for (int64_t i = 0; i < d.batch; ++i) {
    const double x = input[i], w = weight ? weight[i] : 1.0;
    const double g = grad_scale(dloss, i, d.reduction, static_cast<double>(d.batch)) * w;
    dinput[i] = static_cast<float>(g * (x - target[i]) / std::max(x * (1.0 - x), 1e-12));
    if (dtarget)
      dtarget[i] = static_cast<float>(g * (std::max(std::log(1.0 - x), -100.0) - std::max(std::log(x), -100.0)));
  }
}

void bce_with_logits_forward(float* loss, const float* input, const float* target, const float* weight,
                             const float* pos_weight, const LossDesc& d) {
  std::vector<double> values(d.batch);
  for (int64_t i = 0; i < d.batch; ++i) {
    const double x = input[i], t = target[i], p = pos_weight ? pos_weight[i] : 1.0;
    const double log_sigmoid_x = -softplus(-x), log_sigmoid_neg_x = -softplus(x);
    values[i] = -(weight ? weight[i] : 1.0) * (p * t * log_sigmoid_x + (1.0 - t) * log_sigmoid_neg_x);
  }
  reduce_into(loss, values, d.reduction, static_cast<double>(d.batch));
}

void bce_with_logits_backward(float* dinput, float* dtarget, const float* dloss, const float* input,
                              const float* target, const float* weight, const float* pos_weight, const LossDesc& d) {
  for (int64_t i = 0; i < d.batch; ++i) {
    const double x = input[i], t = target[i], p = pos_weight ? pos_weight[i] : 1.0;
    const double sigmoid = 1.0 / (1.0 + std::exp(-x));
    const double g = grad_scale(dloss, i, d.reduction, static_cast<double>(d.batch)) * (weight ? weight[i] : 1.0);
    dinput[i] = static_cast<float>(g * (p * t * (sigmoid - 1.0) + (1.0 - t) * sigmoid));
    if (dtarget) dtarget[i] = static_cast<float>(g * (p * softplus(-x) - softplus(x)));
  }
}

}  // namespace pcn::reference
