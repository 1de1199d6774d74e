// Convolutions as sliding windows over a zero-padded copy of each image.
//
// The copy splits the padded image into stride_h x stride_w phases (pixel (i, j) goes to phase
// (i % stride_h, j % stride_w) at (i / stride_h, j / stride_w)); at stride 1 the one phase is the
// padded image. Kernel tap (r, s) of input channel c then reads, for every output position, one
// phase shifted by a fixed offset, so every row of the patch matrix is made of contiguous runs of
// the copy, one per output row. Three ways to use that, chosen per layer (bench/NOTES.md has the
// measurements):
// - forward, and (at stride 1) backward-data as the forward convolution of dy with the flipped,
//   transposed weights: the shared GEMM driver with a B packer that copies those runs (no bounds
//   logic), several small images side by side in one GEMM;
// - at most 16 output channels: no packing at all. Register tiles read B straight from the copy
//   (each vector one output row, the lanes past out_w dropped) or from kernel_w shifted copies of
//   it whose rows are out_w wide (each tile one contiguous run of output positions), whichever
//   costs less for the layer, skipping the kernel rows that read only zero padding;
// - backward-weight: dot products of dy's rows with the shifted copies on large maps or few output
//   channels, a GEMM with the transposed window matrix otherwise.
#pragma once
#include "kernels/conv.h"
#include "core/isa_namespace.h"

PCN_ISA_BEGIN

// Whether the window path takes this convolution: anything but a plain 1x1 GEMM whose stride
// stays within the kernel's extent; for backward-data also stride 1 and a padding the flipped
// convolution can express.
bool window_applies(const Conv2dDesc& d);
bool window_backward_data_applies(const Conv2dDesc& d);

// direct: the register tiles (forward, backward-data) and dot products (weight gradient) whatever
// the channel count, where the heuristic would pack a GEMM (ConvAlgorithm::direct, a candidate of
// measured selection wherever direct_differs).
bool direct_differs(ConvPass pass, const Conv2dDesc& d);

void window_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d, bool direct);
void window_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d, bool direct);
void window_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d, bool direct);

PCN_ISA_END
