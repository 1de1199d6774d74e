// Host launchers of the GPU fused optimiser updates (optim.cu): the CPU kernels' signatures
// (kernels/optim.h) plus the stream. Pointers are device pointers on the current device; the
// optional state buffers are nullptr exactly when the CPU kernel allows it.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/optim.h"

namespace pcn::cuda {

void sgd_update(float* param, float* momentum_buffer, const float* grad, const SgdDesc& d, cudaStream_t stream);
void adam_update(float* param, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq, const float* grad,
                 const AdamDesc& d, cudaStream_t stream);
void rmsprop_update(float* param, float* square_avg, float* grad_avg, float* momentum_buffer, const float* grad,
                    const RmspropDesc& d, cudaStream_t stream);
void adagrad_update(float* param, float* state_sum, const float* grad, const AdagradDesc& d, cudaStream_t stream);
void adadelta_update(float* param, float* square_avg, float* acc_delta, const float* grad, const AdadeltaDesc& d,
                     cudaStream_t stream);

}  // namespace pcn::cuda
