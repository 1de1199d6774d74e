// Process-wide run-time services for kernels, compiled once: the thread count every parallel
// region uses, and per-thread reusable scratch memory.
#pragma once
#include <cstdint>

namespace pcn {

// Threads used by every OpenMP region (num_threads clause): the count set, lowered while other
// processes keep some of this process's CPUs busy and adaptive threading is on (Note [adaptive
// threads] in runtime.cpp). Read it once per kernel call and size everything from that value:
// two reads may differ. Always 1 in a child forked after the parent used more than one thread
// (Note [fork]).
int num_threads();
// The count set: starts at omp_get_max_threads(), which honours OMP_NUM_THREADS; kept here rather
// than in OpenMP's per-thread ICV so that a change made from one Python thread applies to kernels
// called from any other.
int configured_threads();
void set_num_threads(int threads);
// Adaptive threading: on unless the environment sets PYCONVNET_ADAPTIVE_THREADS=0.
bool adaptive_threads_enabled();
void set_adaptive_threads(bool enabled);
// How many whole CPUs to count as taken by other processes, given the count so far and the CPUs
// they were measured to use: rounds up from 0.4 of a CPU and down below 0.75 under the count, so
// that a measurement near a boundary does not flip the thread count back and forth.
int cpus_taken_by_others(int taken, double others_cpus);
// Other processes' CPU use (CPUs, averaged over the last measurement window) and the CPUs this
// process may run on; both 0 until measured, or where /proc/stat cannot be read.
struct CpuShare {
  double others_cpus;
  int cpus;
};
CpuShare last_cpu_share();

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
// rounded_first/second: autocast's operands rounded to bfloat16 for paths that multiply float32
// (bf16_rounded in gemm_driver.h); nothing else uses them, so a path may use every other slot.
enum class Scratch : int { pack_a = 0, pack_b, columns, partial, indices, weights, rounded_first, rounded_second, count_ };
float* thread_scratch(Scratch slot, int64_t count);
// The same memory viewed as int64 index tables.
int64_t* thread_scratch_i64(Scratch slot, int64_t count);

}  // namespace pcn
