// GPU conv2d launchers behind pyconvnet._C_cuda.conv2d_*: the CPU kernels' signatures and semantics
// (kernels/conv.h: NCHW float32, zero padding, stride, dilation, groups; weight and bias gradients
// written, not accumulated, summed over the batch) plus the stream. Host declarations only.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/conv.h"

namespace pcn::cuda {

// All pointers are device pointers; launches are asynchronous on `stream`. bias may be null.
void conv2d_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d,
                    cudaStream_t stream);
void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d, cudaStream_t stream);
void conv2d_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d, cudaStream_t stream);
void conv2d_backward_bias(float* db, const float* dy, const Conv2dDesc& d, cudaStream_t stream);

}  // namespace pcn::cuda
