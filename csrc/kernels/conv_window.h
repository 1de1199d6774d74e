// Stride-1 convolutions as sliding windows over a zero-padded copy of each image.
//
// With stride 1, kernel tap (r, s) of input channel c reads the padded image shifted by
// c * plane + r * dilation_h * padded_w + s * dilation_w floats. Counting output positions in
// padded-width coordinates (q = oh * padded_w + ow, ow < padded_w, of which the last
// padded_w - out_w per row are discarded), every tap's operand row is a contiguous run of the
// padded image: no patch matrix is packed at all. That makes the GEMM-style register tile read
// its B operand straight from the padded copy (forward, and backward-data as a forward
// convolution of dy with the flipped, transposed weights) and lets backward-weight form each
// weight gradient as a dot product of two contiguous rows. The price is the discarded columns:
// (padded_w - out_w) / padded_w of the work, 6 % on 32-wide maps, 20 % on 8-wide ones.
#pragma once
#include "kernels/conv.h"
#include "core/isa_namespace.h"

PCN_ISA_BEGIN

// Whether the window path takes this convolution (stride 1, not a plain 1x1 GEMM, and for
// backward-data a padding the flipped convolution can express).
bool window_forward_applies(const Conv2dDesc& d);
bool window_backward_data_applies(const Conv2dDesc& d);
bool window_backward_weight_applies(const Conv2dDesc& d);

void window_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d);
void window_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d);
void window_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d);

PCN_ISA_END
