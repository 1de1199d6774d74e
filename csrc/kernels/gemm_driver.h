// The blocked GEMM driver shared by sgemm and the convolutions (BLIS-style loops around the
// micro-kernel). A is packed completely up front (pack_a_matrix) into MR-row panels, block by
// block along k; B is packed one KC x NC block at a time by a caller-supplied packer, which is how
// convolution feeds image patches straight into the panel without an im2col buffer.
//
// "team" mode: called by every thread of an OpenMP team with identical arguments; packing and
// tiles are shared out and barriers separate the phases. Otherwise the calling thread does all
// the work alone (used when the caller already parallelises over images).
#pragma once
#include "core/simd.h"
#include "ukernels/gemm_ukernel.h"

PCN_ISA_BEGIN

static inline int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Floats needed for a fully packed m x k A, and for one packed B block.
static inline int64_t packed_a_floats(int64_t m, int64_t k) { return round_up(m, kGemmMR) * k; }
static inline int64_t packed_b_floats(int64_t n, int64_t k) {
  return min64(kGemmKC, k) * round_up(min64(kGemmNC, n), kGemmNR);
}

// This thread's share [begin, end) of `total` items: all of them outside a team.
static inline void team_range(int64_t total, bool team, int64_t* begin, int64_t* end) {
  if (!team) {
    *begin = 0;
    *end = total;
    return;
  }
  const int64_t threads = omp_get_num_threads(), tid = omp_get_thread_num();
  *begin = total * tid / threads;
  *end = total * (tid + 1) / threads;
}

static inline void team_barrier(bool team) {
  if (team) {
#pragma omp barrier
  }
}

// Packs op(A) (m x k) as: for each k-block of KC, ceil(m/MR) panels of kc x MR, zero-padded rows.
// op(A)[i][p] = trans_a ? a[p * lda + i] : a[i * lda + p].
static inline void pack_a_matrix(float* dst, const float* a, int64_t lda, bool trans_a, int64_t m, int64_t k,
                                 bool team) {
  const int64_t m_pad = round_up(m, kGemmMR), panels = m_pad / kGemmMR;
  const int64_t k_blocks = (k + kGemmKC - 1) / kGemmKC;
  int64_t begin, end;
  team_range(panels * k_blocks, team, &begin, &end);
  for (int64_t item = begin; item < end; ++item) {
    const int64_t pc = (item / panels) * kGemmKC, panel = item % panels;
    const int64_t kc = min64(kGemmKC, k - pc), i0 = panel * kGemmMR;
    const int64_t rows = min64(kGemmMR, m - i0);
    float* out = dst + pc * m_pad + i0 * kc;
    for (int64_t p = 0; p < kc; ++p) {
      for (int64_t r = 0; r < rows; ++r)
        out[p * kGemmMR + r] = trans_a ? a[(pc + p) * lda + i0 + r] : a[(i0 + r) * lda + pc + p];
      for (int64_t r = rows; r < kGemmMR; ++r) out[p * kGemmMR + r] = 0.0f;
    }
  }
  team_barrier(team);
}

// Packer for an ordinary matrix op(B) (k x n): op(B)[p][j] = trans_b ? b[j * ldb + p] : b[p * ldb + j].
struct MatrixPackB {
  const float* b;
  int64_t ldb;
  bool trans_b;
  // Writes the kc x NR panel of columns [j0, j0 + cols) for rows [p0, p0 + kc), zero-padded.
  void operator()(float* out, int64_t p0, int64_t kc, int64_t j0, int64_t cols) const {
    if (trans_b) {
      // Read each stored row of B contiguously; the strided writes stay inside the L1-sized panel.
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = b + (j0 + j) * ldb + p0;
        for (int64_t p = 0; p < kc; ++p) out[p * kGemmNR + j] = src[p];
      }
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t j = cols; j < kGemmNR; ++j) out[p * kGemmNR + j] = 0.0f;
      return;
    }
    for (int64_t p = 0; p < kc; ++p) {
      float* row = out + p * kGemmNR;
      const float* src = b + (p0 + p) * ldb + j0;
      for (int64_t j = 0; j < cols; ++j) row[j] = src[j];
      for (int64_t j = cols; j < kGemmNR; ++j) row[j] = 0.0f;
    }
  }
};

// C (m x n, row stride ldc) = alpha * A * B + beta * C (+ row_bias[i] per row), A packed by
// pack_a_matrix, B packed block by block by pack_b into b_buf (packed_b_floats(n, k) floats,
// shared by the team in team mode).
template <class PackB>
void gemm_packed(int64_t m, int64_t n, int64_t k, const float* packed_a, const PackB& pack_b, float* c, int64_t ldc,
                 float alpha, float beta, const float* row_bias, float* b_buf, bool team) {
  const int64_t m_pad = round_up(m, kGemmMR);
  if (k == 0) {  // nothing to multiply: C = beta * C (+ bias)
    int64_t begin, end;
    team_range(m, team, &begin, &end);
    for (int64_t i = begin; i < end; ++i)
      for (int64_t j = 0; j < n; ++j)
        c[i * ldc + j] = (beta != 0.0f ? beta * c[i * ldc + j] : 0.0f) + (row_bias ? row_bias[i] : 0.0f);
    team_barrier(team);
    return;
  }
  for (int64_t jc = 0; jc < n; jc += kGemmNC) {
    const int64_t nc = min64(kGemmNC, n - jc), n_panels = (nc + kGemmNR - 1) / kGemmNR;
    for (int64_t pc = 0; pc < k; pc += kGemmKC) {
      const int64_t kc = min64(kGemmKC, k - pc);
      int64_t begin, end;
      team_range(n_panels, team, &begin, &end);
      for (int64_t panel = begin; panel < end; ++panel)
        pack_b(b_buf + panel * kc * kGemmNR, pc, kc, jc + panel * kGemmNR, min64(kGemmNR, nc - panel * kGemmNR));
      team_barrier(team);

      const float block_beta = pc == 0 ? beta : 1.0f;
      const float* block_bias = pc == 0 ? row_bias : nullptr;
      const float* a_block = packed_a + pc * m_pad;
      for (int64_t ic = 0; ic < m; ic += kGemmMC) {
        const int64_t mc = min64(kGemmMC, m - ic), m_panels = (mc + kGemmMR - 1) / kGemmMR;
        // Tiles run B-panel-major so one B micro-panel stays in L1 across the A panels.
        team_range(n_panels * m_panels, team, &begin, &end);
        for (int64_t tile = begin; tile < end; ++tile) {
          const int64_t jr = (tile / m_panels) * kGemmNR, ir = ic + (tile % m_panels) * kGemmMR;
          gemm_ukernel(kc, a_block + ir * kc, b_buf + jr * kc, c + ir * ldc + jc + jr, ldc,
                       static_cast<int>(min64(kGemmMR, m - ir)), static_cast<int>(min64(kGemmNR, nc - jr)), alpha,
                       block_beta, block_bias ? block_bias + ir : nullptr);
        }
      }
      team_barrier(team);  // b_buf is overwritten by the next block
    }
  }
}

PCN_ISA_END
