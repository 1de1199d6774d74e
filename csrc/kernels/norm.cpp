// Batch norm and LRN kernels (see norm.h).
// Batch norm works plane by plane ((n, c) planes of `spatial` floats): per-plane sums go to a
// double table (threads own whole planes), then each channel adds its N entries in order, so
// results are the same for any thread count. Statistics take two passes over x: the plain sum
// for a first mean, then sum(x - m) and sum((x - m)^2) around that mean, which stays exact for
// data far from zero (x = 1000 + noise). The mean is applied as a float pair (hi + lo) so that
// x - mean keeps full precision when |mean| >> std.
// LRN keeps, for a chunk of spatial positions, a running double sum along channels: one add
// and one subtract per channel whatever the window size.
#include "kernels/norm.h"

#include <cmath>

#include "core/simd.h"

PCN_ISA_BEGIN
namespace {

constexpr int64_t kSumBlock = 64 * kVecFloats;  // floats summed in float lanes before going to double

double lane_total(vfloat v) {
  double total = 0.0;
  for (int i = 0; i < kVecFloats; ++i) total += v[i];
  return total;
}

// sum(p[0..n)): float lanes over short blocks, block totals in double.
double plane_sum(const float* p, int64_t n) {
  double total = 0.0;
  const int64_t vec_end = n - n % kVecFloats;
  int64_t i = 0;
  while (i < vec_end) {
    const int64_t block_end = min64(vec_end, i + kSumBlock);
    vfloat acc = {};
    for (; i < block_end; i += kVecFloats) acc += vload(p + i);
    total += lane_total(acc);
  }
  for (; i < n; ++i) total += p[i];
  return total;
}

// Two sums over one plane of n elements, blocked like plane_sum: vector_terms(i, &a, &b) gives
// the terms of elements [i, i + kVecFloats), scalar_terms(i, &a, &b) those of a tail element.
template <class VectorTerms, class ScalarTerms>
void plane_sum_pair(int64_t n, VectorTerms vector_terms, ScalarTerms scalar_terms, double* sum0, double* sum1) {
  double s0 = 0.0, s1 = 0.0;
  const int64_t vec_end = n - n % kVecFloats;
  int64_t i = 0;
  while (i < vec_end) {
    const int64_t block_end = min64(vec_end, i + kSumBlock);
    vfloat acc0 = {}, acc1 = {};
    for (; i < block_end; i += kVecFloats) {
      vfloat t0, t1;
      vector_terms(i, &t0, &t1);
      acc0 += t0;
      acc1 += t1;
    }
    s0 += lane_total(acc0);
    s1 += lane_total(acc1);
  }
  for (; i < n; ++i) {
    double t0, t1;
    scalar_terms(i, &t0, &t1);
    s0 += t0;
    s1 += t1;
  }
  *sum0 = s0;
  *sum1 = s1;
}

// sum(p - m) and sum((p - m)^2) over p[0..n).
void plane_deviation_sums(const float* p, int64_t n, float m, double* sum_dev, double* sum_sq) {
  const vfloat vm = vbroadcast(m);
  plane_sum_pair(
      n,
      [=](int64_t i, vfloat* dev, vfloat* sq) {
        *dev = vload(p + i) - vm;
        *sq = *dev * *dev;
      },
      [=](int64_t i, double* dev, double* sq) {
        *dev = static_cast<double>(p[i]) - m;
        *sq = *dev * *dev;
      },
      sum_dev, sum_sq);
}

// sum(dy) and sum(dy * (x - m)) over one plane.
void plane_gradient_sums(const float* dy, const float* x, int64_t n, float m, double* sum_dy, double* sum_dy_dev) {
  const vfloat vm = vbroadcast(m);
  plane_sum_pair(
      n,
      [=](int64_t i, vfloat* g, vfloat* g_dev) {
        *g = vload(dy + i);
        *g_dev = *g * (vload(x + i) - vm);
      },
      [=](int64_t i, double* g, double* g_dev) {
        *g = dy[i];
        *g_dev = *g * (static_cast<double>(x[i]) - m);
      },
      sum_dy, sum_dy_dev);
}

// Per-channel constants of y = ((x - mean_hi) - mean_lo) * scale + shift.
struct ChannelAffine {
  float* mean_hi;
  float* mean_lo;
  float* scale;
  float* shift;
};

// Layout of the per-call scratch: a pair of doubles per plane, then four floats per channel.
struct NormScratch {
  double* planes;  // [n * channels + c] -> 2 doubles
  ChannelAffine affine;
};

NormScratch norm_scratch(const BatchNormDesc& d) {
  const int64_t planes = d.batch * d.channels;
  float* base = thread_scratch(Scratch::partial, 4 * planes + 4 * d.channels);
  float* coef = base + 4 * planes;
  const int64_t c = d.channels;
  return {reinterpret_cast<double*>(base), {coef, coef + c, coef + 2 * c, coef + 3 * c}};
}

void set_affine(const ChannelAffine& a, int64_t c, double mean, double invstd, const float* weight,
                const float* bias) {
  const float hi = static_cast<float>(mean);
  a.mean_hi[c] = hi;
  a.mean_lo[c] = static_cast<float>(mean - hi);
  a.scale[c] = static_cast<float>(invstd * (weight ? weight[c] : 1.0f));
  a.shift[c] = bias ? bias[c] : 0.0f;
}

// y = ((x - mean_hi) - mean_lo) * scale + shift on every plane.
void apply_affine(float* y, const float* x, const ChannelAffine& a, const BatchNormDesc& d) {
  const int64_t planes = d.batch * d.channels, s = d.spatial;
#pragma omp parallel for num_threads(threads_for(planes * s / 4096 + 1)) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t c = p % d.channels;
    const float hi = a.mean_hi[c], lo = a.mean_lo[c], scale = a.scale[c], shift = a.shift[c];
    const float* xp = x + p * s;
    float* yp = y + p * s;
    for (int64_t i = 0; i < s; ++i) yp[i] = ((xp[i] - hi) - lo) * scale + shift;
  }
}

// Adds the batch entries of a per-plane table for channel c, in batch order.
double channel_total(const double* table, int64_t c, int pair, const BatchNormDesc& d) {
  double total = 0.0;
  for (int64_t n = 0; n < d.batch; ++n) total += table[2 * (n * d.channels + c) + pair];
  return total;
}

// LRN works on chunks of kLrnChunk spatial positions of one image, all channels.
constexpr int64_t kLrnChunk = 256;

// out[i] = s[i]^-beta; beta = 0.75 (the default) through square roots.
void inverse_power(float* out, const float* s, int64_t n, float beta) {
  if (beta == 0.75f) {
    for (int64_t i = 0; i < n; ++i) {
      const float root = std::sqrt(s[i]);
      out[i] = 1.0f / (root * std::sqrt(root));
    }
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = std::pow(s[i], -beta);
  }
}

// window[i] += sign * v[i]^2 (in double: the square of a float is exact there).
void add_squares(double* window, const float* v, int64_t n, double sign) {
  for (int64_t i = 0; i < n; ++i) window[i] += sign * (static_cast<double>(v[i]) * v[i]);
}

// window[i] += sign * dy[i] * y[i] / scale[i].
void add_gradient_terms(double* window, const float* dy, const float* y, const float* scale, int64_t n, double sign) {
  for (int64_t i = 0; i < n; ++i) window[i] += sign * (static_cast<double>(dy[i]) * y[i] / scale[i]);
}

}  // namespace

void batch_norm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean,
                              float* running_var, const float* x, const float* weight, const float* bias,
                              const BatchNormDesc& d) {
  const int64_t planes = d.batch * d.channels, s = d.spatial, count = d.batch * d.spatial;
  if (count == 0) {  // empty batch: nothing to normalise, running statistics unchanged (as torch)
    for (int64_t c = 0; c < d.channels; ++c) save_mean[c] = save_invstd[c] = 0.0f;
    return;
  }
  const NormScratch scratch = norm_scratch(d);
  double* table = scratch.planes;
  const int plane_threads = threads_for(planes * s / 4096 + 1);
#pragma omp parallel for num_threads(plane_threads) schedule(static)
  for (int64_t p = 0; p < planes; ++p) table[2 * p] = plane_sum(x + p * s, s);
#pragma omp parallel for num_threads(threads_for(d.channels / 64 + 1)) schedule(static)
  for (int64_t c = 0; c < d.channels; ++c) scratch.affine.mean_hi[c] = static_cast<float>(channel_total(table, c, 0, d) / count);
#pragma omp parallel for num_threads(plane_threads) schedule(static)
  for (int64_t p = 0; p < planes; ++p)
    plane_deviation_sums(x + p * s, s, scratch.affine.mean_hi[p % d.channels], &table[2 * p], &table[2 * p + 1]);
  const double unbias = count > 1 ? static_cast<double>(count) / (count - 1) : 0.0;
  const double momentum = d.momentum;
  for (int64_t c = 0; c < d.channels; ++c) {
    const double shift_mean = channel_total(table, c, 0, d) / count;
    const double var = std::fmax(channel_total(table, c, 1, d) / count - shift_mean * shift_mean, 0.0);
    const double mean = scratch.affine.mean_hi[c] + shift_mean;
    const double invstd = 1.0 / std::sqrt(var + d.eps);
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    if (running_mean) running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
    if (running_var) running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * var * unbias);
    set_affine(scratch.affine, c, mean, invstd, weight, bias);
  }
  apply_affine(y, x, scratch.affine, d);
}

void batch_norm_forward_eval(float* y, const float* x, const float* running_mean, const float* running_var,
                             const float* weight, const float* bias, const BatchNormDesc& d) {
  if (d.batch * d.spatial == 0) return;
  const NormScratch scratch = norm_scratch(d);
  for (int64_t c = 0; c < d.channels; ++c)
    set_affine(scratch.affine, c, running_mean[c], 1.0 / std::sqrt(static_cast<double>(running_var[c]) + d.eps),
               weight, bias);
  apply_affine(y, x, scratch.affine, d);
}

void batch_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                         const float* mean, const float* invstd, const float* weight, const BatchNormDesc& d) {
  const int64_t planes = d.batch * d.channels, s = d.spatial, count = d.batch * d.spatial;
  const bool need_sums = d.training ? dx != nullptr : false;
  if (count == 0) {
    for (int64_t c = 0; c < d.channels; ++c) {
      if (dweight) dweight[c] = 0.0f;
      if (dbias) dbias[c] = 0.0f;
    }
    return;
  }
  const NormScratch scratch = norm_scratch(d);
  double* table = scratch.planes;
  const int plane_threads = threads_for(planes * s / 4096 + 1);
  if (need_sums || dweight || dbias) {
#pragma omp parallel for num_threads(plane_threads) schedule(static)
    for (int64_t p = 0; p < planes; ++p)
      plane_gradient_sums(dy + p * s, x + p * s, s, mean[p % d.channels], &table[2 * p], &table[2 * p + 1]);
  }
  // dx = ((dy - mean(dy)) - (x - mean) * k) * a, with a = weight * invstd and, in training,
  // k = invstd^2 * mean(dy * (x - mean)); in eval the statistics are constants: dx = dy * a.
  float* dy_mean = scratch.affine.mean_lo;
  float* k = scratch.affine.shift;
  float* a = scratch.affine.scale;
  for (int64_t c = 0; c < d.channels; ++c) {
    const double sum_dy = need_sums || dbias ? channel_total(table, c, 0, d) : 0.0;
    const double sum_dy_dev = need_sums || dweight ? channel_total(table, c, 1, d) : 0.0;
    const double is = invstd[c];
    if (dweight) dweight[c] = static_cast<float>(sum_dy_dev * is);
    if (dbias) dbias[c] = static_cast<float>(sum_dy);
    a[c] = static_cast<float>(is * (weight ? weight[c] : 1.0f));
    dy_mean[c] = d.training ? static_cast<float>(sum_dy / count) : 0.0f;
    k[c] = d.training ? static_cast<float>(is * is * sum_dy_dev / count) : 0.0f;
  }
  if (!dx) return;
#pragma omp parallel for num_threads(plane_threads) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t c = p % d.channels;
    const float m = mean[c], gm = dy_mean[c], kc = k[c], ac = a[c];
    const float *dyp = dy + p * s, *xp = x + p * s;
    float* dxp = dx + p * s;
    if (d.training) {
      for (int64_t i = 0; i < s; ++i) dxp[i] = ((dyp[i] - gm) - (xp[i] - m) * kc) * ac;
    } else {
      for (int64_t i = 0; i < s; ++i) dxp[i] = dyp[i] * ac;
    }
  }
}

void lrn_forward(float* y, float* scale, const float* x, const LrnDesc& d) {
  const int64_t c_count = d.channels, s = d.spatial;
  const int64_t before = d.size / 2, after = (d.size - 1) / 2;
  const int64_t chunks = (s + kLrnChunk - 1) / kLrnChunk, items = d.batch * chunks;
  const double coef = static_cast<double>(d.alpha) / d.size;
#pragma omp parallel for num_threads(threads_for(items * c_count / 64 + 1)) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t n = item / chunks, offset = n * c_count * s + (item % chunks) * kLrnChunk;
    const int64_t w = min64(kLrnChunk, s - (item % chunks) * kLrnChunk);
    double window[kLrnChunk];  // sum of x^2 over channel c's window, per position
    for (int64_t i = 0; i < w; ++i) window[i] = 0.0;
    for (int64_t j = 0; j <= after && j < c_count; ++j) add_squares(window, x + offset + j * s, w, 1.0);
    for (int64_t c = 0; c < c_count; ++c) {
      const int64_t at = offset + c * s;
      for (int64_t i = 0; i < w; ++i) scale[at + i] = static_cast<float>(d.k + coef * window[i]);
      inverse_power(y + at, scale + at, w, d.beta);
      for (int64_t i = 0; i < w; ++i) y[at + i] *= x[at + i];
      if (c + 1 + after < c_count) add_squares(window, x + at + (1 + after) * s, w, 1.0);
      if (c - before >= 0) add_squares(window, x + at - before * s, w, -1.0);
    }
  }
}

void lrn_backward(float* dx, const float* dy, const float* x, const float* y, const float* scale, const LrnDesc& d) {
  const int64_t c_count = d.channels, s = d.spatial;
  const int64_t before = d.size / 2, after = (d.size - 1) / 2;
  const int64_t chunks = (s + kLrnChunk - 1) / kLrnChunk, items = d.batch * chunks;
  const double coef = 2.0 * d.alpha * d.beta / d.size;
#pragma omp parallel for num_threads(threads_for(items * c_count / 64 + 1)) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t n = item / chunks, offset = n * c_count * s + (item % chunks) * kLrnChunk;
    const int64_t w = min64(kLrnChunk, s - (item % chunks) * kLrnChunk);
    // Channel c's gradient gathers dy_j * y_j / scale_j over the j whose window holds c:
    // j in [c - after, c + before].
    double window[kLrnChunk];
    for (int64_t i = 0; i < w; ++i) window[i] = 0.0;
    for (int64_t j = 0; j <= before && j < c_count; ++j)
      add_gradient_terms(window, dy + offset + j * s, y + offset + j * s, scale + offset + j * s, w, 1.0);
    for (int64_t c = 0; c < c_count; ++c) {
      const int64_t at = offset + c * s;
      inverse_power(dx + at, scale + at, w, d.beta);
      for (int64_t i = 0; i < w; ++i)
        dx[at + i] = static_cast<float>(static_cast<double>(dy[at + i]) * dx[at + i] - coef * x[at + i] * window[i]);
      const int64_t add = at + (1 + before) * s, drop = at - after * s;
      if (c + 1 + before < c_count) add_gradient_terms(window, dy + add, y + add, scale + add, w, 1.0);
      if (c - after >= 0) add_gradient_terms(window, dy + drop, y + drop, scale + drop, w, -1.0);
    }
  }
}

PCN_ISA_END
