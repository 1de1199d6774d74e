// GPU pooling and resampling launchers (csrc/cuda/pool.cu): the CPU kernels of kernels/pool.h on a
// device stream, with the same descriptors, layouts, index convention and results (see pool.h for the
// semantics: NaN and tie rules, ceil_mode, count_include_pad, divisor_override, adaptive windows,
// nearest / bilinear source positions). Host declarations only, so g++ can include it.
//   x, dx (batch, channels, in_h, in_w)   y, dy, indices (batch, channels, out_h, out_w), float32 NCHW
//   indices int64, flat h * in_w + w within the input plane, -1 for a window without input elements.
// Every backward kernel gathers (one thread per dx element adds the outputs whose windows hold it, in
// the CPU kernel's output order): deterministic, no atomics, no zeroing pass. Unlike the CPU kernels,
// the max backward kernels cannot report an index outside the plane (that would need the host to wait
// for the kernel): a dx element takes the gradient of the windows that hold it and chose it, so an
// index outside its own window (outside the plane, or any that no forward pass writes) is dropped.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/pool.h"

namespace pcn::cuda {

void max_pool2d_forward(float* y, int64_t* indices, const float* x, const Pool2dDesc& d, cudaStream_t stream);
void max_pool2d_backward(float* dx, const float* dy, const int64_t* indices, const Pool2dDesc& d,
                         cudaStream_t stream);
void avg_pool2d_forward(float* y, const float* x, const Pool2dDesc& d, cudaStream_t stream);
void avg_pool2d_backward(float* dx, const float* dy, const Pool2dDesc& d, cudaStream_t stream);
void adaptive_avg_pool2d_forward(float* y, const float* x, const AdaptivePool2dDesc& d, cudaStream_t stream);
void adaptive_avg_pool2d_backward(float* dx, const float* dy, const AdaptivePool2dDesc& d, cudaStream_t stream);
void adaptive_max_pool2d_forward(float* y, int64_t* indices, const float* x, const AdaptivePool2dDesc& d,
                                 cudaStream_t stream);
void adaptive_max_pool2d_backward(float* dx, const float* dy, const int64_t* indices, const AdaptivePool2dDesc& d,
                                  cudaStream_t stream);
void upsample_nearest2d_forward(float* y, const float* x, const ResampleDesc& d, cudaStream_t stream);
void upsample_nearest2d_backward(float* dx, const float* dy, const ResampleDesc& d, cudaStream_t stream);
void upsample_bilinear2d_forward(float* y, const float* x, const ResampleDesc& d, cudaStream_t stream);
void upsample_bilinear2d_backward(float* dx, const float* dy, const ResampleDesc& d, cudaStream_t stream);

}  // namespace pcn::cuda
