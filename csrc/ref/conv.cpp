// Reference conv2d: direct loops over the definition, accumulating in double. The oracle for tests.
#include "kernels/conv.h"

#include <vector>

#include "ref/operand.h"

namespace pcn::reference {
namespace {

// Calls f(n, oc, oh, ow, c, r, s, x_index) for every (output, tap) pair whose input lies inside
// the image: the one loop nest all four kernels are written against.
template <class F>
void for_each_tap(const Conv2dDesc& d, F&& f) {
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t oc = 0; oc < d.out_channels; ++oc) {
      const int64_t group = oc / cout_g;
      for (int64_t oh = 0; oh < d.out_h; ++oh)
        for (int64_t ow = 0; ow < d.out_w; ++ow)
          for (int64_t c = 0; c < cin_g; ++c)
            for (int64_t r = 0; r < d.kernel_h; ++r)
              for (int64_t s = 0; s < d.kernel_w; ++s) {
                const int64_t ih = oh * d.stride_h - d.pad_h + r * d.dilation_h;
                const int64_t iw = ow * d.stride_w - d.pad_w + s * d.dilation_w;
                if (ih < 0 || ih >= d.in_h || iw < 0 || iw >= d.in_w) continue;
                const int64_t x_index = ((n * d.in_channels + group * cin_g + c) * d.in_h + ih) * d.in_w + iw;
                f(n, oc, oh, ow, c, r, s, x_index);
              }
    }
}

int64_t y_index(const Conv2dDesc& d, int64_t n, int64_t oc, int64_t oh, int64_t ow) {
  return ((n * d.out_channels + oc) * d.out_h + oh) * d.out_w + ow;
}

int64_t w_index(const Conv2dDesc& d, int64_t oc, int64_t c, int64_t r, int64_t s) {
  return ((oc * (d.in_channels / d.groups) + c) * d.kernel_h + r) * d.kernel_w + s;
}

int64_t input_values(const Conv2dDesc& d) { return d.batch * d.in_channels * d.in_h * d.in_w; }
int64_t output_values(const Conv2dDesc& d) { return d.batch * d.out_channels * d.out_h * d.out_w; }
int64_t weight_values(const Conv2dDesc& d) {
  return d.out_channels * (d.in_channels / d.groups) * d.kernel_h * d.kernel_w;
}

}  // namespace

void conv2d_forward(float* y, const float* x_values, const float* w_values, const float* bias, const Conv2dDesc& d) {
  const Operand x(x_values, input_values(d), d.bf16);
  const Operand w(w_values, weight_values(d), d.bf16);
  const int64_t outputs = output_values(d);
  std::vector<double> acc(outputs);
  for_each_tap(d, [&](int64_t n, int64_t oc, int64_t oh, int64_t ow, int64_t c, int64_t r, int64_t s, int64_t xi) {
    acc[y_index(d, n, oc, oh, ow)] += static_cast<double>(x[xi]) * w[w_index(d, oc, c, r, s)];
  });
  const int64_t plane = d.out_h * d.out_w;
  for (int64_t i = 0; i < outputs; ++i) y[i] = static_cast<float>(acc[i] + (bias ? bias[(i / plane) % d.out_channels] : 0.0));
}

void conv2d_backward_data(float* dx, const float* dy_values, const float* w_values, const Conv2dDesc& d) {
  const Operand dy(dy_values, output_values(d), d.bf16);
  const Operand w(w_values, weight_values(d), d.bf16);
  const int64_t inputs = input_values(d);
  std::vector<double> acc(inputs);
  for_each_tap(d, [&](int64_t n, int64_t oc, int64_t oh, int64_t ow, int64_t c, int64_t r, int64_t s, int64_t xi) {
    acc[xi] += static_cast<double>(dy[y_index(d, n, oc, oh, ow)]) * w[w_index(d, oc, c, r, s)];
  });
  for (int64_t i = 0; i < inputs; ++i) dx[i] = static_cast<float>(acc[i]);
}

void conv2d_backward_weight(float* dw, const float* dy_values, const float* x_values, const Conv2dDesc& d) {
  const Operand dy(dy_values, output_values(d), d.bf16);
  const Operand x(x_values, input_values(d), d.bf16);
  const int64_t weights = weight_values(d);
  std::vector<double> acc(weights);
  for_each_tap(d, [&](int64_t n, int64_t oc, int64_t oh, int64_t ow, int64_t c, int64_t r, int64_t s, int64_t xi) {
    acc[w_index(d, oc, c, r, s)] += static_cast<double>(dy[y_index(d, n, oc, oh, ow)]) * x[xi];
  });
  for (int64_t i = 0; i < weights; ++i) dw[i] = static_cast<float>(acc[i]);
}

void conv2d_backward_bias(float* db, const float* dy_values, const Conv2dDesc& d) {
  const Operand dy(dy_values, output_values(d), d.bf16);
  const int64_t plane = d.out_h * d.out_w;
  for (int64_t oc = 0; oc < d.out_channels; ++oc) {
    double sum = 0.0;
    for (int64_t n = 0; n < d.batch; ++n)
      for (int64_t i = 0; i < plane; ++i) sum += dy[(n * d.out_channels + oc) * plane + i];
    db[oc] = static_cast<float>(sum);
  }
}

// The dense route: the pooled gradient masked by ReLU and scattered to the argmax positions, then
// the three passes above.
void conv2d_relu_max_pool2d_backward(float* dx, float* dw, float* db, int64_t* first_invalid, const float* gy,
                                     const float* y, const int64_t* indices, const float* x, const float* w,
                                     const Conv2dDesc& d, int64_t pooled_h, int64_t pooled_w) {
  const int64_t pooled = pooled_h * pooled_w, plane = d.out_h * d.out_w;
  std::vector<float> dy(d.batch * d.out_channels * plane, 0.0f);
  *first_invalid = -1;
  for (int64_t i = 0; i < d.batch * d.out_channels * pooled; ++i) {
    const int64_t q = indices[i];
    if (q < -1 || q >= plane) {
      if (*first_invalid < 0) *first_invalid = i;
      continue;
    }
    if (q >= 0 && y[i] > 0.0f) dy[(i / pooled) * plane + q] += gy[i];
  }
  if (dx) conv2d_backward_data(dx, dy.data(), w, d);
  conv2d_backward_weight(dw, dy.data(), x, d);
  if (db) conv2d_backward_bias(db, dy.data(), d);
}

// One way only: the loops above, whatever algorithm a descriptor asks for.
void conv2d_algorithms(uint32_t* candidates, ConvAlgorithm* heuristic, ConvPass, const Conv2dDesc&) {
  *candidates = 0;
  *heuristic = ConvAlgorithm::automatic;
}

}  // namespace pcn::reference
