// SGEMM: the library's own packed single-precision matrix multiply (also behind linear/matmul).
// Row-major: C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C, where op(A) is A (m x k,
// row stride lda) or, with trans_a, the transpose of A stored k x m; likewise for B. With beta == 0
// C is not read (it may hold NaN). Deterministic: each C element is summed in a fixed order.
// bf16 (autocast): A and B are read rounded to bfloat16 (nearest, ties to even, as round_bf16) and
// their products summed in float32. The avx512bf16 and amx builds round as they pack bfloat16
// panels (vdpbf16ps, AMX tiles); the others multiply rounded float32 copies.
#pragma once
#include <cstdint>

namespace pcn {

struct GemmDesc {
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  bool trans_a = false, trans_b = false;
  float alpha = 1.0f, beta = 0.0f;
  bool bf16 = false;
};

// Checks sizes and leading dimensions (ValueError on failure).
void validate(const GemmDesc& desc);

#define PCN_GEMM_KERNELS(X) X(sgemm, (float* c, const float* a, const float* b, const GemmDesc& desc))

}  // namespace pcn
