// FMA peak probe: the float32 multiply-add rate this machine reaches on all threads, so that
// benchmarks report achieved GFLOP/s as a share of a measured peak rather than a datasheet one.
//   fma_peak   every thread of the team runs independent vector multiply-add chains for
//              d.iterations steps (enough chains to cover the FMA latency on every issue port).
//              flops: 1 value = the float operations performed by all threads (a multiply-add
//              counts 2); checksum: 1 value = the sum of every chain's final lanes, returned so
//              the compiler cannot drop the chains.
#pragma once
#include <cstdint>

namespace pcn {

struct PeakDesc {
  int64_t iterations = 0;
};

void validate(PeakDesc& desc);

#define PCN_PEAK_KERNELS(X) X(fma_peak, (double* flops, double* checksum, const PeakDesc& d))

}  // namespace pcn
