// Reference pooling: direct loops over each window's definition (torch's rules), sums in double.
// The oracle for tests.
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace pcn::reference {
namespace {

struct Window {
  int64_t h0, h1, w0, w1;  // input rows/columns covered, clipped to the input
  double divisor;           // avg pooling only
};

// Max pooling's taps: (h0 + r*dh, w0 + s*dw) for every r, s that lands inside the input.
template <class F>
void for_each_max_tap(const Pool2dDesc& d, int64_t oh, int64_t ow, F&& f) {
  for (int64_t r = 0; r < d.kernel_h; ++r)
    for (int64_t s = 0; s < d.kernel_w; ++s) {
      const int64_t h = oh * d.stride_h - d.pad_h + r * d.dilation_h, w = ow * d.stride_w - d.pad_w + s * d.dilation_w;
      if (h >= 0 && h < d.in_h && w >= 0 && w < d.in_w) f(h * d.in_w + w);
    }
}

Window avg_window(const Pool2dDesc& d, int64_t oh, int64_t ow) {
  int64_t h0 = oh * d.stride_h - d.pad_h, w0 = ow * d.stride_w - d.pad_w;
  int64_t h1 = std::min(h0 + d.kernel_h, d.in_h + d.pad_h), w1 = std::min(w0 + d.kernel_w, d.in_w + d.pad_w);
  const double padded_area = static_cast<double>((h1 - h0) * (w1 - w0));
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, d.in_h);
  w1 = std::min(w1, d.in_w);
  double divisor = d.count_include_pad ? padded_area : static_cast<double>((h1 - h0) * (w1 - w0));
  if (d.divisor_override != 0) divisor = static_cast<double>(d.divisor_override);
  return {h0, h1, w0, w1, divisor};
}

Window adaptive_window(const AdaptivePool2dDesc& d, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * d.in_h / d.out_h, h1 = ((oh + 1) * d.in_h + d.out_h - 1) / d.out_h;
  const int64_t w0 = ow * d.in_w / d.out_w, w1 = ((ow + 1) * d.in_w + d.out_w - 1) / d.out_w;
  return {h0, h1, w0, w1, static_cast<double>((h1 - h0) * (w1 - w0))};
}

// Calls f(plane, output offset within all outputs, window) for every output.
template <class Desc, class WindowOf, class F>
void for_each_output(const Desc& d, WindowOf&& window_of, F&& f) {
  for (int64_t p = 0; p < d.batch * d.channels; ++p)
    for (int64_t oh = 0; oh < d.out_h; ++oh)
      for (int64_t ow = 0; ow < d.out_w; ++ow) f(p, (p * d.out_h + oh) * d.out_w + ow, window_of(d, oh, ow), oh, ow);
}

// The first maximum in window order; NaN wins (torch's rule). -inf and -1 for an empty window.
template <class Taps>
void argmax(const float* plane, Taps&& taps, float* value, int64_t* index) {
  float best = -INFINITY;
  int64_t best_index = -1;
  taps([&](int64_t at) {
    if (best_index < 0 || plane[at] > best || std::isnan(plane[at])) {
      best = plane[at];
      best_index = at;
    }
  });
  *value = best;
  *index = best_index;
}

void scatter_to_argmax(float* dx, int64_t* first_invalid, const float* dy, const int64_t* indices, int64_t planes,
                       int64_t in_plane, int64_t out_plane) {
  std::vector<double> acc(planes * in_plane);
  *first_invalid = -1;
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o = 0; o < out_plane; ++o) {
      const int64_t index = indices[p * out_plane + o];
      if (index >= 0 && index < in_plane)
        acc[p * in_plane + index] += dy[p * out_plane + o];
      else if (index != -1 && *first_invalid < 0)
        *first_invalid = p * out_plane + o;
    }
  for (size_t i = 0; i < acc.size(); ++i) dx[i] = static_cast<float>(acc[i]);
}

// y = window sum / divisor (0 for a window holding no input element).
template <class Desc, class WindowOf>
void average_windows(float* y, const float* x, const Desc& d, WindowOf&& window_of) {
  const int64_t in_plane = d.in_h * d.in_w;
  for_each_output(d, window_of, [&](int64_t p, int64_t o, const Window& win, int64_t, int64_t) {
    double sum = 0.0;
    for (int64_t h = win.h0; h < win.h1; ++h)
      for (int64_t w = win.w0; w < win.w1; ++w) sum += x[p * in_plane + h * d.in_w + w];
    y[o] = win.h0 < win.h1 && win.w0 < win.w1 ? static_cast<float>(sum / win.divisor) : 0.0f;
  });
}

// dx = sum over the windows holding each element of dy / divisor.
template <class Desc, class WindowOf>
void spread_over_windows(float* dx, const float* dy, const Desc& d, WindowOf&& window_of) {
  const int64_t in_plane = d.in_h * d.in_w;
  std::vector<double> acc(d.batch * d.channels * in_plane);
  for_each_output(d, window_of, [&](int64_t p, int64_t o, const Window& win, int64_t, int64_t) {
    for (int64_t h = win.h0; h < win.h1; ++h)
      for (int64_t w = win.w0; w < win.w1; ++w) acc[p * in_plane + h * d.in_w + w] += dy[o] / win.divisor;
  });
  for (size_t i = 0; i < acc.size(); ++i) dx[i] = static_cast<float>(acc[i]);
}

Window no_window(const Pool2dDesc&, int64_t, int64_t) { return {}; }

}  // namespace

void max_pool2d_forward(float* y, int64_t* indices, const float* x, const Pool2dDesc& d) {
  const int64_t in_plane = d.in_h * d.in_w;
  for_each_output(d, no_window, [&](int64_t p, int64_t o, const Window&, int64_t oh, int64_t ow) {
    argmax(x + p * in_plane, [&](auto&& f) { for_each_max_tap(d, oh, ow, f); }, y + o, indices + o);
  });
}

void max_pool2d_backward(float* dx, int64_t* first_invalid, const float* dy, const int64_t* indices,
                         const Pool2dDesc& d) {
  scatter_to_argmax(dx, first_invalid, dy, indices, d.batch * d.channels, d.in_h * d.in_w, d.out_h * d.out_w);
}

void avg_pool2d_forward(float* y, const float* x, const Pool2dDesc& d) { average_windows(y, x, d, avg_window); }

void avg_pool2d_backward(float* dx, const float* dy, const Pool2dDesc& d) { spread_over_windows(dx, dy, d, avg_window); }

void adaptive_avg_pool2d_forward(float* y, const float* x, const AdaptivePool2dDesc& d) {
  average_windows(y, x, d, adaptive_window);
}

void adaptive_avg_pool2d_backward(float* dx, const float* dy, const AdaptivePool2dDesc& d) {
  spread_over_windows(dx, dy, d, adaptive_window);
}

void adaptive_max_pool2d_forward(float* y, int64_t* indices, const float* x, const AdaptivePool2dDesc& d) {
  const int64_t in_plane = d.in_h * d.in_w;
  for_each_output(d, adaptive_window, [&](int64_t p, int64_t o, const Window& win, int64_t, int64_t) {
    auto taps = [&](auto&& f) {
      for (int64_t h = win.h0; h < win.h1; ++h)
        for (int64_t w = win.w0; w < win.w1; ++w) f(h * d.in_w + w);
    };
    argmax(x + p * in_plane, taps, y + o, indices + o);
  });
}

void adaptive_max_pool2d_backward(float* dx, int64_t* first_invalid, const float* dy, const int64_t* indices,
                                  const AdaptivePool2dDesc& d) {
  scatter_to_argmax(dx, first_invalid, dy, indices, d.batch * d.channels, d.in_h * d.in_w, d.out_h * d.out_w);
}

namespace {

int64_t nearest_index(int64_t o, float scale, int64_t in, int64_t out) {
  if (out == in) return o;
  if (out == 2 * in) return o / 2;
  return std::min(static_cast<int64_t>(std::floor(static_cast<float>(o) * scale)), in - 1);
}

// The two source indices and weights of output index o (see pool.h).
void linear_taps(int64_t o, float scale, bool align_corners, int64_t in, int64_t index[2], double weight[2]) {
  const float src = std::max(align_corners ? scale * static_cast<float>(o) : scale * (static_cast<float>(o) + 0.5f) - 0.5f,
                             0.0f);
  index[0] = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
  index[1] = std::min(index[0] + 1, in - 1);
  weight[1] = std::clamp(static_cast<double>(src - static_cast<float>(index[0])), 0.0, 1.0);
  weight[0] = 1.0 - weight[1];
}

// f(input offset, output offset, weight) for every tap of every output element.
template <class F>
void for_each_tap(const ResampleDesc& d, bool bilinear, F f) {
  for (int64_t p = 0; p < d.batch * d.channels; ++p)
    for (int64_t oh = 0; oh < d.out_h; ++oh)
      for (int64_t ow = 0; ow < d.out_w; ++ow) {
        const int64_t out = (p * d.out_h + oh) * d.out_w + ow, plane = p * d.in_h * d.in_w;
        if (!bilinear) {
          f(plane + nearest_index(oh, d.scale_h, d.in_h, d.out_h) * d.in_w + nearest_index(ow, d.scale_w, d.in_w, d.out_w),
            out, 1.0);
          continue;
        }
        int64_t hi[2], wi[2];
        double hw[2], ww[2];
        linear_taps(oh, d.scale_h, d.align_corners, d.in_h, hi, hw);
        linear_taps(ow, d.scale_w, d.align_corners, d.in_w, wi, ww);
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) f(plane + hi[a] * d.in_w + wi[b], out, hw[a] * ww[b]);
      }
}

void resample_forward(float* y, const float* x, const ResampleDesc& d, bool bilinear) {
  std::vector<double> sum(d.batch * d.channels * d.out_h * d.out_w, 0.0);
  for_each_tap(d, bilinear, [&](int64_t in, int64_t out, double weight) { sum[out] += weight * x[in]; });
  for (size_t i = 0; i < sum.size(); ++i) y[i] = static_cast<float>(sum[i]);
}

void resample_backward(float* dx, const float* dy, const ResampleDesc& d, bool bilinear) {
  std::vector<double> sum(d.batch * d.channels * d.in_h * d.in_w, 0.0);
  for_each_tap(d, bilinear, [&](int64_t in, int64_t out, double weight) { sum[in] += weight * dy[out]; });
  for (size_t i = 0; i < sum.size(); ++i) dx[i] = static_cast<float>(sum[i]);
}

}  // namespace

void upsample_nearest2d_forward(float* y, const float* x, const ResampleDesc& d) { resample_forward(y, x, d, false); }

void upsample_nearest2d_backward(float* dx, const float* dy, const ResampleDesc& d) {
  resample_backward(dx, dy, d, false);
}

void upsample_bilinear2d_forward(float* y, const float* x, const ResampleDesc& d) { resample_forward(y, x, d, true); }

void upsample_bilinear2d_backward(float* dx, const float* dy, const ResampleDesc& d) {
  resample_backward(dx, dy, d, true);
}

}  // namespace pcn::reference
