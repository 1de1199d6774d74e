// 2-D pooling and resampling, float32 NCHW, forward and backward side by side; every (n, c) plane
// is independent.
//   x  (batch, channels, in_h, in_w)          dx likewise
//   y  (batch, channels, out_h, out_w)        dy likewise
//   indices (batch, channels, out_h, out_w)   int64, flat h * in_w + w within the input plane
// Semantics follow torch.nn.functional: max_pool2d (dilation, ceil_mode; NaN in a window wins,
// ties keep the first maximum in row-major window order), avg_pool2d (ceil_mode,
// count_include_pad, divisor_override; no dilation), adaptive_avg_pool2d and adaptive_max_pool2d
// (window i spans [floor(i*in/out), ceil((i+1)*in/out))). Backward kernels write dx (zeroed, then
// scatter-added per plane). A max window that holds no input element (possible only with
// dilation) yields -inf and index -1; backward ignores index -1. The max backward kernels check
// the indices as they scatter: one outside [-1, in_h * in_w) is skipped, and *first_invalid is
// set to the flat position of the first such (else -1) for the caller to report.
//
// Resampling (torch.nn.functional.interpolate of 4-D input), y (batch, channels, out_h, out_w) from
// x (batch, channels, in_h, in_w). Along each axis output index o reads the source position
//   nearest   o when out == in, o / 2 when out == 2 * in, else min(floor(o * scale), in - 1)
//   bilinear  src = o * scale with align_corners, else max((o + 0.5) * scale - 0.5, 0); it blends
//             i0 = floor(src) and i1 = min(i0 + 1, in - 1) with weights 1 - f and f, f = src - i0
// in float, as torch's CPU kernels; scale (source units per output step) is the caller's: torch's
// rule picks 1 / scale_factor, in / out, or (in - 1) / (out - 1) for align_corners. Backward
// kernels write dx (zeroed, then scatter-added within each plane: deterministic).
#pragma once
#include <cstdint>

namespace pcn {

struct Pool2dDesc {
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false, count_include_pad = true;
  int64_t divisor_override = 0;  // 0 = none (avg_pool2d only)
  int64_t out_h = 0, out_w = 0;  // filled by validate()
  const char* op = "pool2d";     // named in validate()'s error messages
};

// Checks sizes and arguments (torch's rules, including padding <= kernel_size / 2) and fills
// out_h/out_w with window_output_size (ValueError naming the op and argument).
void validate(Pool2dDesc& desc);

struct AdaptivePool2dDesc {
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  const char* op = "adaptive_pool2d";  // named in validate()'s error messages
};

void validate(AdaptivePool2dDesc& desc);

struct ResampleDesc {
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  float scale_h = 0.0f, scale_w = 0.0f;  // source position per output step
  bool align_corners = false;            // bilinear only
  const char* op = "interpolate";        // named in validate()'s error messages
};

void validate(ResampleDesc& desc);

#define PCN_POOL_KERNELS(X)                                                                                       \
  X(max_pool2d_forward, (float* y, int64_t* indices, const float* x, const Pool2dDesc& d))                       \
  X(max_pool2d_backward, (float* dx, int64_t* first_invalid, const float* dy, const int64_t* indices,            \
                          const Pool2dDesc& d))                                                                 \
  X(avg_pool2d_forward, (float* y, const float* x, const Pool2dDesc& d))                                         \
  X(avg_pool2d_backward, (float* dx, const float* dy, const Pool2dDesc& d))                                      \
  X(adaptive_avg_pool2d_forward, (float* y, const float* x, const AdaptivePool2dDesc& d))                        \
  X(adaptive_avg_pool2d_backward, (float* dx, const float* dy, const AdaptivePool2dDesc& d))                     \
  X(adaptive_max_pool2d_forward, (float* y, int64_t* indices, const float* x, const AdaptivePool2dDesc& d))      \
  X(adaptive_max_pool2d_backward, (float* dx, int64_t* first_invalid, const float* dy, const int64_t* indices,   \
                                   const AdaptivePool2dDesc& d))                                                  \
  X(upsample_nearest2d_forward, (float* y, const float* x, const ResampleDesc& d))                                \
  X(upsample_nearest2d_backward, (float* dx, const float* dy, const ResampleDesc& d))                             \
  X(upsample_bilinear2d_forward, (float* y, const float* x, const ResampleDesc& d))                               \
  X(upsample_bilinear2d_backward, (float* dx, const float* dy, const ResampleDesc& d))

}  // namespace pcn
