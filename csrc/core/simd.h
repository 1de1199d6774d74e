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

static inline vfloat vload(const float* p) { return *reinterpret_cast<const vfloat_u*>(p); }
static inline void vstore(float* p, vfloat v) { *reinterpret_cast<vfloat_u*>(p) = v; }
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

PCN_ISA_END
