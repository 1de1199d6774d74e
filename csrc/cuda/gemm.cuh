// GPU sgemm: the launcher behind pyconvnet._C_cuda.sgemm, with the CPU kernel's signature and
// semantics (kernels/gemm.h): row-major C = alpha * op(A) * op(B) + beta * C, C not read when beta == 0,
// and C = beta * C (or zeros) when k == 0. Host declarations only (g++ includes this).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/gemm.h"

namespace pcn::cuda {

// c, a, b are device pointers laid out as `desc` says; the launch is asynchronous on `stream`.
void sgemm(float* c, const float* a, const float* b, const GemmDesc& desc, cudaStream_t stream);

}  // namespace pcn::cuda
