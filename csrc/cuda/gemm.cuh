// GPU sgemm: the launcher behind pyconvnet._C_cuda.sgemm, with the CPU kernel's signature and
// semantics (kernels/gemm.h): row-major C = alpha * op(A) * op(B) + beta * C, C not read when beta == 0,
// and C = beta * C (or zeros) when k == 0; also the process-wide TF32 switches that sgemm and the
// convolutions read at launch. Host declarations only (g++ includes this).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/gemm.h"

namespace pcn::cuda {

// c, a, b are device pointers laid out as `desc` says; the launch is asynchronous on `stream`.
// Exact fp32 unless allow_tf32_matmul() (and the device has TF32 tensor cores).
void sgemm(float* c, const float* a, const float* b, const GemmDesc& desc, cudaStream_t stream);

// torch.backends.cudnn.allow_tf32 (the convolutions) and torch.backends.cuda.matmul.allow_tf32
// (sgemm): both off by default, so results are exact fp32 unless a user opts in.
void set_allow_tf32(bool conv, bool matmul);
bool allow_tf32_conv();
bool allow_tf32_matmul();

}  // namespace pcn::cuda
