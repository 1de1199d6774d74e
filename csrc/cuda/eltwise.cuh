// Host launchers of the GPU element-wise ops, deterministic sum / p-norm, concat / split and
// subsample_pad_channels
// (eltwise.cu): the CPU kernels' signatures (kernels/eltwise.h) plus the stream. Array pointers are
// device pointers on the current device; concat's `inputs`, split's `outputs` and both `extents` are
// host arrays (of device pointers), as on the CPU.
// Also the deterministic double reduction the losses use (loss.cu).
#pragma once
#include <cuda_runtime_api.h>

#include "cuda/device_array.h"
#include "kernels/eltwise.h"

namespace pcn::cuda {

void add_forward(float* y, const float* a, const float* b, const EltwiseDesc& d, cudaStream_t stream);
void mul_forward(float* y, const float* a, const float* b, const EltwiseDesc& d, cudaStream_t stream);
void add_relu_forward(float* y, const float* a, const float* b, const EltwiseDesc& d, cudaStream_t stream);
void sum_forward(float* out, const float* x, const EltwiseDesc& d, cudaStream_t stream);
void norm_forward(float* out, const float* x, const EltwiseDesc& d, cudaStream_t stream);
void concat_forward(float* y, const float* const* inputs, const int64_t* extents, const ConcatDesc& d,
                    cudaStream_t stream);
void split_forward(float* const* outputs, const float* y, const int64_t* extents, const ConcatDesc& d,
                   cudaStream_t stream);
void subsample_pad_channels_forward(float* y, const float* x, const ChannelPadDesc& d, cudaStream_t stream);
void subsample_pad_channels_backward(float* dx, const float* dy, const ChannelPadDesc& d, cudaStream_t stream);

// out[0] = the sum of values[0, count) (count >= 0; 0 when empty), in a fixed order that depends
// only on count: per-block trees, then one tree over the block totals (no atomics).
void sum_doubles(double* out, const double* values, int64_t count, cudaStream_t stream);
// `count` doubles of scratch on the current device (int64-typed storage from the caching allocator).
// It may be dropped right after the launches that use it: the device's one stream orders any reuse
// of the block after them.
DeviceArray double_scratch(int64_t count);

}  // namespace pcn::cuda
