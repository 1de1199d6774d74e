// Binding for the FMA peak probe (kernels/peak.h); Python times it (pyconvnet.backend).
#include "bindings/common.h"
#include "dispatch.h"

namespace pcn::bind {

void bind_peak(py::module_& m) {
  m.def(
      "fma_peak",
      [](int64_t iterations) {
        PeakDesc d;
        d.iterations = iterations;
        validate(d);
        double flops = 0.0, checksum = 0.0;
        {
          py::gil_scoped_release nogil;
          kernels().fma_peak(&flops, &checksum, d);
        }
        return py::make_tuple(flops, checksum);
      },
      py::arg("iterations"));
}

}  // namespace pcn::bind
