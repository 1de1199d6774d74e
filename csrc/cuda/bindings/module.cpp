// The GPU extension pyconvnet._C_cuda: one bind_* call per kernel family. Imported lazily by
// pyconvnet.cuda, never by `import pyconvnet`, so a machine without a driver never loads it.
#include "cuda/allocator.h"
#include "cuda/bindings/common.h"

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "pyconvnet's CUDA kernels (private: use tensors on device 'cuda')";
  pybind11::register_exception<pcn::cuda::OutOfMemory>(m, "OutOfMemoryError", PyExc_MemoryError);
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
