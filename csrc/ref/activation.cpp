// Reference activations and dropout: one scalar loop each, evaluated in double.
#include "kernels/activation.h"

#include <cmath>

namespace pcn::reference {
namespace {

// The dropout mask's definition (kernels/activation.cpp computes the same bits): element i is
// kept when the top 32 bits of splitmix64's mix of key + (i + 1) * golden reach p * 2^32.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double keep_scale(float p) { return p < 1.0f ? 1.0 / (1.0 - p) : 0.0; }

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

void dropout_forward(float* y, uint8_t* mask, const float* x, const DropoutDesc& d) {
  const uint64_t golden = 0x9E3779B97F4A7C15ull, key = mix64(d.seed + golden);
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(d.p) * 4294967296.0);
  for (int64_t i = 0; i < d.count; ++i) {
    mask[i] = (mix64(key + static_cast<uint64_t>(i + 1) * golden) >> 32) >= threshold;
    y[i] = static_cast<float>(x[i] * (mask[i] ? keep_scale(d.p) : 0.0));
  }
}

void dropout_backward(float* dx, const float* dy, const uint8_t* mask, const DropoutDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) dx[i] = static_cast<float>(dy[i] * (mask[i] ? keep_scale(d.p) : 0.0));
}

}  // namespace pcn::reference
