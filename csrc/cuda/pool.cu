// GPU pooling and resampling kernels (see pool.cuh and kernels/pool.h). Forward kernels: one thread
// per output element, looping over its window in the CPU kernel's order (row-major taps), so the max
// kernels pick the same element and index and the average sums add in the same order. Backward
// kernels: one thread per input element, looping over the outputs whose windows hold it in ascending
// output order (the order the CPU kernels scatter in), so no two threads write one element.
// All index arithmetic is int64; grid-stride loops cover any size.
#include <cmath>

#include "cuda/device_array.h"
#include "cuda/pool.cuh"

namespace pcn::cuda {
namespace {

constexpr unsigned kThreads = 256;

__device__ inline int64_t first_item() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ inline int64_t item_step() { return int64_t(gridDim.x) * blockDim.x; }

// torch's max rule: a larger value or any NaN replaces the running maximum.
__device__ inline bool replaces(float value, float best) { return value > best || value != value; }

// Taps [*begin, *end) of a dilated window starting at `start` that land in [0, in).
__device__ inline void valid_taps(int64_t start, int64_t in, int64_t kernel, int64_t dilation, int64_t* begin,
                                  int64_t* end) {
  *begin = start < 0 ? (-start + dilation - 1) / dilation : 0;
  *end = start > in - 1 ? 0 : min(kernel, (in - 1 - start) / dilation + 1);
  if (*begin > *end) *begin = *end;
}

// Calls f(o) for each output position o, ascending, one of whose taps o * stride - pad + r * dilation
// (r < kernel) is input position i. Walking r downwards walks o upwards; distinct r give distinct o.
template <class F>
__device__ void for_each_covering_output(int64_t i, int64_t out, int64_t kernel, int64_t stride, int64_t pad,
                                         int64_t dilation, F f) {
  for (int64_t r = kernel - 1; r >= 0; --r) {
    const int64_t at = i + pad - r * dilation;  // o * stride for a window whose tap r is i
    if (at < 0 || at % stride != 0) continue;
    const int64_t o = at / stride;
    if (o >= out) break;  // smaller r only give larger o
    f(o);
  }
}

// ------------------------------------------------------------------ max_pool2d
// One thread per output (p, oh, ow): its window's first tap inside the input, then every later tap
// that replaces it; -inf and -1 for a window without input elements.
__global__ void max_pool2d_forward_kernel(float* y, int64_t* indices, const float* x, Pool2dDesc d) {
  const int64_t total = d.batch * d.channels * d.out_h * d.out_w;
  for (int64_t o = first_item(); o < total; o += item_step()) {
    const int64_t ow = o % d.out_w, oh = (o / d.out_w) % d.out_h, p = o / (d.out_w * d.out_h);
    const float* plane = x + p * d.in_h * d.in_w;
    const int64_t h0 = oh * d.stride_h - d.pad_h, w0 = ow * d.stride_w - d.pad_w;
    int64_t r0, r1, s0, s1;
    valid_taps(h0, d.in_h, d.kernel_h, d.dilation_h, &r0, &r1);
    valid_taps(w0, d.in_w, d.kernel_w, d.dilation_w, &s0, &s1);
    float best = -INFINITY;
    int64_t best_index = -1;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t s = s0; s < s1; ++s) {
        const int64_t at = (h0 + r * d.dilation_h) * d.in_w + w0 + s * d.dilation_w;
        const float value = plane[at];
        if (best_index < 0 || replaces(value, best)) {
          best = value;
          best_index = at;
        }
      }
    y[o] = best;
    indices[o] = best_index;
  }
}

// One thread per input element: the sum of dy over the windows that hold it and chose it.
__global__ void max_pool2d_backward_kernel(float* dx, const float* dy, const int64_t* indices, Pool2dDesc d) {
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w, total = d.batch * d.channels * in_plane;
  for (int64_t e = first_item(); e < total; e += item_step()) {
    const int64_t p = e / in_plane, target = e % in_plane, h = target / d.in_w, w = target % d.in_w;
    const float* grad = dy + p * out_plane;
    const int64_t* idx = indices + p * out_plane;
    float sum = 0.0f;
    for_each_covering_output(h, d.out_h, d.kernel_h, d.stride_h, d.pad_h, d.dilation_h, [&](int64_t oh) {
      for_each_covering_output(w, d.out_w, d.kernel_w, d.stride_w, d.pad_w, d.dilation_w, [&](int64_t ow) {
        const int64_t o = oh * d.out_w + ow;
        if (idx[o] == target) sum += grad[o];
      });
    });
    dx[e] = sum;
  }
}

// ------------------------------------------------------------------ avg_pool2d
// A window clipped to the padded input (pool extent, for count_include_pad) and to the input.
struct AvgSpan {
  int64_t begin, end, pool;
};

__device__ inline AvgSpan avg_span(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t start = o * stride - pad;
  const int64_t stop = min(start + kernel, in + pad);
  return {max(start, int64_t(0)), min(stop, in), stop - start};
}

__device__ inline float avg_divisor(const Pool2dDesc& d, const AvgSpan& rows, const AvgSpan& cols) {
  if (d.divisor_override != 0) return static_cast<float>(d.divisor_override);
  if (d.count_include_pad) return static_cast<float>(rows.pool * cols.pool);
  return static_cast<float>((rows.end - rows.begin) * (cols.end - cols.begin));
}

// One thread per output: its window's float sum (rows, then columns) over its divisor; 0 when empty.
__global__ void avg_pool2d_forward_kernel(float* y, const float* x, Pool2dDesc d) {
  const int64_t total = d.batch * d.channels * d.out_h * d.out_w;
  for (int64_t o = first_item(); o < total; o += item_step()) {
    const int64_t ow = o % d.out_w, oh = (o / d.out_w) % d.out_h, p = o / (d.out_w * d.out_h);
    const float* plane = x + p * d.in_h * d.in_w;
    const AvgSpan hs = avg_span(oh, d.in_h, d.kernel_h, d.stride_h, d.pad_h);
    const AvgSpan ws = avg_span(ow, d.in_w, d.kernel_w, d.stride_w, d.pad_w);
    if (hs.begin >= hs.end || ws.begin >= ws.end) {
      y[o] = 0.0f;
      continue;
    }
    float sum = 0.0f;
    for (int64_t h = hs.begin; h < hs.end; ++h)
      for (int64_t w = ws.begin; w < ws.end; ++w) sum += plane[h * d.in_w + w];
    y[o] = sum / avg_divisor(d, hs, ws);
  }
}

// One thread per input element: dy / divisor of every window that holds it (each such window's
// clipped span holds it: start <= h < start + kernel and 0 <= h < in).
__global__ void avg_pool2d_backward_kernel(float* dx, const float* dy, Pool2dDesc d) {
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w, total = d.batch * d.channels * in_plane;
  for (int64_t e = first_item(); e < total; e += item_step()) {
    const int64_t p = e / in_plane, h = (e % in_plane) / d.in_w, w = e % d.in_w;
    const float* grad = dy + p * out_plane;
    float sum = 0.0f;
    for_each_covering_output(h, d.out_h, d.kernel_h, d.stride_h, d.pad_h, 1, [&](int64_t oh) {
      const AvgSpan hs = avg_span(oh, d.in_h, d.kernel_h, d.stride_h, d.pad_h);
      for_each_covering_output(w, d.out_w, d.kernel_w, d.stride_w, d.pad_w, 1, [&](int64_t ow) {
        const AvgSpan ws = avg_span(ow, d.in_w, d.kernel_w, d.stride_w, d.pad_w);
        sum += grad[oh * d.out_w + ow] / avg_divisor(d, hs, ws);
      });
    });
    dx[e] = sum;
  }
}

// ------------------------------------------------------------------ adaptive pooling
// Window o along one axis: [floor(o * in / out), ceil((o + 1) * in / out)).
__device__ inline int64_t adaptive_begin(int64_t o, int64_t in, int64_t out) { return o * in / out; }
__device__ inline int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

// Calls f(o) for each output o, ascending, whose adaptive window holds input position i:
// end(o) > i  <=>  o >= floor(i * out / in), and begin(o) <= i  <=>  o <= ((i + 1) * out - 1) / in.
template <class F>
__device__ void for_each_adaptive_output(int64_t i, int64_t in, int64_t out, F f) {
  const int64_t last = min(((i + 1) * out - 1) / in, out - 1);
  for (int64_t o = i * out / in; o <= last; ++o) f(o);
}

// One thread per output: float sum of its window, rows then columns, over the window's size.
__global__ void adaptive_avg_pool2d_forward_kernel(float* y, const float* x, AdaptivePool2dDesc d) {
  const int64_t total = d.batch * d.channels * d.out_h * d.out_w;
  for (int64_t o = first_item(); o < total; o += item_step()) {
    const int64_t ow = o % d.out_w, oh = (o / d.out_w) % d.out_h, p = o / (d.out_w * d.out_h);
    const float* plane = x + p * d.in_h * d.in_w;
    const int64_t h0 = adaptive_begin(oh, d.in_h, d.out_h), h1 = adaptive_end(oh, d.in_h, d.out_h);
    const int64_t w0 = adaptive_begin(ow, d.in_w, d.out_w), w1 = adaptive_end(ow, d.in_w, d.out_w);
    float sum = 0.0f;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) sum += plane[h * d.in_w + w];
    y[o] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
  }
}

__global__ void adaptive_avg_pool2d_backward_kernel(float* dx, const float* dy, AdaptivePool2dDesc d) {
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w, total = d.batch * d.channels * in_plane;
  for (int64_t e = first_item(); e < total; e += item_step()) {
    const int64_t p = e / in_plane, h = (e % in_plane) / d.in_w, w = e % d.in_w;
    const float* grad = dy + p * out_plane;
    float sum = 0.0f;
    for_each_adaptive_output(h, d.in_h, d.out_h, [&](int64_t oh) {
      const int64_t rows = adaptive_end(oh, d.in_h, d.out_h) - adaptive_begin(oh, d.in_h, d.out_h);
      for_each_adaptive_output(w, d.in_w, d.out_w, [&](int64_t ow) {
        const int64_t cols = adaptive_end(ow, d.in_w, d.out_w) - adaptive_begin(ow, d.in_w, d.out_w);
        sum += grad[oh * d.out_w + ow] / static_cast<float>(rows * cols);
      });
    });
    dx[e] = sum;
  }
}

// One thread per output: the window's first element, then every element that replaces it (adaptive
// windows are never empty).
__global__ void adaptive_max_pool2d_forward_kernel(float* y, int64_t* indices, const float* x, AdaptivePool2dDesc d) {
  const int64_t total = d.batch * d.channels * d.out_h * d.out_w;
  for (int64_t o = first_item(); o < total; o += item_step()) {
    const int64_t ow = o % d.out_w, oh = (o / d.out_w) % d.out_h, p = o / (d.out_w * d.out_h);
    const float* plane = x + p * d.in_h * d.in_w;
    const int64_t h0 = adaptive_begin(oh, d.in_h, d.out_h), h1 = adaptive_end(oh, d.in_h, d.out_h);
    const int64_t w0 = adaptive_begin(ow, d.in_w, d.out_w), w1 = adaptive_end(ow, d.in_w, d.out_w);
    float best = plane[h0 * d.in_w + w0];
    int64_t best_index = h0 * d.in_w + w0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w)
        if (replaces(plane[h * d.in_w + w], best)) {
          best = plane[h * d.in_w + w];
          best_index = h * d.in_w + w;
        }
    y[o] = best;
    indices[o] = best_index;
  }
}

__global__ void adaptive_max_pool2d_backward_kernel(float* dx, const float* dy, const int64_t* indices,
                                                    AdaptivePool2dDesc d) {
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w, total = d.batch * d.channels * in_plane;
  for (int64_t e = first_item(); e < total; e += item_step()) {
    const int64_t p = e / in_plane, target = e % in_plane, h = target / d.in_w, w = target % d.in_w;
    const float* grad = dy + p * out_plane;
    const int64_t* idx = indices + p * out_plane;
    float sum = 0.0f;
    for_each_adaptive_output(h, d.in_h, d.out_h, [&](int64_t oh) {
      for_each_adaptive_output(w, d.in_w, d.out_w, [&](int64_t ow) {
        const int64_t o = oh * d.out_w + ow;
        if (idx[o] == target) sum += grad[o];
      });
    });
    dx[e] = sum;
  }
}

// ------------------------------------------------------------------ resampling
// Source positions along one axis, as the CPU kernels compute them (products rounded before the
// subtraction, no fused multiply-add, so floor() sees the CPU's value).
__device__ inline int64_t nearest_source(int64_t o, float scale, int64_t in, int64_t out) {
  if (out == in) return o;
  if (out == 2 * in) return o >> 1;
  return min(static_cast<int64_t>(floorf(__fmul_rn(static_cast<float>(o), scale))), in - 1);
}

struct LinearTap {
  int64_t i0, i1;
  float w0, w1;
};

__device__ inline LinearTap linear_source(int64_t o, float scale, bool align_corners, int64_t in) {
  float src = align_corners ? __fmul_rn(scale, static_cast<float>(o))
                            : __fsub_rn(__fmul_rn(scale, static_cast<float>(o) + 0.5f), 0.5f);
  if (src < 0.0f) src = 0.0f;
  const int64_t i0 = min(static_cast<int64_t>(floorf(src)), in - 1);
  const float f = fminf(fmaxf(src - static_cast<float>(i0), 0.0f), 1.0f);
  return {i0, i0 < in - 1 ? i0 + 1 : i0, 1.0f - f, f};
}

// The first o in [0, out) with source(o) >= target (out when none); source must be non-decreasing,
// as both source rules are.
template <class Source>
__device__ int64_t first_source_at_least(int64_t target, int64_t out, Source source) {
  int64_t lo = 0, hi = out;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (source(mid) >= target)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

__global__ void upsample_nearest2d_forward_kernel(float* y, const float* x, ResampleDesc d) {
  const int64_t total = d.batch * d.channels * d.out_h * d.out_w;
  for (int64_t o = first_item(); o < total; o += item_step()) {
    const int64_t ow = o % d.out_w, oh = (o / d.out_w) % d.out_h, p = o / (d.out_w * d.out_h);
    const int64_t h = nearest_source(oh, d.scale_h, d.in_h, d.out_h);
    const int64_t w = nearest_source(ow, d.scale_w, d.in_w, d.out_w);
    y[o] = x[(p * d.in_h + h) * d.in_w + w];
  }
}

// One thread per input element: the outputs whose source it is form a run along each axis.
__global__ void upsample_nearest2d_backward_kernel(float* dx, const float* dy, ResampleDesc d) {
  const int64_t in_plane = d.in_h * d.in_w, total = d.batch * d.channels * in_plane;
  const auto row_source = [&](int64_t oh) { return nearest_source(oh, d.scale_h, d.in_h, d.out_h); };
  const auto col_source = [&](int64_t ow) { return nearest_source(ow, d.scale_w, d.in_w, d.out_w); };
  for (int64_t e = first_item(); e < total; e += item_step()) {
    const int64_t p = e / in_plane, h = (e % in_plane) / d.in_w, w = e % d.in_w;
    const float* grad = dy + p * d.out_h * d.out_w;
    const int64_t ow0 = first_source_at_least(w, d.out_w, col_source);
    float sum = 0.0f;
    for (int64_t oh = first_source_at_least(h, d.out_h, row_source); oh < d.out_h && row_source(oh) == h; ++oh)
      for (int64_t ow = ow0; ow < d.out_w && col_source(ow) == w; ++ow) sum += grad[oh * d.out_w + ow];
    dx[e] = sum;
  }
}

__global__ void upsample_bilinear2d_forward_kernel(float* y, const float* x, ResampleDesc d) {
  const int64_t total = d.batch * d.channels * d.out_h * d.out_w;
  for (int64_t o = first_item(); o < total; o += item_step()) {
    const int64_t ow = o % d.out_w, oh = (o / d.out_w) % d.out_h, p = o / (d.out_w * d.out_h);
    const LinearTap h = linear_source(oh, d.scale_h, d.align_corners, d.in_h);
    const LinearTap w = linear_source(ow, d.scale_w, d.align_corners, d.in_w);
    const float* r0 = x + (p * d.in_h + h.i0) * d.in_w;
    const float* r1 = x + (p * d.in_h + h.i1) * d.in_w;
    y[o] = h.w0 * (w.w0 * r0[w.i0] + w.w1 * r0[w.i1]) + h.w1 * (w.w0 * r1[w.i0] + w.w1 * r1[w.i1]);
  }
}

// One thread per input element (h, w): it is tap i0 or i1 only of outputs whose i0 is h - 1 or h
// (a run, i0 being non-decreasing); their four taps are added in the CPU kernel's order.
__global__ void upsample_bilinear2d_backward_kernel(float* dx, const float* dy, ResampleDesc d) {
  const int64_t in_plane = d.in_h * d.in_w, total = d.batch * d.channels * in_plane;
  const auto row_tap = [&](int64_t oh) { return linear_source(oh, d.scale_h, d.align_corners, d.in_h); };
  const auto col_tap = [&](int64_t ow) { return linear_source(ow, d.scale_w, d.align_corners, d.in_w); };
  const auto row_i0 = [&](int64_t oh) { return row_tap(oh).i0; };
  const auto col_i0 = [&](int64_t ow) { return col_tap(ow).i0; };
  for (int64_t e = first_item(); e < total; e += item_step()) {
    const int64_t p = e / in_plane, h = (e % in_plane) / d.in_w, w = e % d.in_w;
    const float* grad = dy + p * d.out_h * d.out_w;
    const int64_t ow0 = first_source_at_least(w - 1, d.out_w, col_i0);
    float sum = 0.0f;
    for (int64_t oh = first_source_at_least(h - 1, d.out_h, row_i0); oh < d.out_h; ++oh) {
      const LinearTap th = row_tap(oh);
      if (th.i0 > h) break;
      for (int64_t ow = ow0; ow < d.out_w; ++ow) {
        const LinearTap tw = col_tap(ow);
        if (tw.i0 > w) break;
        const float g = grad[oh * d.out_w + ow];
        if (th.i0 == h && tw.i0 == w) sum += th.w0 * tw.w0 * g;
        if (th.i0 == h && tw.i1 == w) sum += th.w0 * tw.w1 * g;
        if (th.i1 == h && tw.i0 == w) sum += th.w1 * tw.w0 * g;
        if (th.i1 == h && tw.i1 == w) sum += th.w1 * tw.w1 * g;
      }
    }
    dx[e] = sum;
  }
}

template <class Desc>
int64_t outputs(const Desc& d) {
  return d.batch * d.channels * d.out_h * d.out_w;
}

template <class Desc>
int64_t inputs(const Desc& d) {
  return d.batch * d.channels * d.in_h * d.in_w;
}

// Launches `kernel` on enough blocks for `count` items (nothing when there are none), then checks it.
template <class... Params, class... Args>
void launch_items(const char* name, int64_t count, cudaStream_t stream, void (*kernel)(Params...), Args... args) {
  if (count == 0) return;
  kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(args...);
  check_launch(name);
}

}  // namespace

void max_pool2d_forward(float* y, int64_t* indices, const float* x, const Pool2dDesc& d, cudaStream_t stream) {
  launch_items("max_pool2d_forward", outputs(d), stream, max_pool2d_forward_kernel, y, indices, x, d);
}

void max_pool2d_backward(float* dx, const float* dy, const int64_t* indices, const Pool2dDesc& d,
                         cudaStream_t stream) {
  launch_items("max_pool2d_backward", inputs(d), stream, max_pool2d_backward_kernel, dx, dy, indices, d);
}

void avg_pool2d_forward(float* y, const float* x, const Pool2dDesc& d, cudaStream_t stream) {
  launch_items("avg_pool2d_forward", outputs(d), stream, avg_pool2d_forward_kernel, y, x, d);
}

void avg_pool2d_backward(float* dx, const float* dy, const Pool2dDesc& d, cudaStream_t stream) {
  launch_items("avg_pool2d_backward", inputs(d), stream, avg_pool2d_backward_kernel, dx, dy, d);
}

void adaptive_avg_pool2d_forward(float* y, const float* x, const AdaptivePool2dDesc& d, cudaStream_t stream) {
  launch_items("adaptive_avg_pool2d_forward", outputs(d), stream, adaptive_avg_pool2d_forward_kernel, y, x, d);
}

void adaptive_avg_pool2d_backward(float* dx, const float* dy, const AdaptivePool2dDesc& d, cudaStream_t stream) {
  launch_items("adaptive_avg_pool2d_backward", inputs(d), stream, adaptive_avg_pool2d_backward_kernel, dx, dy, d);
}

void adaptive_max_pool2d_forward(float* y, int64_t* indices, const float* x, const AdaptivePool2dDesc& d,
                                 cudaStream_t stream) {
  launch_items("adaptive_max_pool2d_forward", outputs(d), stream, adaptive_max_pool2d_forward_kernel, y, indices, x, d);
}

void adaptive_max_pool2d_backward(float* dx, const float* dy, const int64_t* indices, const AdaptivePool2dDesc& d,
                                  cudaStream_t stream) {
  launch_items("adaptive_max_pool2d_backward", inputs(d), stream, adaptive_max_pool2d_backward_kernel, dx, dy,
               indices, d);
}

void upsample_nearest2d_forward(float* y, const float* x, const ResampleDesc& d, cudaStream_t stream) {
  launch_items("upsample_nearest2d_forward", outputs(d), stream, upsample_nearest2d_forward_kernel, y, x, d);
}

void upsample_nearest2d_backward(float* dx, const float* dy, const ResampleDesc& d, cudaStream_t stream) {
  launch_items("upsample_nearest2d_backward", inputs(d), stream, upsample_nearest2d_backward_kernel, dx, dy, d);
}

void upsample_bilinear2d_forward(float* y, const float* x, const ResampleDesc& d, cudaStream_t stream) {
  launch_items("upsample_bilinear2d_forward", outputs(d), stream, upsample_bilinear2d_forward_kernel, y, x, d);
}

void upsample_bilinear2d_backward(float* dx, const float* dy, const ResampleDesc& d, cudaStream_t stream) {
  launch_items("upsample_bilinear2d_backward", inputs(d), stream, upsample_bilinear2d_backward_kernel, dx, dy, d);
}

}  // namespace pcn::cuda
