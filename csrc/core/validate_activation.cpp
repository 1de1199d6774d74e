// ActivationDesc and DropoutDesc checks; see kernels/activation.h.
#include <cmath>
#include <sstream>

#include "core/checks.h"
#include "kernels/activation.h"

namespace pcn {

void validate(ActivationDesc& d) {
  if (d.count < 0 || d.count > kMaxElements) fail("activation: element count " + std::to_string(d.count) + " is out of range");
  if (!std::isfinite(d.negative_slope)) {
    std::ostringstream out;
    out << "leaky_relu: negative_slope must be finite, got " << d.negative_slope;
    fail(out.str());
  }
}

void validate(DropoutDesc& d) {
  if (d.count < 0 || d.plane < 0) fail("dropout: negative mask entry count or plane size");
  checked_numel({d.count, d.plane}, "dropout: input");
  if (!(d.p >= 0.0f && d.p <= 1.0f)) {
    std::ostringstream out;
    out << "dropout probability has to be between 0 and 1, but got " << d.p;
    fail(out.str());
  }
}

}  // namespace pcn
