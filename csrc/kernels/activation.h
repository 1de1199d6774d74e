// Element-wise activations and dropout over `count` contiguous floats (any shape, flattened).
//   relu        y = max(x, 0) (NaN propagates); backward dx = dy where y > 0, else 0.
//   leaky_relu  y = x > 0 ? x : x * negative_slope; backward dx = dy where v > 0, else
//               dy * negative_slope, with v the input or (for negative_slope >= 0) the output.
//   sigmoid     y = 1 / (1 + exp(-x)), evaluated through exp(-|x|) so nothing overflows;
//               backward dx = dy * y * (1 - y).
//   tanh        y = tanh(x) through expm1(-2|x|) (accurate near 0, exact +-1 at saturation);
//               backward dx = dy * (1 - y^2).
//   dropout     element i is kept when a splitmix64 hash of (seed, i) clears p, so the mask
//               depends only on (seed, count), not on threads or ISA; kept elements are scaled by
//               1 / (1 - p), dropped ones are 0. mask[i] = 1 for kept, 0 for dropped.
// Outputs may alias their inputs (y == x, dx == dy): every element is read before it is written.
#pragma once
#include <cstdint>

namespace pcn {

struct ActivationDesc {
  int64_t count = 0;
  float negative_slope = 0.01f;  // leaky_relu only
};

struct DropoutDesc {
  int64_t count = 0;
  float p = 0.5f;
  uint64_t seed = 0;
};

void validate(ActivationDesc& desc);
void validate(DropoutDesc& desc);

#define PCN_ACTIVATION_KERNELS(X)                                                                  \
  X(relu_forward, (float* y, const float* x, const ActivationDesc& d))                             \
  X(relu_backward, (float* dx, const float* dy, const float* y, const ActivationDesc& d))          \
  X(leaky_relu_forward, (float* y, const float* x, const ActivationDesc& d))                       \
  X(leaky_relu_backward, (float* dx, const float* dy, const float* x, const ActivationDesc& d))    \
  X(sigmoid_forward, (float* y, const float* x, const ActivationDesc& d))                          \
  X(sigmoid_backward, (float* dx, const float* dy, const float* y, const ActivationDesc& d))       \
  X(tanh_forward, (float* y, const float* x, const ActivationDesc& d))                             \
  X(tanh_backward, (float* dx, const float* dy, const float* y, const ActivationDesc& d))          \
  X(dropout_forward, (float* y, uint8_t* mask, const float* x, const DropoutDesc& d))              \
  X(dropout_backward, (float* dx, const float* dy, const uint8_t* mask, const DropoutDesc& d))

}  // namespace pcn
