// Reference element-wise ops, sum, norm and concat/split: plain loops (reductions in double). Test oracle.

#include "kernels/eltwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pcn::reference {

void add_forward(float* y, const float* a, const float* b, const EltwiseDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = a[i] + b[i];
}

void mul_forward(float* y, const float* a, const float* b, const EltwiseDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) y[i] = a[i] * b[i];
}

void round_bf16_forward(float* y, const float* x, const EltwiseDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    if (std::isnan(x[i])) {
      y[i] = std::nanf("");
      continue;
    }
    // The nearest multiple of the bfloat16 spacing at x's binade, ties to the even mantissa.
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    const uint32_t low = bits & 0xFFFFu, kept = bits & 0xFFFF0000u;
    const bool up = low > 0x8000u || (low == 0x8000u && (kept & 0x10000u));
    bits = kept + (up ? 0x10000u : 0u);
    std::memcpy(y + i, &bits, 4);
  }
}

void add_relu_forward(float* y, const float* a, const float* b, const EltwiseDesc& d) {
  for (int64_t i = 0; i < d.count; ++i) {
    const float s = a[i] + b[i];
    y[i] = s < 0.0f ? 0.0f : s;  // NaN propagates, as relu
  }
}

void sum_forward(float* out, const float* x, const EltwiseDesc& d) {
  double total = 0.0;
  for (int64_t i = 0; i < d.count; ++i) total += x[i];
  out[0] = static_cast<float>(total);
}

void norm_forward(float* out, const float* x, const EltwiseDesc& d) {
  double total = 0.0;
  for (int64_t i = 0; i < d.count; ++i) {
    const double v = std::fabs(static_cast<double>(x[i]));
    if (d.p == INFINITY)
      total = std::isnan(v) || std::isnan(total) ? NAN : std::max(total, v);
    else if (d.p == 0.0)
      total += x[i] != 0.0f;
    else
      total += std::pow(v, d.p);
  }
  out[0] = static_cast<float>(d.p == INFINITY || d.p == 0.0 ? total : std::pow(total, 1.0 / d.p));
}

void concat_forward(float* y, const float* const* inputs, const int64_t* extents, const ConcatDesc& d) {
  for (int64_t n = 0; n < d.outer; ++n)
    for (int64_t i = 0, offset = 0; i < d.inputs; offset += extents[i], ++i)
      for (int64_t c = 0; c < extents[i]; ++c)
        for (int64_t j = 0; j < d.inner; ++j)
          y[(n * d.total + offset + c) * d.inner + j] = inputs[i][(n * extents[i] + c) * d.inner + j];
}

void split_forward(float* const* outputs, const float* y, const int64_t* extents, const ConcatDesc& d) {
  for (int64_t n = 0; n < d.outer; ++n)
    for (int64_t i = 0, offset = 0; i < d.inputs; offset += extents[i], ++i)
      for (int64_t c = 0; c < extents[i]; ++c)
        for (int64_t j = 0; j < d.inner; ++j)
          outputs[i][(n * extents[i] + c) * d.inner + j] = y[(n * d.total + offset + c) * d.inner + j];
}

void subsample_pad_channels_forward(float* y, const float* x, const ChannelPadDesc& d) {
  const int64_t out_channels = d.before + d.channels + d.after;
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t k = 0; k < out_channels; ++k)
      for (int64_t i = 0; i < d.out_h; ++i)
        for (int64_t j = 0; j < d.out_w; ++j) {
          const int64_t c = k - d.before;
          y[((n * out_channels + k) * d.out_h + i) * d.out_w + j] =
              c < 0 || c >= d.channels ? 0.0f : x[((n * d.channels + c) * d.in_h + i * d.stride) * d.in_w + j * d.stride];
        }
}

void subsample_pad_channels_backward(float* dx, const float* dy, const ChannelPadDesc& d) {
  const int64_t out_channels = d.before + d.channels + d.after;
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t c = 0; c < d.channels; ++c)
      for (int64_t i = 0; i < d.in_h; ++i)
        for (int64_t j = 0; j < d.in_w; ++j) {
          const bool sampled = i % d.stride == 0 && j % d.stride == 0;
          dx[((n * d.channels + c) * d.in_h + i) * d.in_w + j] =
              sampled ? dy[((n * out_channels + d.before + c) * d.out_h + i / d.stride) * d.out_w + j / d.stride] : 0.0f;
        }
}

}  // namespace pcn::reference
