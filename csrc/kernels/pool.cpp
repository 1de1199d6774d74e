// Pooling kernels (see pool.h). Forward passes split the work over (plane, output row) pairs;
// backward passes over planes, so each thread owns whole dx planes (zeroed, then scatter-added:
// no races, deterministic). Within an output row, the "interior" columns, whose windows lie
// wholly inside the input, run as vectorisable loops over output columns, one window tap at a
// time; the few border columns (padding, ceil_mode overhang) take a bounds-checked scalar path.
// Stride-2 rows (the 2x2/s2 and 3x3/s2 layers of the classic CNNs) get a compile-time stride so
// the strided loads become shuffles.
#include "kernels/pool.h"

#include <cmath>

#include "core/simd.h"

PCN_ISA_BEGIN
namespace {

constexpr float kNegInf = -HUGE_VALF;

// Output positions [lo, hi) along one axis whose taps start..start+(kernel-1)*dilation all lie in
// [0, in), with start = o * stride - pad.
void interior_range(int64_t out, int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                    int64_t* lo, int64_t* hi) {
  const int64_t last_start = in - 1 - (kernel - 1) * dilation + pad;  // largest o * stride allowed
  *hi = last_start < 0 ? 0 : min64(out, last_start / stride + 1);
  *lo = min64((pad + stride - 1) / stride, *hi);
}

// Taps [begin, end) of a dilated window starting at `start` that land in [0, in).
void valid_taps(int64_t start, int64_t in, int64_t kernel, int64_t dilation, int64_t* begin, int64_t* end) {
  *begin = start < 0 ? (-start + dilation - 1) / dilation : 0;
  *end = start > in - 1 ? 0 : min64(kernel, (in - 1 - start) / dilation + 1);
  if (*begin > *end) *begin = *end;
}

// Calls body(ColumnStride<s>{}) with s = the column stride when it is 1 or 2 (compile-time
// strides turn strided loads into shuffles), else with s = 0 (read the stride at run time).
template <int kStride>
struct ColumnStride {
  static constexpr int value = kStride;
};

template <class Body>
void with_column_stride(int64_t stride, Body&& body) {
  if (stride == 2)
    body(ColumnStride<2>{});
  else if (stride == 1)
    body(ColumnStride<1>{});
  else
    body(ColumnStride<0>{});
}

// torch's max rule: a larger value or any NaN replaces the running maximum.
static inline bool replaces(float value, float best) { return value > best || value != value; }

// One bounds-checked max window over rows [r0, r1) of taps; -inf and index -1 when it is empty.
void max_window(const float* plane, const Pool2dDesc& d, int64_t h0, int64_t r0, int64_t r1, int64_t ow, float* value,
                int64_t* index) {
  const int64_t w0 = ow * d.stride_w - d.pad_w;
  int64_t s0, s1;
  valid_taps(w0, d.in_w, d.kernel_w, d.dilation_w, &s0, &s1);
  float best = kNegInf;
  int64_t best_index = -1;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t at = (h0 + r * d.dilation_h) * d.in_w + w0 + s * d.dilation_w;
      if (best_index < 0 || replaces(plane[at], best)) {
        best = plane[at];
        best_index = at;
      }
    }
  *value = best;
  *index = best_index;
}

typedef int64_t vlong __attribute__((vector_size(kVecFloats * sizeof(int64_t))));
typedef int64_t vlong_u __attribute__((vector_size(kVecFloats * sizeof(int64_t)), aligned(8)));  // any address

static inline bool any_lane(vint mask) {
#if defined(PCN_ISA_IS_avx2)
  return _mm256_movemask_ps(reinterpret_cast<__m256>(mask)) != 0;
#else
  int32_t any = 0;
  for (int lane = 0; lane < kVecFloats; ++lane) any |= mask[lane];
  return any != 0;
#endif
}

// Columns src[0], src[stride], ... of kVecFloats outputs; kStride > 0 fixes the stride at compile
// time, 0 reads it at run time.
template <int kStride>
static inline vfloat load_columns(const float* src, int64_t stride) {
  if constexpr (kStride == 1) {
    return vload(src);
  } else if constexpr (kStride == 2) {
    return every_other_lane<0>(vload(src), vload(src + kVecFloats));
  } else {
    vfloat v;
    for (int lane = 0; lane < kVecFloats; ++lane) v[lane] = src[lane * stride];
    return v;
  }
}

// Outputs [0, n) of a row's vector (n <= kVecFloats): the maxima, and their plane indices
// first + offset.
static inline void store_maxima(float* y, int64_t* idx, vfloat best, vint offset, int64_t first, int64_t n) {
  if (n == kVecFloats) {
    vstore(y, best);
    *reinterpret_cast<vlong_u*>(idx) = __builtin_convertvector(offset, vlong) + first;
    return;
  }
#if defined(PCN_ISA_IS_avx512)
  vstore_first(y, best, n);
  const __m512i offsets = reinterpret_cast<__m512i>(offset), base = _mm512_set1_epi64(first);
  const __m512i low = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(offsets)), base);
  const __m512i high = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(offsets, 1)), base);
  _mm512_mask_storeu_epi64(idx, __mmask8((1u << min64(n, 8)) - 1), low);
  _mm512_mask_storeu_epi64(idx + 8, __mmask8((1u << max64(n - 8, 0)) - 1), high);
#else
  for (int64_t lane = 0; lane < n; ++lane) {
    y[lane] = best[lane];
    idx[lane] = first + offset[lane];
  }
#endif
}

// 2x2 windows at stride 2 read in place from the plane (the classic CNNs' pooling; see
// max_plane_from_view): the maximum of each window row, then the larger of the two, so that no
// compare waits on more than one other. Same result as the scan in window order: the first
// maximum, or the last NaN. A window of -inf takes its first tap, as torch's.
void max_plane_2x2(float* y, int64_t* idx, const float* plane, const Pool2dDesc& d) {
  const int64_t w = d.in_w;
  vint lane_column;  // 2 (ow - ow0) of each lane
  for (int lane = 0; lane < kVecFloats; ++lane) lane_column[lane] = 2 * lane;
  const vint second_row = vint{} + static_cast<int32_t>(w);
  for (int64_t oh = 0; oh < d.out_h; ++oh) {
    for (int64_t ow0 = 0; ow0 < d.out_w; ow0 += kVecFloats) {
      const float* top = plane + 2 * oh * w + 2 * ow0;
      const vfloat t0 = vload(top), t1 = vload(top + kVecFloats);
      const vfloat b0 = vload(top + w), b1 = vload(top + w + kVecFloats);
      const vfloat top_left = every_other_lane<0>(t0, t1), top_right = every_other_lane<1>(t0, t1);
      const vfloat bottom_left = every_other_lane<0>(b0, b1), bottom_right = every_other_lane<1>(b0, b1);
      const vint take_top_right = (top_right > top_left) | (top_right != top_right);
      const vint take_bottom_right = (bottom_right > bottom_left) | (bottom_right != bottom_right);
      const vfloat upper = take_top_right ? top_right : top_left;
      const vfloat lower = take_bottom_right ? bottom_right : bottom_left;
      const vint take_lower = (lower > upper) | (lower != lower);
      const vint tap = take_lower ? second_row - take_bottom_right : -take_top_right;  // a true lane is -1
      store_maxima(y + oh * d.out_w + ow0, idx + oh * d.out_w + ow0, take_lower ? lower : upper,
                   tap + lane_column, 2 * oh * w + 2 * ow0, min64(kVecFloats, d.out_w - ow0));
    }
  }
}

// How max_pool2d_forward reads a plane: through a view of `rows` rows, `pitch` floats apart, with
// plane element (0, 0) at view row `top`, column `left`. Window (oh, ow) starts at view row
// oh * stride_h, column ow * stride_w, and every output row's vectors (whole ones, past out_w)
// read inside the view.
struct MaxPoolView {
  int64_t rows, cols, top, left;
  explicit MaxPoolView(const Pool2dDesc& d)
      : rows((d.out_h - 1) * d.stride_h + (d.kernel_h - 1) * d.dilation_h + 1),
        cols(round_up_vec(d.out_w) * d.stride_w + (d.kernel_w - 1) * d.dilation_w),
        top(d.pad_h), left(d.pad_w) {}
  static int64_t round_up_vec(int64_t n) { return (n + kVecFloats - 1) / kVecFloats * kVecFloats; }
  // Whether every window lies inside the plane (no padding, no ceil_mode overhang), so that the
  // plane itself is the view (the vectors' lanes past out_w read on into the next rows).
  bool plane_is_view(const Pool2dDesc& d) const {
    const int64_t last_column = (d.out_w - 1) * d.stride_w + (d.kernel_w - 1) * d.dilation_w;
    return top == 0 && left == 0 && rows <= d.in_h && last_column < d.in_w;
  }
  // Whether the window offsets and indices fit the int32 lanes of the vector loop.
  bool fits_int32(const Pool2dDesc& d) const {
    return (rows + d.pad_h + 1) * (cols + d.in_w + d.pad_w) < (int64_t(1) << 31);
  }
};

// The plane with -inf around it, rows x cols of view (see MaxPoolView) into `view`.
void copy_padded_plane(float* view, const float* plane, const Pool2dDesc& d, const MaxPoolView& v) {
  const int64_t copied = max64(0, min64(d.in_w, v.cols - v.left));
  for (int64_t r = 0; r < v.rows; ++r) {
    float* dst = view + r * v.cols;
    const int64_t h = r - v.top;
    if (h < 0 || h >= d.in_h) {
      for (int64_t c = 0; c < v.cols; ++c) dst[c] = kNegInf;
      continue;
    }
    for (int64_t c = 0; c < min64(v.left, v.cols); ++c) dst[c] = kNegInf;
    std::memcpy(dst + v.left, plane + h * d.in_w, copied * sizeof(float));
    for (int64_t c = v.left + copied; c < v.cols; ++c) dst[c] = kNegInf;
  }
}

// The max windows of one plane from its view (pitch floats a row): each output row is a loop over
// vectors of kVecFloats outputs, every tap a vector compare-and-select. A window whose maximum is
// -inf may have taken a padding tap where torch takes its first tap inside, so those (all inputs
// -inf) are redone by max_window.
template <int kStride>
void max_plane_from_view(float* y, int64_t* idx, const float* view, int64_t pitch, const float* plane,
                         const Pool2dDesc& d, const MaxPoolView& v) {
  const int64_t sw = kStride > 0 ? kStride : d.stride_w;
  vint lane_column;  // ow - ow0 of each lane, times the stride
  for (int lane = 0; lane < kVecFloats; ++lane) lane_column[lane] = static_cast<int32_t>(lane * sw);
  for (int64_t oh = 0; oh < d.out_h; ++oh) {
    const float* row = view + oh * d.stride_h * pitch;
    const int64_t h0 = oh * d.stride_h - d.pad_h;
    const int64_t row_index = h0 * d.in_w - v.left;  // plane index of view row oh * stride_h, column 0
    for (int64_t ow0 = 0; ow0 < d.out_w; ow0 += kVecFloats) {
      const float* window = row + ow0 * sw;
      vfloat best = load_columns<kStride>(window, sw);
      vint tap = vint{} + 0;  // the winner's offset from its window's top-left, in plane indices
      for (int64_t r = 0; r < d.kernel_h; ++r)
        for (int64_t s = (r == 0 ? 1 : 0); s < d.kernel_w; ++s) {
          const vfloat value = load_columns<kStride>(window + r * d.dilation_h * pitch + s * d.dilation_w, sw);
          const vint take = (value > best) | (value != value);
          best = take ? value : best;
          tap = take ? vint{} + static_cast<int32_t>(r * d.dilation_h * d.in_w + s * d.dilation_w) : tap;
        }
      const int64_t first = row_index + ow0 * sw, outputs = min64(kVecFloats, d.out_w - ow0);
      float* y_out = y + oh * d.out_w + ow0;
      int64_t* i_out = idx + oh * d.out_w + ow0;
      const vint negative_infinity = best == vbroadcast(kNegInf);
      store_maxima(y_out, i_out, best, tap + lane_column, first, outputs);
      if (any_lane(negative_infinity)) {
        int64_t r0, r1;
        valid_taps(h0, d.in_h, d.kernel_h, d.dilation_h, &r0, &r1);
        for (int64_t lane = 0; lane < outputs; ++lane)
          if (negative_infinity[lane]) max_window(plane, d, h0, r0, r1, ow0 + lane, y_out + lane, i_out + lane);
      }
    }
  }
}

// Max-pool backward: each plane of dx zeroed, then dy added at the stored argmax; -1 marks an
// empty window, and an index outside the plane is skipped and reported (see pool.h). One thread
// per plane: no races.
void scatter_to_argmax(float* dx, int64_t* first_invalid, const float* dy, const int64_t* indices, int64_t planes,
                       int64_t in_plane, int64_t out_plane) {
  int64_t first = planes * out_plane;  // none yet
#pragma omp parallel for num_threads(threads_for(planes, planes * in_plane)) schedule(static) reduction(min : first)
  for (int64_t p = 0; p < planes; ++p) {
    float* dst = dx + p * in_plane;
    const float* grad = dy + p * out_plane;
    const int64_t* idx = indices + p * out_plane;
    for (int64_t i = 0; i < in_plane; ++i) dst[i] = 0.0f;
    for (int64_t o = 0; o < out_plane; ++o) {
      // One unsigned compare: -1 and the indices past the plane both wrap to in_plane or more.
      if (static_cast<uint64_t>(idx[o]) < static_cast<uint64_t>(in_plane))
        dst[idx[o]] += grad[o];
      else if (idx[o] != -1 && p * out_plane + o < first)
        first = p * out_plane + o;
    }
  }
  *first_invalid = first == planes * out_plane ? -1 : first;
}

}  // namespace

// Plane by plane: a plane whose windows (and the vectors' overreach) stay inside its rows is read
// in place, any other is first copied with -inf around it into the thread's scratch.
void max_pool2d_forward(float* y, int64_t* indices, const float* x, const Pool2dDesc& d) {
  const int64_t planes = d.batch * d.channels, in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
  if (out_plane == 0) return;
  const MaxPoolView view(d);
  const int threads = threads_for(planes, planes * in_plane);
  const bool vectorised = view.fits_int32(d);
  const bool two_by_two = d.kernel_h == 2 && d.kernel_w == 2 && d.stride_h == 2 && d.stride_w == 2 &&
                          d.dilation_h == 1 && d.dilation_w == 1;
  const int64_t view_floats = vectorised ? view.rows * view.cols : 0;
  float* views = thread_scratch(Scratch::columns, view_floats * threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float* plane = x + p * in_plane;
    float* y_plane = y + p * out_plane;
    int64_t* i_plane = indices + p * out_plane;
    if (!vectorised) {  // giant planes: bounds-checked windows with 64-bit indices
      for (int64_t oh = 0; oh < d.out_h; ++oh) {
        const int64_t h0 = oh * d.stride_h - d.pad_h;
        int64_t r0, r1;
        valid_taps(h0, d.in_h, d.kernel_h, d.dilation_h, &r0, &r1);
        for (int64_t ow = 0; ow < d.out_w; ++ow)
          max_window(plane, d, h0, r0, r1, ow, y_plane + oh * d.out_w + ow, i_plane + oh * d.out_w + ow);
      }
      continue;
    }
    // In place also needs the last row's vectors to end inside the tensor.
    const bool in_place = view.plane_is_view(d) &&
                          (p * in_plane + (view.rows - 1) * d.in_w + view.cols <= planes * in_plane);
    if (in_place && two_by_two) {
      max_plane_2x2(y_plane, i_plane, plane, d);
      continue;
    }
    const float* source = plane;
    int64_t pitch = d.in_w;
    if (!in_place) {
      float* copy = views + omp_get_thread_num() * view_floats;
      copy_padded_plane(copy, plane, d, view);
      source = copy;
      pitch = view.cols;
    }
    with_column_stride(d.stride_w, [&](auto stride) {
      max_plane_from_view<decltype(stride)::value>(y_plane, i_plane, source, pitch, plane, d, view);
    });
  }
}

void max_pool2d_backward(float* dx, int64_t* first_invalid, const float* dy, const int64_t* indices,
                         const Pool2dDesc& d) {
  scatter_to_argmax(dx, first_invalid, dy, indices, d.batch * d.channels, d.in_h * d.in_w, d.out_h * d.out_w);
}

namespace {

// Rows [h0, h1) actually summed and the divisor of every window in output row/column terms:
// torch clips a window to the padded input (pool extent) before clipping it to the input.
struct AvgSpan {
  int64_t begin, end, pool;  // input range [begin, end) and the extent counted with padding
};

AvgSpan avg_span(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t start = o * stride - pad;
  const int64_t stop = min64(start + kernel, in + pad);
  return {max64(start, 0), min64(stop, in), stop - start};
}

float avg_divisor(const Pool2dDesc& d, const AvgSpan& rows, const AvgSpan& cols) {
  if (d.divisor_override != 0) return static_cast<float>(d.divisor_override);
  if (d.count_include_pad) return static_cast<float>(rows.pool * cols.pool);
  return static_cast<float>((rows.end - rows.begin) * (cols.end - cols.begin));
}

// One bounds-checked average window (0 when it holds no input element, as torch).
float avg_window(const float* plane, const Pool2dDesc& d, const AvgSpan& hs, int64_t ow) {
  const AvgSpan ws = avg_span(ow, d.in_w, d.kernel_w, d.stride_w, d.pad_w);
  if (hs.begin >= hs.end || ws.begin >= ws.end) return 0.0f;
  float sum = 0.0f;
  for (int64_t h = hs.begin; h < hs.end; ++h)
    for (int64_t w = ws.begin; w < ws.end; ++w) sum += plane[h * d.in_w + w];
  return sum / avg_divisor(d, hs, ws);
}

// Spreads one output's gradient over its (bounds-checked) window.
void avg_window_backward(float* dst, const Pool2dDesc& d, const AvgSpan& hs, int64_t ow, float grad) {
  const AvgSpan ws = avg_span(ow, d.in_w, d.kernel_w, d.stride_w, d.pad_w);
  if (hs.begin >= hs.end || ws.begin >= ws.end) return;
  const float g = grad / avg_divisor(d, hs, ws);
  for (int64_t h = hs.begin; h < hs.end; ++h)
    for (int64_t w = ws.begin; w < ws.end; ++w) dst[h * d.in_w + w] += g;
}

// Interior columns [lo, hi) of one output row: full-width windows sharing one divisor. kStride > 0
// fixes the column stride at compile time; 0 reads it from d.
template <int kStride>
void avg_forward_interior(float* __restrict y, const float* __restrict plane, const Pool2dDesc& d, const AvgSpan& hs,
                          int64_t lo, int64_t hi, float divisor) {
  const int64_t sw = kStride > 0 ? kStride : d.stride_w;
  for (int64_t ow = lo; ow < hi; ++ow) y[ow] = 0.0f;
  for (int64_t h = hs.begin; h < hs.end; ++h)
    for (int64_t s = 0; s < d.kernel_w; ++s) {
      const float* src = plane + h * d.in_w - d.pad_w + s;
      for (int64_t ow = lo; ow < hi; ++ow) y[ow] += src[ow * sw];
    }
  for (int64_t ow = lo; ow < hi; ++ow) y[ow] /= divisor;
}

template <int kStride>
void avg_backward_interior(float* __restrict dst, const float* __restrict grad, const Pool2dDesc& d, const AvgSpan& hs,
                           int64_t lo, int64_t hi, float divisor) {
  const int64_t sw = kStride > 0 ? kStride : d.stride_w;
  for (int64_t h = hs.begin; h < hs.end; ++h)
    for (int64_t s = 0; s < d.kernel_w; ++s) {
      float* row = dst + h * d.in_w - d.pad_w + s;
      for (int64_t ow = lo; ow < hi; ++ow) row[ow * sw] += grad[ow] / divisor;
    }
}

}  // namespace

void avg_pool2d_forward(float* y, const float* x, const Pool2dDesc& d) {
  const int64_t planes = d.batch * d.channels, rows = planes * d.out_h;
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
  int64_t lo, hi;
  interior_range(d.out_w, d.in_w, d.kernel_w, d.stride_w, d.pad_w, 1, &lo, &hi);
#pragma omp parallel for num_threads(threads_for(rows, planes * in_plane)) schedule(static)
  for (int64_t item = 0; item < rows; ++item) {
    const int64_t p = item / d.out_h, oh = item % d.out_h;
    const float* plane = x + p * in_plane;
    float* y_row = y + p * out_plane + oh * d.out_w;
    const AvgSpan hs = avg_span(oh, d.in_h, d.kernel_h, d.stride_h, d.pad_h);
    for (int64_t ow = 0; ow < lo; ++ow) y_row[ow] = avg_window(plane, d, hs, ow);
    const float divisor = avg_divisor(d, hs, {0, d.kernel_w, d.kernel_w});
    with_column_stride(d.stride_w, [&](auto stride) {
      avg_forward_interior<decltype(stride)::value>(y_row, plane, d, hs, lo, hi, divisor);
    });
    for (int64_t ow = hi > lo ? hi : lo; ow < d.out_w; ++ow) y_row[ow] = avg_window(plane, d, hs, ow);
  }
}

void avg_pool2d_backward(float* dx, const float* dy, const Pool2dDesc& d) {
  const int64_t planes = d.batch * d.channels;
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
  int64_t lo, hi;
  interior_range(d.out_w, d.in_w, d.kernel_w, d.stride_w, d.pad_w, 1, &lo, &hi);
#pragma omp parallel for num_threads(threads_for(planes, planes * in_plane)) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* dst = dx + p * in_plane;
    for (int64_t i = 0; i < in_plane; ++i) dst[i] = 0.0f;
    for (int64_t oh = 0; oh < d.out_h; ++oh) {
      const AvgSpan hs = avg_span(oh, d.in_h, d.kernel_h, d.stride_h, d.pad_h);
      const float* grad = dy + p * out_plane + oh * d.out_w;
      for (int64_t ow = 0; ow < lo; ++ow) avg_window_backward(dst, d, hs, ow, grad[ow]);
      const float divisor = avg_divisor(d, hs, {0, d.kernel_w, d.kernel_w});
      with_column_stride(d.stride_w, [&](auto stride) {
        avg_backward_interior<decltype(stride)::value>(dst, grad, d, hs, lo, hi, divisor);
      });
      for (int64_t ow = hi > lo ? hi : lo; ow < d.out_w; ++ow) avg_window_backward(dst, d, hs, ow, grad[ow]);
    }
  }
}

namespace {

// Adaptive window along one axis: [floor(o * in / out), ceil((o + 1) * in / out)).
int64_t adaptive_begin(int64_t o, int64_t in, int64_t out) { return o * in / out; }
int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

// Calls window(plane, output offset, h0, h1, w0, w1) for every output, in parallel over
// (plane, output row) pairs.
template <class Window>
void for_each_adaptive_output(const AdaptivePool2dDesc& d, Window&& window) {
  const int64_t rows = d.batch * d.channels * d.out_h;
#pragma omp parallel for num_threads(threads_for(rows, d.batch * d.channels * d.in_h * d.in_w)) schedule(static)
  for (int64_t item = 0; item < rows; ++item) {
    const int64_t p = item / d.out_h, oh = item % d.out_h;
    const int64_t h0 = adaptive_begin(oh, d.in_h, d.out_h), h1 = adaptive_end(oh, d.in_h, d.out_h);
    for (int64_t ow = 0; ow < d.out_w; ++ow)
      window(p, item * d.out_w + ow, h0, h1, adaptive_begin(ow, d.in_w, d.out_w), adaptive_end(ow, d.in_w, d.out_w));
  }
}

// Sum of n contiguous floats in vector-wide partial sums, combined in a fixed order.
float sum_contiguous(const float* src, int64_t n) {
  vfloat acc0 = vbroadcast(0.0f), acc1 = vbroadcast(0.0f);
  int64_t i = 0;
  for (; i + 2 * kVecFloats <= n; i += 2 * kVecFloats) {
    acc0 += vload(src + i);
    acc1 += vload(src + i + kVecFloats);
  }
  if (i + kVecFloats <= n) {
    acc0 += vload(src + i);
    i += kVecFloats;
  }
  acc0 += acc1;
  float sum = 0.0f;
  for (int lane = 0; lane < kVecFloats; ++lane) sum += acc0[lane];
  for (; i < n; ++i) sum += src[i];
  return sum;
}

}  // namespace

void adaptive_avg_pool2d_forward(float* y, const float* x, const AdaptivePool2dDesc& d) {
  for_each_adaptive_output(d, [&](int64_t p, int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
    const float* plane = x + p * d.in_h * d.in_w;
    float sum = 0.0f;
    if (w0 == 0 && w1 == d.in_w)  // whole rows (global pooling): one contiguous run
      sum = sum_contiguous(plane + h0 * d.in_w, (h1 - h0) * d.in_w);
    else
      for (int64_t h = h0; h < h1; ++h) sum += sum_contiguous(plane + h * d.in_w + w0, w1 - w0);
    y[o] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
  });
}

void adaptive_avg_pool2d_backward(float* dx, const float* dy, const AdaptivePool2dDesc& d) {
  const int64_t planes = d.batch * d.channels;
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
#pragma omp parallel for num_threads(threads_for(planes, planes * in_plane)) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* dst = dx + p * in_plane;
    for (int64_t i = 0; i < in_plane; ++i) dst[i] = 0.0f;
    for (int64_t oh = 0; oh < d.out_h; ++oh) {
      const int64_t h0 = adaptive_begin(oh, d.in_h, d.out_h), h1 = adaptive_end(oh, d.in_h, d.out_h);
      for (int64_t ow = 0; ow < d.out_w; ++ow) {
        const int64_t w0 = adaptive_begin(ow, d.in_w, d.out_w), w1 = adaptive_end(ow, d.in_w, d.out_w);
        const float g = dy[p * out_plane + oh * d.out_w + ow] / static_cast<float>((h1 - h0) * (w1 - w0));
        for (int64_t h = h0; h < h1; ++h) {
          float* dst_row = dst + h * d.in_w;
          for (int64_t w = w0; w < w1; ++w) dst_row[w] += g;
        }
      }
    }
  }
}

void adaptive_max_pool2d_forward(float* y, int64_t* indices, const float* x, const AdaptivePool2dDesc& d) {
  for_each_adaptive_output(d, [&](int64_t p, int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
    const float* plane = x + p * d.in_h * d.in_w;
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
  });
}

void adaptive_max_pool2d_backward(float* dx, int64_t* first_invalid, const float* dy, const int64_t* indices,
                                  const AdaptivePool2dDesc& d) {
  scatter_to_argmax(dx, first_invalid, dy, indices, d.batch * d.channels, d.in_h * d.in_w, d.out_h * d.out_w);
}

namespace {

int64_t nearest_source(int64_t o, float scale, int64_t in, int64_t out) {
  if (out == in) return o;
  if (out == 2 * in) return o >> 1;
  return min64(static_cast<int64_t>(floorf(static_cast<float>(o) * scale)), in - 1);
}

struct LinearTap {
  int64_t i0, i1;
  float w0, w1;
};

LinearTap linear_source(int64_t o, float scale, bool align_corners, int64_t in) {
  float src = align_corners ? scale * static_cast<float>(o) : scale * (static_cast<float>(o) + 0.5f) - 0.5f;
  if (src < 0.0f) src = 0.0f;
  const int64_t i0 = min64(static_cast<int64_t>(floorf(src)), in - 1);
  const float f = minf(maxf(src - static_cast<float>(i0), 0.0f), 1.0f);
  return {i0, i0 < in - 1 ? i0 + 1 : i0, 1.0f - f, f};
}

// Calls f(plane, oh, ow, source row tap, source column tap) in plane-parallel order; each plane's
// calls come from one thread in row-major output order.
template <class F>
void for_each_linear_output(const ResampleDesc& d, F f) {
  const int64_t planes = d.batch * d.channels;
#pragma omp parallel for num_threads(threads_for(planes, planes * (d.out_h * d.out_w + d.in_h * d.in_w))) \
    schedule(static)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < d.out_h; ++oh) {
      const LinearTap h = linear_source(oh, d.scale_h, d.align_corners, d.in_h);
      for (int64_t ow = 0; ow < d.out_w; ++ow) f(p, oh, ow, h, linear_source(ow, d.scale_w, d.align_corners, d.in_w));
    }
}

}  // namespace

void upsample_nearest2d_forward(float* y, const float* x, const ResampleDesc& d) {
  const int64_t planes = d.batch * d.channels, in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
#pragma omp parallel for num_threads(threads_for(planes, planes * out_plane)) schedule(static)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < d.out_h; ++oh) {
      const float* src = x + p * in_plane + nearest_source(oh, d.scale_h, d.in_h, d.out_h) * d.in_w;
      float* dst = y + p * out_plane + oh * d.out_w;
      for (int64_t ow = 0; ow < d.out_w; ++ow) dst[ow] = src[nearest_source(ow, d.scale_w, d.in_w, d.out_w)];
    }
}

void upsample_nearest2d_backward(float* dx, const float* dy, const ResampleDesc& d) {
  const int64_t planes = d.batch * d.channels, in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
#pragma omp parallel for num_threads(threads_for(planes, planes * (out_plane + in_plane))) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* dst = dx + p * in_plane;
    for (int64_t i = 0; i < in_plane; ++i) dst[i] = 0.0f;
    for (int64_t oh = 0; oh < d.out_h; ++oh) {
      float* row = dst + nearest_source(oh, d.scale_h, d.in_h, d.out_h) * d.in_w;
      const float* g = dy + p * out_plane + oh * d.out_w;
      for (int64_t ow = 0; ow < d.out_w; ++ow) row[nearest_source(ow, d.scale_w, d.in_w, d.out_w)] += g[ow];
    }
  }
}

void upsample_bilinear2d_forward(float* y, const float* x, const ResampleDesc& d) {
  for_each_linear_output(d, [&](int64_t p, int64_t oh, int64_t ow, const LinearTap& h, const LinearTap& w) {
    const float* src = x + p * d.in_h * d.in_w;
    const float* r0 = src + h.i0 * d.in_w;
    const float* r1 = src + h.i1 * d.in_w;
    y[(p * d.out_h + oh) * d.out_w + ow] =
        h.w0 * (w.w0 * r0[w.i0] + w.w1 * r0[w.i1]) + h.w1 * (w.w0 * r1[w.i0] + w.w1 * r1[w.i1]);
  });
}

void upsample_bilinear2d_backward(float* dx, const float* dy, const ResampleDesc& d) {
  const int64_t planes = d.batch * d.channels, in_plane = d.in_h * d.in_w;
#pragma omp parallel for num_threads(threads_for(planes, planes * in_plane)) schedule(static)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < in_plane; ++i) dx[p * in_plane + i] = 0.0f;
  for_each_linear_output(d, [&](int64_t p, int64_t oh, int64_t ow, const LinearTap& h, const LinearTap& w) {
    float* dst = dx + p * in_plane;
    const float g = dy[(p * d.out_h + oh) * d.out_w + ow];
    dst[h.i0 * d.in_w + w.i0] += h.w0 * w.w0 * g;
    dst[h.i0 * d.in_w + w.i1] += h.w0 * w.w1 * g;
    dst[h.i1 * d.in_w + w.i0] += h.w1 * w.w0 * g;
    dst[h.i1 * d.in_w + w.i1] += h.w1 * w.w1 * g;
  });
}

PCN_ISA_END
