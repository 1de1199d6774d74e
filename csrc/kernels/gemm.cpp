// sgemm entry point: the blocked driver on the whole thread team (team_gemm).
#include "kernels/gemm.h"

#include "kernels/gemm_driver.h"

PCN_ISA_BEGIN

void sgemm(float* c, const float* a, const float* b, const GemmDesc& d) {
  if (d.m == 0 || d.n == 0) return;
  if (d.bf16 && !kGemmBf16Dot && d.k > 0) {  // this build multiplies float32: rounded copies
    const auto span = [](int64_t rows, int64_t cols, int64_t ld) { return (rows - 1) * ld + cols; };
    GemmDesc rounded = d;
    rounded.bf16 = false;
    return sgemm(c, bf16_rounded(Scratch::rounded_first, a, d.trans_a ? span(d.k, d.m, d.lda) : span(d.m, d.k, d.lda)),
                 bf16_rounded(Scratch::rounded_second, b, d.trans_b ? span(d.n, d.k, d.ldb) : span(d.k, d.n, d.ldb)),
                 rounded);
  }
  team_gemm(c, d.ldc, a, d.lda, d.trans_a, MatrixPackB{b, d.ldb, d.trans_b}, d.m, d.n, d.k, d.alpha, d.beta, d.bf16);
}

PCN_ISA_END
