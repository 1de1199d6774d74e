// GPU batch norm, group / layer norm and LRN kernels (see norm.cuh and kernels/norm.h).
// Batch norm: one block per channel computes the statistics (two passes in double: the sum for a first
// mean, then the deviations around it, as the CPU kernel, so data far from zero stays exact) and the
// per-channel affine constants; then an elementwise pass applies them (+ReLU). Its backward likewise:
// one block per channel sums dy and dy * (x - mean), then an elementwise pass writes dx.
// Group / layer norm: one block per (sample, group) row (statistics, then its output), and one block
// per channel for the weight / bias gradients. LRN: one thread per element, looping over its window.
#include <cmath>

#include "cuda/device_array.h"
#include "cuda/norm.cuh"

namespace pcn::cuda {
namespace {

constexpr unsigned kThreads = 256;        // elementwise kernels
constexpr unsigned kReduceThreads = 256;  // reduction blocks (a power of two: the tree halves it)

__device__ inline int64_t first_item() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ inline int64_t item_step() { return int64_t(gridDim.x) * blockDim.x; }

// Blocks for `rows` block-owned reductions (a block-stride loop covers the rest).
unsigned reduce_grid(int64_t rows) { return static_cast<unsigned>(rows < 65535 * 8 ? rows : 65535 * 8); }

// Adds *a and *b over the block's kReduceThreads threads in a fixed tree order; every thread gets the
// totals. Every thread of the block must call it.
__device__ void block_sum_pair(double* a, double* b) {
  __shared__ double sum_a[kReduceThreads], sum_b[kReduceThreads];
  const unsigned t = threadIdx.x;
  sum_a[t] = *a;
  sum_b[t] = *b;
  __syncthreads();
  for (unsigned half = kReduceThreads / 2; half > 0; half >>= 1) {
    if (t < half) {
      sum_a[t] += sum_a[t + half];
      sum_b[t] += sum_b[t + half];
    }
    __syncthreads();
  }
  *a = sum_a[0];
  *b = sum_b[0];
  __syncthreads();  // before the next call overwrites the buffers
}

// ------------------------------------------------------------------ batch norm
// Element j in [0, batch * spatial) of channel c.
__device__ inline int64_t channel_element(int64_t j, int64_t c, const BatchNormDesc& d) {
  const int64_t n = j / d.spatial;
  return (n * d.channels + c) * d.spatial + (j - n * d.spatial);
}

// Per-channel constants of y = ((x - mean_hi) - mean_lo) * scale + shift, four rows of `channels`
// floats; the mean as a float pair keeps x - mean exact when |mean| >> std (as the CPU kernel).
struct ChannelAffine {
  float *mean_hi, *mean_lo, *scale, *shift;
};

__host__ __device__ inline ChannelAffine affine_rows(float* base, int64_t channels) {
  return {base, base + channels, base + 2 * channels, base + 3 * channels};
}

__device__ inline void set_affine(const ChannelAffine& a, int64_t c, double mean, double invstd, const float* weight,
                                  const float* bias) {
  const float hi = static_cast<float>(mean);
  a.mean_hi[c] = hi;
  a.mean_lo[c] = static_cast<float>(mean - hi);
  a.scale[c] = static_cast<float>(invstd * (weight ? weight[c] : 1.0f));
  a.shift[c] = bias ? bias[c] : 0.0f;
}

// One block per channel (count = batch * spatial > 0): mean and biased variance, the saved statistics,
// the running statistics (unbiased variance) and the affine constants.
__global__ void batch_norm_statistics_kernel(float* affine, float* save_mean, float* save_invstd,
                                             float* running_mean, float* running_var, const float* x,
                                             const float* weight, const float* bias, BatchNormDesc d) {
  const int64_t count = d.batch * d.spatial;
  const ChannelAffine a = affine_rows(affine, d.channels);
  for (int64_t c = blockIdx.x; c < d.channels; c += gridDim.x) {
    double sum = 0.0, unused = 0.0;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) sum += x[channel_element(j, c, d)];
    block_sum_pair(&sum, &unused);
    const float first_mean = static_cast<float>(sum / count);
    double dev = 0.0, sq = 0.0;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
      const double v = static_cast<double>(x[channel_element(j, c, d)]) - first_mean;
      dev += v;
      sq += v * v;
    }
    block_sum_pair(&dev, &sq);
    if (threadIdx.x == 0) {
      const double mean = first_mean + dev / count, var = fmax(sq - dev * dev / count, 0.0) / count;
      const double invstd = 1.0 / sqrt(var + d.eps), momentum = d.momentum;
      const double unbias = count > 1 ? static_cast<double>(count) / (count - 1) : 0.0;
      save_mean[c] = static_cast<float>(mean);
      save_invstd[c] = static_cast<float>(invstd);
      if (running_mean) running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
      if (running_var) running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * var * unbias);
      set_affine(a, c, mean, invstd, weight, bias);
    }
  }
}

// One thread per channel: the affine constants from the running statistics.
__global__ void batch_norm_eval_affine_kernel(float* affine, const float* running_mean, const float* running_var,
                                              const float* weight, const float* bias, BatchNormDesc d) {
  const ChannelAffine a = affine_rows(affine, d.channels);
  for (int64_t c = first_item(); c < d.channels; c += item_step())
    set_affine(a, c, running_mean[c], 1.0 / sqrt(static_cast<double>(running_var[c]) + d.eps), weight, bias);
}

// One thread per element: y = ((x - mean_hi) - mean_lo) * scale + shift, then relu's rule (NaN and
// -0.0 pass) when d.relu.
__global__ void batch_norm_apply_kernel(float* y, const float* x, const float* affine, BatchNormDesc d) {
  const int64_t total = d.batch * d.channels * d.spatial;
  const ChannelAffine a = affine_rows(const_cast<float*>(affine), d.channels);
  for (int64_t i = first_item(); i < total; i += item_step()) {
    const int64_t c = (i / d.spatial) % d.channels;
    const float v = ((x[i] - a.mean_hi[c]) - a.mean_lo[c]) * a.scale[c] + a.shift[c];
    y[i] = d.relu && v < 0.0f ? 0.0f : v;
  }
}

// The gradient reaching batch norm: dy, or with a fused relu 0 where its output y <= 0.
__device__ inline float incoming(const float* dy, const float* y, int64_t i, bool relu) {
  return relu && y[i] <= 0.0f ? 0.0f : dy[i];
}

// Rows of the backward's per-channel constants: dx = ((g - dy_mean) - (x - mean) * k) * a in training,
// g * a otherwise (three rows of `channels` floats).
struct BackwardCoefficients {
  float *dy_mean, *k, *a;
};

__host__ __device__ inline BackwardCoefficients coefficient_rows(float* base, int64_t channels) {
  return {base, base + channels, base + 2 * channels};
}

// One block per channel (count > 0): sum(g) and sum(g * (x - mean)) when need_sums, then dweight,
// dbias (each nullable) and the dx coefficients.
__global__ void batch_norm_backward_sums_kernel(float* coefficients, float* dweight, float* dbias, const float* dy,
                                                const float* x, const float* y, const float* mean,
                                                const float* invstd, const float* weight, bool need_sums,
                                                BatchNormDesc d) {
  const int64_t count = d.batch * d.spatial;
  const BackwardCoefficients k = coefficient_rows(coefficients, d.channels);
  for (int64_t c = blockIdx.x; c < d.channels; c += gridDim.x) {
    double sum_dy = 0.0, sum_dy_dev = 0.0;
    if (need_sums) {  // the same for every block: the reduction's __syncthreads are reached by all
      for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
        const int64_t i = channel_element(j, c, d);
        const double g = incoming(dy, y, i, d.relu);
        sum_dy += g;
        sum_dy_dev += g * (static_cast<double>(x[i]) - mean[c]);
      }
      block_sum_pair(&sum_dy, &sum_dy_dev);
    }
    if (threadIdx.x == 0) {
      const double is = invstd[c];
      if (dweight) dweight[c] = static_cast<float>(sum_dy_dev * is);
      if (dbias) dbias[c] = static_cast<float>(sum_dy);
      k.a[c] = static_cast<float>(is * (weight ? weight[c] : 1.0f));
      k.dy_mean[c] = d.training ? static_cast<float>(sum_dy / count) : 0.0f;
      k.k[c] = d.training ? static_cast<float>(is * is * sum_dy_dev / count) : 0.0f;
    }
  }
}

__global__ void batch_norm_backward_dx_kernel(float* dx, const float* dy, const float* x, const float* y,
                                              const float* mean, const float* coefficients, BatchNormDesc d) {
  const int64_t total = d.batch * d.channels * d.spatial;
  const BackwardCoefficients k = coefficient_rows(const_cast<float*>(coefficients), d.channels);
  for (int64_t i = first_item(); i < total; i += item_step()) {
    const int64_t c = (i / d.spatial) % d.channels;
    const float g = incoming(dy, y, i, d.relu);
    dx[i] = d.training ? ((g - k.dy_mean[c]) - (x[i] - mean[c]) * k.k[c]) * k.a[c] : g * k.a[c];
  }
}

// Scratch rows of `channels` floats on the current device. Freed when the launcher returns: the
// allocator hands a block out again only to work queued after these kernels on the same stream.
DeviceArray channel_scratch(int64_t rows, int64_t channels) {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  return empty({rows * channels}, Dtype::float32, device);
}

// ------------------------------------------------------------------ group / layer norm
struct GroupRow {
  int64_t channel0, size;  // first channel, values in the row
};

__device__ inline GroupRow group_row(const GroupNormDesc& d, int64_t row) {
  const int64_t per_group = d.channels / d.groups;
  return {(row % d.groups) * per_group, per_group * d.spatial};
}

// One block per (sample, group) row: mean and biased variance (two passes, double), the saved mean /
// rstd, then y = x * scale + shift with the channel's affine folded in.
__global__ void group_norm_forward_kernel(float* y, float* mean, float* rstd, const float* x, const float* weight,
                                          const float* bias, GroupNormDesc d) {
  const int64_t rows = d.batch * d.groups;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const GroupRow r = group_row(d, row);
    const float* in = x + row * r.size;
    float* out = y + row * r.size;
    double sum = 0.0, unused = 0.0;
    for (int64_t i = threadIdx.x; i < r.size; i += blockDim.x) sum += in[i];
    block_sum_pair(&sum, &unused);
    const double m = r.size ? sum / static_cast<double>(r.size) : 0.0;
    double squares = 0.0;
    for (int64_t i = threadIdx.x; i < r.size; i += blockDim.x) squares += (in[i] - m) * (in[i] - m);
    block_sum_pair(&squares, &unused);
    const double variance = r.size ? squares / static_cast<double>(r.size) : 0.0;
    const double inv = 1.0 / sqrt(variance + d.eps);
    if (threadIdx.x == 0) {
      mean[row] = static_cast<float>(m);
      rstd[row] = static_cast<float>(inv);
    }
    for (int64_t i = threadIdx.x; i < r.size; i += blockDim.x) {
      const int64_t channel = r.channel0 + i / d.spatial;
      const double w = weight ? weight[channel] : 1.0, b = bias ? bias[channel] : 0.0;
      out[i] = in[i] * static_cast<float>(w * inv) + static_cast<float>(b - m * w * inv);
    }
  }
}

// One block per row: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight.
__global__ void group_norm_backward_dx_kernel(float* dx, const float* dy, const float* x, const float* mean,
                                              const float* rstd, const float* weight, GroupNormDesc d) {
  const int64_t rows = d.batch * d.groups;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const GroupRow r = group_row(d, row);
    const int64_t offset = row * r.size;
    const double m = mean[row], inv = rstd[row];
    double g_sum = 0.0, gx_sum = 0.0;
    for (int64_t i = threadIdx.x; i < r.size; i += blockDim.x) {
      const double w = weight ? weight[r.channel0 + i / d.spatial] : 1.0;
      const double g = dy[offset + i] * w;
      g_sum += g;
      gx_sum += g * (x[offset + i] - m) * inv;
    }
    block_sum_pair(&g_sum, &gx_sum);
    const double count = r.size ? static_cast<double>(r.size) : 1.0;
    const double g_mean = g_sum / count, gx_mean = gx_sum / count;
    for (int64_t i = threadIdx.x; i < r.size; i += blockDim.x) {
      const double w = weight ? weight[r.channel0 + i / d.spatial] : 1.0;
      dx[offset + i] = static_cast<float>(inv * (dy[offset + i] * w - g_mean - (x[offset + i] - m) * inv * gx_mean));
    }
  }
}

// One block per channel: dweight = sum dy * xhat, dbias = sum dy over samples and positions (nullable).
__global__ void group_norm_backward_params_kernel(float* dweight, float* dbias, const float* dy, const float* x,
                                                  const float* mean, const float* rstd, GroupNormDesc d) {
  const int64_t per_group = d.channels / d.groups, count = d.batch * d.spatial;
  for (int64_t c = blockIdx.x; c < d.channels; c += gridDim.x) {
    double dw = 0.0, db = 0.0;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
      const int64_t n = j / d.spatial, i = (n * d.channels + c) * d.spatial + (j - n * d.spatial);
      const int64_t row = n * d.groups + c / per_group;
      dw += dy[i] * (x[i] - static_cast<double>(mean[row])) * rstd[row];
      db += dy[i];
    }
    block_sum_pair(&dw, &db);
    if (threadIdx.x == 0) {
      if (dweight) dweight[c] = static_cast<float>(dw);
      if (dbias) dbias[c] = static_cast<float>(db);
    }
  }
}

// ------------------------------------------------------------------ LRN
// s^-beta; beta = 0.75 (the default) through square roots, as the CPU kernel.
__device__ inline float inverse_power(float s, float beta) {
  if (beta == 0.75f) {
    const float root = sqrtf(s);
    return 1.0f / (root * sqrtf(root));
  }
  return powf(s, -beta);
}

// One thread per element (n, c, position): the window sum of squares over channels
// [c - size/2, c + (size-1)/2] in double, scale = k + alpha/size * sum, y = x * scale^-beta.
__global__ void lrn_forward_kernel(float* y, float* scale, const float* x, LrnDesc d) {
  const int64_t total = d.batch * d.channels * d.spatial, before = d.size / 2, after = (d.size - 1) / 2;
  const double coef = static_cast<double>(d.alpha) / d.size;
  for (int64_t i = first_item(); i < total; i += item_step()) {
    const int64_t c = (i / d.spatial) % d.channels, channel0 = i - c * d.spatial;  // channel 0, same n and position
    double window = 0.0;
    for (int64_t j = max(c - before, int64_t(0)); j <= min(c + after, d.channels - 1); ++j) {
      const double v = x[channel0 + j * d.spatial];
      window += v * v;
    }
    const float s = static_cast<float>(d.k + coef * window);
    scale[i] = s;
    y[i] = inverse_power(s, d.beta) * x[i];
  }
}

// One thread per element: dx = dy * scale^-beta - 2 alpha beta / size * x * sum of dy_j * y_j / scale_j
// over the channels j whose window holds c (j in [c - (size-1)/2, c + size/2]).
__global__ void lrn_backward_kernel(float* dx, const float* dy, const float* x, const float* y, const float* scale,
                                    LrnDesc d) {
  const int64_t total = d.batch * d.channels * d.spatial, before = d.size / 2, after = (d.size - 1) / 2;
  const double coef = 2.0 * d.alpha * d.beta / d.size;
  for (int64_t i = first_item(); i < total; i += item_step()) {
    const int64_t c = (i / d.spatial) % d.channels, channel0 = i - c * d.spatial;
    double window = 0.0;
    for (int64_t j = max(c - after, int64_t(0)); j <= min(c + before, d.channels - 1); ++j) {
      const int64_t at = channel0 + j * d.spatial;
      window += static_cast<double>(dy[at]) * y[at] / scale[at];
    }
    const float power = inverse_power(scale[i], d.beta);
    dx[i] = static_cast<float>(static_cast<double>(dy[i]) * power - coef * x[i] * window);
  }
}

}  // namespace

void batch_norm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean,
                              float* running_var, const float* x, const float* weight, const float* bias,
                              const BatchNormDesc& d, cudaStream_t stream) {
  const int64_t count = d.batch * d.spatial, total = count * d.channels;
  if (count == 0) {  // empty batch: statistics 0, running statistics unchanged (as the CPU kernel)
    check(cudaMemsetAsync(save_mean, 0, d.channels * sizeof(float), stream), "batch_norm_forward_train");
    check(cudaMemsetAsync(save_invstd, 0, d.channels * sizeof(float), stream), "batch_norm_forward_train");
    return;
  }
  const DeviceArray affine = channel_scratch(4, d.channels);
  batch_norm_statistics_kernel<<<reduce_grid(d.channels), kReduceThreads, 0, stream>>>(
      affine.data<float>(), save_mean, save_invstd, running_mean, running_var, x, weight, bias, d);
  check_launch("batch_norm_statistics");
  batch_norm_apply_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(y, x, affine.data<float>(), d);
  check_launch("batch_norm_apply");
}

void batch_norm_forward_eval(float* y, const float* x, const float* running_mean, const float* running_var,
                             const float* weight, const float* bias, const BatchNormDesc& d, cudaStream_t stream) {
  const int64_t total = d.batch * d.spatial * d.channels;
  if (total == 0) return;
  const DeviceArray affine = channel_scratch(4, d.channels);
  batch_norm_eval_affine_kernel<<<grid_for(d.channels, kThreads), kThreads, 0, stream>>>(
      affine.data<float>(), running_mean, running_var, weight, bias, d);
  check_launch("batch_norm_eval_affine");
  batch_norm_apply_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(y, x, affine.data<float>(), d);
  check_launch("batch_norm_apply");
}

void batch_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* y,
                         const float* mean, const float* invstd, const float* weight, const BatchNormDesc& d,
                         cudaStream_t stream) {
  const int64_t count = d.batch * d.spatial, total = count * d.channels;
  if (count == 0) {
    if (dweight) check(cudaMemsetAsync(dweight, 0, d.channels * sizeof(float), stream), "batch_norm_backward");
    if (dbias) check(cudaMemsetAsync(dbias, 0, d.channels * sizeof(float), stream), "batch_norm_backward");
    return;
  }
  const bool need_sums = (d.training && dx) || dweight || dbias;
  const DeviceArray coefficients = channel_scratch(3, d.channels);
  batch_norm_backward_sums_kernel<<<reduce_grid(d.channels), kReduceThreads, 0, stream>>>(
      coefficients.data<float>(), dweight, dbias, dy, x, y, mean, invstd, weight, need_sums, d);
  check_launch("batch_norm_backward_sums");
  if (!dx) return;
  batch_norm_backward_dx_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(dx, dy, x, y, mean,
                                                                                     coefficients.data<float>(), d);
  check_launch("batch_norm_backward_dx");
}

void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias,
                        const GroupNormDesc& d, cudaStream_t stream) {
  const int64_t rows = d.batch * d.groups;
  if (rows == 0) return;
  group_norm_forward_kernel<<<reduce_grid(rows), kReduceThreads, 0, stream>>>(y, mean, rstd, x, weight, bias, d);
  check_launch("group_norm_forward");
}

void group_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* weight, const GroupNormDesc& d, cudaStream_t stream) {
  const int64_t rows = d.batch * d.groups;
  if (dx && rows > 0) {
    group_norm_backward_dx_kernel<<<reduce_grid(rows), kReduceThreads, 0, stream>>>(dx, dy, x, mean, rstd, weight, d);
    check_launch("group_norm_backward_dx");
  }
  if ((dweight || dbias) && d.channels > 0) {
    group_norm_backward_params_kernel<<<reduce_grid(d.channels), kReduceThreads, 0, stream>>>(dweight, dbias, dy, x,
                                                                                              mean, rstd, d);
    check_launch("group_norm_backward_params");
  }
}

void lrn_forward(float* y, float* scale, const float* x, const LrnDesc& d, cudaStream_t stream) {
  const int64_t total = d.batch * d.channels * d.spatial;
  if (total == 0) return;
  lrn_forward_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(y, scale, x, d);
  check_launch("lrn_forward");
}

void lrn_backward(float* dx, const float* dy, const float* x, const float* y, const float* scale, const LrnDesc& d,
                  cudaStream_t stream) {
  const int64_t total = d.batch * d.channels * d.spatial;
  if (total == 0) return;
  lrn_backward_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(dx, dy, x, y, scale, d);
  check_launch("lrn_backward");
}

}  // namespace pcn::cuda
