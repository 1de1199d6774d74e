// The blocked GEMM driver shared by sgemm and the convolutions (BLIS-style loops around the
// micro-kernel). A is packed completely up front (pack_a_matrix) into MR-row panels, block by
// block along k; B is packed one KC x NC block at a time by a caller-supplied packer, which is how
// convolution feeds image patches straight into the panel without an im2col buffer.
//
// bf16 (autocast, see GemmDesc): in the avx512bf16 build every packed panel is rounded to bfloat16
// pairs (pack_bf16_pairs) and multiplied with vdpbf16ps, in the amx build with AMX tiles (Note [AMX
// tiles]); elsewhere the flag changes nothing, and callers hand the driver rounded copies
// (bf16_rounded).
//
// "team" mode: called by every thread of an OpenMP team with identical arguments; packing and
// tiles are shared out and barriers separate the phases. Otherwise the calling thread does all
// the work alone (used when the caller already parallelises over images).
#pragma once
#include "core/simd.h"
#include "kernels/eltwise.h"
#include "ukernels/gemm_ukernel.h"

PCN_ISA_BEGIN

static inline int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

void round_bf16_forward(float* y, const float* x, const EltwiseDesc& d);

// An autocast operand for a path that multiplies float32 values: `count` values rounded to bfloat16
// in the calling thread's scratch `slot` (rounded_first or rounded_second). Outside parallel regions.
static inline const float* bf16_rounded(Scratch slot, const float* values, int64_t count) {
  float* rounded = thread_scratch(slot, count);
  EltwiseDesc desc;
  desc.count = count;
  round_bf16_forward(rounded, values, desc);
  return rounded;
}

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

// A barrier of the team, skipped in a team of one: there libgomp still makes a futex system call
// per barrier (about 0.5 us; a LeNet-5 step on one thread passed hundreds).
static inline void team_barrier(bool team) {
  if (team && omp_get_num_threads() > 1) {
#pragma omp barrier
  }
}

// Zeroes `count` floats, shared out over the team, then waits for all of it.
static inline void zero_shared(float* out, int64_t count, bool team) {
  int64_t begin, end;
  team_range(count, team, &begin, &end);
  for (int64_t i = begin; i < end; ++i) out[i] = 0.0f;
  team_barrier(team);
}

// dst[i] = the sum over the team's threads t of partials[t * count + i], added in thread order so
// the result does not depend on scheduling. Called by the whole team once every partial is
// written; the team is the one the runtime started, which may be smaller than was asked for.
// dst may be thread 0's partials (each i reads and writes only index i). A vector of indices at a
// time: GCC left the loop over threads inside scalar, a fifth of a 64-channel 8x8 Winograd weight
// gradient.
static inline void reduce_thread_partials(float* dst, const float* partials, int64_t count) {
  const int threads = omp_get_num_threads();
  const int64_t vectors = (count + kVecFloats - 1) / kVecFloats;
  team_barrier(true);
#pragma omp for schedule(static) nowait
  for (int64_t v = 0; v < vectors; ++v) {
    const int64_t i = v * kVecFloats;
    if (i + kVecFloats <= count) {
      vfloat sum = {};
      for (int t = 0; t < threads; ++t) sum += vload(partials + t * count + i);
      vstore(dst + i, sum);
      continue;
    }
    for (int64_t j = i; j < count; ++j) {
      float sum = 0.0f;
      for (int t = 0; t < threads; ++t) sum += partials[t * count + j];
      dst[j] = sum;
    }
  }
  team_barrier(true);
}

// Packs op(A) (m x k) as: for each k-block of KC, ceil(m/MR) panels of kc x MR, zero-padded rows.
// op(A)[i][p] = trans_a ? a[p * lda + i] : a[i * lda + p].
static inline void pack_a_matrix(float* dst, const float* a, int64_t lda, bool trans_a, int64_t m, int64_t k,
                                 bool team, bool bf16 = false) {
  const int64_t m_pad = round_up(m, kGemmMR), panels = m_pad / kGemmMR;
  const int64_t k_blocks = (k + kGemmKC - 1) / kGemmKC;
  int64_t begin, end;
  team_range(panels * k_blocks, team, &begin, &end);
  for (int64_t item = begin; item < end; ++item) {
    const int64_t pc = (item / panels) * kGemmKC, panel = item % panels;
    const int64_t kc = min64(kGemmKC, k - pc), i0 = panel * kGemmMR;
    const int64_t rows = min64(kGemmMR, m - i0);
    float* out = dst + pc * m_pad + i0 * kc;
    int64_t p = 0;
#if defined(__AVX2__)
    // Rows of A to the panel's columns, 8 k at a time: up to 8 rows (zero rows past the panel)
    // through one 8x8 register transpose, the panel's share of each result stored (AVX2's 6 rows:
    // one transpose; AVX-512's 12: 8 rows and 4). The winograd weight gradient packs its
    // tile-major dM this way for every point.
    if (!trans_a && rows == kGemmMR) {
      for (; p + 8 <= kc; p += 8) {
        for (int r0 = 0; r0 < kGemmMR; r0 += 8) {
          const int n = kGemmMR - r0 < 8 ? kGemmMR - r0 : 8;
          __m256 r[8];
          for (int i = 0; i < 8; ++i) r[i] = i < n ? _mm256_loadu_ps(a + (i0 + r0 + i) * lda + pc + p) : _mm256_setzero_ps();
          transpose8x8(r);
          for (int j = 0; j < 8; ++j) {
            float* dst = out + (p + j) * kGemmMR + r0;
#if defined(PCN_ISA_IS_avx512)
            _mm256_mask_storeu_ps(dst, __mmask8((1u << n) - 1), r[j]);
#else
            static_assert(kGemmMR == 6, "the AVX2 panel has 6 rows");
            _mm_storeu_ps(dst, _mm256_castps256_ps128(r[j]));
            _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), _mm256_extractf128_ps(r[j], 1));
#endif
          }
        }
      }
    }
#endif
    for (; p < kc; ++p) {
      for (int64_t r = 0; r < rows; ++r)
        out[p * kGemmMR + r] = trans_a ? a[(pc + p) * lda + i0 + r] : a[(i0 + r) * lda + pc + p];
      for (int64_t r = rows; r < kGemmMR; ++r) out[p * kGemmMR + r] = 0.0f;
    }
    if (kGemmBf16Dot && bf16) pack_bf16_a_panel(out, kc);
  }
  team_barrier(team);
}

// Packer for an ordinary matrix op(B) (k x n): op(B)[p][j] = trans_b ? b[j * ldb + p] : b[p * ldb + j].
// Packing is memory-bound when B is read once (small m): both layouts read every row of B they
// touch concurrently and prefetch kPackPrefetchRows rows / floats ahead so many misses overlap.
struct MatrixPackB {
  const float* b;
  int64_t ldb;
  bool trans_b;
  static constexpr int64_t kPackPrefetch = 16;
  // Writes the kc x NR panel of columns [j0, j0 + cols) for rows [p0, p0 + kc), zero-padded.
  void operator()(float* out, int64_t p0, int64_t kc, int64_t j0, int64_t cols) const {
    if (trans_b) {
      pack_transposed(out, p0, kc, j0, cols);
      return;
    }
    const float* src = b + p0 * ldb + j0;
    if (cols == kGemmNR) {
      for (int64_t p = 0; p < kc; ++p, src += ldb) {
        if (p + kPackPrefetch < kc) __builtin_prefetch(src + kPackPrefetch * ldb);
        for (int j = 0; j < kGemmNRVecs; ++j) vstore(out + p * kGemmNR + j * kVecFloats, vload(src + j * kVecFloats));
      }
      return;
    }
    for (int64_t p = 0; p < kc; ++p, src += ldb) {
      float* row = out + p * kGemmNR;
      for (int64_t j = 0; j < cols; ++j) row[j] = src[j];
      for (int64_t j = cols; j < kGemmNR; ++j) row[j] = 0.0f;
    }
  }

 private:
  // op(B) rows [p0, p0 + kc) of columns [j0, j0 + cols) are the stored rows j0.. of B, read
  // along p: transpose them 8 x 8 at a time where AVX is available.
  void pack_transposed(float* out, int64_t p0, int64_t kc, int64_t j0, int64_t cols) const {
    const float* src = b + j0 * ldb + p0;
    int64_t p = 0;
#if defined(__AVX2__)
    if (cols == kGemmNR) {
      for (; p + 8 <= kc; p += 8) {
        for (int j = 0; j < kGemmNR; j += 8) {
          const float* s = src + j * ldb + p;
          if ((p & 15) == 0)
            for (int r = 0; r < 8; ++r) __builtin_prefetch(s + r * ldb + 4 * kPackPrefetch);
          const float* rows[8];
          for (int r = 0; r < 8; ++r) rows[r] = s + r * ldb;
          store_transposed8x8(out + p * kGemmNR + j, kGemmNR, rows);
        }
      }
    }
#endif
    for (; p < kc; ++p) {
      for (int64_t j = 0; j < cols; ++j) out[p * kGemmNR + j] = src[j * ldb + p];
      for (int64_t j = cols; j < kGemmNR; ++j) out[p * kGemmNR + j] = 0.0f;
    }
  }
};

// Packs `panels` consecutive B panels (columns [j0, j0 + cols), the last one possibly partial)
// for rows [p0, p0 + kc) into out, panel after panel (kc * NR floats each). The generic version
// packs panel by panel; packers that read faster row by row across panels overload it.
template <class PackB>
void pack_b_panels(const PackB& pack_b, float* out, int64_t p0, int64_t kc, int64_t j0, int64_t cols) {
  for (int64_t j = 0; j < cols; j += kGemmNR)
    pack_b(out + (j / kGemmNR) * kc * kGemmNR, p0, kc, j0 + j, min64(kGemmNR, cols - j));
}

static inline void pack_b_panels(const MatrixPackB& pack_b, float* out, int64_t p0, int64_t kc, int64_t j0,
                                 int64_t cols) {
  if (pack_b.trans_b || cols % kGemmNR != 0) {
    pack_b_panels<MatrixPackB>(pack_b, out, p0, kc, j0, cols);
    return;
  }
  // Row by row across all panels: each stored row is read as one contiguous run.
  const int64_t panels = cols / kGemmNR;
  const float* src = pack_b.b + p0 * pack_b.ldb + j0;
  for (int64_t p = 0; p < kc; ++p, src += pack_b.ldb) {
    for (int64_t q = 0; q < panels; ++q) {
      float* dst = out + q * kc * kGemmNR + p * kGemmNR;
      for (int j = 0; j < kGemmNRVecs; ++j) vstore(dst + j * kVecFloats, vload(src + q * kGemmNR + j * kVecFloats));
    }
  }
}

// Column-split blocking: panels of B a thread packs at once. With A a single row block (small m)
// the group is kGemmKC x 8 * NR floats (128 KiB for AVX2), which stays in L2; otherwise it is as
// wide as b_buf allows (the BLIS KC x NC block in L3), so each A block is reused across as many
// panels as possible.
constexpr int64_t kGemmSmallMGroup = 8;
// Fewer B panels per thread than this and the team splits tiles of one shared B block instead,
// so that m is shared out too.
constexpr int64_t kGemmMinPanelsPerThread = 4;

// gemm_packed with the team split by columns: each thread owns a range of B panels for the whole
// k loop, packs them into its own slice of b_buf and multiplies them by every A block, so there is
// no barrier inside the loops. B is read from memory once. Returns false (nothing done) for shapes
// too narrow to split this way.
template <class PackB>
bool gemm_by_columns(int64_t m, int64_t n, int64_t k, const float* packed_a, const PackB& pack_b, float* c,
                     int64_t ldc, float alpha, float beta, const float* row_bias, float* b_buf, bool team, bool bf16) {
  const int64_t m_pad = round_up(m, kGemmMR), n_panels = (n + kGemmNR - 1) / kGemmNR;
  const int64_t threads = team ? omp_get_num_threads() : 1;
  const bool one_row_block = m_pad <= kGemmMC;
  // b_buf holds packed_b_floats(n, k) = min(KC, k) * NR * min(n_panels, NC / NR) floats.
  const int64_t fit = min64(n_panels, kGemmNC / kGemmNR) / threads;
  const int64_t group = one_row_block ? min64(kGemmSmallMGroup, fit) : fit;
  if (group < 1 || (!one_row_block && n_panels < kGemmMinPanelsPerThread * threads)) return false;
  const int64_t tid = team ? omp_get_thread_num() : 0;
  float* my_buf = b_buf + tid * min64(kGemmKC, k) * kGemmNR * group;
  if (kGemmAmx && bf16) amx_configure();
  int64_t begin, end;
  team_range(n_panels, team, &begin, &end);
  for (int64_t g0 = begin; g0 < end; g0 += group) {  // columns [j0, j0 + cols) of this group
    const int64_t j0 = g0 * kGemmNR, cols = min64(min64(end, g0 + group) * kGemmNR, n) - j0;
    for (int64_t pc = 0; pc < k; pc += kGemmKC) {
      const int64_t kc = min64(kGemmKC, k - pc);
      const float block_beta = pc == 0 ? beta : 1.0f;
      const float* block_bias = pc == 0 ? row_bias : nullptr;
      const float* a_block = packed_a + pc * m_pad;
      pack_b_panels(pack_b, my_buf, pc, kc, j0, cols);
      if (kGemmBf16Dot && bf16)
        for (int64_t jr = 0; jr < cols; jr += kGemmNR) pack_bf16_pairs(my_buf + (jr / kGemmNR) * kc * kGemmNR, kc, kGemmNR);
      for (int64_t ic = 0; ic < m; ic += kGemmMC) {
        const int64_t ic_end = min64(m, ic + kGemmMC);
        for (int64_t jr = 0; jr < cols; jr += kGemmNR) {  // one B panel stays in L1 across the A panels
          const float* b_panel = my_buf + (jr / kGemmNR) * kc * kGemmNR;
          for (int64_t ir = ic; ir < ic_end; ir += kGemmMR)
            gemm_ukernel(kc, a_block + ir * kc, b_panel, c + ir * ldc + j0 + jr, ldc,
                         static_cast<int>(min64(kGemmMR, m - ir)), static_cast<int>(min64(kGemmNR, cols - jr)), alpha,
                         block_beta, block_bias ? block_bias + ir : nullptr, bf16);
        }
      }
    }
  }
  if (kGemmAmx && bf16) amx_release();
  team_barrier(team);
  return true;
}

// C (m x n, row stride ldc) = alpha * A * B + beta * C (+ row_bias[i] per row), A packed by
// pack_a_matrix, B packed block by block by pack_b into b_buf (packed_b_floats(n, k) floats,
// shared by the team in team mode). With bf16, A was packed with bf16 too.
template <class PackB>
void gemm_packed(int64_t m, int64_t n, int64_t k, const float* packed_a, const PackB& pack_b, float* c, int64_t ldc,
                 float alpha, float beta, const float* row_bias, float* b_buf, bool team, bool bf16 = false) {
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
  if (gemm_by_columns(m, n, k, packed_a, pack_b, c, ldc, alpha, beta, row_bias, b_buf, team, bf16)) return;
  // Too few columns to share out: the team packs each B block together and splits its tiles.
  if (kGemmAmx && bf16) amx_configure();
  for (int64_t jc = 0; jc < n; jc += kGemmNC) {
    const int64_t nc = min64(kGemmNC, n - jc), n_panels = (nc + kGemmNR - 1) / kGemmNR;
    for (int64_t pc = 0; pc < k; pc += kGemmKC) {
      const int64_t kc = min64(kGemmKC, k - pc);
      int64_t begin, end;
      team_range(n_panels, team, &begin, &end);
      for (int64_t panel = begin; panel < end; ++panel) {
        pack_b(b_buf + panel * kc * kGemmNR, pc, kc, jc + panel * kGemmNR, min64(kGemmNR, nc - panel * kGemmNR));
        if (kGemmBf16Dot && bf16) pack_bf16_pairs(b_buf + panel * kc * kGemmNR, kc, kGemmNR);
      }
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
                       block_beta, block_bias ? block_bias + ir : nullptr, bf16);
        }
      }
      team_barrier(team);  // b_buf is overwritten by the next block
    }
  }
  if (kGemmAmx && bf16) amx_release();
}

// C (m x n, row stride ldc) = alpha * op(A) * B + beta * C on a team of this process's threads (one
// thread for small products), A packed up front into scratch and B block by block by pack_b:
// sgemm, and the convolutions whose B operand is gathered as it packs.
template <class PackB>
void team_gemm(float* c, int64_t ldc, const float* a, int64_t lda, bool trans_a, const PackB& pack_b, int64_t m,
               int64_t n, int64_t k, float alpha, float beta, bool bf16) {
  float* packed_a = thread_scratch(Scratch::pack_a, packed_a_floats(m, k));
  float* b_buf = thread_scratch(Scratch::pack_b, packed_b_floats(n, k));
  // Enough work per thread to pay for the team's barriers; small products run single-threaded.
  const int64_t flops = m * n * (k + 1);
  const int threads = flops < (int64_t(1) << 20) ? 1 : num_threads();
#pragma omp parallel num_threads(threads)
  {
    pack_a_matrix(packed_a, a, lda, trans_a, m, k, true, bf16);
    gemm_packed(m, n, k, packed_a, pack_b, c, ldc, alpha, beta, nullptr, b_buf, true, bf16);
  }
}

PCN_ISA_END
