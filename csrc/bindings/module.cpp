// The compiled extension pyconvnet._C: one bind_* call per kernel family.
#include "bindings/common.h"
#include "bindings/exceptions.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyconvnet's compiled kernels (private: use pyconvnet.nn.functional and pyconvnet.backend)";
  pcn::bind::translate_exceptions_locally();
  pcn::bind::bind_backend(m);
  pcn::bind::bind_gemm(m);
  pcn::bind::bind_conv(m);
  pcn::bind::bind_pool(m);
  pcn::bind::bind_loss(m);
  pcn::bind::bind_optim(m);
  pcn::bind::bind_eltwise(m);
  pcn::bind::bind_norm(m);
  pcn::bind::bind_activation(m);
  pcn::bind::bind_peak(m);
}
