// Reference activations and dropout: one scalar loop each, evaluated in double.
#include "kernels/activation.h"

#include <cmath>

namespace pcn::reference {
namespace {

// The dropout mask's definition (kernels/activation.cpp computes the same bits): mask entry k is
// kept when the top 32 bits of splitmix64's mix of key + (k + 1) * golden reach p * 2^32.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double keep_scale(float p) { return p < 1.0f ? 1.0 / (1.0 - p) : 0.0; }

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

double gelu_tanh_inner(double x) { return std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x); }

double clamp_0_6(double v) { return v < 0.0 ? 0.0 : (v > 6.0 ? 6.0 : v); }  // NaN stays NaN

}  // namespace

void relu_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void relu_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) dx[i] = y[i] <= 0.0f ? 0.0f : dy[i];
}

void leaky_relu_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = x[i] > 0.0f ? x[i] : x[i] * d.negative_slope;
}

void leaky_relu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * d.negative_slope;
}

void sigmoid_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    const double e = std::exp(-std::fabs(static_cast<double>(x[i])));
    y[i] = static_cast<float>(x[i] >= 0.0f ? 1.0 / (1.0 + e) : e / (1.0 + e));
  }
}

void sigmoid_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) dx[i] = static_cast<float>(static_cast<double>(dy[i]) * y[i] * (1.0 - y[i]));
}

void tanh_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = static_cast<float>(std::tanh(static_cast<double>(x[i])));
}

void tanh_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i)
    dx[i] = static_cast<float>(static_cast<double>(dy[i]) * (1.0 - static_cast<double>(y[i]) * y[i]));
}

void gelu_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = static_cast<float>(x[i] * normal_cdf(x[i]));
}

void gelu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    const double v = x[i], pdf = std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI);
    dx[i] = static_cast<float>(dy[i] * (normal_cdf(v) + (pdf == 0.0 ? 0.0 : v * pdf)));
  }
}

void gelu_tanh_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = static_cast<float>(0.5 * x[i] * (1.0 + std::tanh(gelu_tanh_inner(x[i]))));
}

void gelu_tanh_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    const double v = x[i], t = std::tanh(gelu_tanh_inner(v));
    const double inner_derivative = std::sqrt(2.0 / M_PI) * (1.0 + 3.0 * 0.044715 * v * v);
    dx[i] = static_cast<float>(dy[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * inner_derivative));
  }
}

void silu_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = static_cast<float>(x[i] / (1.0 + std::exp(-static_cast<double>(x[i]))));
}

void silu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    const double v = x[i], s = 1.0 / (1.0 + std::exp(-v));
    dx[i] = static_cast<float>(dy[i] * s * (1.0 + v * (1.0 - s)));
  }
}

void relu6_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = static_cast<float>(clamp_0_6(x[i]));
}

void relu6_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) dx[i] = y[i] <= 0.0f || y[i] >= 6.0f ? 0.0f : dy[i];
}

void hardswish_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = static_cast<float>(x[i] * clamp_0_6(x[i] + 3.0) / 6.0);
}

void hardswish_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i)
    dx[i] = x[i] <= -3.0f ? 0.0f : (x[i] < 3.0f ? static_cast<float>(dy[i] * (x[i] / 3.0 + 0.5)) : dy[i]);
}

void hardsigmoid_forward(float* y, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = static_cast<float>(clamp_0_6(x[i] + 3.0) / 6.0);
}

void hardsigmoid_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) dx[i] = x[i] > -3.0f && x[i] < 3.0f ? static_cast<float>(dy[i] / 6.0) : 0.0f;
}

void dropout_forward(float* y, uint8_t* mask, const float* x, const DropoutDesc& d) {
  const uint64_t golden = 0x9E3779B97F4A7C15ull, key = mix64(d.seed + golden);
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(d.p) * 4294967296.0);
  for (int64_t k = 0; k < d.count; ++k) {
    mask[k] = (mix64(key + static_cast<uint64_t>(k + 1) * golden) >> 32) >= threshold;
    for (int64_t i = k * d.plane; i < (k + 1) * d.plane; ++i)
      y[i] = static_cast<float>(x[i] * (mask[k] ? keep_scale(d.p) : 0.0));
  }
}

void dropout_backward(float* dx, const float* dy, const uint8_t* mask, const DropoutDesc& d) {
  for (int64_t k = 0; k < d.count; ++k)
    for (int64_t i = k * d.plane; i < (k + 1) * d.plane; ++i)
      dx[i] = static_cast<float>(dy[i] * (mask[k] ? keep_scale(d.p) : 0.0));
}

}  // namespace pcn::reference
