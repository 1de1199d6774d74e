// Batch norm, group / layer norm and LRN kernels (see norm.h).
// Batch norm reduces per channel into a table of double partials that threads fill without
// sharing, then adds them in a fixed order: one pair per part of a channel of images (the planes of
// consecutive images holding at least kPartFloats values, summed in float lanes over short blocks,
// block totals and plane tails in double), or, for (N, C) inputs (spatial == 1), one pair of
// channel rows per chunk of batch rows. The layout and order depend on the shape only, so results
// are the same for any thread count. Statistics take two passes: the plain sum for a first mean,
// then sum(x - m) and sum((x - m)^2) around that mean, which stays exact for data far from zero
// (x = 1000 + noise); over the whole of x for (N, C) inputs, per part while it is in cache for
// images (the parts' moments then combine exactly). Images with enough channels go by blocks of
// channels, statistics then the elementwise pass while a block is in cache (channel_blocks); the
// others part by part, each pass over the whole tensor; the sums and their order are the same
// either way. The mean is applied as a float pair (hi + lo) so that x - mean keeps full precision
// when |mean| >> std.
// Group norm gives each (sample, group) row to one thread, sums in double; its weight and bias
// gradients give each block of channels to one thread, walking the samples in order.
// LRN keeps, for a chunk of spatial positions, a running double sum along channels: one add
// and one subtract per channel whatever the window size.
#include "kernels/norm.h"

#include <cmath>

#include "core/simd.h"

PCN_ISA_BEGIN
namespace {

constexpr int64_t kSumBlock = 64 * kVecFloats;  // floats summed in float lanes before going to double
constexpr int64_t kRowChunks = 16;              // batch-row chunks of an (N, C) input

double lane_total(vfloat v) {
  double total = 0.0;
  for (int i = 0; i < kVecFloats; ++i) total += v[i];
  return total;
}

int64_t row_chunks(const BatchNormDesc& d) { return max64(1, min64(d.batch, kRowChunks)); }

// Images take their sums by parts: a part is the planes of one channel in a run of consecutive
// images holding at least kPartFloats elements (one plane where planes are that large), so that
// the fixed cost of a sum (its lane totals, its divisions) is not paid for every 7 x 7 plane.
constexpr int64_t kPartFloats = 1024;

int64_t part_images(const BatchNormDesc& d) { return min64(d.batch, max64(1, kPartFloats / d.spatial)); }
int64_t part_count(const BatchNormDesc& d) { return (d.batch + part_images(d) - 1) / part_images(d); }
double part_elements(const BatchNormDesc& d, int64_t k) {
  return static_cast<double>((min64(d.batch, (k + 1) * part_images(d)) - k * part_images(d)) * d.spatial);
}

// Partial pairs per channel: one per part, or for (N, C) inputs one per chunk of batch rows.
int64_t partial_doubles(const BatchNormDesc& d) {
  return 2 * d.channels * (d.spatial == 1 ? row_chunks(d) : part_count(d));
}

// Two sums over part k of channel c: vector_terms(i, c, &a, &b) gives the terms of elements
// [i, i + kVecFloats) (flat indices into x), scalar_terms(i, c, &a, &b) those of one element of a
// plane's tail. Vectors go into float lanes over blocks of kSumBlock floats, block totals and
// tails into double.
template <class VectorTerms, class ScalarTerms>
void part_sum_pair(const BatchNormDesc& d, int64_t k, int64_t c, VectorTerms vector_terms, ScalarTerms scalar_terms,
                   double* sum0, double* sum1) {
  const int64_t s = d.spatial, vec_end = s - s % kVecFloats, first = k * part_images(d);
  const int64_t last = min64(d.batch, first + part_images(d));
  double s0 = 0.0, s1 = 0.0, tail0 = 0.0, tail1 = 0.0;
  vfloat acc0 = {}, acc1 = {};
  int64_t in_block = 0;
  for (int64_t n = first; n < last; ++n) {
    const int64_t base = (n * d.channels + c) * s;
    for (int64_t i = 0; i < vec_end; i += kVecFloats) {
      vfloat t0, t1;
      vector_terms(base + i, c, &t0, &t1);
      acc0 += t0;
      acc1 += t1;
      if ((in_block += kVecFloats) == kSumBlock) {
        s0 += lane_total(acc0);
        s1 += lane_total(acc1);
        acc0 = acc1 = vfloat{};
        in_block = 0;
      }
    }
    for (int64_t i = vec_end; i < s; ++i) {
      double t0, t1;
      scalar_terms(base + i, c, &t0, &t1);
      tail0 += t0;
      tail1 += t1;
    }
  }
  *sum0 = (s0 + lane_total(acc0)) + tail0;
  *sum1 = (s1 + lane_total(acc1)) + tail1;
}

// The two sums of part k of channel c into the partial table, at table[2 * k * channels + c] and
// channels further on.
template <class VectorTerms, class ScalarTerms>
void part_sums(double* table, int64_t k, int64_t c, const BatchNormDesc& d, VectorTerms vector_terms,
               ScalarTerms scalar_terms) {
  double* pair = table + 2 * k * d.channels + c;
  part_sum_pair(d, k, c, vector_terms, scalar_terms, pair, pair + d.channels);
}

// total0[c], total1[c]: channel c's partials (the k-th at table[2 * k * channels + c], its second
// sum channels further on) added in k order.
void combine_sums(const double* table, int64_t parts, int64_t channels, int64_t c, double* total0, double* total1) {
  double t0 = 0.0, t1 = 0.0;
  for (int64_t k = 0; k < parts; ++k) {
    t0 += table[2 * k * channels + c];
    t1 += table[(2 * k + 1) * channels + c];
  }
  total0[c] = t0;
  total1[c] = t1;
}

// total0[c], total1[c]: two per-channel sums over every element of channel c. The terms of
// element i (flat index into x) of channel c come from vector_terms(i, c, &a, &b) (kVecFloats
// elements of one plane) or scalar_terms(i, c, &a, &b) (one element, in double).
template <class VectorTerms, class ScalarTerms>
void channel_sums(double* table, double* total0, double* total1, const BatchNormDesc& d, VectorTerms vector_terms,
                  ScalarTerms scalar_terms) {
  const int64_t channels = d.channels, s = d.spatial;
  const int64_t parts = s == 1 ? row_chunks(d) : part_count(d);  // partial pairs per channel
  if (s == 1) {
    const int64_t rows = (d.batch + parts - 1) / parts;
#pragma omp parallel for num_threads(threads_for(parts, parts * channels)) schedule(static)
    for (int64_t k = 0; k < parts; ++k) {
      double *s0 = table + 2 * k * channels, *s1 = s0 + channels;
      for (int64_t c = 0; c < channels; ++c) s0[c] = s1[c] = 0.0;
      for (int64_t n = k * rows; n < min64(d.batch, (k + 1) * rows); ++n)
        for (int64_t c = 0; c < channels; ++c) {
          double t0, t1;
          scalar_terms(n * channels + c, c, &t0, &t1);
          s0[c] += t0;
          s1[c] += t1;
        }
    }
  } else {
    const int64_t items = parts * channels;
#pragma omp parallel for num_threads(threads_for(items, d.batch * channels * s)) schedule(static)
    for (int64_t item = 0; item < items; ++item)
      part_sums(table, item / channels, item % channels, d, vector_terms, scalar_terms);
  }
  for (int64_t c = 0; c < channels; ++c) combine_sums(table, parts, channels, c, total0, total1);
}

// Mean and sum of squared deviations of part k of channel c into its pair of the partial table:
// two passes while it sits in cache (its sum, then the deviations from its mean, with the same
// correction term as channel_sums' second pass). The channel's parts then combine in order
// (combine_moments): one pass over x in memory instead of two, as exact as two passes over the
// whole channel, and the same result for any thread count.
void part_moments(double* table, const float* x, const BatchNormDesc& d, int64_t k, int64_t c) {
  double sum, unused;
  part_sum_pair(
      d, k, c,
      [=](int64_t i, int64_t, vfloat* a, vfloat* b) {
        *a = vload(x + i);
        *b = vfloat{};
      },
      [=](int64_t i, int64_t, double* a, double* b) {
        *a = x[i];
        *b = 0.0;
      },
      &sum, &unused);
  const double n = part_elements(d, k);
  const float first_mean = static_cast<float>(sum / n);
  double dev, sq;
  part_sum_pair(
      d, k, c,
      [=](int64_t i, int64_t, vfloat* a, vfloat* b) {
        *a = vload(x + i) - first_mean;
        *b = *a * *a;
      },
      [=](int64_t i, int64_t, double* a, double* b) {
        *a = static_cast<double>(x[i]) - first_mean;
        *b = *a * *a;
      },
      &dev, &sq);
  double* pair = table + 2 * k * d.channels + c;
  pair[0] = first_mean + dev / n;
  const double m2 = sq - dev * dev / n;
  pair[d.channels] = m2 > 0.0 ? m2 : 0.0;  // not std::fmax, a library call per part
}

// Channel c's mean and sum of squared deviations from its parts' pairs (Chan et al.): the mean of
// the part means weighted by their sizes, and each part's own sum plus size * (part mean - mean)^2.
void combine_moments(const double* table, const BatchNormDesc& d, int64_t c, double* mean, double* m2) {
  const int64_t channels = d.channels, parts = part_count(d);
  double mu = 0.0, sum = 0.0;
  for (int64_t k = 0; k < parts; ++k) mu += part_elements(d, k) * table[2 * k * channels + c];
  mu /= static_cast<double>(d.batch * d.spatial);
  for (int64_t k = 0; k < parts; ++k) {
    const double offset = table[2 * k * channels + c] - mu;
    sum += table[(2 * k + 1) * channels + c] + part_elements(d, k) * offset * offset;
  }
  mean[c] = mu;
  m2[c] = sum;
}

// Per-channel constants of y = ((x - mean_hi) - mean_lo) * scale + shift.
struct ChannelAffine {
  float *mean_hi, *mean_lo, *scale, *shift;
};

// Layout of the per-call scratch: the partial table, two per-channel totals, the affine constants.
struct NormScratch {
  double *table, *total0, *total1;
  ChannelAffine affine;
};

NormScratch norm_scratch(const BatchNormDesc& d) {
  const int64_t c = d.channels, doubles = partial_doubles(d) + 2 * c;
  float* base = thread_scratch(Scratch::partial, 2 * doubles + 4 * c);
  double* table = reinterpret_cast<double*>(base);
  float* coef = base + 2 * doubles;
  return {table, table + partial_doubles(d), table + partial_doubles(d) + c, {coef, coef + c, coef + 2 * c, coef + 3 * c}};
}

void set_affine(const ChannelAffine& a, int64_t c, double mean, double invstd, const float* weight,
                const float* bias) {
  const float hi = static_cast<float>(mean);
  a.mean_hi[c] = hi;
  a.mean_lo[c] = static_cast<float>(mean - hi);
  a.scale[c] = static_cast<float>(invstd * (weight ? weight[c] : 1.0f));
  a.shift[c] = bias ? bias[c] : 0.0f;
}

// Calls f(begin, count, c) on every run of `count` contiguous elements of one channel
// c: whole planes, or for spatial == 1 single elements of a row (f then sees count == 1 but is
// called from a loop over c that the compiler can vectorise when f is simple).
template <class F>
void for_each_plane(const BatchNormDesc& d, F f) {
  const int64_t planes = d.batch * d.channels, s = d.spatial;
  if (s == 1) {
#pragma omp parallel for num_threads(threads_for(d.batch, planes)) schedule(static)
    for (int64_t n = 0; n < d.batch; ++n)
      for (int64_t c = 0; c < d.channels; ++c) f(n * d.channels + c, int64_t(1), c);
  } else {
#pragma omp parallel for num_threads(threads_for(planes, planes * s)) schedule(static)
    for (int64_t p = 0; p < planes; ++p) f(p * s, s, p % d.channels);
  }
}

// y = ((x - mean_hi) - mean_lo) * scale + shift over `count` elements of channel c from `begin`,
// through relu when `relu`.
void affine_run(float* y, const float* x, int64_t begin, int64_t count, const ChannelAffine& a, int64_t c, bool relu) {
  const float hi = a.mean_hi[c], lo = a.mean_lo[c], scale = a.scale[c], shift = a.shift[c];
  if (relu) {
    for (int64_t i = begin; i < begin + count; ++i) {
      const float v = ((x[i] - hi) - lo) * scale + shift;
      y[i] = v < 0.0f ? 0.0f : v;  // relu_forward's rule: NaN and -0.0 pass
    }
  } else {
    for (int64_t i = begin; i < begin + count; ++i) y[i] = ((x[i] - hi) - lo) * scale + shift;
  }
}

void apply_affine(float* y, const float* x, const ChannelAffine& a, const BatchNormDesc& d) {
  for_each_plane(d, [&](int64_t begin, int64_t count, int64_t c) { affine_run(y, x, begin, count, a, c, d.relu); });
}

// The channel-major path for images: every thread owns whole blocks of channels, and a block's
// statistics and its elementwise pass run back to back while its planes are still in cache, one
// sweep of the activations from memory each way instead of two. A block is enough channels that
// each image's slice of it is a contiguous run of about 4 KiB (planes of 8 x 8 one by one, strided
// by the image size, defeat the prefetchers). The path takes the threads the part-parallel one
// would, so it needs as many blocks; otherwise that path runs. Both make the same per-part sums
// and combine them in the same order: the same bits.
constexpr int64_t kBlockRunFloats = 1024;

struct ChannelBlocks {
  int threads;   // 0: the path does not apply
  int64_t size;  // channels per block (the last may hold fewer)
};

ChannelBlocks channel_blocks(const BatchNormDesc& d) {
  if (d.spatial == 1) return {0, 0};
  const int64_t elements = d.batch * d.channels * d.spatial;
  const int threads = threads_for(part_count(d) * d.channels, elements);
  const int64_t size = min64(max64(1, kBlockRunFloats / d.spatial), d.channels / threads);
  if (size == 0 || threads_for((d.channels + size - 1) / size, elements) != threads) return {0, 0};
  return {threads, size};
}

// Per block of channels: part_pass(k, c) on every part k of each of its channels c, part by part,
// then finish(c) for each channel, then element_pass(p, c) on each of their planes p.
template <class PartPass, class Finish, class ElementPass>
void by_channel_blocks(const BatchNormDesc& d, const ChannelBlocks& blocks, PartPass part_pass, Finish finish,
                       ElementPass element_pass) {
  const int64_t channels = d.channels, count = (channels + blocks.size - 1) / blocks.size, parts = part_count(d);
#pragma omp parallel for num_threads(blocks.threads) schedule(static)
  for (int64_t block = 0; block < count; ++block) {
    const int64_t first = block * blocks.size, last = min64(channels, first + blocks.size);
    for (int64_t k = 0; k < parts; ++k)
      for (int64_t c = first; c < last; ++c) part_pass(k, c);
    for (int64_t c = first; c < last; ++c) finish(c);
    for (int64_t n = 0; n < d.batch; ++n)
      for (int64_t c = first; c < last; ++c) element_pass(n * channels + c, c);
  }
}

// The gradient batch norm's backward works with: dy, or with a fused relu dy where its output
// y > 0 and 0 elsewhere (relu_backward's rule).
static inline vfloat incoming(const float* dy, const float* y, int64_t i, bool relu) {
  const vfloat g = vload(dy + i);
  return relu ? (vload(y + i) <= 0.0f ? vfloat{} : g) : g;
}
static inline float incoming_scalar(const float* dy, const float* y, int64_t i, bool relu) {
  return relu && y[i] <= 0.0f ? 0.0f : dy[i];
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
  const int64_t count = d.batch * d.spatial;
  if (count == 0) {  // empty batch: nothing to normalise, running statistics unchanged (as torch)
    for (int64_t c = 0; c < d.channels; ++c) save_mean[c] = save_invstd[c] = 0.0f;
    return;
  }
  const NormScratch t = norm_scratch(d);
  double *mean = t.total0, *m2 = t.total1;
  const double unbias = count > 1 ? static_cast<double>(count) / (count - 1) : 0.0;
  const double momentum = d.momentum;
  // Channel c's saved and running statistics and affine constants, from mean[c] and m2[c].
  auto finish_channel = [&](int64_t c) {
    const double var = m2[c] / count;
    const double invstd = 1.0 / std::sqrt(var + d.eps);
    save_mean[c] = static_cast<float>(mean[c]);
    save_invstd[c] = static_cast<float>(invstd);
    if (running_mean) running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
    if (running_var) running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * var * unbias);
    set_affine(t.affine, c, mean[c], invstd, weight, bias);
  };
  const int64_t channels = d.channels, s = d.spatial;
  const ChannelBlocks blocks = channel_blocks(d);
  if (blocks.threads) {
    by_channel_blocks(
        d, blocks, [&](int64_t k, int64_t c) { part_moments(t.table, x, d, k, c); },
        [&](int64_t c) {
          combine_moments(t.table, d, c, mean, m2);
          finish_channel(c);
        },
        [&](int64_t p, int64_t c) { affine_run(y, x, p * s, s, t.affine, c, d.relu); });
    return;
  }
  if (s > 1) {
    const int64_t items = part_count(d) * channels;
#pragma omp parallel for num_threads(threads_for(items, d.batch * channels * s)) schedule(static)
    for (int64_t item = 0; item < items; ++item) part_moments(t.table, x, d, item / channels, item % channels);
    for (int64_t c = 0; c < channels; ++c) combine_moments(t.table, d, c, mean, m2);
  } else {
    channel_sums(
        t.table, t.total0, t.total1, d,
        [=](int64_t i, int64_t, vfloat* sum, vfloat* none) {
          *sum = vload(x + i);
          *none = vfloat{};
        },
        [=](int64_t i, int64_t, double* sum, double* none) {
          *sum = x[i];
          *none = 0.0;
        });
    float* first_mean = t.affine.mean_hi;
    for (int64_t c = 0; c < d.channels; ++c) first_mean[c] = static_cast<float>(t.total0[c] / count);
    channel_sums(
        t.table, t.total0, t.total1, d,
        [=](int64_t i, int64_t c, vfloat* dev, vfloat* sq) {
          *dev = vload(x + i) - first_mean[c];
          *sq = *dev * *dev;
        },
        [=](int64_t i, int64_t c, double* dev, double* sq) {
          *dev = static_cast<double>(x[i]) - first_mean[c];
          *sq = *dev * *dev;
        });
    for (int64_t c = 0; c < d.channels; ++c) {
      const double dev = t.total0[c], sq = t.total1[c];
      mean[c] = first_mean[c] + dev / count;
      m2[c] = std::fmax(sq - dev * dev / count, 0.0);
    }
  }
  for (int64_t c = 0; c < channels; ++c) finish_channel(c);
  apply_affine(y, x, t.affine, d);
}

void batch_norm_forward_eval(float* y, const float* x, const float* running_mean, const float* running_var,
                             const float* weight, const float* bias, const BatchNormDesc& d) {
  if (d.batch * d.spatial == 0) return;
  const NormScratch t = norm_scratch(d);
  for (int64_t c = 0; c < d.channels; ++c)
    set_affine(t.affine, c, running_mean[c], 1.0 / std::sqrt(static_cast<double>(running_var[c]) + d.eps), weight,
               bias);
  apply_affine(y, x, t.affine, d);
}

void batch_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* y,
                         const float* mean, const float* invstd, const float* weight, const BatchNormDesc& d) {
  const int64_t count = d.batch * d.spatial;
  if (count == 0) {
    for (int64_t c = 0; c < d.channels; ++c) {
      if (dweight) dweight[c] = 0.0f;
      if (dbias) dbias[c] = 0.0f;
    }
    return;
  }
  const NormScratch t = norm_scratch(d);
  const bool need_sums = (d.training && dx) || dweight || dbias, relu = d.relu;
  auto vector_terms = [=](int64_t i, int64_t c, vfloat* g, vfloat* g_dev) {
    *g = incoming(dy, y, i, relu);
    *g_dev = *g * (vload(x + i) - mean[c]);
  };
  auto scalar_terms = [=](int64_t i, int64_t c, double* g, double* g_dev) {
    *g = incoming_scalar(dy, y, i, relu);
    *g_dev = *g * (static_cast<double>(x[i]) - mean[c]);
  };
  // dx = ((dy - mean(dy)) - (x - mean) * k) * a, with a = weight * invstd and, in training,
  // k = invstd^2 * mean(dy * (x - mean)); in eval the statistics are constants: dx = dy * a.
  float *dy_mean = t.affine.mean_lo, *k = t.affine.shift, *a = t.affine.scale;
  auto coefficients = [&](int64_t c) {
    const double sum_dy = need_sums ? t.total0[c] : 0.0, sum_dy_dev = need_sums ? t.total1[c] : 0.0;
    const double is = invstd[c];
    if (dweight) dweight[c] = static_cast<float>(sum_dy_dev * is);
    if (dbias) dbias[c] = static_cast<float>(sum_dy);
    a[c] = static_cast<float>(is * (weight ? weight[c] : 1.0f));
    dy_mean[c] = d.training ? static_cast<float>(sum_dy / count) : 0.0f;
    k[c] = d.training ? static_cast<float>(is * is * sum_dy_dev / count) : 0.0f;
  };
  auto input_gradient = [&](int64_t begin, int64_t n, int64_t c) {
    const float m = mean[c], gm = dy_mean[c], kc = k[c], ac = a[c];
    // dy is read whatever the mask (a select, not a conditional load, so the loops vectorise).
    if (d.training && relu) {
      for (int64_t i = begin; i < begin + n; ++i) {
        const float g = dy[i];
        dx[i] = (((y[i] <= 0.0f ? 0.0f : g) - gm) - (x[i] - m) * kc) * ac;
      }
    } else if (d.training) {
      for (int64_t i = begin; i < begin + n; ++i) dx[i] = ((dy[i] - gm) - (x[i] - m) * kc) * ac;
    } else if (relu) {
      for (int64_t i = begin; i < begin + n; ++i) {
        const float g = dy[i];
        dx[i] = (y[i] <= 0.0f ? 0.0f : g) * ac;
      }
    } else {
      for (int64_t i = begin; i < begin + n; ++i) dx[i] = dy[i] * ac;
    }
  };
  const int64_t channels = d.channels, s = d.spatial;
  const ChannelBlocks blocks = channel_blocks(d);
  if (blocks.threads) {
    by_channel_blocks(
        d, blocks,
        [&](int64_t k, int64_t c) {
          if (need_sums) part_sums(t.table, k, c, d, vector_terms, scalar_terms);
        },
        [&](int64_t c) {
          if (need_sums) combine_sums(t.table, part_count(d), channels, c, t.total0, t.total1);
          coefficients(c);
        },
        [&](int64_t p, int64_t c) {
          if (dx) input_gradient(p * s, s, c);
        });
    return;
  }
  if (need_sums) channel_sums(t.table, t.total0, t.total1, d, vector_terms, scalar_terms);
  for (int64_t c = 0; c < channels; ++c) coefficients(c);
  if (dx) for_each_plane(d, input_gradient);
}

void lrn_forward(float* y, float* scale, const float* x, const LrnDesc& d) {
  const int64_t c_count = d.channels, s = d.spatial;
  const int64_t before = d.size / 2, after = (d.size - 1) / 2;
  const int64_t chunks = (s + kLrnChunk - 1) / kLrnChunk, items = d.batch * chunks;
  const double coef = static_cast<double>(d.alpha) / d.size;
#pragma omp parallel for num_threads(threads_for(items, items * c_count * kLrnChunk)) schedule(static)
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
#pragma omp parallel for num_threads(threads_for(items, items * c_count * kLrnChunk)) schedule(static)
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

namespace {

// Channels of group norm's dweight / dbias owned by one work item.
constexpr int64_t kChannelBlock = 16;

struct GroupRow {
  int64_t channel0, channels, size;  // first channel, channels in the row, values in the row
};

GroupRow group_row(const GroupNormDesc& d, int64_t row) {
  const int64_t per_group = d.channels / d.groups;
  return {(row % d.groups) * per_group, per_group, per_group * d.spatial};
}

}  // namespace

// One (sample, group) row per work item: a mean pass, a variance pass around it (exact for data
// far from zero), then the normalised, affine output.
void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias,
                        const GroupNormDesc& d) {
  const int64_t rows = d.batch * d.groups;
#pragma omp parallel for num_threads(threads_for(rows, d.batch * d.channels * d.spatial)) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const GroupRow r = group_row(d, row);
    const float* in = x + row * r.size;
    float* out = y + row * r.size;
    double sum = 0.0;
    for (int64_t i = 0; i < r.size; ++i) sum += in[i];
    const double m = r.size ? sum / static_cast<double>(r.size) : 0.0;
    double squares = 0.0;
    for (int64_t i = 0; i < r.size; ++i) squares += (in[i] - m) * (in[i] - m);
    const double variance = r.size ? squares / static_cast<double>(r.size) : 0.0;
    const double inv = 1.0 / std::sqrt(variance + d.eps);
    mean[row] = static_cast<float>(m);
    rstd[row] = static_cast<float>(inv);
    for (int64_t c = 0; c < r.channels; ++c) {
      const int64_t channel = r.channel0 + c;
      // y = x * scale + shift with the affine folded in
      const double w = weight ? weight[channel] : 1.0, b = bias ? bias[channel] : 0.0;
      const float scale = static_cast<float>(w * inv), shift = static_cast<float>(b - m * w * inv);
      const float* src = in + c * d.spatial;
      float* dst = out + c * d.spatial;
      for (int64_t s = 0; s < d.spatial; ++s) dst[s] = src[s] * scale + shift;
    }
  }
}

void group_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* weight, const GroupNormDesc& d) {
  const int64_t rows = d.batch * d.groups, total = d.batch * d.channels * d.spatial;
  if (dx) {
#pragma omp parallel for num_threads(threads_for(rows, total)) schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const GroupRow r = group_row(d, row);
      const int64_t offset = row * r.size;
      const double m = mean[row], inv = rstd[row];
      double g_sum = 0.0, gx_sum = 0.0;  // sums of g and of g * xhat
      for (int64_t c = 0; c < r.channels; ++c) {
        const double w = weight ? weight[r.channel0 + c] : 1.0;
        for (int64_t s = 0; s < d.spatial; ++s) {
          const int64_t i = offset + c * d.spatial + s;
          const double g = dy[i] * w;
          g_sum += g;
          gx_sum += g * (x[i] - m) * inv;
        }
      }
      const double count = r.size ? static_cast<double>(r.size) : 1.0;
      const double g_mean = g_sum / count, gx_mean = gx_sum / count;
      for (int64_t c = 0; c < r.channels; ++c) {
        const double w = weight ? weight[r.channel0 + c] : 1.0;
        for (int64_t s = 0; s < d.spatial; ++s) {
          const int64_t i = offset + c * d.spatial + s;
          dx[i] = static_cast<float>(inv * (dy[i] * w - g_mean - (x[i] - m) * inv * gx_mean));
        }
      }
    }
  }
  if (!dweight && !dbias) return;
  // Each item owns a block of channels and walks the samples in order: no shared writes.
  const int64_t blocks = (d.channels + kChannelBlock - 1) / kChannelBlock, per_group = d.channels / d.groups;
#pragma omp parallel for num_threads(threads_for(blocks, total)) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t first = block * kChannelBlock, count = min64(kChannelBlock, d.channels - first);
    double dw[kChannelBlock] = {}, db[kChannelBlock] = {};
    for (int64_t n = 0; n < d.batch; ++n)
      for (int64_t c = 0; c < count; ++c) {
        const int64_t channel = first + c, row = n * d.groups + channel / per_group;
        const double m = mean[row], inv = rstd[row];
        const float *g = dy + (n * d.channels + channel) * d.spatial, *in = x + (n * d.channels + channel) * d.spatial;
        for (int64_t s = 0; s < d.spatial; ++s) {
          dw[c] += g[s] * (in[s] - m) * inv;
          db[c] += g[s];
        }
      }
    for (int64_t c = 0; c < count; ++c) {
      if (dweight) dweight[first + c] = static_cast<float>(dw[c]);
      if (dbias) dbias[first + c] = static_cast<float>(db[c]);
    }
  }
}

PCN_ISA_END
