// GPU element-wise add / mul / fused add+ReLU, the deterministic sum and p-norm, and concat / split
// (see kernels/eltwise.h and eltwise.cuh).
// Element-wise kernels: grid-stride loops, one thread per element (y may alias a or b).
// Reductions: pass 1 gives each of `blocks` blocks (a number fixed by the count alone) one
// contiguous chunk, which its threads accumulate in double with a fixed stride and fold with a
// shared-memory tree; pass 2 folds the block totals the same way in one block and finishes (sqrt,
// pow, cast). The result depends only on the input, never on timing; no atomics.
// concat / split: one launch per input, copying its (outer) rows of extent * inner floats.
#include "cuda/eltwise.cuh"

#include <math.h>

namespace pcn::cuda {
namespace {

constexpr unsigned kThreads = 256;
constexpr int64_t kReduceChunk = 4096;      // elements per pass-1 block (at least)
constexpr int64_t kReduceMaxBlocks = 1024;  // pass-1 blocks at most

template <class F>
__global__ void map_pair(float* y, const float* a, const float* b, int64_t count, F f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    y[i] = f(a[i], b[i]);
}

template <class F>
void launch_pair(float* y, const float* a, const float* b, int64_t count, F f, cudaStream_t stream, const char* name) {
  if (count == 0) return;
  map_pair<<<grid_for(count, kThreads), kThreads, 0, stream>>>(y, a, b, count, f);
  check_launch(name);
}

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Mul {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct AddRelu {
  __device__ float operator()(float a, float b) const {
    const float s = a + b;
    return s < 0.0f ? 0.0f : s;  // NaN propagates, as relu
  }
};

// Loads: element i of the reduced sequence, in double.
struct LoadFloat {
  const float* x;
  __device__ double operator()(int64_t i) const { return x[i]; }
};
struct LoadAbs {
  const float* x;
  __device__ double operator()(int64_t i) const { return fabs(static_cast<double>(x[i])); }
};
struct LoadSquare {
  const float* x;
  __device__ double operator()(int64_t i) const { return static_cast<double>(x[i]) * x[i]; }
};
struct LoadPow {
  const float* x;
  double p;
  __device__ double operator()(int64_t i) const { return pow(fabs(static_cast<double>(x[i])), p); }
};
struct LoadNonzero {
  const float* x;
  __device__ double operator()(int64_t i) const { return x[i] != 0.0f ? 1.0 : 0.0; }  // NaN counts, as torch
};
struct LoadDouble {
  const double* x;
  __device__ double operator()(int64_t i) const { return x[i]; }
};

// Combines (both with identity 0).
struct Plus {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct Larger {  // NaN wins from either side
  __device__ double operator()(double a, double b) const { return b > a || b != b ? b : a; }
};

// Stores of pass 2: the finished value.
struct StoreDouble {
  double* out;
  __device__ void operator()(double v) const { out[0] = v; }
};
// The norm's (or sum's) float result: root 0 keeps v, root 2 takes sqrt, any other root r gives v^(1/r).
struct StoreRoot {
  float* out;
  double root;
  __device__ void operator()(double v) const {
    out[0] = static_cast<float>(root == 0.0 ? v : (root == 2.0 ? sqrt(v) : pow(v, 1.0 / root)));
  }
};

// Block b folds load(i) over its chunk [b * chunk, min(count, (b + 1) * chunk)): thread t takes
// begin + t, begin + t + kThreads, ..., then a shared-memory tree folds the threads in a fixed order.
template <class Load, class Combine>
__device__ double block_fold(int64_t count, int64_t chunk, Load load, Combine combine) {
  __shared__ double shared[kThreads];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * chunk;
  const int64_t end = begin + chunk < count ? begin + chunk : count;
  double acc = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) acc = combine(acc, load(i));
  shared[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] = combine(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  return shared[0];
}

template <class Load, class Combine>
__global__ void reduce_pass1(double* partials, int64_t count, int64_t chunk, Load load, Combine combine) {
  const double total = block_fold(count, chunk, load, combine);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// One block: folds the `blocks` partials and stores the result.
template <class Combine, class Store>
__global__ void reduce_pass2(const double* partials, int64_t blocks, Combine combine, Store store) {
  const double total = block_fold(blocks, blocks, LoadDouble{partials}, combine);
  if (threadIdx.x == 0) store(total);
}

template <class Load, class Combine, class Store>
void reduce(int64_t count, Load load, Combine combine, Store store, cudaStream_t stream, const char* name) {
  int64_t blocks = (count + kReduceChunk - 1) / kReduceChunk;
  blocks = blocks < 1 ? 1 : (blocks > kReduceMaxBlocks ? kReduceMaxBlocks : blocks);
  const int64_t chunk = (count + blocks - 1) / blocks;
  DeviceArray partials = double_scratch(blocks);
  double* partial_data = partials.data<double>();
  reduce_pass1<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(partial_data, count, chunk, load, combine);
  check_launch(name);
  reduce_pass2<<<1, kThreads, 0, stream>>>(partial_data, blocks, combine, store);
  check_launch(name);
}

// dst[r * dst_stride + c] = src[r * src_stride + c] for r < rows, c < run.
__global__ void copy_runs(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows,
                          int64_t run) {
  const int64_t total = rows * run, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t r = i / run, c = i - r * run;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

void launch_copy_runs(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows, int64_t run,
                      cudaStream_t stream, const char* name) {
  if (rows * run == 0) return;
  copy_runs<<<grid_for(rows * run, kThreads), kThreads, 0, stream>>>(dst, dst_stride, src, src_stride, rows, run);
  check_launch(name);
}

}  // namespace

DeviceArray double_scratch(int64_t count) {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  static_assert(sizeof(double) == sizeof(int64_t), "double scratch lives in int64 storage");
  return empty({count > 0 ? count : 1}, Dtype::int64, device);
}

void add_forward(float* y, const float* a, const float* b, const EltwiseDesc& d, cudaStream_t stream) {
  launch_pair(y, a, b, d.count, Add{}, stream, "add_forward");
}

void mul_forward(float* y, const float* a, const float* b, const EltwiseDesc& d, cudaStream_t stream) {
  launch_pair(y, a, b, d.count, Mul{}, stream, "mul_forward");
}

void add_relu_forward(float* y, const float* a, const float* b, const EltwiseDesc& d, cudaStream_t stream) {
  launch_pair(y, a, b, d.count, AddRelu{}, stream, "add_relu_forward");
}

void sum_forward(float* out, const float* x, const EltwiseDesc& d, cudaStream_t stream) {
  reduce(d.count, LoadFloat{x}, Plus{}, StoreRoot{out, 0.0}, stream, "sum_forward");
}

void norm_forward(float* out, const float* x, const EltwiseDesc& d, cudaStream_t stream) {
  const double p = d.p;
  if (p == INFINITY)
    reduce(d.count, LoadAbs{x}, Larger{}, StoreRoot{out, 0.0}, stream, "norm_forward");
  else if (p == 0.0)
    reduce(d.count, LoadNonzero{x}, Plus{}, StoreRoot{out, 0.0}, stream, "norm_forward");
  else if (p == 1.0)
    reduce(d.count, LoadAbs{x}, Plus{}, StoreRoot{out, 0.0}, stream, "norm_forward");
  else if (p == 2.0)
    reduce(d.count, LoadSquare{x}, Plus{}, StoreRoot{out, 2.0}, stream, "norm_forward");
  else
    reduce(d.count, LoadPow{x, p}, Plus{}, StoreRoot{out, p}, stream, "norm_forward");
}

void sum_doubles(double* out, const double* values, int64_t count, cudaStream_t stream) {
  reduce(count, LoadDouble{values}, Plus{}, StoreDouble{out}, stream, "sum_doubles");
}

namespace {

// One thread per output element: the sampled input value, or zero in the added channels.
__global__ void subsample_pad_channels_kernel(float* y, const float* x, ChannelPadDesc d) {
  const int64_t out_channels = d.before + d.channels + d.after;
  const int64_t total = d.batch * out_channels * d.out_h * d.out_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % d.out_w, row = i / d.out_w % d.out_h, k = i / (d.out_w * d.out_h) % out_channels;
    const int64_t n = i / (d.out_w * d.out_h * out_channels), c = k - d.before;
    y[i] = c < 0 || c >= d.channels ? 0.0f
                                    : x[((n * d.channels + c) * d.in_h + row * d.stride) * d.in_w + j * d.stride];
  }
}

// One thread per input element: dy's value where the forward sampled it, zero elsewhere.
__global__ void subsample_pad_channels_backward_kernel(float* dx, const float* dy, ChannelPadDesc d) {
  const int64_t out_channels = d.before + d.channels + d.after;
  const int64_t total = d.batch * d.channels * d.in_h * d.in_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % d.in_w, row = i / d.in_w % d.in_h, c = i / (d.in_w * d.in_h) % d.channels;
    const int64_t n = i / (d.in_w * d.in_h * d.channels);
    dx[i] = row % d.stride != 0 || j % d.stride != 0
                ? 0.0f
                : dy[((n * out_channels + d.before + c) * d.out_h + row / d.stride) * d.out_w + j / d.stride];
  }
}

}  // namespace

void subsample_pad_channels_forward(float* y, const float* x, const ChannelPadDesc& d, cudaStream_t stream) {
  const int64_t total = d.batch * (d.before + d.channels + d.after) * d.out_h * d.out_w;
  if (total == 0) return;
  subsample_pad_channels_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(y, x, d);
  check_launch("subsample_pad_channels_forward");
}

void subsample_pad_channels_backward(float* dx, const float* dy, const ChannelPadDesc& d, cudaStream_t stream) {
  const int64_t total = d.batch * d.channels * d.in_h * d.in_w;
  if (total == 0) return;
  subsample_pad_channels_backward_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(dx, dy, d);
  check_launch("subsample_pad_channels_backward");
}

void concat_forward(float* y, const float* const* inputs, const int64_t* extents, const ConcatDesc& d,
                    cudaStream_t stream) {
  for (int64_t i = 0, start = 0; i < d.inputs; start += extents[i], ++i)
    launch_copy_runs(y + start * d.inner, d.total * d.inner, inputs[i], extents[i] * d.inner, d.outer,
                     extents[i] * d.inner, stream, "concat_forward");
}

void split_forward(float* const* outputs, const float* y, const int64_t* extents, const ConcatDesc& d,
                   cudaStream_t stream) {
  for (int64_t i = 0, start = 0; i < d.inputs; start += extents[i], ++i)
    launch_copy_runs(outputs[i], extents[i] * d.inner, y + start * d.inner, d.total * d.inner, d.outer,
                     extents[i] * d.inner, stream, "split_forward");
}

}  // namespace pcn::cuda
