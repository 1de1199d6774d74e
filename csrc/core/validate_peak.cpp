// PeakDesc checks; see kernels/peak.h.
#include "core/checks.h"
#include "kernels/peak.h"

namespace pcn {

void validate(PeakDesc& d) {
  if (d.iterations < 1) fail("fma_peak: iterations must be >= 1, got " + std::to_string(d.iterations));
}

}  // namespace pcn
