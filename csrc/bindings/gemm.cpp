// Binding for the library's SGEMM (pyconvnet.backend.sgemm).
#include <algorithm>
#include <optional>

#include "bindings/common.h"
#include "dispatch.h"

namespace pcn::bind {

void bind_gemm(py::module_& m) {
  m.def(
      "sgemm",
      [](const py::handle& a_obj, const py::handle& b_obj, bool trans_a, bool trans_b, float alpha, float beta,
         const py::handle& out_obj, const std::optional<std::string>& isa, bool bf16) {
        FloatArray a = float_input(a_obj, "sgemm", "a"), b = float_input(b_obj, "sgemm", "b");
        expect_ndim(a, 2, "sgemm", "a", "(rows, cols)");
        expect_ndim(b, 2, "sgemm", "b", "(rows, cols)");
        GemmDesc d;
        d.trans_a = trans_a;
        d.trans_b = trans_b;
        d.m = a.shape(trans_a ? 1 : 0);
        d.k = a.shape(trans_a ? 0 : 1);
        d.n = b.shape(trans_b ? 0 : 1);
        const int64_t b_k = b.shape(trans_b ? 1 : 0);
        if (b_k != d.k)
          throw py::value_error("sgemm: inner dimensions differ: op(a) is " + shape_str({d.m, d.k}) + ", op(b) is " +
                                shape_str({b_k, d.n}));
        // BLAS leading dimensions are at least 1, also for a matrix with no columns (k = 0 or n = 0).
        d.lda = std::max<int64_t>(a.shape(1), 1);
        d.ldb = std::max<int64_t>(b.shape(1), 1);
        d.ldc = std::max<int64_t>(d.n, 1);
        d.alpha = alpha;
        d.beta = beta;
        d.bf16 = bf16;
        validate(d);
        FloatArray c;
        if (out_obj.is_none()) {
          if (beta != 0.0f) throw py::value_error("sgemm: beta != 0 needs out= holding C");
          c = empty_float({d.m, d.n});
        } else {
          if (!py::isinstance<py::array>(out_obj) || !py::reinterpret_borrow<py::array>(out_obj).dtype().equal(py::dtype::of<float>()))
            throw py::type_error("sgemm: out must be a float32 array");
          c = py::reinterpret_borrow<FloatArray>(out_obj);
          if (!(c.flags() & py::array::c_style)) throw py::value_error("sgemm: out must be C-contiguous");
          expect_shape(c, {d.m, d.n}, "sgemm", "out");
          writable(c, "sgemm", "out");
        }
        float* c_data = c.mutable_data();
        {
          py::gil_scoped_release nogil;
          (isa ? kernels_for(isa_from_name(*isa)) : kernels()).sgemm(c_data, a.data(), b.data(), d);
        }
        return c;
      },
      py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false, py::arg("trans_b") = false,
      py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f, py::arg("out") = py::none(), py::arg("isa") = py::none(),
      py::arg("bf16") = false,
      "C = alpha * op(a) @ op(b) + beta * out with the library's packed SGEMM (float32, C-contiguous), on the "
      "kernels of the ISA in use or of the one named by isa. bf16: a and b hold bfloat16 values, multiplied as "
      "bfloat16 where the avx512bf16 (vdpbf16ps) or amx (AMX tiles) kernels run.");
}

}  // namespace pcn::bind
