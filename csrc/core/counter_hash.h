// The counter-based hash behind dropout's masks, shared by the CPU kernels (csrc/kernels) and the
// GPU kernels (csrc/cuda): mask entry k under a seed is a pure function of (seed, k), so both
// devices, every ISA and every thread count draw bit-identical masks.
// Internal linkage (unnamed namespace): each file that includes this, and each ISA's compile of a
// kernel source, gets its own copy, so no weak symbol is shared between ISAs (Note [ISA namespaces]).
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define PCN_HOST_DEVICE __host__ __device__
#else
#define PCN_HOST_DEVICE
#endif

namespace pcn {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// splitmix64's finaliser: a bijective 64-bit mix.
PCN_HOST_DEVICE inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The per-call key of dropout's hash.
PCN_HOST_DEVICE inline uint64_t dropout_key(uint64_t seed) { return mix64(seed + kGolden); }

// Entry k is kept when the top 32 bits of its hash reach p * 2^32 (never for p = 1).
PCN_HOST_DEVICE inline uint64_t drop_threshold(float p) {
  return static_cast<uint64_t>(static_cast<double>(p) * 4294967296.0);
}

PCN_HOST_DEVICE inline bool dropout_keeps(uint64_t key, int64_t k, uint64_t threshold) {
  return (mix64(key + static_cast<uint64_t>(k + 1) * kGolden) >> 32) >= threshold;
}

}  // namespace
}  // namespace pcn
