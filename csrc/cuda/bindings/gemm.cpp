// GPU binding for sgemm: the CPU binding (bindings/gemm.cpp) with DeviceArrays, same names, defaults,
// errors and out= semantics; launches cuda/gemm.cu's kernel on the inputs' device. Also the TF32
// switches for sgemm and the convolutions (torch.backends.cuda.matmul / cudnn .allow_tf32).
#include <algorithm>

#include "cuda/bindings/common.h"
#include "cuda/gemm.cuh"

namespace pcn::cuda::bind {

void bind_gemm(py::module_& m) {
  m.def(
      "sgemm",
      [](const DeviceArray& a, const DeviceArray& b, bool trans_a, bool trans_b, float alpha, float beta,
         const std::optional<DeviceArray>& out) {
        float_input(a, "sgemm", "a");
        float_input(b, "sgemm", "b");
        expect_ndim(a, 2, "sgemm", "a", "(rows, cols)");
        expect_ndim(b, 2, "sgemm", "b", "(rows, cols)");
        GemmDesc d;
        d.trans_a = trans_a;
        d.trans_b = trans_b;
        d.m = a.shape[trans_a ? 1 : 0];
        d.k = a.shape[trans_a ? 0 : 1];
        d.n = b.shape[trans_b ? 0 : 1];
        const int64_t b_k = b.shape[trans_b ? 1 : 0];
        if (b_k != d.k)
          throw py::value_error("sgemm: inner dimensions differ: op(a) is " + shape_str({d.m, d.k}) + ", op(b) is " +
                                shape_str({b_k, d.n}));
        // BLAS leading dimensions are at least 1, also for a matrix with no columns (k = 0 or n = 0).
        d.lda = std::max<int64_t>(a.shape[1], 1);
        d.ldb = std::max<int64_t>(b.shape[1], 1);
        d.ldc = std::max<int64_t>(d.n, 1);
        d.alpha = alpha;
        d.beta = beta;
        validate(d);
        DeviceArray c;
        if (!out) {
          if (beta != 0.0f) throw py::value_error("sgemm: beta != 0 needs out= holding C");
          expect_same_device("sgemm", {&a, &b});
          c = empty({d.m, d.n}, Dtype::float32, a.device);
        } else {
          if (out->dtype != Dtype::float32) throw py::type_error("sgemm: out must be a float32 array");
          expect_shape(*out, {d.m, d.n}, "sgemm", "out");
          expect_same_device("sgemm", {&a, &b, &*out});
          c = *out;
        }
        const cudaStream_t stream = launch_on(a);
        {
          py::gil_scoped_release nogil;
          cuda::sgemm(c.data<float>(), a.data<float>(), b.data<float>(), d, stream);
        }
        return c;
      },
      py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false, py::arg("trans_b") = false,
      py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f, py::arg("out") = py::none(),
      "C = alpha * op(a) @ op(b) + beta * out on the GPU (float32, C-contiguous DeviceArrays).");
  m.def("set_allow_tf32", &set_allow_tf32, py::arg("conv").noconvert(), py::arg("matmul").noconvert(),
        "Let the convolutions (conv) and sgemm (matmul) use TF32 tensor cores on sm_80+ GPUs (both off by default).");
  m.def(
      "get_allow_tf32", [] { return py::make_tuple(allow_tf32_conv(), allow_tf32_matmul()); },
      "(conv, matmul): whether the convolutions and sgemm may use TF32 tensor cores.");
}

}  // namespace pcn::cuda::bind
