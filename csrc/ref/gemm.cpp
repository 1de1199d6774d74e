// Reference sgemm: the textbook triple loop, accumulating in double. The oracle for tests.
#include "kernels/gemm.h"

namespace pcn::reference {

void sgemm(float* c, const float* a, const float* b, const GemmDesc& d) {
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
