// f32 GEMM micro-kernel: an MR x NR register tile of C from packed panels of A and B.
//   a: kc x MR (MR floats per k, row i of the tile at a[k*MR + i])
//   b: kc x NR (NR floats per k, 64-byte aligned)
//   c: mr x nr block at row stride ldc, mr <= MR, nr <= NR (edge tiles go through a stack tile)
// Stores c = alpha * (a * b) + beta * c (+ row_bias[i] on every element of row i when given);
// beta == 0 means c is not read. One source for every ISA: the vector width and tile come from
// simd.h, so the SSE, AVX2 and AVX-512 builds share one tested code path. The avx512bf16 build
// also multiplies bfloat16 panels (pack_bf16_pairs) with vdpbf16ps into the same float32 tile, and
// the amx build multiplies them with AMX tiles (gemm_ukernel_amx).
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
  return bf16_rounded_bits(bits) >> 16;
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

#if defined(PCN_ISA_IS_amx)
constexpr bool kGemmAmx = true;
// Note [AMX tiles]
// tdpbf16ps multiplies an A tile (up to 16 rows of 16 bfloat16 pairs along k, 64 bytes a row) by a
// B tile (16 rows of pairs, each 16 columns of one pair) into a float32 C tile (16 x 16). The B
// panels of pack_bf16_pairs are already B tiles side by side (row q: pair q of 32 columns, 128
// bytes), so a 12 x 32 micro-tile is two C tiles fed by one A tile and two B tiles per 16 pairs.
// A's panel is rewritten row by row (pack_bf16_a_panel). Tiles hold the configuration loaded by
// amx_configure on the thread that uses them; the driver loads it at the start of each bf16 GEMM
// and releases it at the end, as other libraries in the process (oneDNN) may configure or
// release the tiles between calls.
constexpr int64_t kAmxPairs = 16;  // pairs along k per tile step
// Tiles 0 and 1: C's two 12 x 16 halves; 2: A (12 rows); 3 and 4: B's two 16-column halves. GCC's
// tile intrinsics paste their tile operands into the assembly text, so they are written as literals.
constexpr int kAmxTiles = 5, kAmxFirstBTile = 3;

struct alignas(64) AmxTileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t bytes_per_row[16];
  uint8_t rows[16];
};

// GCC's tile loads and stores pass only an address to their assembly, so the compiler does not see
// them read or write memory: stores to a buffer a tile then loads must be fenced before the load,
// and a buffer a tile was stored to must be fenced before it is read.
static inline void amx_memory_barrier() { __asm__ volatile("" ::: "memory"); }

// Loads palette 1 on the calling thread: tiles 0 to count - 1 of rows[t] rows of 64 bytes.
static inline void amx_load_config(const uint8_t* rows, int count) {
  AmxTileConfig config = {};
  config.palette = 1;
  for (int tile = 0; tile < count; ++tile) {
    config.rows[tile] = rows[tile];
    config.bytes_per_row[tile] = 64;
  }
  amx_memory_barrier();
  _tile_loadconfig(&config);
}

static inline void amx_configure() {
  uint8_t rows[kAmxTiles];
  for (int tile = 0; tile < kAmxTiles; ++tile) rows[tile] = tile >= kAmxFirstBTile ? kAmxPairs : kGemmMR;
  amx_load_config(rows, kAmxTiles);
}

static inline void amx_release() { _tile_release(); }
#else
constexpr bool kGemmAmx = false;
static inline void amx_configure() {}
static inline void amx_release() {}
#endif

// A packed A panel (kc x MR floats) as the bf16 micro-kernel reads it: bfloat16 pairs, then (amx)
// rows of pairs: with pairs = (kc + 1) / 2, word i * pairs + q holds row i's pair q.
static inline void pack_bf16_a_panel(float* panel, int64_t kc) {
  pack_bf16_pairs(panel, kc, kGemmMR);
  if constexpr (kGemmAmx) {
    const int64_t pairs = (kc + 1) / 2;
    uint32_t rows[kGemmMR * ((kGemmKC + 1) / 2)];
    uint_alias* words = reinterpret_cast<uint_alias*>(panel);
    for (int64_t q = 0; q < pairs; ++q)
      for (int i = 0; i < kGemmMR; ++i) rows[i * pairs + q] = words[q * kGemmMR + i];
    for (int64_t w = 0; w < pairs * kGemmMR; ++w) words[w] = rows[w];
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

#if defined(PCN_ISA_IS_amx)
// The bf16 tile on AMX (Note [AMX tiles]): a from pack_bf16_a_panel, b from pack_bf16_pairs.
static inline void gemm_ukernel_amx(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr,
                                    float alpha, float beta, const float* row_bias) {
  const int64_t pairs = (kc + 1) / 2;
  const uint_alias* aw = reinterpret_cast<const uint_alias*>(a);
  const uint_alias* bw = reinterpret_cast<const uint_alias*>(b);
  amx_memory_barrier();  // the packed panels are written before the tiles load them
  _tile_zero(0);
  _tile_zero(1);
  int64_t q = 0;
  for (; q + kAmxPairs <= pairs; q += kAmxPairs) {
    _tile_loadd(2, aw + q, pairs * 4);
    _tile_loadd(3, bw + q * kGemmNR, kGemmNR * 4);
    _tile_loadd(4, bw + q * kGemmNR + 16, kGemmNR * 4);
    _tile_dpbf16ps(0, 2, 3);
    _tile_dpbf16ps(1, 2, 4);
  }
  if (q < pairs) {  // the last pairs through zero-padded copies: the tiles' shapes stay fixed
    alignas(64) uint32_t a_rest[kGemmMR * kAmxPairs] = {}, b_rest[kAmxPairs * kGemmNR] = {};
    const int64_t rest = pairs - q;
    for (int i = 0; i < kGemmMR; ++i)
      for (int64_t p = 0; p < rest; ++p) a_rest[i * kAmxPairs + p] = aw[i * pairs + q + p];
    for (int64_t p = 0; p < rest * kGemmNR; ++p) b_rest[p] = bw[q * kGemmNR + p];
    amx_memory_barrier();
    _tile_loadd(2, a_rest, kAmxPairs * 4);
    _tile_loadd(3, b_rest, kGemmNR * 4);
    _tile_loadd(4, b_rest + 16, kGemmNR * 4);
    _tile_dpbf16ps(0, 2, 3);
    _tile_dpbf16ps(1, 2, 4);
  }
  alignas(64) float tile[kGemmMR * kGemmNR];
  _tile_stored(0, tile, kGemmNR * 4);
  _tile_stored(1, tile + 16, kGemmNR * 4);
  amx_memory_barrier();
  for (int i = 0; i < mr; ++i) {
    const float bias = row_bias ? row_bias[i] : 0.0f;
    float* dst = c + i * ldc;
    if (nr == kGemmNR) {
      for (int j = 0; j < kGemmNRVecs; ++j) {
        vfloat v = vbroadcast(alpha) * vload(tile + i * kGemmNR + j * kVecFloats) + vbroadcast(bias);
        if (beta != 0.0f) v += vbroadcast(beta) * vload(dst + j * kVecFloats);
        vstore(dst + j * kVecFloats, v);
      }
      continue;
    }
    for (int j = 0; j < nr; ++j) {
      float v = alpha * tile[i * kGemmNR + j] + bias;
      if (beta != 0.0f) v += beta * dst[j];
      dst[j] = v;
    }
  }
}
#endif

// bf16: a and b are bfloat16 panels (pack_bf16_a_panel, pack_bf16_pairs; only where kGemmBf16Dot).
static inline void gemm_ukernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                                int64_t ldc, int mr, int nr, float alpha, float beta, const float* row_bias,
                                bool bf16 = false) {
  if constexpr (kGemmBf16Dot) {
    if (bf16) {
#if defined(PCN_ISA_IS_amx)
      return gemm_ukernel_amx(kc, a, b, c, ldc, mr, nr, alpha, beta, row_bias);
#endif
      if (mr == kGemmMR) return gemm_ukernel_rows<kGemmMR, true>(kc, a, b, c, ldc, nr, alpha, beta, row_bias);
      return gemm_ukernel_dispatch<kGemmMR - 1, true>(kc, a, b, c, ldc, mr, nr, alpha, beta, row_bias);
    }
  }
  if (mr == kGemmMR) return gemm_ukernel_rows<kGemmMR, false>(kc, a, b, c, ldc, nr, alpha, beta, row_bias);
  gemm_ukernel_dispatch<kGemmMR - 1, false>(kc, a, b, c, ldc, mr, nr, alpha, beta, row_bias);
}

PCN_ISA_END
