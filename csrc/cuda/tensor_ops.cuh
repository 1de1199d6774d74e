// Host launchers for the GPU array primitives behind the CudaArray facade (numpy semantics):
// elementwise ops with broadcasting and casting, strided copies, reductions, scans, gathers and
// scatters, sorting and counter-based random numbers. Declarations only (no device code), so the
// g++-compiled binding (bindings/tensor_ops.cpp) includes it; the kernels are in tensor_ops.cu.
// Every launcher runs asynchronously on `stream`, except nonzero (it must learn the count).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/device_array.h"

namespace pcn::cuda {

// Elementwise launches see at most this many dimensions after the binding has dropped size-1
// dimensions and merged dimensions that are contiguous in every operand.
constexpr int kMaxDims = 8;
constexpr int kMaxInputs = 3;

// One switch inside one kernel per compute type serves every op (compile time stays small).
// Unary ops read in[0]; binary ops in[0] op in[1]; `where` is in[0] ? in[1] : in[2]; `copy` casts.
enum class EwOp : int32_t {
  copy, neg, abs, sign, exp, log, sqrt, square, reciprocal, tanh, sigmoid, floor, ceil, round, trunc,
  logical_not, isnan, isinf, isfinite, signbit, sin, cos, log1p, expm1, erf,
  add, sub, mul, div, floordiv, mod, pow, maximum, minimum, eq, ne, lt, le, gt, ge,
  logical_and, logical_or, logical_xor, bitwise_and, bitwise_or, bitwise_xor, atan2, copysign, where
};

// An operand: element (i_0, ..., i_{ndim-1}) is data[sum(i_j * strides[j])] (strides in elements,
// 0 on broadcast dimensions, may be negative). A null `data` stands for a scalar constant: the
// kernel reads constant_f when it computes in float32 and constant_i when it computes in int64.
struct EwOperand {
  void* data = nullptr;
  Dtype dtype = Dtype::float32;
  int64_t strides[kMaxDims] = {};
  double constant_f = 0;
  int64_t constant_i = 0;
};

// out = op(in...) over `shape` (ndim <= kMaxDims, numel > 0). Values are converted to the compute
// type on load and to out.dtype on store: float -> integer truncates toward zero (NaN and values
// outside int64 give int64 min, as x86 does), -> bool is != 0, int64 -> uint8 wraps.
struct EwLaunch {
  EwOp op = EwOp::copy;
  int32_t ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t numel = 0;
  EwOperand out;
  EwOperand in[kMaxInputs];
};
// compute: Dtype::float32 or Dtype::int64 (bool and uint8 values compute as int64).
void elementwise(const EwLaunch& launch, Dtype compute, cudaStream_t stream);

// out[i] = start + i * step for i < count: in int64 when integer_steps, else in double, then stored
// as out_dtype.
void arange(void* out, Dtype out_dtype, int64_t count, bool integer_steps, int64_t start_i, int64_t step_i,
            double start_f, double step_f, cudaStream_t stream);

enum class ReduceOp : int32_t { sum, prod, max, min, any, all, mean };
// in: (rows, row_len) C-contiguous of in_dtype; out[r] = op(in[r, :]) stored as out_dtype, computed
// in `compute` (float32 or int64). Order (deterministic, fixed by the sizes): thread t of a block
// combines elements t, t + 256, t + 512, ... of its chunk in order, then a binary tree joins the 256
// partial results; long rows of few-row inputs are split into chunks whose results a second pass
// joins the same way. row_len 0 gives the identity (mean: NaN).
void reduce_rows(void* out, Dtype out_dtype, const void* in, Dtype in_dtype, int64_t rows, int64_t row_len,
                 ReduceOp op, Dtype compute, int device, cudaStream_t stream);

// out[r] = index of the max (is_max) or min of in[r, :] (rows, row_len >= 1): the first one on ties;
// NaN counts as the extreme.
void arg_reduce_rows(int64_t* out, const void* in, Dtype in_dtype, int64_t rows, int64_t row_len, bool is_max,
                     cudaStream_t stream);

// in, out: (outer, n, inner) C-contiguous; out[o, j, k] = sum(in[o, :j+1, k]) summed in order, in
// `compute` (float32 or int64); one thread owns one (o, k) line.
void cumsum(void* out, Dtype out_dtype, const void* in, Dtype in_dtype, int64_t outer, int64_t n, int64_t inner,
            Dtype compute, cudaStream_t stream);

// Index conventions of the gathers and scatters below: an index i in [-n, n) addresses element
// i (+ n when negative) along an axis of size n. Indices are not checked on the host (that would
// need a synchronising copy); the Python layer validates the indices it builds. An index outside
// [-n, n) cannot touch memory outside the arrays: a gather writes 0 for it, a scatter skips it.

// Iteration space of take/put_along_axis: `shape` is the broadcast of index and the array (the
// array's extent along `axis` replaced by index's); strides in elements, 0 on broadcast dims.
// The array's element is at sum over d != axis of i_d * array_strides[d] + idx * array_strides[axis].
struct AlongAxis {
  int32_t ndim = 0;
  int32_t axis = 0;
  int64_t shape[kMaxDims] = {};
  int64_t numel = 0;
  int64_t axis_size = 0;  // the array's extent along axis (the range of the index values)
  int64_t index_strides[kMaxDims] = {};
  int64_t array_strides[kMaxDims] = {};
  int64_t src_strides[kMaxDims] = {};  // put_along_axis's values
};
// out (contiguous, AlongAxis::shape) = x[..., index[...], ...]; x and out of `dtype`.
void take_along_axis(void* out, const void* x, Dtype dtype, const int64_t* index, const AlongAxis& a,
                     cudaStream_t stream);
// dst[..., index[...], ...] = src (or += when accumulate; dst and src of `dtype`). Duplicate
// indices: without accumulate one of the writes wins (unspecified which, as in numpy's docs);
// with accumulate, float32/int64 add with atomics (float sums then depend on the order only in
// rounding) and bool ORs.
void put_along_axis(void* dst, Dtype dtype, const int64_t* index, const void* src, const AlongAxis& a,
                    bool accumulate, cudaStream_t stream);

// x: (outer, n, inner), index: `count` values, out: (outer, count, inner) = x[:, index, :].
void index_select(void* out, const void* x, Dtype dtype, const int64_t* index, int64_t outer, int64_t n,
                  int64_t inner, int64_t count, cudaStream_t stream);
// dst: (outer, n, inner), src: (outer, count, inner): dst[:, index[j], :] += src[:, j, :], with
// atomics (float32 or int64; float results depend on the order of duplicate indices only in rounding).
void index_add(void* dst, Dtype dtype, const int64_t* index, const void* src, int64_t outer, int64_t n,
               int64_t inner, int64_t count, cudaStream_t stream);

// The coordinates of x's non-zero elements in C order: an int64 (count, x.ndim) array (x.ndim <=
// kMaxDims). Synchronises `stream` once to learn the count (a device-to-host copy, counted).
DeviceArray nonzero(const DeviceArray& x, cudaStream_t stream);

// x: (rows, n) C-contiguous; values (same dtype) and int64 indices (rows, n): each row sorted
// stably (ascending: NaN last; descending: NaN first, as torch). A merge sort: log2(n) passes.
void sort_rows(void* values, int64_t* indices, const void* x, Dtype dtype, int64_t rows, int64_t n, bool descending,
               int device, cudaStream_t stream);

// Counter-based random numbers: element i depends only on (seed, i), the same on every GPU.
void uniform(float* out, int64_t count, float low, float high, uint64_t seed, cudaStream_t stream);
void normal(float* out, int64_t count, float mean, float std, uint64_t seed, cudaStream_t stream);
// Uniform in [low, high) (high > low).
void randint(int64_t* out, int64_t count, int64_t low, int64_t high, uint64_t seed, cudaStream_t stream);

}  // namespace pcn::cuda
