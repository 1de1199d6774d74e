// Small helpers for kernel sources, compiled per ISA (see Note [ISA namespaces]).
// Vector types use GNU vector extensions so that one source gives SSE2, AVX2 or AVX-512 code
// depending on the ISA's flags: kVecFloats is the float count of the widest register.
#pragma once
#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <cstdint>
#include <cstring>

#include "core/isa_namespace.h"
#include "core/runtime.h"

PCN_ISA_BEGIN

#if defined(PCN_ISA_IS_avx512)
constexpr int kVecFloats = 16;
#elif defined(PCN_ISA_IS_avx2)
constexpr int kVecFloats = 8;
#else
constexpr int kVecFloats = 4;
#endif

typedef float vfloat __attribute__((vector_size(kVecFloats * sizeof(float))));
// Same type with 4-byte alignment, for loads and stores at any float address.
typedef float vfloat_u __attribute__((vector_size(kVecFloats * sizeof(float)), aligned(4)));
// int32 lanes, one per float lane: what comparing two vfloats yields, and index lanes.
typedef int32_t vint __attribute__((vector_size(kVecFloats * sizeof(int32_t))));

// uint32 lanes: a vfloat's bits.
typedef uint32_t vuint __attribute__((vector_size(kVecFloats * sizeof(uint32_t))));

// Float bits rounded to bfloat16 (nearest, ties to even) and held as float32 bits; a NaN stays a
// quiet NaN and overflow gives inf. Bits is uint32_t or vuint (lanes at once).
template <class Bits>
static inline Bits bf16_rounded_bits(Bits bits) {
  const auto nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
  return (nan ? bits | 0x00400000u : bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
}

static inline float round_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits = bf16_rounded_bits(bits);
  std::memcpy(&value, &bits, 4);
  return value;
}

static inline vfloat vload(const float* p) { return *reinterpret_cast<const vfloat_u*>(p); }
static inline void vstore(float* p, vfloat v) { *reinterpret_cast<vfloat_u*>(p) = v; }
static inline vfloat round_to_bf16(vfloat v) { return (vfloat)bf16_rounded_bits((vuint)v); }

#if defined(PCN_ISA_IS_avx512)
// A store of the first min(n, 16) lanes of v (n <= 0: nothing), through a mask register: masked
// tails instead of scalar edges. (AVX2's masked store, vmaskmovps, is slow on AMD: the AVX2 paths
// keep their own tails.)
static inline void vstore_first(float* p, vfloat v, int64_t n) {
  const __mmask16 mask = n >= kVecFloats ? __mmask16(0xFFFF) : __mmask16((1u << (n > 0 ? n : 0)) - 1);
  _mm512_mask_storeu_ps(p, mask, reinterpret_cast<__m512>(v));
}
#endif

// One broadcast instruction. (vfloat{} + x would keep an add of +0.0, which is not an identity
// for -0.0, and a lane-by-lane fill is not always recognised.)
static inline vfloat vbroadcast(float x) {
#if defined(PCN_ISA_IS_avx512)
  return reinterpret_cast<vfloat>(_mm512_set1_ps(x));
#elif defined(PCN_ISA_IS_avx2)
  return reinterpret_cast<vfloat>(_mm256_set1_ps(x));
#elif defined(__SSE2__)
  return reinterpret_cast<vfloat>(_mm_set1_ps(x));
#else
  vfloat v;
  for (int i = 0; i < kVecFloats; ++i) v[i] = x;
  return v;
#endif
}

// Lanes kFirst, kFirst + 2, kFirst + 4, ... of the 2 * kVecFloats floats a then b: with kFirst 0
// and 1, the two column phases of a stride-2 row.
template <int kFirst>
static inline vfloat every_other_lane(vfloat a, vfloat b) {
  constexpr int f = kFirst;
#if defined(PCN_ISA_IS_avx512)
  return __builtin_shufflevector(a, b, f, f + 2, f + 4, f + 6, f + 8, f + 10, f + 12, f + 14, f + 16, f + 18, f + 20,
                                 f + 22, f + 24, f + 26, f + 28, f + 30);
#elif defined(PCN_ISA_IS_avx2)
  return __builtin_shufflevector(a, b, f, f + 2, f + 4, f + 6, f + 8, f + 10, f + 12, f + 14);
#else
  return __builtin_shufflevector(a, b, f, f + 2, f + 4, f + 6);
#endif
}

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline float minf(float a, float b) { return a < b ? a : b; }
static inline float maxf(float a, float b) { return a > b ? a : b; }

// Threads for a loop of `items` independent items that together touch about `elements` floats:
// no more threads than items, and one thread when the loop is too small to pay for waking a
// team (on a busy machine a team also waits for its slowest member to be scheduled).
constexpr int64_t kMinElementsPerThread = int64_t(1) << 15;

static inline int threads_for(int64_t items, int64_t elements) {
  const int64_t by_size = elements / kMinElementsPerThread;
  const int64_t limit = min64(min64(items, by_size), num_threads());
  return static_cast<int>(limit < 1 ? 1 : limit);
}

#if defined(__AVX2__)
// r[i][j] <- r[j][i] for an 8 x 8 block held in registers.
static inline void transpose8x8(__m256 (&r)[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]),
               t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]),
               t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
               t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// dst[q * ld_dst + r] = rows[r][q] for r, q < 8.
static inline void store_transposed8x8(float* dst, int64_t ld_dst, const float* const (&rows)[8]) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(rows[i]);
  transpose8x8(r);
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * ld_dst, r[i]);
}

// Vectors as groups of four lanes (one 128-bit lane each): kVecGroups of them.
constexpr int kVecGroups = kVecFloats / 4;

// A 4 x 4 transpose within each group of four lanes: r[i][4g + j] <- r[j][4g + i].
static inline void transpose4x4_groups(vfloat (&r)[4]) {
#if defined(PCN_ISA_IS_avx512)
  const __m512 r0 = reinterpret_cast<__m512>(r[0]), r1 = reinterpret_cast<__m512>(r[1]),
               r2 = reinterpret_cast<__m512>(r[2]), r3 = reinterpret_cast<__m512>(r[3]);
  const __m512 lo01 = _mm512_unpacklo_ps(r0, r1), hi01 = _mm512_unpackhi_ps(r0, r1), lo23 = _mm512_unpacklo_ps(r2, r3),
               hi23 = _mm512_unpackhi_ps(r2, r3);
  r[0] = reinterpret_cast<vfloat>(_mm512_shuffle_ps(lo01, lo23, 0x44));
  r[1] = reinterpret_cast<vfloat>(_mm512_shuffle_ps(lo01, lo23, 0xEE));
  r[2] = reinterpret_cast<vfloat>(_mm512_shuffle_ps(hi01, hi23, 0x44));
  r[3] = reinterpret_cast<vfloat>(_mm512_shuffle_ps(hi01, hi23, 0xEE));
#else
  const __m256 r0 = reinterpret_cast<__m256>(r[0]), r1 = reinterpret_cast<__m256>(r[1]),
               r2 = reinterpret_cast<__m256>(r[2]), r3 = reinterpret_cast<__m256>(r[3]);
  const __m256 lo01 = _mm256_unpacklo_ps(r0, r1), hi01 = _mm256_unpackhi_ps(r0, r1), lo23 = _mm256_unpacklo_ps(r2, r3),
               hi23 = _mm256_unpackhi_ps(r2, r3);
  r[0] = reinterpret_cast<vfloat>(_mm256_shuffle_ps(lo01, lo23, 0x44));
  r[1] = reinterpret_cast<vfloat>(_mm256_shuffle_ps(lo01, lo23, 0xEE));
  r[2] = reinterpret_cast<vfloat>(_mm256_shuffle_ps(hi01, hi23, 0x44));
  r[3] = reinterpret_cast<vfloat>(_mm256_shuffle_ps(hi01, hi23, 0xEE));
#endif
}

// The first n[g] floats (0 to 4) of group g of v to dst[g], and the inverse (zeros in the other
// lanes); nothing is read or written past them. Partial groups are masked on AVX-512; on AVX2 they go
// float by float in a loop of fixed length (GCC made the copy of n floats a `rep movs`).
static inline void store_groups(float* const (&dst)[kVecGroups], vfloat v, const int (&n)[kVecGroups]) {
#if defined(PCN_ISA_IS_avx512)
  const __m512 x = reinterpret_cast<__m512>(v);
  const __m128 groups[4] = {_mm512_castps512_ps128(x), _mm512_extractf32x4_ps(x, 1), _mm512_extractf32x4_ps(x, 2),
                            _mm512_extractf32x4_ps(x, 3)};
  for (int g = 0; g < 4; ++g) {
    // Kept in a register: GCC would fuse the extract and the masked store into vextractf32x4
    // m128{k}, which on Zen 4 faults on its masked-out lanes (even with an all-zero mask) when they
    // cross into an unmapped page, as a tile's last row at the end of an output buffer does;
    // vmovups m128{k} suppresses the fault as the ISA says.
    __m128 group = groups[g];
    asm("" : "+v"(group));
    _mm_mask_storeu_ps(dst[g], __mmask8((1u << n[g]) - 1), group);
  }
#else
  const __m256 x = reinterpret_cast<__m256>(v);
  const __m128 groups[2] = {_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1)};
  for (int g = 0; g < 2; ++g) {
    if (n[g] == 4) {
      _mm_storeu_ps(dst[g], groups[g]);
      continue;
    }
    alignas(16) float part[4];
    _mm_store_ps(part, groups[g]);
    for (int j = 0; j < 4; ++j)
      if (j < n[g]) dst[g][j] = part[j];
  }
#endif
}

static inline vfloat load_groups(const float* const (&src)[kVecGroups], const int (&n)[kVecGroups]) {
  __m128 groups[kVecGroups];
  for (int g = 0; g < kVecGroups; ++g) {
#if defined(PCN_ISA_IS_avx512)
    groups[g] = _mm_maskz_loadu_ps(__mmask8((1u << n[g]) - 1), src[g]);
#else
    if (n[g] == 4) {
      groups[g] = _mm_loadu_ps(src[g]);
      continue;
    }
    alignas(16) float part[4];
    for (int j = 0; j < 4; ++j) part[j] = j < n[g] ? src[g][j] : 0.0f;
    groups[g] = _mm_load_ps(part);
#endif
  }
  const __m256 lo = _mm256_insertf128_ps(_mm256_castps128_ps256(groups[0]), groups[1], 1);
#if defined(PCN_ISA_IS_avx512)
  const __m256 hi = _mm256_insertf128_ps(_mm256_castps128_ps256(groups[2]), groups[3], 1);
  return reinterpret_cast<vfloat>(_mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
#else
  return reinterpret_cast<vfloat>(lo);
#endif
}

// Eight floats from p, those whose bit is set in `read` (the others zero and not accessed).
static inline __m256 load8_masked(const float* p, unsigned read) {
#if defined(PCN_ISA_IS_avx512)
  return _mm256_maskz_loadu_ps(__mmask8(read), p);
#else
  if (read == 0xFFu) return _mm256_loadu_ps(p);
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i mask = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(read)), bit), bit);
  return _mm256_maskload_ps(p, mask);
#endif
}

// columns[j][lane] = rows[lane][j] for j < 8 (zero where bit j of read[lane] is clear): eight
// floats from each lane's row, transposed. AVX2: one 8x8 register transpose. AVX-512: lanes l and
// l + 8 share a register (one row in each half), go through the same in-lane steps, and a
// two-source permute puts the halves in lane order.
static inline void load_transposed8(const float* const (&rows)[kVecFloats], const unsigned (&read)[kVecFloats],
                                    vfloat (&columns)[8]) {
#if defined(PCN_ISA_IS_avx512)
  __m512 r[8];
  for (int l = 0; l < 8; ++l)
    r[l] = _mm512_insertf32x8(_mm512_castps256_ps512(load8_masked(rows[l], read[l])),
                              load8_masked(rows[l + 8], read[l + 8]), 1);
  __m512 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // u[j] (j < 4) holds columns j and j + 4 of rows 0-3 in its 128-bit groups 0 and 1 (lanes 0-3)
  // and 2 and 3 (lanes 8-11); u[4 + j] the same for rows 4-7.
  const __m512i low = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
  const __m512i high = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  for (int j = 0; j < 4; ++j) {
    columns[j] = reinterpret_cast<vfloat>(_mm512_permutex2var_ps(u[j], low, u[4 + j]));
    columns[4 + j] = reinterpret_cast<vfloat>(_mm512_permutex2var_ps(u[j], high, u[4 + j]));
  }
#else
  __m256 r[8];
  for (int l = 0; l < 8; ++l) r[l] = load8_masked(rows[l], read[l]);
  transpose8x8(r);
  for (int j = 0; j < 8; ++j) columns[j] = reinterpret_cast<vfloat>(r[j]);
#endif
}
#endif

PCN_ISA_END
