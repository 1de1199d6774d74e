// conv2d, float32 NCHW, forward and backward side by side.
//   x  (batch, in_channels, in_h, in_w)
//   w  (out_channels, in_channels / groups, kernel_h, kernel_w)
//   y  (batch, out_channels, out_h, out_w)
// Zero padding, stride, dilation and groups follow torch.nn.functional.conv2d. Weight and bias
// gradients are written (not accumulated) and are summed over the batch.
#pragma once
#include <cstdint>

namespace pcn {

// How a convolution pass is computed. `automatic` is the fixed heuristic in conv.cpp; the others
// force one path (conv2d_algorithms says which can take a given pass). The reference kernels
// ignore it. `tiles` (conv_tiles.h) exists only for bfloat16 operands in the amx build; `direct`
// is the window path without packing for layers where it would pack (conv_window.h); `dense` takes
// maps no larger than the kernel as one matrix product over the batch (Note [dense convolution]).
enum class ConvAlgorithm : int32_t { automatic = 0, gemm, pointwise, window, winograd, tiles, direct, dense };
enum class ConvPass : int32_t { forward = 0, backward_data, backward_weight };

struct Conv2dDesc {
  int64_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
  int64_t out_h = 0, out_w = 0;  // filled by validate()
  ConvAlgorithm algorithm = ConvAlgorithm::automatic;
  // Autocast: every pass reads its two operands (x, w, dy) rounded to bfloat16 (nearest, ties to
  // even, as round_bf16) and sums their products in float32; the bias gradient sums the rounded dy.
  // The heuristic chooses as for float32: the passes that run as GEMMs round as they pack bfloat16
  // panels in the avx512bf16 (vdpbf16ps) and amx builds; Winograd (float32 transforms) and the
  // window kernels read rounded float32 copies. In the amx build the tile convolutions, which round
  // as they copy, are a further candidate for measured selection (bench/NOTES.md).
  bool bf16 = false;
};

// Checks every field against the others and fills out_h/out_w (ValueError naming the argument).
void validate(Conv2dDesc& desc);

// The input, weight and bias gradients of conv2d -> ReLU -> max-pool from the pooled gradient (Note
// [sparse pooled backward] in conv_pooled.cpp), for dilation 1 and one group (any stride and padding):
//   gy, y, indices (batch, out_channels, pooled_h, pooled_w): the pooled gradient, the pooled output
//   after ReLU and max_pool2d_forward's argmax indices into the convolution's output plane.
// Writes dw, db (may be null) and dx (may be null; w is read only for it): those of the convolution whose output gradient is gy scattered to
// the argmax positions where y > 0 (ReLU's mask), as relu_backward, max_pool2d_backward and the
// conv2d backward kernels give them, summed in another order. Zero gradients are skipped (0 times
// an infinite input or weight adds nothing here, NaN in the dense passes). Indices outside [-1, out_h * out_w)
// are skipped and *first_invalid set to the flat position of the first (else -1).
#define PCN_CONV_KERNELS(X)                                                                            \
  X(conv2d_forward, (float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d)) \
  X(conv2d_backward_data, (float* dx, const float* dy, const float* w, const Conv2dDesc& d))            \
  X(conv2d_backward_weight, (float* dw, const float* dy, const float* x, const Conv2dDesc& d))          \
  X(conv2d_backward_bias, (float* db, const float* dy, const Conv2dDesc& d))                            \
  X(conv2d_relu_max_pool2d_backward, (float* dx, float* dw, float* db, int64_t* first_invalid, const float* gy,   \
                                       const float* y, const int64_t* indices, const float* x, const float* w, \
                                       const Conv2dDesc& d, int64_t pooled_h, int64_t pooled_w))               \
  X(conv2d_algorithms, (uint32_t* candidates, ConvAlgorithm* heuristic, ConvPass pass, const Conv2dDesc& d))

}  // namespace pcn
