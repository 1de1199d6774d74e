// Element-wise add / mul / fused add+ReLU, a deterministic sum and p-norm, and concat/split (see
// eltwise.h). Element-wise loops run over chunks of kChunk elements shared out to threads; the
// reductions reduce each fixed chunk in double and adds the chunk totals in chunk order, so its result is the same
// for any thread count.
#include "kernels/eltwise.h"

#include <math.h>

#include <cstring>

#include "core/simd.h"

PCN_ISA_BEGIN
namespace {

constexpr int64_t kChunk = 16384;

int64_t chunks_of(int64_t count) { return (count + kChunk - 1) / kChunk; }

// starts[i] = channel offset of input i in the concatenated axis, in index scratch.
const int64_t* part_starts(const int64_t* extents, int64_t inputs) {
  int64_t* starts = thread_scratch_i64(Scratch::indices, max64(inputs, 1));
  for (int64_t i = 0, offset = 0; i < inputs; offset += extents[i], ++i) starts[i] = offset;
  return starts;
}

// chunk_total(begin, end) of every fixed chunk (in parallel) into partials, folded in chunk order
// with combine from the first: the same result for any thread count. 0 for an empty input.
template <class ChunkTotal, class Combine>
double reduce_chunks(int64_t count, ChunkTotal chunk_total, Combine combine) {
  const int64_t chunks = chunks_of(count);
  if (chunks == 0) return 0.0;
  double* partials = reinterpret_cast<double*>(thread_scratch(Scratch::partial, 2 * chunks));
#pragma omp parallel for num_threads(threads_for(chunks, count)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    partials[chunk] = chunk_total(chunk * kChunk, min64(count, (chunk + 1) * kChunk));
  double total = partials[0];
  for (int64_t chunk = 1; chunk < chunks; ++chunk) total = combine(total, partials[chunk]);
  return total;
}

}  // namespace

void add_forward(float* y, const float* a, const float* b, const EltwiseDesc& d) {
  const int64_t chunks = chunks_of(d.count);
#pragma omp parallel for num_threads(threads_for(chunks, d.count)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kChunk, end = min64(d.count, begin + kChunk);
    for (int64_t i = begin; i < end; ++i) y[i] = a[i] + b[i];
  }
}

void mul_forward(float* y, const float* a, const float* b, const EltwiseDesc& d) {
  const int64_t chunks = chunks_of(d.count);
#pragma omp parallel for num_threads(threads_for(chunks, d.count)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kChunk, end = min64(d.count, begin + kChunk);
    for (int64_t i = begin; i < end; ++i) y[i] = a[i] * b[i];
  }
}

void round_bf16_forward(float* y, const float* x, const EltwiseDesc& d) {
  const int64_t chunks = chunks_of(d.count);
#pragma omp parallel for num_threads(threads_for(chunks, d.count)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kChunk, end = min64(d.count, begin + kChunk);
    for (int64_t i = begin; i < end; ++i) y[i] = round_to_bf16(x[i]);
  }
}

void add_relu_forward(float* y, const float* a, const float* b, const EltwiseDesc& d) {
  const int64_t chunks = chunks_of(d.count);
#pragma omp parallel for num_threads(threads_for(chunks, d.count)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kChunk, end = min64(d.count, begin + kChunk);
    for (int64_t i = begin; i < end; ++i) {
      const float s = a[i] + b[i];
      y[i] = s < 0.0f ? 0.0f : s;  // NaN propagates, as relu
    }
  }
}

void sum_forward(float* out, const float* x, const EltwiseDesc& d) {
  out[0] = static_cast<float>(reduce_chunks(
      d.count,
      [x](int64_t begin, int64_t end) {
        double total = 0.0;
#pragma omp simd reduction(+ : total)
        for (int64_t i = begin; i < end; ++i) total += x[i];
        return total;
      },
      [](double a, double b) { return a + b; }));
}

void norm_forward(float* out, const float* x, const EltwiseDesc& d) {
  const double p = d.p;
  const auto plus = [](double a, double b) { return a + b; };
  double result;
  if (p == INFINITY) {
    const auto larger = [](double a, double b) { return b > a || b != b ? b : a; };  // NaN wins
    result = reduce_chunks(
        d.count,
        [x, larger](int64_t begin, int64_t end) {
          double top = 0.0;
          for (int64_t i = begin; i < end; ++i) top = larger(top, fabs(static_cast<double>(x[i])));
          return top;
        },
        larger);
  } else if (p == 0.0) {
    result = reduce_chunks(
        d.count,
        [x](int64_t begin, int64_t end) {
          double nonzero = 0.0;
          for (int64_t i = begin; i < end; ++i) nonzero += x[i] != 0.0f;  // NaN counts, as torch
          return nonzero;
        },
        plus);
  } else {
    const double total = reduce_chunks(
        d.count,
        [x, p](int64_t begin, int64_t end) {
          double sum = 0.0;
          if (p == 2.0) {
#pragma omp simd reduction(+ : sum)
            for (int64_t i = begin; i < end; ++i) sum += static_cast<double>(x[i]) * x[i];
          } else if (p == 1.0) {
#pragma omp simd reduction(+ : sum)
            for (int64_t i = begin; i < end; ++i) sum += fabs(static_cast<double>(x[i]));
          } else {
            for (int64_t i = begin; i < end; ++i) sum += pow(fabs(static_cast<double>(x[i])), p);
          }
          return sum;
        },
        plus);
    result = p == 2.0 ? sqrt(total) : (p == 1.0 ? total : pow(total, 1.0 / p));
  }
  out[0] = static_cast<float>(result);
}

// One item per (row, input): each copies one contiguous run of extent * inner floats.
void concat_forward(float* y, const float* const* inputs, const int64_t* extents, const ConcatDesc& d) {
  const int64_t items = d.outer * d.inputs;
  const int64_t* starts = part_starts(extents, d.inputs);
#pragma omp parallel for num_threads(threads_for(items, d.outer * d.total * d.inner)) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t row = item / d.inputs, i = item % d.inputs, floats = extents[i] * d.inner;
    if (floats > 0) memcpy(y + (row * d.total + starts[i]) * d.inner, inputs[i] + row * floats, floats * sizeof(float));
  }
}

void split_forward(float* const* outputs, const float* y, const int64_t* extents, const ConcatDesc& d) {
  const int64_t items = d.outer * d.inputs;
  const int64_t* starts = part_starts(extents, d.inputs);
#pragma omp parallel for num_threads(threads_for(items, d.outer * d.total * d.inner)) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t row = item / d.inputs, i = item % d.inputs, floats = extents[i] * d.inner;
    if (floats > 0) memcpy(outputs[i] + row * floats, y + (row * d.total + starts[i]) * d.inner, floats * sizeof(float));
  }
}

// One item per output plane: a copy of every stride-th row and column of its input plane, or zeros.
void subsample_pad_channels_forward(float* y, const float* x, const ChannelPadDesc& d) {
  const int64_t out_channels = d.before + d.channels + d.after, planes = d.batch * out_channels;
  const int64_t out_plane = d.out_h * d.out_w;
#pragma omp parallel for num_threads(threads_for(planes, planes * out_plane)) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* out = y + p * out_plane;
    const int64_t c = p % out_channels - d.before;
    if (c < 0 || c >= d.channels) {
      std::memset(out, 0, sizeof(float) * out_plane);
      continue;
    }
    const float* in = x + (p / out_channels * d.channels + c) * d.in_h * d.in_w;
    for (int64_t i = 0; i < d.out_h; ++i)
      for (int64_t j = 0; j < d.out_w; ++j) out[i * d.out_w + j] = in[i * d.stride * d.in_w + j * d.stride];
  }
}

// One item per input plane: the sampled rows get dy's values at the sampled columns and zeros
// between them, the other rows zeros.
void subsample_pad_channels_backward(float* dx, const float* dy, const ChannelPadDesc& d) {
  const int64_t planes = d.batch * d.channels, in_plane = d.in_h * d.in_w;
  const int64_t out_channels = d.before + d.channels + d.after, out_plane = d.out_h * d.out_w;
#pragma omp parallel for num_threads(threads_for(planes, planes * in_plane)) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* out = dx + p * in_plane;
    const float* in = dy + (p / d.channels * out_channels + d.before + p % d.channels) * out_plane;
    for (int64_t i = 0; i < d.in_h; ++i) {
      float* row = out + i * d.in_w;
      std::memset(row, 0, sizeof(float) * d.in_w);
      if (i % d.stride != 0) continue;
      const float* sampled = in + i / d.stride * d.out_w;
      for (int64_t j = 0; j < d.out_w; ++j) row[j * d.stride] = sampled[j];
    }
  }
}

PCN_ISA_END
