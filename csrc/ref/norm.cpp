// Reference batch norm, group / layer norm and LRN: direct loops over the definitions, accumulating in double.
#include "kernels/norm.h"

#include <cmath>
#include <vector>

namespace pcn::reference {
namespace {

// Calls f(index) for every element of channel c.
template <class F>
void for_channel(const BatchNormDesc& d, int64_t c, F&& f) {
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t i = 0; i < d.spatial; ++i) f((n * d.channels + c) * d.spatial + i);
}

double weight_of(const float* weight, int64_t c) { return weight ? weight[c] : 1.0; }

void normalise(float* y, const float* x, double mean, double invstd, const float* weight, const float* bias,
               int64_t c, const BatchNormDesc& d) {
  const double w = weight_of(weight, c), b = bias ? bias[c] : 0.0;
  for_channel(d, c, [&](int64_t i) {
    const float v = static_cast<float>((x[i] - mean) * invstd * w + b);
    y[i] = d.relu && v < 0.0f ? 0.0f : v;
  });
}

}  // namespace

void batch_norm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean,
                              float* running_var, const float* x, const float* weight, const float* bias,
                              const BatchNormDesc& d) {
  const int64_t count = d.batch * d.spatial;
  for (int64_t c = 0; c < d.channels; ++c) {
    if (count == 0) {
      save_mean[c] = save_invstd[c] = 0.0f;
      continue;
    }
    double sum = 0.0, sq = 0.0;
    for_channel(d, c, [&](int64_t i) { sum += x[i]; });
    const double mean = sum / count;
    for_channel(d, c, [&](int64_t i) { sq += (x[i] - mean) * (x[i] - mean); });
    const double var = sq / count, invstd = 1.0 / std::sqrt(var + d.eps);
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    if (running_mean) running_mean[c] = static_cast<float>((1.0 - d.momentum) * running_mean[c] + d.momentum * mean);
    if (running_var)
      running_var[c] = static_cast<float>((1.0 - d.momentum) * running_var[c] + d.momentum * var * count / (count - 1));
    normalise(y, x, mean, invstd, weight, bias, c, d);
  }
}

void batch_norm_forward_eval(float* y, const float* x, const float* running_mean, const float* running_var,
                             const float* weight, const float* bias, const BatchNormDesc& d) {
  for (int64_t c = 0; c < d.channels; ++c)
    normalise(y, x, running_mean[c], 1.0 / std::sqrt(static_cast<double>(running_var[c]) + d.eps), weight, bias, c, d);
}

void batch_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* y,
                         const float* mean, const float* invstd, const float* weight, const BatchNormDesc& d) {
  const int64_t count = d.batch * d.spatial;
  // With a fused relu, the gradient reaching batch norm is dy where the output is positive.
  auto grad = [&](int64_t i) { return d.relu && y[i] <= 0.0f ? 0.0 : static_cast<double>(dy[i]); };
  for (int64_t c = 0; c < d.channels; ++c) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    const double m = mean[c], is = invstd[c], w = weight_of(weight, c);
    for_channel(d, c, [&](int64_t i) {
      sum_dy += grad(i);
      sum_dy_xhat += grad(i) * (x[i] - m) * is;
    });
    if (dweight) dweight[c] = static_cast<float>(sum_dy_xhat);
    if (dbias) dbias[c] = static_cast<float>(sum_dy);
    if (!dx) continue;
    for_channel(d, c, [&](int64_t i) {
      double g = grad(i);
      if (d.training) g -= (sum_dy + (x[i] - m) * is * sum_dy_xhat) / count;
      dx[i] = static_cast<float>(g * w * is);
    });
  }
}

void lrn_forward(float* y, float* scale, const float* x, const LrnDesc& d) {
  const int64_t before = d.size / 2, after = (d.size - 1) / 2;
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t c = 0; c < d.channels; ++c)
      for (int64_t i = 0; i < d.spatial; ++i) {
        double sum = 0.0;
        for (int64_t j = c - before; j <= c + after; ++j)
          if (j >= 0 && j < d.channels) {
            const double v = x[(n * d.channels + j) * d.spatial + i];
            sum += v * v;
          }
        const int64_t at = (n * d.channels + c) * d.spatial + i;
        const double s = d.k + static_cast<double>(d.alpha) / d.size * sum;
        scale[at] = static_cast<float>(s);
        y[at] = static_cast<float>(x[at] * std::pow(s, -static_cast<double>(d.beta)));
      }
}

void lrn_backward(float* dx, const float* dy, const float* x, const float* y, const float* scale, const LrnDesc& d) {
  const int64_t before = d.size / 2, after = (d.size - 1) / 2;
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t c = 0; c < d.channels; ++c)
      for (int64_t i = 0; i < d.spatial; ++i) {
        const int64_t at = (n * d.channels + c) * d.spatial + i;
        double sum = 0.0;  // over the outputs j whose window [j - before, j + after] holds c
        for (int64_t j = c - after; j <= c + before; ++j)
          if (j >= 0 && j < d.channels) {
            const int64_t o = (n * d.channels + j) * d.spatial + i;
            sum += static_cast<double>(dy[o]) * y[o] / scale[o];
          }
        dx[at] = static_cast<float>(dy[at] * std::pow(static_cast<double>(scale[at]), -static_cast<double>(d.beta)) -
                                    2.0 * d.alpha * d.beta / d.size * x[at] * sum);
      }
}

void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias,
                        const GroupNormDesc& d) {
  const int64_t per_group = d.channels / d.groups, size = per_group * d.spatial;
  for (int64_t row = 0; row < d.batch * d.groups; ++row) {
    const float* in = x + row * size;
    double sum = 0.0, squares = 0.0;
    for (int64_t i = 0; i < size; ++i) sum += in[i];
    const double m = size ? sum / size : 0.0;
    for (int64_t i = 0; i < size; ++i) squares += (in[i] - m) * (in[i] - m);
    const double inv = 1.0 / std::sqrt((size ? squares / size : 0.0) + d.eps);
    mean[row] = static_cast<float>(m);
    rstd[row] = static_cast<float>(inv);
    for (int64_t i = 0; i < size; ++i) {
      const int64_t channel = (row % d.groups) * per_group + i / d.spatial;
      y[row * size + i] = static_cast<float>((in[i] - m) * inv * (weight ? weight[channel] : 1.0) +
                                             (bias ? bias[channel] : 0.0));
    }
  }
}

void group_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* weight, const GroupNormDesc& d) {
  const int64_t per_group = d.channels / d.groups, size = per_group * d.spatial;
  std::vector<double> dw(d.channels, 0.0), db(d.channels, 0.0);
  for (int64_t row = 0; row < d.batch * d.groups; ++row) {
    const double m = mean[row], inv = rstd[row];
    double g_sum = 0.0, gx_sum = 0.0;
    for (int64_t i = 0; i < size; ++i) {
      const int64_t channel = (row % d.groups) * per_group + i / d.spatial, at = row * size + i;
      const double xhat = (x[at] - m) * inv, g = dy[at] * (weight ? weight[channel] : 1.0);
      g_sum += g;
      gx_sum += g * xhat;
      dw[channel] += dy[at] * xhat;
      db[channel] += dy[at];
    }
    if (!dx) continue;
    for (int64_t i = 0; i < size; ++i) {
      const int64_t channel = (row % d.groups) * per_group + i / d.spatial, at = row * size + i;
      const double xhat = (x[at] - m) * inv, g = dy[at] * (weight ? weight[channel] : 1.0);
      dx[at] = static_cast<float>(inv * (g - g_sum / size - xhat * gx_sum / size));
    }
  }
  for (int64_t c = 0; c < d.channels; ++c) {
    if (dweight) dweight[c] = static_cast<float>(dw[c]);
    if (dbias) dbias[c] = static_cast<float>(db[c]);
  }
}

}  // namespace pcn::reference
