// f32 GEMM micro-kernel: an MR x NR register tile of C from packed panels of A and B.
//   a: kc x MR (MR floats per k, row i of the tile at a[k*MR + i])
//   b: kc x NR (NR floats per k, 64-byte aligned)
//   c: mr x nr block at row stride ldc, mr <= MR, nr <= NR (edge tiles go through a stack tile)
// Stores c = alpha * (a * b) + beta * c (+ row_bias[i] on every element of row i when given);
// beta == 0 means c is not read. One source for every ISA: the vector width and tile come from
// simd.h, so the SSE, AVX2 and AVX-512 builds share one tested code path.
#pragma once
#include "core/simd.h"

PCN_ISA_BEGIN

#if defined(PCN_ISA_IS_avx512)
constexpr int kGemmMR = 12, kGemmNR = 32;  // 24 accumulators of 32 zmm
constexpr int64_t kGemmKC = 256, kGemmMC = 144, kGemmNC = 2048;
#elif defined(PCN_ISA_IS_avx2)
constexpr int kGemmMR = 6, kGemmNR = 16;  // 12 accumulators of 16 ymm
constexpr int64_t kGemmKC = 256, kGemmMC = 120, kGemmNC = 2048;
#else
constexpr int kGemmMR = 6, kGemmNR = 8;  // 12 accumulators of 16 xmm
constexpr int64_t kGemmKC = 256, kGemmMC = 96, kGemmNC = 2048;
#endif
constexpr int kGemmNRVecs = kGemmNR / kVecFloats;
// How many k steps ahead the micro-kernel prefetches its A sliver.
constexpr int64_t kGemmPrefetchK = 8;

// The tile for the first kRows rows of the A panel (kRows <= MR): edge panels of A (m not a
// multiple of MR) multiply only the rows that exist instead of zero padding.
template <int kRows>
static inline void gemm_ukernel_rows(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                                     int64_t ldc, int nr, float alpha, float beta, const float* row_bias) {
  // Start fetching the C tile now so the update after the k loop does not wait on memory (C rows
  // are far apart and are touched once per k block).
  for (int i = 0; i < kRows; ++i) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + kGemmNR - 1, 1, 3);
  }
  vfloat acc[kRows][kGemmNRVecs] = {};
  const vfloat* bp = reinterpret_cast<const vfloat*>(__builtin_assume_aligned(b, 64));
  // A streams from L2 once per tile: prefetch it kGemmPrefetchK steps ahead (measured better than
  // one prefetch per cache line). B stays in L1 across the tiles of one B panel.
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __builtin_prefetch(a + (k + kGemmPrefetchK) * kGemmMR, 0, 3);
    vfloat bv[kGemmNRVecs];
    for (int j = 0; j < kGemmNRVecs; ++j) bv[j] = bp[k * kGemmNRVecs + j];
    for (int i = 0; i < kRows; ++i) {
      const vfloat ai = vbroadcast(a[k * kGemmMR + i]);
      for (int j = 0; j < kGemmNRVecs; ++j) acc[i][j] += ai * bv[j];
    }
  }

  if (nr == kGemmNR) {
    for (int i = 0; i < kRows; ++i) {
      const vfloat bias = vbroadcast(row_bias ? row_bias[i] : 0.0f);
      for (int j = 0; j < kGemmNRVecs; ++j) {
        float* dst = c + i * ldc + j * kVecFloats;
        vfloat v = vbroadcast(alpha) * acc[i][j] + bias;
        if (beta != 0.0f) v += vbroadcast(beta) * vload(dst);
        vstore(dst, v);
      }
    }
    return;
  }
  // Edge tile: spill the accumulators, then merge only the nr columns that exist.
  alignas(64) float tile[kRows * kGemmNR];
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < kGemmNRVecs; ++j) vstore(tile + i * kGemmNR + j * kVecFloats, acc[i][j]);
  for (int i = 0; i < kRows; ++i) {
    const float bias = row_bias ? row_bias[i] : 0.0f;
    for (int j = 0; j < nr; ++j) {
      float v = alpha * tile[i * kGemmNR + j] + bias;
      if (beta != 0.0f) v += beta * c[i * ldc + j];
      c[i * ldc + j] = v;
    }
  }
}

template <int kRows>
static inline void gemm_ukernel_dispatch(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr,
                                         int nr, float alpha, float beta, const float* row_bias) {
  if constexpr (kRows > 1) {
    if (mr < kRows) return gemm_ukernel_dispatch<kRows - 1>(kc, a, b, c, ldc, mr, nr, alpha, beta, row_bias);
  }
  gemm_ukernel_rows<kRows>(kc, a, b, c, ldc, nr, alpha, beta, row_bias);
}

static inline void gemm_ukernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                                int64_t ldc, int mr, int nr, float alpha, float beta, const float* row_bias) {
  if (mr == kGemmMR) return gemm_ukernel_rows<kGemmMR>(kc, a, b, c, ldc, nr, alpha, beta, row_bias);
  gemm_ukernel_dispatch<kGemmMR - 1>(kc, a, b, c, ldc, mr, nr, alpha, beta, row_bias);
}

PCN_ISA_END
