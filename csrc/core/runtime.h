// Process-wide run-time services for kernels, compiled once: the thread count every parallel
// region uses, and per-thread reusable scratch memory.
#pragma once
#include <cstdint>

namespace pcn {

// Threads used by every OpenMP region (num_threads clause). Starts at omp_get_max_threads(),
// which honours OMP_NUM_THREADS; kept here rather than in OpenMP's per-thread ICV so that a
// change made from one Python thread applies to kernels called from any other. Always 1 in a
// child forked after the parent used more than one thread (Note [fork] in runtime.cpp).
int num_threads();
void set_num_threads(int threads);

// Whether 3x3 stride-1 convolutions may use Winograd's algorithm (conv_winograd.h); on unless
// the environment sets PYCONVNET_WINOGRAD=0. Turning it off selects the direct kernels, for
// comparing the two or ruling out the transforms' rounding.
bool winograd_enabled();
void set_winograd_enabled(bool enabled);

// The machine's physical memory in bytes; 0 where the OS does not tell.
int64_t physical_memory_bytes();

// Scratch memory owned by the calling thread, 64-byte aligned, at least `count` floats. Slots
// let one kernel hold several buffers at once. Buffers grow and are reused across calls (never
// shrink) so hot paths do not allocate; contents are unspecified.
// Call it only outside OpenMP parallel regions (it may throw std::bad_alloc, which must not cross
// a region): size it for all threads at once and hand each thread its slice.
enum class Scratch : int { pack_a = 0, pack_b, columns, partial, indices, weights, count_ };
float* thread_scratch(Scratch slot, int64_t count);
// The same memory viewed as int64 index tables.
int64_t* thread_scratch_i64(Scratch slot, int64_t count);

}  // namespace pcn
