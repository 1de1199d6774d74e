// sgemm entry point: pack A once, then run the blocked driver with the whole thread team.
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
  float* packed_a = thread_scratch(Scratch::pack_a, packed_a_floats(d.m, d.k));
  float* b_buf = thread_scratch(Scratch::pack_b, packed_b_floats(d.n, d.k));
  const MatrixPackB pack_b{b, d.ldb, d.trans_b};
  // Enough work per thread to pay for the team's barriers; small products run single-threaded.
  const int64_t flops = d.m * d.n * (d.k + 1);
  const int threads = flops < (int64_t(1) << 20) ? 1 : num_threads();
#pragma omp parallel num_threads(threads)
  {
    pack_a_matrix(packed_a, a, d.lda, d.trans_a, d.m, d.k, true, d.bf16);
    gemm_packed(d.m, d.n, d.k, packed_a, pack_b, c, d.ldc, d.alpha, d.beta, nullptr, b_buf, true, d.bf16);
  }
}

PCN_ISA_END
