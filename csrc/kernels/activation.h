// Element-wise activations and dropout over `count` contiguous floats (any shape, flattened).
//   relu        y = max(x, 0) (NaN propagates); backward dx = dy where y > 0, else 0.
//   leaky_relu  y = x > 0 ? x : x * negative_slope; backward dx = dy where v > 0, else
//               dy * negative_slope, with v the input or (for negative_slope >= 0) the output.
//   sigmoid     y = 1 / (1 + exp(-x)), evaluated through exp(-|x|) so nothing overflows;
//               backward dx = dy * y * (1 - y).
//   tanh        y = tanh(x) through expm1(-2|x|) (accurate near 0, exact +-1 at saturation);
//               backward dx = dy * (1 - y^2).
//   gelu        y = x * Phi(x), Phi the standard normal CDF (through erfc, so the left tail keeps
//               its relative accuracy); backward dx = dy * (Phi(x) + x * phi(x)), from the input.
//   gelu_tanh   y = x/2 * (1 + tanh(u)), u = sqrt(2/pi) * (x + 0.044715 x^3); backward from the input.
//   silu        y = x * sigmoid(x); backward dx = dy * s * (1 + x * (1 - s)), from the input.
//   relu6       y = min(max(x, 0), 6) (NaN propagates); backward dx = dy where 0 < y < 6, from the
//               output (which pins the input's interval exactly), else 0.
//   hardswish   y = x * min(max(x + 3, 0), 6) / 6; backward dx = 0 up to -3, dy * (x/3 + 1/2)
//               strictly inside (-3, 3), dy from 3 on, from the input.
//   hardsigmoid y = min(max(x + 3, 0), 6) / 6; backward dx = dy / 6 strictly inside (-3, 3), from
//               the input.
//   dropout     mask entry k is kept when a splitmix64 hash of (seed, k) clears p, so the mask
//               depends only on (seed, count), not on threads or ISA; entry k covers elements
//               [k * plane, (k + 1) * plane) (plane = 1 for element-wise dropout, H*W for
//               dropout2d's channels); kept elements are scaled by 1 / (1 - p), dropped ones are
//               0. mask[k] = 1 for kept, 0 for dropped.
// Outputs may alias their inputs (y == x, dx == dy): every element is read before it is written.
#pragma once
#include <cstdint>

namespace pcn {

struct ActivationDesc {
  int64_t count = 0;
  float negative_slope = 0.01f;  // leaky_relu only
};

struct DropoutDesc {
  int64_t count = 0;  // mask entries
  int64_t plane = 1;  // consecutive elements per mask entry: count * plane elements in all
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
  X(gelu_forward, (float* y, const float* x, const ActivationDesc& d))                             \
  X(gelu_backward, (float* dx, const float* dy, const float* x, const ActivationDesc& d))          \
  X(gelu_tanh_forward, (float* y, const float* x, const ActivationDesc& d))                        \
  X(gelu_tanh_backward, (float* dx, const float* dy, const float* x, const ActivationDesc& d))     \
  X(silu_forward, (float* y, const float* x, const ActivationDesc& d))                             \
  X(silu_backward, (float* dx, const float* dy, const float* x, const ActivationDesc& d))          \
  X(relu6_forward, (float* y, const float* x, const ActivationDesc& d))                            \
  X(relu6_backward, (float* dx, const float* dy, const float* y, const ActivationDesc& d))         \
  X(hardswish_forward, (float* y, const float* x, const ActivationDesc& d))                        \
  X(hardswish_backward, (float* dx, const float* dy, const float* x, const ActivationDesc& d))     \
  X(hardsigmoid_forward, (float* y, const float* x, const ActivationDesc& d))                      \
  X(hardsigmoid_backward, (float* dx, const float* dy, const float* x, const ActivationDesc& d))   \
  X(dropout_forward, (float* y, uint8_t* mask, const float* x, const DropoutDesc& d))              \
  X(dropout_backward, (float* dx, const float* dy, const uint8_t* mask, const DropoutDesc& d))

}  // namespace pcn
