// The GPU extension pyconvnet._C_cuda: one bind_* call per kernel family. Imported lazily by
// pyconvnet.cuda, never by `import pyconvnet`, so a machine without a driver never loads it.
#include "bindings/exceptions.h"
#include "cuda/allocator.h"
#include "cuda/bindings/common.h"

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "pyconvnet's CUDA kernels (private: use tensors on device 'cuda')";
  pcn::bind::translate_exceptions_locally();
  // Registered after the general translator, so tried before it (they derive from std exceptions).
  pybind11::register_local_exception<pcn::cuda::OutOfMemory>(m, "OutOfMemoryError", PyExc_MemoryError);
  pybind11::register_local_exception<pcn::cuda::DtypeError>(m, "DtypeError", PyExc_TypeError);
  pcn::cuda::bind::bind_runtime(m);
  pcn::cuda::bind::bind_tensor_ops(m);
  pcn::cuda::bind::bind_gemm(m);
  pcn::cuda::bind::bind_conv(m);
  pcn::cuda::bind::bind_pool(m);
  pcn::cuda::bind::bind_norm(m);
  pcn::cuda::bind::bind_activation(m);
  pcn::cuda::bind::bind_eltwise(m);
  pcn::cuda::bind::bind_loss(m);
  pcn::cuda::bind::bind_optim(m);
}
