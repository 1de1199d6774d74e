// FMA peak probe (see peak.h). Each chain is acc = acc * kScale + kShift, whose fixed point 1.0
// every start value approaches, so lanes stay finite and normal however long it runs. The loop-
// carried dependence and float rounding stop the compiler from shortening a chain, as long as
// no chain starts at the fixed point itself (GCC then proves it constant and drops it).
#include "kernels/peak.h"

#include "core/simd.h"

PCN_ISA_BEGIN
namespace {

// Chains needed = FMA latency x FMA ports (4 x 2 on current x86 cores) and they must fit in
// registers with the two constants: 16 of 32 ZMM registers, 12 of 16 YMM/XMM registers.
#if defined(PCN_ISA_IS_avx512)
constexpr int kChains = 16;
#else
constexpr int kChains = 12;
#endif
constexpr float kScale = 0.999f, kShift = 0.001f;

}  // namespace

void fma_peak(double* flops, double* checksum, const PeakDesc& d) {
  double total_flops = 0.0, total = 0.0;
#pragma omp parallel num_threads(num_threads()) reduction(+ : total_flops, total)
  {
    const vfloat scale = vbroadcast(kScale), shift = vbroadcast(kShift);
    vfloat acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = vbroadcast(static_cast<float>(c) + 2.0f);
    for (int64_t i = 0; i < d.iterations; ++i) {
#pragma GCC unroll 16
      for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * scale + shift;
    }
    for (int c = 0; c < kChains; ++c)
      for (int lane = 0; lane < kVecFloats; ++lane) total += acc[c][lane];
    total_flops += 2.0 * kChains * kVecFloats * static_cast<double>(d.iterations);
  }
  flops[0] = total_flops;
  checksum[0] = total;
}

PCN_ISA_END
