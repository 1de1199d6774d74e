// Kernels of the GPU array primitives (declared, with their contracts, in tensor_ops.cuh).
// Values are read and written through a runtime dtype switch (load/store), so one instantiation per
// compute type (float, int64) serves every dtype combination; the op is a switch inside the kernel.
// Integer arithmetic wraps (computed in uint64) instead of being undefined on overflow.
#include <cuda_runtime.h>

#include <cfloat>
#include <climits>
#include <cstdint>

#include "cuda/tensor_ops.cuh"

namespace pcn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 65535u * 8u;

__device__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

unsigned blocks_for_rows(int64_t rows) { return static_cast<unsigned>(rows < int64_t(kMaxBlocks) ? rows : kMaxBlocks); }

// float -> int64 as x86's cvttss2si: truncation, and int64 min for NaN and out-of-range values.
__device__ int64_t float_to_int64(float v) {
  if (!(v >= -0x1p63f && v < 0x1p63f)) return INT64_MIN;
  return static_cast<int64_t>(v);
}

template <class C>
__device__ C load(const void* data, Dtype dtype, int64_t i) {
  switch (dtype) {
    case Dtype::float32: {
      const float v = static_cast<const float*>(data)[i];
      if constexpr (sizeof(C) == 8) return float_to_int64(v);
      else return v;
    }
    case Dtype::int64: return static_cast<C>(static_cast<const int64_t*>(data)[i]);
    case Dtype::bool_: return static_cast<C>(static_cast<const bool*>(data)[i] ? 1 : 0);
    default: return static_cast<C>(static_cast<const uint8_t*>(data)[i]);
  }
}

template <class C>
__device__ void store(void* data, Dtype dtype, int64_t i, C v) {
  switch (dtype) {
    case Dtype::float32: static_cast<float*>(data)[i] = static_cast<float>(v); break;
    case Dtype::int64:
      if constexpr (sizeof(C) == 8) static_cast<int64_t*>(data)[i] = v;
      else static_cast<int64_t*>(data)[i] = float_to_int64(v);
      break;
    case Dtype::bool_: static_cast<bool*>(data)[i] = v != C(0); break;
    default:
      if constexpr (sizeof(C) == 8) static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(v);
      else static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(float_to_int64(v));
  }
}

template <class C>
__device__ C load_operand(const EwOperand& o, int64_t i) {
  if (o.data == nullptr) {
    if constexpr (sizeof(C) == 8) return o.constant_i;
    else return static_cast<float>(o.constant_f);
  }
  return load<C>(o.data, o.dtype, i);
}

// Wrapping int64 arithmetic.
__device__ int64_t wrap_add(int64_t a, int64_t b) { return int64_t(uint64_t(a) + uint64_t(b)); }
__device__ int64_t wrap_sub(int64_t a, int64_t b) { return int64_t(uint64_t(a) - uint64_t(b)); }
__device__ int64_t wrap_mul(int64_t a, int64_t b) { return int64_t(uint64_t(a) * uint64_t(b)); }

// numpy's floor division and modulo (the result of mod takes the divisor's sign); x / 0 gives 0.
__device__ int64_t int_floordiv(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (b == -1) return wrap_sub(0, a);
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
__device__ int64_t int_mod(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  const int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
// Non-negative exponents by squaring (wrapping); a negative exponent gives the integer part of
// 1 / a**|e| (numpy raises instead): 1 for a == 1, +-1 for a == -1, else 0.
__device__ int64_t int_pow(int64_t a, int64_t e) {
  if (e < 0) return a == 1 ? 1 : a == -1 ? ((e & 1) ? -1 : 1) : 0;
  int64_t result = 1;
  while (e > 0) {
    if (e & 1) result = wrap_mul(result, a);
    a = wrap_mul(a, a);
    e >>= 1;
  }
  return result;
}
// numpy's npy_divmodf: floor division consistent with mod; b == 0 gives a / b (inf or NaN).
__device__ float float_floordiv(float a, float b) {
  if (b == 0.0f) return a / b;
  float mod = fmodf(a, b);
  float div = (a - mod) / b;
  if (mod != 0.0f && ((b < 0.0f) != (mod < 0.0f))) div -= 1.0f;
  if (div == 0.0f) return copysignf(0.0f, a / b);
  float floordiv = floorf(div);
  if (div - floordiv > 0.5f) floordiv += 1.0f;
  return floordiv;
}
__device__ float float_mod(float a, float b) {
  if (b == 0.0f) return fmodf(a, b);
  float mod = fmodf(a, b);
  if (mod != 0.0f) {
    if ((b < 0.0f) != (mod < 0.0f)) mod += b;
  } else {
    mod = copysignf(0.0f, b);
  }
  return mod;
}

__device__ float apply(EwOp op, float a, float b, float c) {
  switch (op) {
    case EwOp::copy: return a;
    case EwOp::neg: return -a;
    case EwOp::abs: return fabsf(a);
    case EwOp::sign: return a > 0.0f ? 1.0f : a < 0.0f ? -1.0f : a;  // keeps 0 and NaN
    case EwOp::exp: return expf(a);
    case EwOp::log: return logf(a);
    case EwOp::sqrt: return sqrtf(a);
    case EwOp::square: return a * a;
    case EwOp::reciprocal: return 1.0f / a;
    case EwOp::tanh: return tanhf(a);
    case EwOp::sigmoid: return 1.0f / (1.0f + expf(-a));
    case EwOp::floor: return floorf(a);
    case EwOp::ceil: return ceilf(a);
    case EwOp::round: return rintf(a);  // the default rounding mode: half to even
    case EwOp::trunc: return truncf(a);
    case EwOp::logical_not: return a == 0.0f;
    case EwOp::isnan: return isnan(a);
    case EwOp::isinf: return isinf(a);
    case EwOp::isfinite: return isfinite(a);
    case EwOp::signbit: return signbit(a) ? 1.0f : 0.0f;
    case EwOp::sin: return sinf(a);
    case EwOp::cos: return cosf(a);
    case EwOp::log1p: return log1pf(a);
    case EwOp::expm1: return expm1f(a);
    case EwOp::erf: return erff(a);
    case EwOp::add: return a + b;
    case EwOp::sub: return a - b;
    case EwOp::mul: return a * b;
    case EwOp::div: return a / b;
    case EwOp::floordiv: return float_floordiv(a, b);
    case EwOp::mod: return float_mod(a, b);
    case EwOp::pow: return powf(a, b);
    case EwOp::maximum: return isnan(a) ? a : isnan(b) ? b : fmaxf(a, b);
    case EwOp::minimum: return isnan(a) ? a : isnan(b) ? b : fminf(a, b);
    case EwOp::eq: return a == b;
    case EwOp::ne: return a != b;
    case EwOp::lt: return a < b;
    case EwOp::le: return a <= b;
    case EwOp::gt: return a > b;
    case EwOp::ge: return a >= b;
    case EwOp::logical_and: return a != 0.0f && b != 0.0f;
    case EwOp::logical_or: return a != 0.0f || b != 0.0f;
    case EwOp::logical_xor: return (a != 0.0f) != (b != 0.0f);
    case EwOp::atan2: return atan2f(a, b);
    case EwOp::copysign: return copysignf(a, b);
    case EwOp::where: return a != 0.0f ? b : c;
    default: return 0.0f;  // bitwise ops: the binding never computes them in float
  }
}

__device__ int64_t apply(EwOp op, int64_t a, int64_t b, int64_t c) {
  switch (op) {
    case EwOp::copy: return a;
    case EwOp::neg: return wrap_sub(0, a);
    case EwOp::abs: return a < 0 ? wrap_sub(0, a) : a;
    case EwOp::sign: return (a > 0) - (a < 0);
    case EwOp::square: return wrap_mul(a, a);
    case EwOp::logical_not: return a == 0;
    case EwOp::isnan: return 0;
    case EwOp::isinf: return 0;
    case EwOp::isfinite: return 1;
    case EwOp::signbit: return a < 0;
    case EwOp::add: return wrap_add(a, b);
    case EwOp::sub: return wrap_sub(a, b);
    case EwOp::mul: return wrap_mul(a, b);
    case EwOp::floordiv: return int_floordiv(a, b);
    case EwOp::mod: return int_mod(a, b);
    case EwOp::pow: return int_pow(a, b);
    case EwOp::maximum: return a > b ? a : b;
    case EwOp::minimum: return a < b ? a : b;
    case EwOp::eq: return a == b;
    case EwOp::ne: return a != b;
    case EwOp::lt: return a < b;
    case EwOp::le: return a <= b;
    case EwOp::gt: return a > b;
    case EwOp::ge: return a >= b;
    case EwOp::logical_and: return a != 0 && b != 0;
    case EwOp::logical_or: return a != 0 || b != 0;
    case EwOp::logical_xor: return (a != 0) != (b != 0);
    case EwOp::bitwise_and: return a & b;
    case EwOp::bitwise_or: return a | b;
    case EwOp::bitwise_xor: return a ^ b;
    case EwOp::where: return a != 0 ? b : c;
    default: return 0;  // float-only ops: the binding computes them in float
  }
}

// One thread per output element (grid-stride): the flat index is split into coordinates from the
// last dimension (what remains for dimension 0 is its coordinate: no division there), and each
// operand's offset is the dot product of the coordinates with its strides.
template <class C>
__global__ void elementwise_kernel(EwLaunch l) {
  for (int64_t i = global_thread(); i < l.numel; i += grid_threads()) {
    int64_t out_offset = 0, in_offset[kMaxInputs] = {};
    int64_t rest = i;
    for (int d = l.ndim - 1; d >= 0; --d) {
      const int64_t coordinate = d > 0 ? rest % l.shape[d] : rest;
      if (d > 0) rest /= l.shape[d];
      out_offset += coordinate * l.out.strides[d];
      for (int k = 0; k < kMaxInputs; ++k) in_offset[k] += coordinate * l.in[k].strides[d];
    }
    const C a = load_operand<C>(l.in[0], in_offset[0]);
    const C b = load_operand<C>(l.in[1], in_offset[1]);
    const C c = load_operand<C>(l.in[2], in_offset[2]);
    store<C>(l.out.data, l.out.dtype, out_offset, apply(l.op, a, b, c));
  }
}

__global__ void arange_kernel(void* out, Dtype dtype, int64_t count, bool integer_steps, int64_t start_i,
                              int64_t step_i, double start_f, double step_f) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    if (integer_steps) store<int64_t>(out, dtype, i, wrap_add(start_i, wrap_mul(i, step_i)));
    else store<float>(out, dtype, i, static_cast<float>(start_f + double(i) * step_f));
  }
}

// ---- reductions ----

template <class C>
__device__ C reduce_identity(ReduceOp op) {
  switch (op) {
    case ReduceOp::prod:
    case ReduceOp::all: return C(1);
    case ReduceOp::max:
      if constexpr (sizeof(C) == 8) return INT64_MIN;
      else return -INFINITY;
    case ReduceOp::min:
      if constexpr (sizeof(C) == 8) return INT64_MAX;
      else return INFINITY;
    default: return C(0);  // sum, mean, any
  }
}

__device__ bool is_nan(float v) { return isnan(v); }
__device__ bool is_nan(int64_t) { return false; }

template <class C>
__device__ C reduce_combine(ReduceOp op, C a, C b) {
  switch (op) {
    case ReduceOp::prod:
      if constexpr (sizeof(C) == 8) return wrap_mul(a, b);
      else return a * b;
    case ReduceOp::max: return is_nan(a) ? a : is_nan(b) ? b : (a > b ? a : b);
    case ReduceOp::min: return is_nan(a) ? a : is_nan(b) ? b : (a < b ? a : b);
    case ReduceOp::any: return C((a != C(0) || b != C(0)) ? 1 : 0);
    case ReduceOp::all: return C((a != C(0) && b != C(0)) ? 1 : 0);
    default:  // sum, mean
      if constexpr (sizeof(C) == 8) return wrap_add(a, b);
      else return a + b;
  }
}

// Block b owns chunk (b % chunks) of row (b / chunks): elements [chunk * chunk_len, ...) of the
// row, at most chunk_len of them; it writes out[b]. mean divides the final sum by `divisor`.
template <class C>
__global__ void reduce_kernel(void* out, Dtype out_dtype, const void* in, Dtype in_dtype, int64_t rows,
                              int64_t row_len, int64_t chunks, int64_t chunk_len, ReduceOp op, int64_t divisor) {
  __shared__ C partial[kThreads];
  const int t = threadIdx.x;
  for (int64_t block = blockIdx.x; block < rows * chunks; block += gridDim.x) {
    const int64_t row = block / chunks, begin = (block % chunks) * chunk_len;
    const int64_t end = begin + chunk_len < row_len ? begin + chunk_len : row_len;
    C acc = reduce_identity<C>(op);
    for (int64_t j = begin + t; j < end; j += kThreads)
      acc = reduce_combine(op, acc, load<C>(in, in_dtype, row * row_len + j));
    partial[t] = acc;
    __syncthreads();
    for (int width = kThreads / 2; width > 0; width /= 2) {
      if (t < width) partial[t] = reduce_combine(op, partial[t], partial[t + width]);
      __syncthreads();
    }
    if (t == 0) {
      C result = partial[0];
      if (op == ReduceOp::mean) result = static_cast<C>(result / static_cast<C>(divisor));
      store<C>(out, out_dtype, block, result);
    }
    __syncthreads();  // partial[0] is read before the next row overwrites it
  }
}

template <class C>
void launch_reduce(void* out, Dtype out_dtype, const void* in, Dtype in_dtype, int64_t rows, int64_t row_len,
                   ReduceOp op, int device, cudaStream_t stream) {
  // Few long rows would leave most of the GPU idle: split them into chunks of about 8192 elements
  // (at most 1024 chunks) and join the chunk results in a second pass.
  constexpr int64_t kChunk = 8192, kMaxChunks = 1024;
  int64_t chunks = (row_len + kChunk - 1) / kChunk;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  if (rows >= 256 || chunks <= 1) {
    reduce_kernel<C><<<blocks_for_rows(rows), kThreads, 0, stream>>>(out, out_dtype, in, in_dtype, rows, row_len, 1,
                                                                     row_len, op, row_len);
    check_launch("reduce_kernel");
    return;
  }
  const int64_t chunk_len = (row_len + chunks - 1) / chunks;
  const Dtype compute = sizeof(C) == 8 ? Dtype::int64 : Dtype::float32;
  DeviceArray partial = empty({rows, chunks}, compute, device);
  const ReduceOp first = op == ReduceOp::mean ? ReduceOp::sum : op;
  reduce_kernel<C><<<blocks_for_rows(rows * chunks), kThreads, 0, stream>>>(
      partial.raw(), compute, in, in_dtype, rows, row_len, chunks, chunk_len, first, row_len);
  check_launch("reduce_kernel");
  reduce_kernel<C><<<blocks_for_rows(rows), kThreads, 0, stream>>>(out, out_dtype, partial.raw(), compute, rows,
                                                                   chunks, 1, chunks, op, row_len);
  check_launch("reduce_kernel");
}

// Whether (b, ib) beats (a, ia) for argmax (is_max) or argmin: NaN is the extreme, the lower index
// wins ties; ia < 0 marks "nothing seen yet".
template <class C>
__device__ bool arg_better(C a, int64_t ia, C b, int64_t ib, bool is_max) {
  if (ib < 0) return false;
  if (ia < 0) return true;
  const bool a_nan = is_nan(a), b_nan = is_nan(b);
  if (a_nan || b_nan) return a_nan && b_nan ? ib < ia : b_nan;
  if (a == b) return ib < ia;
  return is_max ? b > a : b < a;
}

// One block per row (grid-stride over rows); thread t scans elements t, t + 256, ... in order.
template <class C>
__global__ void arg_reduce_kernel(int64_t* out, const void* in, Dtype in_dtype, int64_t rows, int64_t row_len,
                                  bool is_max) {
  __shared__ C best[kThreads];
  __shared__ int64_t best_index[kThreads];
  const int t = threadIdx.x;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    C value = C(0);
    int64_t index = -1;
    for (int64_t j = t; j < row_len; j += kThreads) {
      const C v = load<C>(in, in_dtype, row * row_len + j);
      if (arg_better(value, index, v, j, is_max)) value = v, index = j;
    }
    best[t] = value;
    best_index[t] = index;
    __syncthreads();
    for (int width = kThreads / 2; width > 0; width /= 2) {
      if (t < width && arg_better(best[t], best_index[t], best[t + width], best_index[t + width], is_max)) {
        best[t] = best[t + width];
        best_index[t] = best_index[t + width];
      }
      __syncthreads();
    }
    if (t == 0) out[row] = best_index[0];
    __syncthreads();
  }
}

template <class C>
__global__ void cumsum_kernel(void* out, Dtype out_dtype, const void* in, Dtype in_dtype, int64_t outer, int64_t n,
                              int64_t inner) {
  for (int64_t line = global_thread(); line < outer * inner; line += grid_threads()) {
    const int64_t base = (line / inner) * n * inner + line % inner;
    C acc = C(0);
    for (int64_t j = 0; j < n; ++j) {
      const C v = load<C>(in, in_dtype, base + j * inner);
      if constexpr (sizeof(C) == 8) acc = wrap_add(acc, v);
      else acc += v;
      store<C>(out, out_dtype, base + j * inner, acc);
    }
  }
}

// ---- gathers and scatters (values moved as raw bits of the element's size) ----

// The index value normalised into [0, n), or -1 when it lies outside [-n, n).
__device__ int64_t wrap_index(int64_t i, int64_t n) {
  if (i < 0) i += n;
  return (i >= 0 && i < n) ? i : -1;
}

// Offsets of iteration element `i` in the index, in src, and in the array without the axis term
// (the caller adds the index value times the axis stride).
struct AlongOffsets {
  int64_t index = 0, array = 0, src = 0;
};
__device__ AlongOffsets along_offsets(const AlongAxis& a, int64_t i) {
  AlongOffsets o;
  int64_t rest = i;
  for (int d = a.ndim - 1; d >= 0; --d) {
    const int64_t coordinate = d > 0 ? rest % a.shape[d] : rest;
    if (d > 0) rest /= a.shape[d];
    o.index += coordinate * a.index_strides[d];
    o.src += coordinate * a.src_strides[d];
    if (d != a.axis) o.array += coordinate * a.array_strides[d];
  }
  return o;
}

template <class Bits>
__global__ void take_along_axis_kernel(Bits* out, const Bits* x, const int64_t* index, AlongAxis a) {
  for (int64_t i = global_thread(); i < a.numel; i += grid_threads()) {
    const AlongOffsets o = along_offsets(a, i);
    const int64_t k = wrap_index(index[o.index], a.axis_size);
    out[i] = k < 0 ? Bits(0) : x[o.array + k * a.array_strides[a.axis]];
  }
}

template <class Bits>
__global__ void put_along_axis_kernel(Bits* dst, const int64_t* index, const Bits* src, AlongAxis a) {
  for (int64_t i = global_thread(); i < a.numel; i += grid_threads()) {
    const AlongOffsets o = along_offsets(a, i);
    const int64_t k = wrap_index(index[o.index], a.axis_size);
    if (k >= 0) dst[o.array + k * a.array_strides[a.axis]] = src[o.src];
  }
}

// dst[offset] += value: atomics, since duplicate indices may hit one element from many threads.
__device__ void accumulate_at(float* dst, int64_t offset, float value) { atomicAdd(dst + offset, value); }
__device__ void accumulate_at(int64_t* dst, int64_t offset, int64_t value) {
  atomicAdd(reinterpret_cast<unsigned long long*>(dst + offset), static_cast<unsigned long long>(value));
}
// bool "sum" is OR: every writer stores the same true, so the racing plain stores agree.
__device__ void accumulate_at(bool* dst, int64_t offset, bool value) {
  if (value) dst[offset] = true;
}

template <class T>
__global__ void put_along_axis_accumulate_kernel(T* dst, const int64_t* index, const T* src, AlongAxis a) {
  for (int64_t i = global_thread(); i < a.numel; i += grid_threads()) {
    const AlongOffsets o = along_offsets(a, i);
    const int64_t k = wrap_index(index[o.index], a.axis_size);
    if (k >= 0) accumulate_at(dst, o.array + k * a.array_strides[a.axis], src[o.src]);
  }
}

// One thread per output element (o, j, k) of (outer, count, inner).
template <class Bits>
__global__ void index_select_kernel(Bits* out, const Bits* x, const int64_t* index, int64_t outer, int64_t n,
                                    int64_t inner, int64_t count) {
  for (int64_t i = global_thread(); i < outer * count * inner; i += grid_threads()) {
    const int64_t k = i % inner, j = (i / inner) % count, o = i / (inner * count);
    const int64_t row = wrap_index(index[j], n);
    out[i] = row < 0 ? Bits(0) : x[(o * n + row) * inner + k];
  }
}

// One thread per src element (o, j, k) of (outer, count, inner).
template <class T>
__global__ void index_add_kernel(T* dst, const int64_t* index, const T* src, int64_t outer, int64_t n, int64_t inner,
                                 int64_t count) {
  for (int64_t i = global_thread(); i < outer * count * inner; i += grid_threads()) {
    const int64_t k = i % inner, j = (i / inner) % count, o = i / (inner * count);
    const int64_t row = wrap_index(index[j], n);
    if (row >= 0) accumulate_at(dst, (o * n + row) * inner + k, src[i]);
  }
}

// ---- nonzero: per-thread counts over contiguous chunks, an exclusive scan, then ordered writes ----

__device__ bool is_nonzero(const void* x, Dtype dtype, int64_t i) {
  if (dtype == Dtype::float32) return static_cast<const float*>(x)[i] != 0.0f;  // NaN counts, as in numpy
  return load<int64_t>(x, dtype, i) != 0;
}

__global__ void nonzero_count_kernel(int64_t* counts, const void* x, Dtype dtype, int64_t numel, int64_t chunk,
                                     int64_t workers) {
  const int64_t w = global_thread();
  if (w >= workers) return;
  const int64_t end = (w + 1) * chunk < numel ? (w + 1) * chunk : numel;
  int64_t count = 0;
  for (int64_t i = w * chunk; i < end; ++i) count += is_nonzero(x, dtype, i);
  counts[w] = count;
}

// One block: thread t sums its segment of counts, thread 0 scans the 256 sums, then each thread
// writes the exclusive prefix sums of its segment; total gets the sum of all counts.
__global__ void exclusive_scan_kernel(int64_t* offsets, int64_t* total, const int64_t* counts, int64_t workers) {
  __shared__ int64_t sums[kThreads];
  const int t = threadIdx.x;
  const int64_t segment = (workers + kThreads - 1) / kThreads;
  const int64_t begin = t * segment, end = begin + segment < workers ? begin + segment : workers;
  int64_t sum = 0;
  for (int64_t j = begin; j < end; ++j) sum += counts[j];
  sums[t] = sum;
  __syncthreads();
  if (t == 0) {
    int64_t running = 0;
    for (int k = 0; k < kThreads; ++k) {
      const int64_t v = sums[k];
      sums[k] = running;
      running += v;
    }
    *total = running;
  }
  __syncthreads();
  int64_t offset = sums[t];
  for (int64_t j = begin; j < end; ++j) {
    offsets[j] = offset;
    offset += counts[j];
  }
}

struct Shape {
  int32_t ndim = 0;
  int64_t dims[kMaxDims] = {};
};

__global__ void nonzero_write_kernel(int64_t* out, const int64_t* offsets, const void* x, Dtype dtype, int64_t numel,
                                     int64_t chunk, int64_t workers, Shape shape) {
  const int64_t w = global_thread();
  if (w >= workers) return;
  const int64_t end = (w + 1) * chunk < numel ? (w + 1) * chunk : numel;
  int64_t row = offsets[w];
  for (int64_t i = w * chunk; i < end; ++i) {
    if (!is_nonzero(x, dtype, i)) continue;
    int64_t rest = i;
    for (int d = shape.ndim - 1; d >= 0; --d) {
      out[row * shape.ndim + d] = rest % shape.dims[d];
      rest /= shape.dims[d];
    }
    ++row;
  }
}

// ---- sort: bottom-up merge sort, each pass merges neighbouring sorted runs of `width` ----

// Whether a sorts strictly before b: ascending puts NaN last, descending puts NaN first.
template <class T>
__device__ bool sorts_before(T a, T b, bool descending) {
  if constexpr (sizeof(T) == 4) {
    const bool a_nan = isnan(a), b_nan = isnan(b);
    if (a_nan || b_nan) return descending ? (a_nan && !b_nan) : (b_nan && !a_nan);
  }
  return descending ? a > b : a < b;
}

// One thread per element: its place in the merged run is its place in its own run plus the number
// of elements of the partner run that sort before it (ties: the left run's elements go first).
template <class T>
__global__ void merge_pass_kernel(T* values_out, int64_t* indices_out, const T* values_in, const int64_t* indices_in,
                                  int64_t rows, int64_t n, int64_t width, bool descending) {
  for (int64_t i = global_thread(); i < rows * n; i += grid_threads()) {
    const int64_t row = i / n, p = i % n;
    const T* v = values_in + row * n;
    const T key = v[p];
    const int64_t run = p / width, base = (run / 2) * 2 * width;
    const bool left = run % 2 == 0;
    // The partner run [lo, hi): the right run for a left element, the left run for a right one.
    const int64_t lo = left ? (base + width < n ? base + width : n) : base;
    const int64_t hi = left ? (base + 2 * width < n ? base + 2 * width : n) : base + width;
    // Binary search for the first partner element that does not come before `key`.
    int64_t first = lo, last = hi;
    while (first < last) {
      const int64_t mid = first + (last - first) / 2;
      const bool before = left ? sorts_before(v[mid], key, descending) : !sorts_before(key, v[mid], descending);
      if (before) first = mid + 1;
      else last = mid;
    }
    const int64_t own_start = left ? base : base + width;
    const int64_t dest = base + (p - own_start) + (first - lo);
    values_out[row * n + dest] = key;
    indices_out[row * n + dest] = indices_in[i];
  }
}

__global__ void iota_rows_kernel(int64_t* indices, int64_t rows, int64_t n) {
  for (int64_t i = global_thread(); i < rows * n; i += grid_threads()) indices[i] = i % n;
}

template <class T>
void launch_sort(void* values, int64_t* indices, const void* x, Dtype dtype, int64_t rows, int64_t n, bool descending,
                 int device, cudaStream_t stream) {
  const int64_t count = rows * n;
  const unsigned grid = grid_for(count);
  DeviceArray values_tmp = empty({count}, dtype, device), indices_tmp = empty({count}, Dtype::int64, device);
  // Ping-pong between (values, indices) and the temporaries, starting where the pass count ends
  // on the outputs.
  int passes = 0;
  for (int64_t width = 1; width < n; width *= 2) ++passes;
  T* buffers_v[2] = {static_cast<T*>(values), values_tmp.data<T>()};
  int64_t* buffers_i[2] = {indices, indices_tmp.data<int64_t>()};
  int current = passes % 2;
  check(cudaMemcpyAsync(buffers_v[current], x, count * sizeof(T), cudaMemcpyDeviceToDevice, stream), "sort: copy");
  iota_rows_kernel<<<grid, kThreads, 0, stream>>>(buffers_i[current], rows, n);
  check_launch("iota_rows_kernel");
  for (int64_t width = 1; width < n; width *= 2) {
    merge_pass_kernel<T><<<grid, kThreads, 0, stream>>>(buffers_v[1 - current], buffers_i[1 - current],
                                                        buffers_v[current], buffers_i[current], rows, n, width,
                                                        descending);
    check_launch("merge_pass_kernel");
    current = 1 - current;
  }
}

// ---- counter-based random numbers ----

// splitmix64's finaliser: a bijective mix of 64 bits.
__device__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ uint64_t random_bits(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed) ^ mix64(counter + 0x9E3779B97F4A7C15ull));
}
// [0, 1) from the top 24 bits.
__device__ float unit_float(uint64_t bits) { return float(bits >> 40) * 0x1p-24f; }

__global__ void uniform_kernel(float* out, int64_t count, float low, float high, uint64_t seed) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    const float v = low + (high - low) * unit_float(random_bits(seed, uint64_t(i)));
    out[i] = (v < high || !(high > low)) ? v : nextafterf(high, low);  // rounding must not reach high
  }
}

// Box-Muller with two draws per element (counters 2i and 2i + 1); u1 in (0, 1] keeps log finite.
__global__ void normal_kernel(float* out, int64_t count, float mean, float std, uint64_t seed) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    const float u1 = 1.0f - unit_float(random_bits(seed, 2 * uint64_t(i)));
    const float u2 = unit_float(random_bits(seed, 2 * uint64_t(i) + 1));
    out[i] = mean + std * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
  }
}

// low + floor(bits * range / 2^64): the high half of a 64x64-bit product (bias below range / 2^64).
__global__ void randint_kernel(int64_t* out, int64_t count, int64_t low, uint64_t range, uint64_t seed) {
  for (int64_t i = global_thread(); i < count; i += grid_threads())
    out[i] = int64_t(uint64_t(low) + __umul64hi(random_bits(seed, uint64_t(i)), range));
}

// Picks the raw-bits type of the element's size for a gather/scatter kernel.
template <class F>
void by_itemsize(Dtype dtype, F&& launch) {
  switch (itemsize(dtype)) {
    case 1: launch(uint8_t{}); break;
    case 4: launch(uint32_t{}); break;
    default: launch(uint64_t{}); break;
  }
}

}  // namespace

void elementwise(const EwLaunch& launch, Dtype compute, cudaStream_t stream) {
  if (launch.numel == 0) return;
  if (compute == Dtype::float32) elementwise_kernel<float><<<grid_for(launch.numel), kThreads, 0, stream>>>(launch);
  else elementwise_kernel<int64_t><<<grid_for(launch.numel), kThreads, 0, stream>>>(launch);
  check_launch("elementwise_kernel");
}

void arange(void* out, Dtype out_dtype, int64_t count, bool integer_steps, int64_t start_i, int64_t step_i,
            double start_f, double step_f, cudaStream_t stream) {
  if (count == 0) return;
  arange_kernel<<<grid_for(count), kThreads, 0, stream>>>(out, out_dtype, count, integer_steps, start_i, step_i,
                                                          start_f, step_f);
  check_launch("arange_kernel");
}

void reduce_rows(void* out, Dtype out_dtype, const void* in, Dtype in_dtype, int64_t rows, int64_t row_len,
                 ReduceOp op, Dtype compute, int device, cudaStream_t stream) {
  if (rows == 0) return;
  if (compute == Dtype::float32) launch_reduce<float>(out, out_dtype, in, in_dtype, rows, row_len, op, device, stream);
  else launch_reduce<int64_t>(out, out_dtype, in, in_dtype, rows, row_len, op, device, stream);
}

void arg_reduce_rows(int64_t* out, const void* in, Dtype in_dtype, int64_t rows, int64_t row_len, bool is_max,
                     cudaStream_t stream) {
  if (rows == 0) return;
  if (in_dtype == Dtype::float32)
    arg_reduce_kernel<float><<<blocks_for_rows(rows), kThreads, 0, stream>>>(out, in, in_dtype, rows, row_len, is_max);
  else
    arg_reduce_kernel<int64_t><<<blocks_for_rows(rows), kThreads, 0, stream>>>(out, in, in_dtype, rows, row_len,
                                                                               is_max);
  check_launch("arg_reduce_kernel");
}

void cumsum(void* out, Dtype out_dtype, const void* in, Dtype in_dtype, int64_t outer, int64_t n, int64_t inner,
            Dtype compute, cudaStream_t stream) {
  const int64_t lines = outer * inner;
  if (lines == 0 || n == 0) return;
  if (compute == Dtype::float32)
    cumsum_kernel<float><<<grid_for(lines), kThreads, 0, stream>>>(out, out_dtype, in, in_dtype, outer, n, inner);
  else
    cumsum_kernel<int64_t><<<grid_for(lines), kThreads, 0, stream>>>(out, out_dtype, in, in_dtype, outer, n, inner);
  check_launch("cumsum_kernel");
}

void take_along_axis(void* out, const void* x, Dtype dtype, const int64_t* index, const AlongAxis& a,
                     cudaStream_t stream) {
  if (a.numel == 0) return;
  by_itemsize(dtype, [&](auto bits) {
    using Bits = decltype(bits);
    take_along_axis_kernel<Bits><<<grid_for(a.numel), kThreads, 0, stream>>>(static_cast<Bits*>(out),
                                                                              static_cast<const Bits*>(x), index, a);
  });
  check_launch("take_along_axis_kernel");
}

void put_along_axis(void* dst, Dtype dtype, const int64_t* index, const void* src, const AlongAxis& a, bool accumulate,
                    cudaStream_t stream) {
  if (a.numel == 0) return;
  const unsigned grid = grid_for(a.numel);
  if (!accumulate) {
    by_itemsize(dtype, [&](auto bits) {
      using Bits = decltype(bits);
      put_along_axis_kernel<Bits><<<grid, kThreads, 0, stream>>>(static_cast<Bits*>(dst), index,
                                                                 static_cast<const Bits*>(src), a);
    });
  } else if (dtype == Dtype::float32) {
    put_along_axis_accumulate_kernel<float><<<grid, kThreads, 0, stream>>>(static_cast<float*>(dst), index,
                                                                          static_cast<const float*>(src), a);
  } else if (dtype == Dtype::int64) {
    put_along_axis_accumulate_kernel<int64_t><<<grid, kThreads, 0, stream>>>(static_cast<int64_t*>(dst), index,
                                                                            static_cast<const int64_t*>(src), a);
  } else {
    put_along_axis_accumulate_kernel<bool><<<grid, kThreads, 0, stream>>>(static_cast<bool*>(dst), index,
                                                                         static_cast<const bool*>(src), a);
  }
  check_launch("put_along_axis_kernel");
}

void index_select(void* out, const void* x, Dtype dtype, const int64_t* index, int64_t outer, int64_t n, int64_t inner,
                  int64_t count, cudaStream_t stream) {
  const int64_t total = outer * count * inner;
  if (total == 0) return;
  by_itemsize(dtype, [&](auto bits) {
    using Bits = decltype(bits);
    index_select_kernel<Bits><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<Bits*>(out), static_cast<const Bits*>(x), index, outer, n, inner, count);
  });
  check_launch("index_select_kernel");
}

void index_add(void* dst, Dtype dtype, const int64_t* index, const void* src, int64_t outer, int64_t n, int64_t inner,
               int64_t count, cudaStream_t stream) {
  const int64_t total = outer * count * inner;
  if (total == 0) return;
  if (dtype == Dtype::float32)
    index_add_kernel<float><<<grid_for(total), kThreads, 0, stream>>>(static_cast<float*>(dst), index,
                                                                     static_cast<const float*>(src), outer, n, inner,
                                                                     count);
  else
    index_add_kernel<int64_t><<<grid_for(total), kThreads, 0, stream>>>(static_cast<int64_t*>(dst), index,
                                                                       static_cast<const int64_t*>(src), outer, n,
                                                                       inner, count);
  check_launch("index_add_kernel");
}

DeviceArray nonzero(const DeviceArray& x, cudaStream_t stream) {
  const int64_t numel = x.numel();
  const int ndim = x.ndim();
  if (numel == 0) return empty({0, ndim}, Dtype::int64, x.device);
  // At most 16384 workers, each scanning a contiguous chunk in order.
  constexpr int64_t kMaxWorkers = 16384;
  const int64_t chunk = (numel + kMaxWorkers - 1) / kMaxWorkers;
  const int64_t workers = (numel + chunk - 1) / chunk;
  DeviceArray counts = empty({workers}, Dtype::int64, x.device), offsets = empty({workers + 1}, Dtype::int64, x.device);
  const unsigned grid = grid_for(workers);
  nonzero_count_kernel<<<grid, kThreads, 0, stream>>>(counts.data<int64_t>(), x.raw(), x.dtype, numel, chunk, workers);
  check_launch("nonzero_count_kernel");
  int64_t* total_on_device = offsets.data<int64_t>() + workers;
  exclusive_scan_kernel<<<1, kThreads, 0, stream>>>(offsets.data<int64_t>(), total_on_device, counts.data<int64_t>(),
                                                    workers);
  check_launch("exclusive_scan_kernel");
  int64_t total = 0;
  check(cudaMemcpyAsync(&total, total_on_device, sizeof total, cudaMemcpyDeviceToHost, stream), "nonzero: count");
  check(cudaStreamSynchronize(stream), "nonzero: count");
  ++transfer_counts().device_to_host;
  DeviceArray out = empty({total, ndim}, Dtype::int64, x.device);
  if (total == 0 || ndim == 0) return out;
  Shape shape;
  shape.ndim = ndim;
  for (int d = 0; d < ndim; ++d) shape.dims[d] = x.shape[d];
  nonzero_write_kernel<<<grid, kThreads, 0, stream>>>(out.data<int64_t>(), offsets.data<int64_t>(), x.raw(), x.dtype,
                                                      numel, chunk, workers, shape);
  check_launch("nonzero_write_kernel");
  return out;
}

void sort_rows(void* values, int64_t* indices, const void* x, Dtype dtype, int64_t rows, int64_t n, bool descending,
               int device, cudaStream_t stream) {
  if (rows * n == 0) return;
  switch (dtype) {
    case Dtype::float32: launch_sort<float>(values, indices, x, dtype, rows, n, descending, device, stream); break;
    case Dtype::int64: launch_sort<int64_t>(values, indices, x, dtype, rows, n, descending, device, stream); break;
    default:  // bool, uint8
      launch_sort<uint8_t>(values, indices, x, dtype, rows, n, descending, device, stream);
  }
}

void uniform(float* out, int64_t count, float low, float high, uint64_t seed, cudaStream_t stream) {
  if (count == 0) return;
  uniform_kernel<<<grid_for(count), kThreads, 0, stream>>>(out, count, low, high, seed);
  check_launch("uniform_kernel");
}

void normal(float* out, int64_t count, float mean, float std, uint64_t seed, cudaStream_t stream) {
  if (count == 0) return;
  normal_kernel<<<grid_for(count), kThreads, 0, stream>>>(out, count, mean, std, seed);
  check_launch("normal_kernel");
}

void randint(int64_t* out, int64_t count, int64_t low, int64_t high, uint64_t seed, cudaStream_t stream) {
  if (count == 0) return;
  randint_kernel<<<grid_for(count), kThreads, 0, stream>>>(out, count, low, uint64_t(high) - uint64_t(low), seed);
  check_launch("randint_kernel");
}

}  // namespace pcn::cuda
