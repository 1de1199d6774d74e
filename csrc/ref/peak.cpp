// Reference FMA peak probe: scalar chains on the calling thread only (the plain-loop baseline).

#include "kernels/peak.h"

namespace pcn::reference {

void fma_peak(double* flops, double* checksum, const PeakDesc& d) {
  constexpr int kChains = 8;
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = static_cast<float>(c) + 2.0f;  // 1.0 is the fixed point: see kernels/peak.cpp
  for (int64_t i = 0; i < d.iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * 0.999f + 0.001f;
  double total = 0.0;
  for (int c = 0; c < kChains; ++c) total += acc[c];
  flops[0] = 2.0 * kChains * static_cast<double>(d.iterations);
  checksum[0] = total;
}

}  // namespace pcn::reference
