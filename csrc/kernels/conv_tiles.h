// Convolutions of autocast's bfloat16 operands on AMX tiles (the amx build only).
//
// The forward pass is a GEMM with the output positions as rows: Y (positions x out channels) =
// patches (positions x k) * W (k x out channels), k running over the taps and, within a tap, over
// the input channels, so that a position's patch is, tap by tap, the channel vector of one pixel.
// The input is copied to a zero-bordered channels-last bfloat16 image; a block of 32 positions'
// patches is then one copy per kernel row (the kernel_w pixels a row of taps reads are
// consecutive in that image) and feeds two 16-row A tiles straight from memory. At stride 1 with
// channels a multiple of 32 and little border, the A tiles load from the image itself, with no
// patches copied (Note [grid positions] in conv_tiles.cpp), and each thread lays the image out
// band by band, the rows its next blocks read, while they stay in L2. The weights are rounded and
// laid out as B tiles (16 pairs along k by 16 out channels) once per call. Each block multiplies
// into four C tiles (32 positions x 32 out channels), which are transposed in registers into the
// NCHW output. Where the B tiles of all the out channels pass 512 KiB (VGG's 512-channel layers:
// 4.5 MiB), k goes in chunks whose B tiles stay in L2, the sums carried in float32 between them.
// Backward-data is the same computation on dy with the flipped, transposed weights: at stride S,
// one convolution per phase of dx (its pixels S apart, each phase with its own taps; Note
// [backward-data phases]). The weight gradient reduces over the positions, tap by tap: A tiles
// are rows of dy (out channels x 32 positions), B tiles the tap's pixel vectors of the
// channels-last copy with two positions interleaved per row, at stride 1 read from one table of
// pixel pairs that serves every tap; many spans of positions go in parts, taken by the threads
// from a queue, whose sums are added at the end (conv_tiles.cpp).
#pragma once
#include "kernels/conv.h"
#include "core/isa_namespace.h"

PCN_ISA_BEGIN

// Whether the tile path can compute this pass: bfloat16 operands in the amx build, one group,
// and for backward-data dilation 1 and a kernel at least as large as the stride.
bool tiles_possible(ConvPass pass, const Conv2dDesc& d);

#if defined(PCN_ISA_IS_amx)
void tiles_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d);
void tiles_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d);
void tiles_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d);
#endif

PCN_ISA_END
