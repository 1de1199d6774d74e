// 3x3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3).
//
// Each 4x4 block of outputs (a tile) is computed from the 6x6 block of inputs under it as
//   Y = A^T [ sum over input channels of (G g G^T) .* (B^T d B) ] A,
// so the 36 elementwise products per tile and channel pair replace 144 multiply-adds: over a
// block of tiles, the 36 sums are 36 independent GEMMs (out_channels x channels) x (channels x
// tiles) on the shared micro-kernel, with the transforms of the inputs written straight into the
// packed B panels. Backward-data is the same computation on dy with the flipped, transposed
// weights (the transposed convolution of a stride-1 layer is a stride-1 convolution). The weight
// gradient reverses the forward tile, dg = G^T [ sum over tiles of (A dY A^T) .* (B^T d B) ] G:
// 36 GEMMs that reduce over the tiles (up to 128 channels a side: sums of outer products over
// channels-last copies, the channels in the vector lanes).
//
// The transforms cost accuracy: the result differs from the direct sum by a few float32 rounding
// steps amplified by the transform constants (measured in tests/test_conv.py, well inside the
// 1e-4 parity tolerance); bench/NOTES.md records where it pays and where the window path stays.
#pragma once
#include "kernels/conv.h"
#include "core/isa_namespace.h"

PCN_ISA_BEGIN

// Whether Winograd tiles can compute this pass at all, on or off (set_winograd_enabled), on any map
// size: the candidates measured selection may time.
bool winograd_possible(ConvPass pass, const Conv2dDesc& d);
// Whether the forward / backward-data / backward-weight computation of this convolution runs as
// Winograd tiles by the fixed heuristic: possible, allowed, and on maps where the tiles pay.
bool winograd_applies(const Conv2dDesc& d);
bool winograd_backward_data_applies(const Conv2dDesc& d);
bool winograd_backward_weight_applies(const Conv2dDesc& d);

void winograd_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d);
void winograd_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d);
void winograd_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d);

PCN_ISA_END
