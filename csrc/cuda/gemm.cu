// GPU sgemm (see gemm.cuh): the shared tiled kernel (gemm_tile.cuh) reading A and B as plain
// row-major matrices, transposed or not, with the alpha/beta epilogue; and the TF32 switches.
#include "cuda/gemm.cuh"

#include <atomic>

#include "cuda/gemm_tile.cuh"

namespace pcn::cuda {
namespace {

// Set from Python while kernels may be launched from threads without the GIL: atomics.
std::atomic<bool> tf32_conv{false}, tf32_matmul{false};

// A Problem for gemm_tile_kernel: one matrix product (z is always 0).
struct SgemmProblem {
  int64_t M = 0, N = 0, K = 0;
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  int64_t lda = 0, ldb = 0, ldc = 0;
  bool trans_a = false, trans_b = false;
  float alpha = 1.0f, beta = 0.0f;
  bool a_k_fast = true, b_k_fast = false;  // load along the operand's contiguous axis

  __device__ void k_range(int64_t, int64_t& begin, int64_t& end) const {
    begin = 0;
    end = K;
  }
  __device__ float load_a(int64_t, int64_t i, int64_t k) const { return trans_a ? a[k * lda + i] : a[i * lda + k]; }
  __device__ float load_b(int64_t, int64_t k, int64_t j) const { return trans_b ? b[j * ldb + k] : b[k * ldb + j]; }
  __device__ void store(int64_t, int64_t i, int64_t j, float sum) const {
    float& out = c[i * ldc + j];
    // k == 0: nothing was multiplied, C = beta * C as the CPU kernel writes (alpha * 0 could be NaN).
    out = (K > 0 ? alpha * sum : 0.0f) + (beta != 0.0f ? beta * out : 0.0f);
  }
};

}  // namespace

void sgemm(float* c, const float* a, const float* b, const GemmDesc& d, cudaStream_t stream) {
  SgemmProblem p;
  p.M = d.m;
  p.N = d.n;
  p.K = d.k;
  p.a = a;
  p.b = b;
  p.c = c;
  p.lda = d.lda;
  p.ldb = d.ldb;
  p.ldc = d.ldc;
  p.trans_a = d.trans_a;
  p.trans_b = d.trans_b;
  p.alpha = d.alpha;
  p.beta = d.beta;
  p.a_k_fast = !d.trans_a;
  p.b_k_fast = d.trans_b;
  tile::launch_gemm_tile(p, 1, allow_tf32_matmul(), stream, "sgemm");
}

void set_allow_tf32(bool conv, bool matmul) {
  tf32_conv = conv;
  tf32_matmul = matmul;
}
bool allow_tf32_conv() { return tf32_conv; }
bool allow_tf32_matmul() { return tf32_matmul; }

}  // namespace pcn::cuda
