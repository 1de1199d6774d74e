// The backward pass of conv2d -> ReLU -> max-pool (conv.h, conv2d_relu_max_pool2d_backward) from the
// pooled gradient, without the dense one.
//
// Note [sparse pooled backward]: max-pooling passes each window's gradient to one convolution output,
// and ReLU drops it where the pooled value is not positive: behind a 2x2 pool at most a quarter of the
// convolution's output gradient is non-zero. The dense route scatters it into a zeroed map and runs
// the backward passes over every position; here each non-zero gradient g of output channel o at
// convolution output position q is taken once: dw[o] += g * (the input patch under q), db[o] += g,
// and the input gradient's patch under q += g * w[o]. A patch row (kernel_w contiguous floats at
// dilation 1, whatever the stride) is an 8-lane vector, or several for wider kernels, in a
// zero-bordered copy of the image so that padding needs no tests. The weight's rows are taken in
// chunks of up to kMaxRows whose sums stay in registers:
// - weight gradient: per image and output channel, the non-zero gradients are listed, and each
//   chunk's sums run over the list (one load and one multiply-add per row and gradient);
// - input gradient: the image's gradients are grouped by output position (a counting sort), each
//   chunk sums g * w[o] over a position's group, and adds the sums into the bordered input
//   gradient with one read-modify-write per row. Adding each gradient's rows by itself stalled:
//   neighbouring patches overlap, and a load that partly overlaps a store still in flight waits for it.
// Lanes past kernel_w are wasted, and the dense passes run near the FMA peak, so this wins on few
// input channels and narrow or wide-window kernels and loses on 3x3 layers with many channels
// (Winograd): pyconvnet/plans.py times the two. Threads take whole images, with their own partial
// weight and bias gradients added in thread order afterwards: deterministic for a thread count.
#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "core/simd.h"
#include "kernels/conv.h"

PCN_ISA_BEGIN
namespace {

typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v8_u __attribute__((vector_size(8 * sizeof(float)), aligned(4)));

static inline v8 load8(const float* p) { return *reinterpret_cast<const v8_u*>(p); }
static inline void store8(float* p, v8 v) { *reinterpret_cast<v8_u*>(p) = v; }
static inline v8 broadcast8(float g) { return v8{g, g, g, g, g, g, g, g}; }

constexpr int kLanes = 8;
// Weight rows a chunk holds in registers: 10 accumulators, the gradient and a loaded row fit
// AVX2's 16 vector registers.
constexpr int kMaxRows = 10;

// One row of the weight: input channel c, kernel row r, columns [8 * piece, 8 * piece + lanes).
struct WeightRow {
  int64_t image_offset;   // from a patch's origin in the zero-bordered image
  int64_t weight_offset;  // within one output channel's weights
  int lanes;
};

struct Gradients {
  const int64_t* offsets;  // patch origins in the zero-bordered image
  const float* values;
  int64_t count;
};

// sums_o[row] (whole vectors) += sum over the list of g * (the image row under the patch). A sum
// waits 4 cycles for its last multiply-add: with few rows, two sets of sums take alternate gradients.
template <int R>
void weight_rows(float* sums_o, const WeightRow* rows, const float* image, const Gradients& list) {
  constexpr int kSets = R <= 5 ? 2 : 1;
  v8 sums[kSets][R];
  for (int set = 0; set < kSets; ++set)
    for (int j = 0; j < R; ++j) sums[set][j] = v8{};
  int64_t e = 0;
  for (; e + kSets <= list.count; e += kSets)
    for (int set = 0; set < kSets; ++set) {
      const float* origin = image + list.offsets[e + set];
      const v8 g = broadcast8(list.values[e + set]);
      for (int j = 0; j < R; ++j) sums[set][j] += g * load8(origin + rows[j].image_offset);
    }
  for (; e < list.count; ++e) {
    const float* origin = image + list.offsets[e];
    const v8 g = broadcast8(list.values[e]);
    for (int j = 0; j < R; ++j) sums[0][j] += g * load8(origin + rows[j].image_offset);
  }
  for (int j = 0; j < R; ++j) {
    v8 total = sums[0][j];
    for (int set = 1; set < kSets; ++set) total += sums[set][j];
    store8(sums_o + j * kLanes, load8(sums_o + j * kLanes) + total);
  }
}

// The input gradient of one chunk of rows: for each output position q with gradients (output
// channel, value g; sorted by position, q's from first[q] to first[q + 1]) and each row j of the
// chunk, the sum of g * (the channel's weight row j, zero past the kernel's width) is added to the
// bordered image's row under q's patch (at origins[q]). The rows' offsets stay in registers over
// all positions: a position has a few gradients only.
template <int R>
void input_rows(float* dimage, const WeightRow* rows, const float* packed, int64_t channel_stride,
                const int32_t* first, const int64_t* origins, int64_t positions, const int32_t* channels,
                const float* values) {
  int64_t offsets[R];
  for (int j = 0; j < R; ++j) offsets[j] = rows[j].image_offset;
  for (int64_t q = 0; q < positions; ++q) {
    const int64_t begin = first[q], end = first[q + 1];
    if (begin == end) continue;
    v8 sums[R];
    for (int j = 0; j < R; ++j) sums[j] = v8{};
    for (int64_t e = begin; e < end; ++e) {
      const float* weights = packed + channels[e] * channel_stride;
      const v8 g = broadcast8(values[e]);
      for (int j = 0; j < R; ++j) sums[j] += g * load8(weights + j * kLanes);
    }
    float* at = dimage + origins[q];
    for (int j = 0; j < R; ++j) store8(at + offsets[j], load8(at + offsets[j]) + sums[j]);
  }
}

// The sum of values[0, count), eight partial sums at a time (one running sum would wait for each add).
float list_sum(const float* values, int64_t count) {
  v8 lanes = v8{};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) lanes += load8(values + i);
  float sum = 0.0f;
  for (int lane = 0; lane < kLanes; ++lane) sum += lanes[lane];
  for (; i < count; ++i) sum += values[i];
  return sum;
}

template <int... Rs>
constexpr auto weight_row_kernels(std::integer_sequence<int, Rs...>) {
  return std::array<void (*)(float*, const WeightRow*, const float*, const Gradients&), sizeof...(Rs)>{
      &weight_rows<Rs + 1>...};
}
constexpr auto kWeightRowKernels = weight_row_kernels(std::make_integer_sequence<int, kMaxRows>{});
template <int... Rs>
constexpr auto input_row_kernels(std::integer_sequence<int, Rs...>) {
  return std::array<void (*)(float*, const WeightRow*, const float*, int64_t, const int32_t*, const int64_t*, int64_t,
                              const int32_t*, const float*),
                    sizeof...(Rs)>{&input_rows<Rs + 1>...};
}
constexpr auto kInputRowKernels = input_row_kernels(std::make_integer_sequence<int, kMaxRows>{});

}  // namespace

void conv2d_relu_max_pool2d_backward(float* dx, float* dw, float* db, int64_t* first_invalid, const float* gy,
                                     const float* y, const int64_t* indices, const float* x, const float* w,
                                     const Conv2dDesc& d, int64_t pooled_h, int64_t pooled_w) {
  const int64_t cin = d.in_channels, cout = d.out_channels, kh = d.kernel_h, kw = d.kernel_w;
  const int64_t pieces = (kw + kLanes - 1) / kLanes;
  // The zero-bordered image: padding on every side, and a vector's slack past each row's end.
  const int64_t bordered_h = d.in_h + 2 * d.pad_h, bordered_w = d.in_w + 2 * d.pad_w + kLanes;
  const int64_t bordered = cin * bordered_h * bordered_w;
  const int64_t pooled = pooled_h * pooled_w, out_plane = d.out_h * d.out_w, taps = cin * kh * kw;

  std::vector<WeightRow> rows;
  rows.reserve(cin * kh * pieces);
  for (int64_t c = 0; c < cin; ++c)
    for (int64_t r = 0; r < kh; ++r)
      for (int64_t piece = 0; piece < pieces; ++piece)
        rows.push_back({(c * bordered_h + r) * bordered_w + piece * kLanes, (c * kh + r) * kw + piece * kLanes,
                        static_cast<int>(std::min<int64_t>(kLanes, kw - piece * kLanes))});
  const int64_t row_count = static_cast<int64_t>(rows.size());
  const int64_t chunks = (row_count + kMaxRows - 1) / kMaxRows;

  const int threads = threads_for(d.batch, d.batch * cout * pooled * row_count * kLanes / 4);
  // Per thread: the bordered image; the image's kept gradients (value, convolution output position)
  // in channel order, each channel's list a run of them; the partial weight gradient (whole vectors
  // per row, as weight_rows adds them) and bias gradient.
  const int64_t sums = cout * row_count * kLanes, kept_max = cout * pooled;
  const int64_t per_thread = bordered + 2 * kept_max + sums + cout;
  float* scratch = thread_scratch(Scratch::partial, threads * per_thread);
  // Per thread: the current list's patch origins.
  int64_t* all_offsets = thread_scratch_i64(Scratch::indices, threads * pooled);
  // For the input gradient, per thread: its bordered image; the kept gradients' channels, and all
  // three sorted by position; each position's first in the sorted order and a cursor. And each
  // output channel's weight rows as whole vectors, zero past the kernel's width.
  const int64_t input_per_thread = dx ? bordered + 3 * kept_max + 2 * (out_plane + 1) : 0;
  float* input_scratch = dx ? thread_scratch(Scratch::pack_a, threads * input_per_thread) : nullptr;
  float* packed = dx ? thread_scratch(Scratch::weights, sums) : nullptr;
  if (dx)
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t j = 0; j < row_count; ++j)
        for (int lane = 0; lane < kLanes; ++lane)
          packed[(o * row_count + j) * kLanes + lane] =
              lane < rows[j].lanes ? w[o * taps + rows[j].weight_offset + lane] : 0.0f;
  // Each convolution output position's patch origin in the bordered image (a table: a 64-bit
  // division per gradient cost more than the multiply-adds of a one-channel layer).
  int64_t* origins = thread_scratch_i64(Scratch::columns, out_plane);
  for (int64_t q = 0; q < out_plane; ++q)
    origins[q] = (q / d.out_w) * d.stride_h * bordered_w + (q % d.out_w) * d.stride_w;
  std::vector<int64_t> invalid(threads, -1);

#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    float* image = scratch + t * per_thread;
    float* kept_values = image + bordered;
    int32_t* kept_positions = reinterpret_cast<int32_t*>(kept_values + kept_max);
    float* sums_t = reinterpret_cast<float*>(kept_positions + kept_max);
    float* db_t = sums_t + sums;
    int64_t* offsets = all_offsets + t * pooled;
    float *dimage = nullptr, *sorted_values = nullptr;
    int32_t *kept_channels = nullptr, *sorted_channels = nullptr, *first = nullptr, *cursor = nullptr;
    if (dx) {
      dimage = input_scratch + t * input_per_thread;
      sorted_values = dimage + bordered;
      kept_channels = reinterpret_cast<int32_t*>(sorted_values + kept_max);
      sorted_channels = kept_channels + kept_max;
      first = sorted_channels + kept_max;  // out_plane + 1 entries
      cursor = first + out_plane + 1;
    }
    std::fill(image, image + bordered, 0.0f);  // the borders stay zero; each image fills the inside
    std::fill(sums_t, sums_t + sums + cout, 0.0f);
    int64_t my_invalid = -1;
    const int64_t n0 = d.batch * t / threads, n1 = d.batch * (t + 1) / threads;
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t c = 0; c < cin; ++c)
        for (int64_t h = 0; h < d.in_h; ++h)
          std::copy_n(x + ((n * cin + c) * d.in_h + h) * d.in_w, d.in_w,
                      image + (c * bordered_h + h + d.pad_h) * bordered_w + d.pad_w);
      int64_t kept = 0;
      for (int64_t o = 0; o < cout; ++o) {
        const int64_t base = (n * cout + o) * pooled;
        float* values = kept_values + kept;
        int32_t* positions = kept_positions + kept;
        Gradients list{offsets, values, 0};
        for (int64_t p = 0; p < pooled; ++p) {
          const float g = gy[base + p];
          const int64_t q = indices[base + p];
          if (q < -1 || q >= out_plane) {
            if (my_invalid < 0) my_invalid = base + p;
            continue;
          }
          // Written always, kept unless the window was empty, ReLU zeroed it or it is 0: no branch
          // to mispredict on ReLU's mask.
          const bool keep = (q >= 0) & (g != 0.0f) & (y[base + p] > 0.0f);
          offsets[list.count] = origins[q < 0 ? 0 : q];
          positions[list.count] = static_cast<int32_t>(q);
          values[list.count] = g;
          list.count += keep;
        }
        if (list.count == 0) continue;
        db_t[o] += list_sum(values, list.count);
        if (dx) std::fill_n(kept_channels + kept, list.count, static_cast<int32_t>(o));
        kept += list.count;
        for (int64_t chunk = 0, j0 = 0; chunk < chunks; ++chunk) {
          const int64_t j1 = row_count * (chunk + 1) / chunks;
          kWeightRowKernels[j1 - j0 - 1](sums_t + (o * row_count + j0) * kLanes, rows.data() + j0, image, list);
          j0 = j1;
        }
      }
      if (dx) {
        // The kept gradients grouped by output position (a counting sort), then per chunk of rows
        // and position one pass over its gradients and one read-modify-write per row: positions are
        // fewer than gradients, and between two neighbours' overlapping rows lie a whole group's
        // multiply-adds.
        std::fill(first, first + out_plane + 1, 0);
        for (int64_t e = 0; e < kept; ++e) ++first[kept_positions[e] + 1];
        for (int64_t q = 0; q < out_plane; ++q) first[q + 1] += first[q];
        std::copy_n(first, out_plane, cursor);
        for (int64_t e = 0; e < kept; ++e) {
          const int32_t at = cursor[kept_positions[e]]++;
          sorted_channels[at] = kept_channels[e];
          sorted_values[at] = kept_values[e];
        }
        std::fill(dimage, dimage + bordered, 0.0f);
        for (int64_t chunk = 0, j0 = 0; chunk < chunks; ++chunk) {
          const int64_t j1 = row_count * (chunk + 1) / chunks;
          kInputRowKernels[j1 - j0 - 1](dimage, rows.data() + j0, packed + j0 * kLanes, row_count * kLanes, first,
                                        origins, out_plane, sorted_channels, sorted_values);
          j0 = j1;
        }
        for (int64_t c = 0; c < cin; ++c)
          for (int64_t h = 0; h < d.in_h; ++h)
            std::copy_n(dimage + (c * bordered_h + h + d.pad_h) * bordered_w + d.pad_w, d.in_w,
                        dx + ((n * cin + c) * d.in_h + h) * d.in_w);
      }
    }
    invalid[t] = my_invalid;
  }
  // The partial sums in thread order, then unpacked from vectors to the weight's layout.
  std::fill(dw, dw + cout * taps, 0.0f);
  if (db) std::fill(db, db + cout, 0.0f);
  for (int t = 0; t < threads; ++t) {
    const float* sums_t = scratch + t * per_thread + bordered + 2 * kept_max;
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t j = 0; j < row_count; ++j)
        for (int lane = 0; lane < rows[j].lanes; ++lane)
          dw[o * taps + rows[j].weight_offset + lane] += sums_t[(o * row_count + j) * kLanes + lane];
    if (db)
      for (int64_t o = 0; o < cout; ++o) db[o] += sums_t[sums + o];
  }
  *first_invalid = -1;
  for (int t = 0; t < threads; ++t)
    if (invalid[t] >= 0 && (*first_invalid < 0 || invalid[t] < *first_invalid)) *first_invalid = invalid[t];
}

PCN_ISA_END
