// EltwiseDesc and ConcatDesc checks; see kernels/eltwise.h.
#include "core/checks.h"
#include "kernels/eltwise.h"

namespace pcn {

void validate(EltwiseDesc& d) {
  if (d.count < 0) fail("elementwise: element count must be non-negative, got " + std::to_string(d.count));
  checked_numel({d.count}, "elementwise: input");
  if (!(d.p >= 0.0)) fail("norm: the order p must be non-negative (or inf), got " + std::to_string(d.p));
}

void validate(ConcatDesc& d, const int64_t* extents) {
  if (d.outer < 0 || d.inner < 0 || d.inputs <= 0)
    fail("cat: expected a non-empty list of tensors with non-negative sizes, got " + std::to_string(d.inputs) +
         " tensors viewed as (outer=" + std::to_string(d.outer) + ", extent, inner=" + std::to_string(d.inner) + ")");
  int64_t total = 0;
  for (int64_t i = 0; i < d.inputs; ++i) {
    if (extents[i] < 0) fail("cat: tensor " + std::to_string(i) + " has negative extent " + std::to_string(extents[i]));
    total += extents[i];
    checked_numel({d.outer, total, d.inner}, "cat: output");
  }
  d.total = total;
}

}  // namespace pcn
