// GemmDesc checks; see kernels/gemm.h.
#include "core/checks.h"
#include "kernels/gemm.h"

#include <string>

namespace pcn {

void validate(const GemmDesc& d) {
  if (d.m < 0 || d.n < 0 || d.k < 0)
    fail("sgemm: sizes must be non-negative, got m=" + std::to_string(d.m) + " n=" + std::to_string(d.n) +
         " k=" + std::to_string(d.k));
  checked_mul(d.m, d.k, "sgemm: A");
  checked_mul(d.k, d.n, "sgemm: B");
  checked_mul(d.m, d.n, "sgemm: C");
  const int64_t a_cols = d.trans_a ? d.m : d.k, b_cols = d.trans_b ? d.k : d.n;
  if (d.lda < (a_cols > 1 ? a_cols : 1)) fail("sgemm: lda=" + std::to_string(d.lda) + " is smaller than A's row length " + std::to_string(a_cols));
  if (d.ldb < (b_cols > 1 ? b_cols : 1)) fail("sgemm: ldb=" + std::to_string(d.ldb) + " is smaller than B's row length " + std::to_string(b_cols));
  if (d.ldc < (d.n > 1 ? d.n : 1)) fail("sgemm: ldc=" + std::to_string(d.ldc) + " is smaller than C's row length " + std::to_string(d.n));
}

}  // namespace pcn
