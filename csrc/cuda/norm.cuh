// GPU normalisation launchers (csrc/cuda/norm.cu): batch norm (train, eval, backward, each with the
// fused ReLU of d.relu), group / layer norm and LRN, the CPU kernels of kernels/norm.h on a device
// stream with the same descriptors, layouts and formulas (see norm.h). Host declarations only.
//   x, y, dy, dx (batch, channels, spatial) float32; per-channel vectors (channels); group norm's
//   mean / rstd (batch * groups). Pointers documented as nullable in norm.h are nullable here too.
// Reductions (per channel, per (sample, group) row) run one block each, in double, in a fixed tree
// order: deterministic, and within float rounding of the CPU's double sums. The batch norm launchers
// take their per-channel scratch from the caching allocator on the current device.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/norm.h"

namespace pcn::cuda {

void batch_norm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean,
                              float* running_var, const float* x, const float* weight, const float* bias,
                              const BatchNormDesc& d, cudaStream_t stream);
void batch_norm_forward_eval(float* y, const float* x, const float* running_mean, const float* running_var,
                             const float* weight, const float* bias, const BatchNormDesc& d, cudaStream_t stream);
void batch_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* y,
                         const float* mean, const float* invstd, const float* weight, const BatchNormDesc& d,
                         cudaStream_t stream);
void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias,
                        const GroupNormDesc& d, cudaStream_t stream);
void group_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* weight, const GroupNormDesc& d, cudaStream_t stream);
void lrn_forward(float* y, float* scale, const float* x, const LrnDesc& d, cudaStream_t stream);
void lrn_backward(float* dx, const float* dy, const float* x, const float* y, const float* scale, const LrnDesc& d,
                  cudaStream_t stream);

}  // namespace pcn::cuda
