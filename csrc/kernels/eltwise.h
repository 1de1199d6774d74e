// Element-wise ops and concatenation, float32, C-contiguous.
//   add/mul/add_relu   y, a, b: (count); y may alias a or b. add_relu: y = max(a + b, 0), the
//                      residual block's fused add and ReLU.
//   round_bf16         y = x (count) rounded to bfloat16 (nearest, ties to even; NaN stays a quiet
//                      NaN, overflow gives inf), held in float32: autocast's operand rounding.
//   sum                out: 1 value = sum of x (count), accumulated in double over fixed blocks,
//                      so the result does not depend on the thread count.
//   norm               out: 1 value = the p-norm of x (count) the same way: (sum |x|^p)^(1/p), max
//                      |x| for p = inf, the count of non-zeros for p = 0; NaN propagates.
//   concat             inputs i viewed as (outer, extents[i], inner), y as (outer, sum extents, inner):
//                      for NCHW channel concat outer = N, inner = H*W. split is its backward: it
//                      copies the slices of y back into per-input outputs.
//   subsample_pad_channels  y (batch, before + channels + after, out_h, out_w) from x (batch,
//                      channels, in_h, in_w): y[n][before + c][i][j] = x[n][c][i * stride][j * stride],
//                      zeros in the other channels (ResNet option-A shortcuts). Its backward writes
//                      the whole dx: dy's middle channels at the sampled positions, zeros elsewhere.
#pragma once
#include <cstdint>

namespace pcn {

struct EltwiseDesc {
  int64_t count = 0;
  double p = 2.0;  // norm only: the order, in [0, inf]
};

struct ConcatDesc {
  int64_t outer = 0, inner = 0;
  int64_t inputs = 0;
  int64_t total = 0;  // sum of the extents: filled by validate()
};

struct ChannelPadDesc {
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0, stride = 1, before = 0, after = 0;
  int64_t out_h = 0, out_w = 0;  // ceil(in / stride): filled by validate()
};

void validate(EltwiseDesc& desc);
// Checks the sizes (non-negative, stride >= 1) and fills out_h, out_w.
void validate(ChannelPadDesc& desc);
// Checks the extents (non-negative) and fills total.
void validate(ConcatDesc& desc, const int64_t* extents);

#define PCN_ELTWISE_KERNELS(X)                                                                       \
  X(add_forward, (float* y, const float* a, const float* b, const EltwiseDesc& d))                   \
  X(mul_forward, (float* y, const float* a, const float* b, const EltwiseDesc& d))                   \
  X(add_relu_forward, (float* y, const float* a, const float* b, const EltwiseDesc& d))              \
  X(round_bf16_forward, (float* y, const float* x, const EltwiseDesc& d))                            \
  X(sum_forward, (float* out, const float* x, const EltwiseDesc& d))                                 \
  X(norm_forward, (float* out, const float* x, const EltwiseDesc& d))                                \
  X(concat_forward, (float* y, const float* const* inputs, const int64_t* extents, const ConcatDesc& d)) \
  X(split_forward, (float* const* outputs, const float* y, const int64_t* extents, const ConcatDesc& d)) \
  X(subsample_pad_channels_forward, (float* y, const float* x, const ChannelPadDesc& d))             \
  X(subsample_pad_channels_backward, (float* dx, const float* dy, const ChannelPadDesc& d))

}  // namespace pcn
