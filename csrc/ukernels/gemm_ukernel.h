// f32 GEMM micro-kernel: an MR x NR register tile of C from packed panels of A and B.
//   a: kc x MR (MR floats per k, row i of the tile at a[k*MR + i])
//   b: kc x NR (NR floats per k, 64-byte aligned)
//   c: mr x nr block at row stride ldc, mr <= MR, nr <= NR (edge tiles go through a stack tile)
// Stores c = alpha * (a * b) + beta * c (+ row_bias[i] on every element of row i when given);
// beta == 0 means c is not read. One source for every ISA: the vector width and tile come from
// simd.h, so the SSE, AVX2 and AVX-512 builds share one tested code path. The avx512bf16 build
// also multiplies bfloat16 panels (pack_bf16_pairs) with vdpbf16ps into the same float32 tile.
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
#if defined(PCN_ISA_IS_avx512bf16)
constexpr bool kGemmBf16Dot = true;
#else
constexpr bool kGemmBf16Dot = false;
#endif

// A packed panel (kc x width floats, width per k) rewritten in place as bfloat16 pairs: 32-bit
// word (q, j) holds row 2q's value j in its low half and row 2q + 1's in its high half (zero past
// kc), the operand layout of vdpbf16ps. Rounds to nearest even (exact on bfloat16 values).
// The panel's floats read and written as bits (may_alias: the same memory is also float data).
typedef uint32_t vuint_u __attribute__((vector_size(kVecFloats * sizeof(uint32_t)), aligned(4), may_alias));
typedef uint32_t uint_alias __attribute__((may_alias));

template <class Bits>
static inline Bits bf16_upper_half(Bits bits) {
  return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
}

static inline void pack_bf16_pairs(float* panel, int64_t kc, int64_t width) {
  uint_alias* words = reinterpret_cast<uint_alias*>(panel);
  const uint_alias* bits = words;
  // Word q * width + j lies at or before float 2q * width + j: reading in order is safe as long as
  // each vector of pairs is computed before it is stored (only q = 0 overwrites its own input).
  for (int64_t q = 0; 2 * q < kc; ++q) {
    const uint_alias* even = bits + 2 * q * width;
    const bool has_odd = 2 * q + 1 < kc;
    uint_alias* out = words + q * width;
    int64_t j = 0;
    for (; j + kVecFloats <= width; j += kVecFloats) {
      const vuint_u e = *reinterpret_cast<const vuint_u*>(even + j);
      const vuint_u o = has_odd ? *reinterpret_cast<const vuint_u*>(even + width + j) : vuint_u{};
      *reinterpret_cast<vuint_u*>(out + j) = bf16_upper_half(e) | (bf16_upper_half(o) << 16);
    }
    for (; j < width; ++j)
      out[j] = bf16_upper_half(even[j]) | (has_odd ? bf16_upper_half(even[width + j]) << 16 : 0u);
  }
}

// The k loop: acc += A panel * B panel, float32 panels or (kBf16) bfloat16 pairs with vdpbf16ps.
template <int kRows, bool kBf16>
static inline void gemm_tile_sum(vfloat (&acc)[kRows][kGemmNRVecs], int64_t kc, const float* __restrict a,
                                 const float* __restrict b) {
  const vfloat* bp = reinterpret_cast<const vfloat*>(__builtin_assume_aligned(b, 64));
  if constexpr (kBf16) {
#if defined(PCN_ISA_IS_avx512bf16)
    const uint_alias* aw = reinterpret_cast<const uint_alias*>(a);
#pragma GCC unroll 4
    for (int64_t q = 0; q < (kc + 1) / 2; ++q) {
      __builtin_prefetch(aw + (q + kGemmPrefetchK) * kGemmMR, 0, 3);
      __m512bh bv[kGemmNRVecs];
      for (int j = 0; j < kGemmNRVecs; ++j) bv[j] = reinterpret_cast<__m512bh>(bp[q * kGemmNRVecs + j]);
      for (int i = 0; i < kRows; ++i) {
        const __m512bh ai = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(aw[q * kGemmMR + i])));
        for (int j = 0; j < kGemmNRVecs; ++j)
          acc[i][j] = reinterpret_cast<vfloat>(_mm512_dpbf16_ps(reinterpret_cast<__m512>(acc[i][j]), ai, bv[j]));
      }
    }
#endif
    return;
  }
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
}

template <int kRows, bool kBf16>
static inline void gemm_ukernel_rows(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                                     int64_t ldc, int nr, float alpha, float beta, const float* row_bias) {
  // Start fetching the C tile now so the update after the k loop does not wait on memory (C rows
  // are far apart and are touched once per k block).
  for (int i = 0; i < kRows; ++i) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + kGemmNR - 1, 1, 3);
  }
  vfloat acc[kRows][kGemmNRVecs] = {};
  gemm_tile_sum<kRows, kBf16>(acc, kc, a, b);

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

template <int kRows, bool kBf16>
static inline void gemm_ukernel_dispatch(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr,
                                         int nr, float alpha, float beta, const float* row_bias) {
  if constexpr (kRows > 1) {
    if (mr < kRows) return gemm_ukernel_dispatch<kRows - 1, kBf16>(kc, a, b, c, ldc, mr, nr, alpha, beta, row_bias);
  }
  gemm_ukernel_rows<kRows, kBf16>(kc, a, b, c, ldc, nr, alpha, beta, row_bias);
}

// bf16: a and b are bfloat16 pair panels (pack_bf16_pairs; only where kGemmBf16Dot).
static inline void gemm_ukernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                                int64_t ldc, int mr, int nr, float alpha, float beta, const float* row_bias,
                                bool bf16 = false) {
  if constexpr (kGemmBf16Dot) {
    if (bf16) {
      if (mr == kGemmMR) return gemm_ukernel_rows<kGemmMR, true>(kc, a, b, c, ldc, nr, alpha, beta, row_bias);
      return gemm_ukernel_dispatch<kGemmMR - 1, true>(kc, a, b, c, ldc, mr, nr, alpha, beta, row_bias);
    }
  }
  if (mr == kGemmMR) return gemm_ukernel_rows<kGemmMR, false>(kc, a, b, c, ldc, nr, alpha, beta, row_bias);
  gemm_ukernel_dispatch<kGemmMR - 1, false>(kc, a, b, c, ldc, mr, nr, alpha, beta, row_bias);
}

PCN_ISA_END
