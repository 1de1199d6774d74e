// SoftmaxDesc and LossDesc checks; see kernels/loss.h.
#include <cmath>
#include <sstream>

#include "core/checks.h"
#include "kernels/loss.h"

namespace pcn {

void validate(SoftmaxDesc& d) {
  const std::vector<int64_t> shape{d.outer, d.classes, d.inner};
  if (d.outer < 0 || d.classes < 0 || d.inner < 0) fail("softmax: negative extent in input viewed as " + shape_str(shape));
  checked_numel(shape, "softmax: input");
}

void validate(LossDesc& d, const char* op) {
  const std::vector<int64_t> shape{d.batch, d.classes, d.inner};
  std::ostringstream out;
  out << op << ": ";
  if (d.batch < 0 || d.classes <= 0 || d.inner < 0) {
    out << "input must have a positive number of classes (dim 1), got input viewed as (batch, classes, inner) "
        << shape_str(shape);
    fail(out.str());
  }
  if (d.reduction != kReductionNone && d.reduction != kReductionMean && d.reduction != kReductionSum) {
    out << "reduction must be 0 (none), 1 (mean) or 2 (sum), got " << d.reduction;
    fail(out.str());
  }
  if (!(d.label_smoothing >= 0.0f && d.label_smoothing <= 1.0f)) {
    out << "label_smoothing must be between 0.0 and 1.0, got " << d.label_smoothing;
    fail(out.str());
  }
  if (!(d.beta >= 0.0f) || !std::isfinite(d.beta) || (d.huber && d.beta == 0.0f)) {
    out << (d.huber ? "delta must be positive and finite, got " : "beta must be non-negative and finite, got ") << d.beta;
    fail(out.str());
  }
  checked_numel(shape, op);
}

}  // namespace pcn
