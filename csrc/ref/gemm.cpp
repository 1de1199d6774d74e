// Reference sgemm: the textbook triple loop, accumulating in double. The oracle for tests.
#include "kernels/gemm.h"

#include "ref/operand.h"

namespace pcn::reference {

void sgemm(float* c, const float* a_values, const float* b_values, const GemmDesc& d) {
  const auto span = [](int64_t rows, int64_t cols, int64_t ld) { return rows && cols ? (rows - 1) * ld + cols : 0; };
  const Operand a(a_values, d.trans_a ? span(d.k, d.m, d.lda) : span(d.m, d.k, d.lda), d.bf16);
  const Operand b(b_values, d.trans_b ? span(d.n, d.k, d.ldb) : span(d.k, d.n, d.ldb), d.bf16);
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      double sum = 0.0;
      for (int64_t p = 0; p < d.k; ++p) {
        const float av = d.trans_a ? a[p * d.lda + i] : a[i * d.lda + p];
        const float bv = d.trans_b ? b[j * d.ldb + p] : b[p * d.ldb + j];
        sum += static_cast<double>(av) * bv;
      }
      float& out = c[i * d.ldc + j];
      out = static_cast<float>(d.alpha * sum + (d.beta != 0.0f ? static_cast<double>(d.beta) * out : 0.0));
    }
}

}  // namespace pcn::reference
