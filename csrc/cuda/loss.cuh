// Host launchers of the GPU softmax / log-softmax and losses (loss.cu): the CPU kernels' signatures
// (kernels/loss.h) plus the stream. Pointers are device pointers on the current device.
// One difference from the CPU: the bindings cannot check target values without waiting for the
// device, so a class target outside [0, classes) that is not ignore_index makes its loss and
// gradient NaN (never an out-of-bounds read) instead of raising.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/loss.h"

namespace pcn::cuda {

void softmax_forward(float* y, const float* x, const SoftmaxDesc& d, cudaStream_t stream);
void softmax_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d, cudaStream_t stream);
void log_softmax_forward(float* y, const float* x, const SoftmaxDesc& d, cudaStream_t stream);
void log_softmax_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d, cudaStream_t stream);
void cross_entropy_forward(float* loss, float* log_probs, const float* logits, const int64_t* target,
                           const float* class_weight, const LossDesc& d, cudaStream_t stream);
void cross_entropy_backward(float* dlogits, const float* dloss, const float* log_probs, const int64_t* target,
                            const float* class_weight, const LossDesc& d, cudaStream_t stream);
void nll_loss_forward(float* loss, const float* log_probs, const int64_t* target, const float* class_weight,
                      const LossDesc& d, cudaStream_t stream);
void nll_loss_backward(float* dlog_probs, const float* dloss, const int64_t* target, const float* class_weight,
                       const LossDesc& d, cudaStream_t stream);
void mse_loss_forward(float* loss, const float* input, const float* target, const LossDesc& d, cudaStream_t stream);
void mse_loss_backward(float* dinput, const float* dloss, const float* input, const float* target, const LossDesc& d,
                       cudaStream_t stream);
void smooth_l1_loss_forward(float* loss, const float* input, const float* target, const LossDesc& d,
                            cudaStream_t stream);
void smooth_l1_loss_backward(float* dinput, const float* dloss, const float* input, const float* target,
                             const LossDesc& d, cudaStream_t stream);
void binary_cross_entropy_forward(float* loss, const float* input, const float* target, const float* weight,
                                  const LossDesc& d, cudaStream_t stream);
void binary_cross_entropy_backward(float* dinput, float* dtarget, const float* dloss, const float* input,
                                   const float* target, const float* weight, const LossDesc& d, cudaStream_t stream);
void bce_with_logits_forward(float* loss, const float* input, const float* target, const float* weight,
                             const float* pos_weight, const LossDesc& d, cudaStream_t stream);
void bce_with_logits_backward(float* dinput, float* dtarget, const float* dloss, const float* input,
                              const float* target, const float* weight, const float* pos_weight, const LossDesc& d,
                              cudaStream_t stream);

}  // namespace pcn::cuda
