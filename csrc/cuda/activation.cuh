// Host launchers of the GPU activations and dropout (activation.cu): the CPU kernels' signatures
// (kernels/activation.h) plus the stream. Pointers are device pointers on the current device;
// outputs may alias their inputs (y == x, dx == dy), as on the CPU.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/activation.h"

namespace pcn::cuda {

void relu_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void relu_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d, cudaStream_t stream);
void leaky_relu_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void leaky_relu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream);
void sigmoid_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void sigmoid_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d, cudaStream_t stream);
void tanh_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void tanh_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d, cudaStream_t stream);
void gelu_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void gelu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream);
void gelu_tanh_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void gelu_tanh_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream);
void silu_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void silu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream);
void relu6_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void relu6_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d, cudaStream_t stream);
void hardswish_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void hardswish_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream);
void hardsigmoid_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream);
void hardsigmoid_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream);
void dropout_forward(float* y, uint8_t* mask, const float* x, const DropoutDesc& d, cudaStream_t stream);
void dropout_backward(float* dx, const float* dy, const uint8_t* mask, const DropoutDesc& d, cudaStream_t stream);

}  // namespace pcn::cuda
