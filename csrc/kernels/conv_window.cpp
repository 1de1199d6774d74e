// Convolutions as sliding windows over a zero-padded image split into stride phases (see
// conv_window.h).
#include "kernels/conv_window.h"

#include <vector>

#include "kernels/gemm_driver.h"
#include "kernels/image_bundle.h"

PCN_ISA_BEGIN
namespace {

// One image (one group) of a convolution: `channels` input planes of in_h x in_w, zero-padded
// to padded_h x padded_w and split into stride_h x stride_w phases, feeding out_channels planes
// of out_h x out_w. Phase (a, b) holds the padded pixels (i * stride_h + a, j * stride_w + b) as
// a plane of phase_h x phase_w, so kernel tap (r, s) of output (oh, ow) is pixel
// (oh + r * dilation_h / stride_h, ow + s * dilation_w / stride_w) of one phase: output rows read
// contiguous runs whatever the stride. With stride 1 the one phase is the padded image.
struct Window {
  int64_t channels, in_h, in_w, pad_h, pad_w, kernel_h, kernel_w, dilation_h, dilation_w, stride_h, stride_w;
  int64_t out_channels, padded_h, padded_w, phases, phase_h, phase_w, out_h, out_w, out_plane;
  int64_t plane;  // phase_h * phase_w: positions per image, in phase-width coordinates
  int64_t k;      // channels * kernel_h * kernel_w taps

  Window(int64_t channels_, int64_t in_h_, int64_t in_w_, int64_t pad_h_, int64_t pad_w_, int64_t stride_h_,
         int64_t stride_w_, const Conv2dDesc& d, int64_t out_channels_)
      : channels(channels_), in_h(in_h_), in_w(in_w_), pad_h(pad_h_), pad_w(pad_w_), kernel_h(d.kernel_h),
        kernel_w(d.kernel_w), dilation_h(d.dilation_h), dilation_w(d.dilation_w), stride_h(stride_h_),
        stride_w(stride_w_), out_channels(out_channels_) {
    padded_h = in_h + 2 * pad_h;
    padded_w = in_w + 2 * pad_w;
    phases = stride_h * stride_w;
    phase_h = (padded_h + stride_h - 1) / stride_h;
    phase_w = (padded_w + stride_w - 1) / stride_w;
    plane = phase_h * phase_w;
    out_h = (padded_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
    out_w = (padded_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
    out_plane = out_h * out_w;
    k = channels * kernel_h * kernel_w;
  }

  // Floats read past an image's last phase plane by the farthest tap's column shift.
  int64_t column_overhang() const { return (kernel_w - 1) * dilation_w / stride_w; }
};

// Several images of one group padded side by side, so that small images still make GEMMs and
// dot products long enough to run at speed: phase f of channel c of image g at
// c * stride + f * phase_stride + g * plane, so positions q = g * plane + oh * phase_w + ow run
// on across the images as they do within one.
struct Bundle {
  int64_t images;        // at most this many images per bundle
  int64_t phase_stride;  // images * plane
  int64_t stride;        // phases * phase_stride
  int64_t floats;  // channels * stride, plus `slack` zeros read past the last plane
  int64_t count;   // bundles covering the batch
};

// Bundles of images_per_bundle(batch, threads, per_image, target) images.
Bundle make_bundle(const Window& win, int64_t batch, int threads, int64_t per_image, int64_t target, int64_t slack) {
  Bundle b;
  b.images = images_per_bundle(batch, threads, per_image, target);
  b.phase_stride = b.images * win.plane;
  b.stride = win.phases * b.phase_stride;
  b.floats = win.channels * b.stride + slack;
  b.count = (batch + b.images - 1) / b.images;
  return b;
}

// The first n lanes (0 <= n <= kVecFloats) of v to p, and the inverse (zeros in the other lanes);
// nothing past them is read or written. AVX-512 masks; elsewhere a loop of fixed length (GCC makes
// a copy of n floats a library call).
static inline void store_lanes(float* p, vfloat v, int64_t n) {
#if defined(PCN_ISA_IS_avx512)
  vstore_first(p, v, n);
#else
  if (n == kVecFloats) return vstore(p, v);
  alignas(64) float lanes[kVecFloats];
  vstore(lanes, v);
  for (int t = 0; t < kVecFloats; ++t)
    if (t < n) p[t] = lanes[t];
#endif
}

static inline vfloat load_lanes(const float* p, int64_t n) {
#if defined(PCN_ISA_IS_avx512)
  return reinterpret_cast<vfloat>(_mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p));
#else
  if (n == kVecFloats) return vload(p);
  alignas(64) float lanes[kVecFloats];
  for (int t = 0; t < kVecFloats; ++t) lanes[t] = t < n ? p[t] : 0.0f;
  return vload(lanes);
#endif
}

// Channels [c_begin, c_end) of `count` images (src planes of in_h x in_w, channels consecutive,
// images image_stride floats apart) into the bundle with zero borders; the bundle's missing
// images and the slack after the last plane become zeros.
void pad_bundle(float* dst, const float* src, int64_t image_stride, int64_t count, const Window& win,
                const Bundle& bundle, int64_t c_begin, int64_t c_end, bool zero_slack) {
  for (int64_t c = c_begin; c < c_end; ++c) {
    float* channel = dst + c * bundle.stride;
    // Zero every phase plane, then copy each input row in: far fewer (and longer) calls than
    // zeroing the borders row by row.
    for (int64_t phase = 0; phase < win.phases; ++phase)
      std::memset(channel + phase * bundle.phase_stride, 0, sizeof(float) * bundle.phase_stride);
    for (int64_t g = 0; g < count; ++g) {
      const float* in = src + g * image_stride + c * win.in_h * win.in_w;
      for (int64_t ih = 0; ih < win.in_h; ++ih) {
        const int64_t row = ih + win.pad_h;
        float* phase_row = channel + (row % win.stride_h) * win.stride_w * bundle.phase_stride + g * win.plane +
                           row / win.stride_h * win.phase_w;
        const float* in_row = in + ih * win.in_w;
        if (win.stride_w == 1) {
          std::memcpy(phase_row + win.pad_w, in_row, sizeof(float) * win.in_w);
          continue;
        }
        // Input column iw lands in phase (iw + pad_w) % stride_w at column (iw + pad_w) / stride_w.
        if (win.stride_w == 2) {
          // Columns 2t and 2t + 1 to the two phases, 2 * kVecFloats at a time; a row's end through
          // masks (a scalar end took a quarter of ResNet-20's 16 x 16 stride-2 forward on AVX-512).
          float* even = phase_row + (win.pad_w % 2) * bundle.phase_stride + win.pad_w / 2;
          float* odd = phase_row + ((win.pad_w + 1) % 2) * bundle.phase_stride + (win.pad_w + 1) / 2;
          for (int64_t t = 0; 2 * t < win.in_w; t += kVecFloats) {
            const int64_t left = win.in_w - 2 * t;
            const vfloat a = load_lanes(in_row + 2 * t, min64(left, kVecFloats));
            const vfloat b = load_lanes(in_row + 2 * t + kVecFloats, max64(0, min64(left - kVecFloats, kVecFloats)));
            store_lanes(even + t, every_other_lane<0>(a, b), min64((left + 1) / 2, kVecFloats));
            store_lanes(odd + t, every_other_lane<1>(a, b), min64(left / 2, kVecFloats));
          }
          continue;
        }
        for (int64_t b = 0; b < win.stride_w && b < win.in_w; ++b) {
          const int64_t column = b + win.pad_w;
          float* out = phase_row + (column % win.stride_w) * bundle.phase_stride + column / win.stride_w;
          const int64_t n = (win.in_w - b + win.stride_w - 1) / win.stride_w;
          for (int64_t t = 0; t < n; ++t) out[t] = in_row[b + t * win.stride_w];
        }
      }
    }
  }
  if (zero_slack)
    std::memset(dst + win.channels * bundle.stride, 0, sizeof(float) * (bundle.floats - win.channels * bundle.stride));
}

// Offset of every tap kk = (c, r, s), in the weights' order, from an output position's first
// input in the bundle.
void tap_offsets(int64_t* offsets, const Window& win, const Bundle& bundle) {
  const int64_t taps = win.kernel_h * win.kernel_w;
  for (int64_t kk = 0; kk < win.k; ++kk) {
    const int64_t c = kk / taps, r = (kk % taps) / win.kernel_w, s = kk % win.kernel_w;
    const int64_t rows = r * win.dilation_h, columns = s * win.dilation_w;
    const int64_t phase = (rows % win.stride_h) * win.stride_w + columns % win.stride_w;
    offsets[kk] = c * bundle.stride + phase * bundle.phase_stride + rows / win.stride_h * win.phase_w +
                  columns / win.stride_w;
  }
}

// Splits `count` consecutive GEMM columns from `first` (output positions in bundle order: image,
// output row, column) into runs along output rows: run r starts at padded-bundle offset
// source[r], at column start[r] of the range, and is length[r] long. Returns the run count.
int position_runs(const Window& win, int64_t first, int64_t count, int64_t* source, int64_t* start, int64_t* length) {
  int runs = 0;
  for (int64_t i = 0; i < count; ++runs) {
    const int64_t column = first + i, g = column / win.out_plane, p = column % win.out_plane;
    const int64_t oh = p / win.out_w, ow = p % win.out_w;
    source[runs] = g * win.plane + oh * win.phase_w + ow;
    start[runs] = i;
    length[runs] = min64(win.out_w - ow, count - i);
    i += length[runs];
  }
  return runs;
}

// ---------------------------------------------------------------- forward and backward-data
// C (out_channels x columns) = A (out_channels x k weights) * B, where the columns are the output
// positions of the bundle's images in order (g, oh, ow) and B[kk][column] = the input that tap kk
// reads for it. In a panel of NR columns the positions fall into runs along output rows; every
// tap reads each run as one contiguous stretch of the padded bundle, shifted by its offset.
struct WindowPackB {
  const float* padded;
  const int64_t* offsets;
  const Window* win;
  void operator()(float* out, int64_t k0, int64_t kc, int64_t j0, int64_t cols) const {
    int64_t run_source[kGemmNR], run_column[kGemmNR], run_length[kGemmNR];
    const int runs = position_runs(*win, j0, cols, run_source, run_column, run_length);
    for (int64_t kk = 0; kk < kc; ++kk) {
      float* row = out + kk * kGemmNR;
      const float* base = padded + offsets[k0 + kk];
      if (runs == 1 && cols == kGemmNR) {
        for (int j = 0; j < kGemmNRVecs; ++j) vstore(row + j * kVecFloats, vload(base + run_source[0] + j * kVecFloats));
        continue;
      }
#if defined(PCN_ISA_IS_avx512)
      // Short runs: each in place, its last vector masked (a loop of whole vectors into a staging
      // row was turned into a memcpy call per run: 40 % of the time with 16-wide maps).
      for (int run = 0; run < runs; ++run)
        for (int64_t j = 0; j < run_length[run]; j += kVecFloats)
          vstore_first(row + run_column[run] + j, vload(base + run_source[run] + j), run_length[run] - j);
      for (int64_t j = cols; j < kGemmNR; j += kVecFloats) vstore_first(row + j, vfloat{}, kGemmNR - j);
#else
      // Short runs: whole vectors into a staging row (a run's last vector spills into the next
      // run's place, which that run then overwrites, or past `cols`, which is zeroed after).
      alignas(64) float stage[2 * kGemmNR];
      for (int run = 0; run < runs; ++run)
        for (int64_t j = 0; j < run_length[run]; j += kVecFloats)
          vstore(stage + run_column[run] + j, vload(base + run_source[run] + j));
      for (int64_t j = cols; j < kGemmNR; ++j) stage[j] = 0.0f;
      for (int j = 0; j < kGemmNRVecs; ++j) vstore(row + j * kVecFloats, vload(stage + j * kVecFloats));
#endif
    }
  }
};

// ---------------------------------------------------------------- few output channels
// Packing B would cost more than the multiply-adds each packed value feeds, so register tiles
// (output channels x vectors of positions) read their inputs straight from one image in one of
// two layouts, whichever the cost estimate prefers for the layer:
// - rows: the padded image split into stride phases (pad_bundle); each vector holds (part of) one
//   output row, read from phase-width row oh of its tap, and the lanes past out_w are dropped;
// - shifted copies: copy (c, s) holds, for every padded row, the out_w inputs that kernel column s
//   reads for the output columns, rows in phase order (padded row i at (i % stride_h) * phase_h +
//   i / stride_h), so tap (c, r, s) of output position p = oh * out_w + ow is element p + a
//   constant of copy (c, s): a tile's vectors are one contiguous run and no lane is dropped, for
//   the price of kernel_w copies (LeNet-5's 10-wide conv2 would drop 6 of 16 lanes).
// Either way a tile skips the kernel rows that read only zero padding for its output rows (on
// LeNet-5's conv2 backward-data, 2 of 7 taps).
constexpr int64_t kDirectMaxChannels = 16;

// Accumulator registers a tile may hold (the rest: its inputs and a broadcast weight).
#if defined(PCN_ISA_IS_avx512)
constexpr int kDirectAccumulators = 24;
#else
constexpr int kDirectAccumulators = 12;
#endif
constexpr int kDirectMaxVecs = 4;
// Floats of shifted copies per chunk of input channels: 24 KiB of Zen 4's 32 KiB L1.
constexpr int64_t kShiftedFloats = 6144;

constexpr int direct_max_rows(int vecs) {
  return kDirectAccumulators / vecs < kDirectMaxChannels ? kDirectAccumulators / vecs : int(kDirectMaxChannels);
}

// Shifted copies of one image: each of `rows` rows of out_w floats, then kDirectMaxVecs vectors of
// slack, which whole-vector stores of a row's end spill into and the last tiles' vectors read past
// the rows (the first vector zeros: the weight gradient's products with the zero dy past a run).
// Channels go in chunks whose copies stay in L1.
struct ShiftedCopies {
  int64_t rows, copy, channel, chunk;
  explicit ShiftedCopies(const Window& win)
      : rows(win.stride_h * win.phase_h), copy(rows * win.out_w + kDirectMaxVecs * kVecFloats),
        channel(win.kernel_w * copy), chunk(max64(1, min64(win.channels, kShiftedFloats / channel))) {}
  int64_t floats() const { return chunk * channel; }
};

// Channels [c_begin, c_end) of one image (planes of in_h x in_w) into their shifted copies from
// dst on. Each input row goes once into a zero-bordered line (the padded row), from which every
// copy's row is a slice; rows are written in memory order, so a row's whole-vector stores spill
// only into what is written next, or the copy's slack.
void shift_image(float* dst, const float* src, const Window& win, const ShiftedCopies& sc, int64_t c_begin,
                 int64_t c_end) {
  vfloat zero = vfloat{};
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+x"(zero));  // hidden from GCC, which would make each row's zero stores a memset call
#endif
  // The padded row, with a vector of zeros past it for the slices' last vectors.
  static thread_local std::vector<float> line_buffer;
  const int64_t line_floats = win.padded_w + kVecFloats;
  if (static_cast<int64_t>(line_buffer.size()) < line_floats) line_buffer.resize(line_floats);
  float* line = line_buffer.data();
  for (int64_t j = 0; j < win.pad_w; ++j) line[j] = 0.0f;
  for (int64_t j = win.pad_w + win.in_w; j < line_floats; ++j) line[j] = 0.0f;
  for (int64_t c = c_begin; c < c_end; ++c) {
    float* channel = dst + (c - c_begin) * sc.channel;
    for (int64_t phase = 0; phase < win.stride_h; ++phase)
      for (int64_t t = 0; t < win.phase_h; ++t) {
        const int64_t ih = t * win.stride_h + phase - win.pad_h, row = (phase * win.phase_h + t) * win.out_w;
        if (ih < 0 || ih >= win.in_h) {
          for (int64_t s = 0; s < win.kernel_w; ++s)
            for (int64_t j = 0; j < win.out_w; j += kVecFloats) vstore(channel + s * sc.copy + row + j, zero);
          continue;
        }
        const float* in = src + (c * win.in_h + ih) * win.in_w;
        int64_t j = 0;
        for (; j + kVecFloats <= win.in_w; j += kVecFloats) vstore(line + win.pad_w + j, vload(in + j));
        store_lanes(line + win.pad_w + j, load_lanes(in + j, win.in_w - j), win.in_w - j);
        for (int64_t s = 0; s < win.kernel_w; ++s) {
          float* out = channel + s * sc.copy + row;
          const float* from = line + s * win.dilation_w;
          if (win.stride_w == 1)
            for (int64_t ow = 0; ow < win.out_w; ow += kVecFloats) vstore(out + ow, vload(from + ow));
          else
            for (int64_t ow = 0; ow < win.out_w; ++ow) out[ow] = from[ow * win.stride_w];
        }
      }
    for (int64_t s = 0; s < win.kernel_w; ++s)
      vstore(channel + s * sc.copy + sc.rows * win.out_w, zero);  // read by the weight gradient's last vectors
  }
}

// Offset of tap (c, r, s), c * kernel_h * kernel_w + r * kernel_w + s for c < channels, from the
// first channel's shifted copies.
void shifted_offsets(int64_t* offsets, const Window& win, const ShiftedCopies& sc, int64_t channels) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t r = 0; r < win.kernel_h; ++r)
      for (int64_t s = 0; s < win.kernel_w; ++s) {
        const int64_t rows = r * win.dilation_h;
        offsets[(c * win.kernel_h + r) * win.kernel_w + s] =
            c * sc.channel + s * sc.copy + ((rows % win.stride_h) * win.phase_h + rows / win.stride_h) * win.out_w;
      }
}

// The kernel rows [*r_begin, *r_end) that read some padded row inside the image for output rows
// [oh_first, oh_last] (the others multiply zeros only).
void live_kernel_rows(const Window& win, int64_t oh_first, int64_t oh_last, int64_t* r_begin, int64_t* r_end) {
  int64_t r = 0;
  while (r < win.kernel_h && oh_last * win.stride_h + r * win.dilation_h < win.pad_h) ++r;
  *r_begin = r;
  while (r < win.kernel_h && oh_first * win.stride_h + r * win.dilation_h < win.pad_h + win.in_h) ++r;
  *r_end = r;
}

// Where a tile's inputs are: tap kk of input channel c_begin + kk / (kernel_h * kernel_w) at
// base + offsets[kk].
struct DirectSource {
  const float* base;
  const int64_t* offsets;
};

// One tile: output channels [row0, row0 + rows), kernel rows [r_begin, r_end) of input channels
// [c_begin, c_end); its vector j reads from in[j] past each tap's input and goes to out[j] of the
// output planes, lanes[j] lanes of it (0: a vector computed only to fill the tile's shape).
struct TileSpan {
  int64_t row0, rows, r_begin, r_end, c_begin, c_end;
  int vecs;
  int64_t in[kDirectMaxVecs], out[kDirectMaxVecs], lanes[kDirectMaxVecs];
};

// A tile of kRows output channels by kVecs vectors: weights a_t (k x out_channels, tap by tap).
// The sums go into the output planes, plus bias[channel] if given; or are added to them
// (`accumulate`: a later chunk of input channels).
template <int kRows, int kVecs>
void direct_tile(float* out, const float* a_t, const TileSpan& t, const DirectSource& src, const Window& win,
                 const float* bias, bool accumulate) {
  vfloat acc[kRows][kVecs];
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < kVecs; ++j)
      acc[i][j] = accumulate ? load_lanes(out + (t.row0 + i) * win.out_plane + t.out[j], t.lanes[j])
                             : vbroadcast(bias ? bias[t.row0 + i] : 0.0f);
  int64_t in[kVecs];
  for (int j = 0; j < kVecs; ++j) in[j] = t.in[j];
  const int64_t taps = win.kernel_h * win.kernel_w, tap_begin = t.r_begin * win.kernel_w, tap_end = t.r_end * win.kernel_w;
  const int64_t* __restrict offsets = src.offsets;
  const float* __restrict a_chunk = a_t + t.c_begin * taps * win.out_channels + t.row0;
  // Runs of taps, kk counted from the chunk's first: one per channel, or one in all when no kernel
  // row is skipped.
  const bool whole = tap_begin == 0 && tap_end == taps;
  const int64_t runs = whole ? 1 : t.c_end - t.c_begin, run = whole ? (t.c_end - t.c_begin) * taps : tap_end - tap_begin;
  for (int64_t first = tap_begin; first < runs * taps; first += taps)
    for (int64_t kk = first; kk < first + run; ++kk) {
      const float* b = src.base + offsets[kk];
      const float* __restrict a = a_chunk + kk * win.out_channels;
      vfloat bv[kVecs];
      for (int j = 0; j < kVecs; ++j) bv[j] = vload(b + in[j]);
      for (int i = 0; i < kRows; ++i) {
        const vfloat ai = vbroadcast(a[i]);
        for (int j = 0; j < kVecs; ++j) acc[i][j] += ai * bv[j];
      }
    }
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < kVecs; ++j)
      if (t.lanes[j] > 0) store_lanes(out + (t.row0 + i) * win.out_plane + t.out[j], acc[i][j], t.lanes[j]);
}

// direct_tile for the t.rows (1 to kRows) channels that exist.
template <int kRows, int kVecs>
void direct_tile_rows(float* out, const float* a_t, const TileSpan& t, const DirectSource& src, const Window& win,
                      const float* bias, bool accumulate) {
  if constexpr (kRows > 1) {
    if (t.rows < kRows) return direct_tile_rows<kRows - 1, kVecs>(out, a_t, t, src, win, bias, accumulate);
  }
  direct_tile<kRows, kVecs>(out, a_t, t, src, win, bias, accumulate);
}

// How one image's outputs split into tiles: `rows` output channels (the last tile the rest) by
// either (layout rows) `out_rows` whole output rows of row_vecs vectors each, or, where a row is
// wider than a tile, `segments` pieces of one row; or (shifted copies) `span` consecutive
// positions. A tile computes 1, 2 or kDirectMaxVecs vectors.
struct DirectTiles {
  bool shifted;
  int64_t rows, row_tiles, row_vecs, out_rows, segment_vecs, segments, span, position_tiles;

  // unit: the tile's vectors (rows) or positions (shifted copies).
  DirectTiles(const Window& win, bool shifted_, int64_t rows_, int64_t unit)
      : shifted(shifted_), rows(rows_), row_tiles((win.out_channels + rows_ - 1) / rows_),
        row_vecs((win.out_w + kVecFloats - 1) / kVecFloats), out_rows(max64(1, unit / row_vecs)),
        segment_vecs(min64(unit, row_vecs)), segments((row_vecs + segment_vecs - 1) / segment_vecs), span(unit) {
    position_tiles = shifted ? (win.out_plane + span - 1) / span : (win.out_h + out_rows - 1) / out_rows * segments;
  }

  TileSpan tile(int64_t t, const Window& win) const {
    TileSpan span_of_t;
    span_of_t.row0 = t % row_tiles * rows;
    span_of_t.rows = min64(rows, win.out_channels - span_of_t.row0);
    span_of_t.c_begin = 0, span_of_t.c_end = win.channels;
    const int64_t position_tile = t / row_tiles;
    int64_t oh_first, oh_last, used;
    if (shifted) {
      const int64_t p0 = position_tile * span, count = min64(span, win.out_plane - p0);
      oh_first = p0 / win.out_w, oh_last = (p0 + count - 1) / win.out_w;
      used = (count + kVecFloats - 1) / kVecFloats;
      for (int64_t j = 0; j < used; ++j) {
        span_of_t.in[j] = span_of_t.out[j] = p0 + j * kVecFloats;
        span_of_t.lanes[j] = min64(kVecFloats, count - j * kVecFloats);
      }
    } else {
      oh_first = position_tile / segments * out_rows, oh_last = min64(win.out_h, oh_first + out_rows) - 1;
      const int64_t v_begin = position_tile % segments * segment_vecs;
      const int64_t vecs = min64(row_vecs, v_begin + segment_vecs) - v_begin;
      used = (oh_last - oh_first + 1) * vecs;
      for (int64_t j = 0; j < used; ++j) {
        const int64_t oh = oh_first + j / vecs, column = (v_begin + j % vecs) * kVecFloats;
        span_of_t.in[j] = oh * win.phase_w + column;
        span_of_t.out[j] = oh * win.out_w + column;
        span_of_t.lanes[j] = min64(kVecFloats, win.out_w - column);
      }
    }
    span_of_t.vecs = used <= 2 ? static_cast<int>(used) : kDirectMaxVecs;
    for (int64_t j = used; j < span_of_t.vecs; ++j)
      span_of_t.in[j] = span_of_t.in[0], span_of_t.out[j] = span_of_t.out[0], span_of_t.lanes[j] = 0;
    live_kernel_rows(win, oh_first, oh_last, &span_of_t.r_begin, &span_of_t.r_end);
    return span_of_t;
  }

  // Estimated cycles of one image: laying out the inputs, then the multiply-adds, the loads
  // feeding them (a vector of inputs costs about a multiply-add: unaligned, with its address;
  // AVX-512 folds the weights' broadcasts into the multiply-adds) and the stores (again for every
  // further chunk of input channels). Fitted on LeNet-5's layers, whose best tiles it picks.
#if defined(PCN_ISA_IS_avx512)
  static constexpr double kBroadcastCost = 0.1;
#else
  static constexpr double kBroadcastCost = 0.4;
#endif
  double cost(const Window& win) const {
    const int64_t chunks = shifted ? (win.channels + ShiftedCopies(win).chunk - 1) / ShiftedCopies(win).chunk : 1;
    double total = shifted ? 12.0 * win.channels * win.kernel_w * win.stride_h * win.phase_h
                           : win.channels * (double(win.phases * win.plane) / kVecFloats + 15.0 * win.in_h);
    for (int64_t t = 0; t < row_tiles * position_tiles; ++t) {
      const TileSpan span_of_t = tile(t, win);
      const double steps = double(win.channels * (span_of_t.r_end - span_of_t.r_begin) * win.kernel_w);
      const double accumulators = double(span_of_t.rows * span_of_t.vecs);
      total += steps * (accumulators + kBroadcastCost * span_of_t.rows + span_of_t.vecs) +
               chunks * (3.0 * accumulators + 20.0);
    }
    return total;
  }
};

// The cheapest tiling of one image, among: both layouts; tiles of 1, 2 or kDirectMaxVecs
// vectors, each with the channels split evenly into as few tiles as its registers allow; shifted
// tiles running across output rows or holding whole rows.
DirectTiles choose_direct_tiles(const Window& win) {
  DirectTiles best(win, false, 1, 1);  // replaced by the first candidate
  double best_cost = -1.0;
  const auto consider = [&](const DirectTiles& tiles) {
    const double cost = tiles.cost(win);
    if (best_cost < 0.0 || cost < best_cost) best = tiles, best_cost = cost;
  };
  for (int vecs = 1; vecs <= kDirectMaxVecs; vecs *= 2) {
    const int64_t row_tiles = (win.out_channels + direct_max_rows(vecs) - 1) / direct_max_rows(vecs);
    const int64_t rows = (win.out_channels + row_tiles - 1) / row_tiles;
    const int64_t width = vecs * kVecFloats;
    consider(DirectTiles(win, true, rows, width));
    for (int64_t whole_rows = 1; whole_rows * win.out_w <= width; ++whole_rows)
      consider(DirectTiles(win, true, rows, whole_rows * win.out_w));
    consider(DirectTiles(win, false, rows, vecs));
  }
  return best;
}

// Input channels [c_begin, c_end) of one image's output planes (the first chunk stores, the
// others add); a team shares the tiles.
void direct_image(float* out, const float* a_t, const DirectSource& src, const Window& win, const DirectTiles& tiles,
                  const float* bias, int64_t c_begin, int64_t c_end, bool team) {
  const bool accumulate = c_begin > 0;
  int64_t begin, end;
  team_range(tiles.row_tiles * tiles.position_tiles, team, &begin, &end);
  for (int64_t t = begin; t < end; ++t) {
    TileSpan span = tiles.tile(t, win);
    span.c_begin = c_begin, span.c_end = c_end;
    switch (span.vecs) {
      case 1: direct_tile_rows<direct_max_rows(1), 1>(out, a_t, span, src, win, bias, accumulate); break;
      case 2: direct_tile_rows<direct_max_rows(2), 2>(out, a_t, span, src, win, bias, accumulate); break;
      default:
        direct_tile_rows<direct_max_rows(kDirectMaxVecs), kDirectMaxVecs>(out, a_t, span, src, win, bias, accumulate);
    }
  }
}

// Positions per GEMM worth bundling small images for (C then goes through a buffer).
constexpr int64_t kWindowColumns = 512;

// out = the window convolution of `in` with weights a (out_channels x k, row-major per group).
struct WindowJob {
  const Window* win;
  int64_t batch, groups;
  const float* in;
  int64_t in_batch_stride, in_group_stride;
  float* out;
  int64_t out_batch_stride, out_group_stride;
  const float* a;     // groups x out_channels x k
  const float* bias;  // per output channel of all groups, or null
};

// Few output channels: threads take whole images when there are enough of them, otherwise the
// team shares each image's tiles.
void direct_convolution(const WindowJob& job) {
  const Window& win = *job.win;
  const int threads = num_threads();
  const DirectTiles tiles = choose_direct_tiles(win);
  const ShiftedCopies sc(win);
  // The rows layout reads up to a tile's vectors past the last output row, shifted by the
  // farthest tap.
  const Bundle bundle = make_bundle(win, 1, 1, 1, 1, win.column_overhang() + kDirectMaxVecs * kVecFloats);
  const int64_t chunk = tiles.shifted ? sc.chunk : win.channels;
  const int64_t image_floats = tiles.shifted ? sc.floats() : bundle.floats;
  const int64_t items = job.batch * job.groups;
  const bool by_image = items >= threads && threads > 1;
  const int slots = by_image ? threads : 1;
  const int64_t a_floats = win.k * win.out_channels;
  float* a_t = thread_scratch(Scratch::pack_a, job.groups * a_floats);
  float* images = thread_scratch(Scratch::columns, image_floats * slots);
  int64_t* offsets = thread_scratch_i64(Scratch::indices, win.k);
  if (tiles.shifted)
    shifted_offsets(offsets, win, sc, chunk);
  else
    tap_offsets(offsets, win, bundle);
  for (int64_t group = 0; group < job.groups; ++group)
    for (int64_t row = 0; row < win.out_channels; ++row)
      for (int64_t kk = 0; kk < win.k; ++kk)
        a_t[group * a_floats + kk * win.out_channels + row] = job.a[(group * win.out_channels + row) * win.k + kk];
#pragma omp parallel num_threads(threads)
  {
    const bool team = !by_image;
    float* image = images + (by_image ? omp_get_thread_num() : 0) * image_floats;
    const DirectSource src{image, offsets};
    int64_t begin, end;
    team_range(items, by_image, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / job.groups, group = item % job.groups;
      const float* in = job.in + n * job.in_batch_stride + group * job.in_group_stride;
      for (int64_t c0 = 0; c0 < win.channels; c0 += chunk) {
        const int64_t c1 = min64(win.channels, c0 + chunk);
        int64_t lo, hi;
        team_range(c1 - c0, team, &lo, &hi);
        if (tiles.shifted)
          shift_image(image + lo * sc.channel, in, win, sc, c0 + lo, c0 + hi);
        else
          pad_bundle(image, in, 0, 1, win, bundle, lo, hi, item == begin && (!team || omp_get_thread_num() == 0));
        team_barrier(team);
        direct_image(job.out + n * job.out_batch_stride + group * job.out_group_stride, a_t + group * a_floats, src,
                     win, tiles, job.bias ? job.bias + group * win.out_channels : nullptr, c0, c1, team);
        team_barrier(team);  // the image is laid out again next
      }
    }
  }
}

// Many output channels: the GEMM over bundles of images. Threads take whole bundles when there are
// enough of them, otherwise the team shares each bundle's GEMM. A one-image bundle's GEMM writes
// straight into the output planes.
void window_convolution(const WindowJob& job, bool direct) {
  const Window& win = *job.win;
  if (direct || win.out_channels <= kDirectMaxChannels) return direct_convolution(job);
  const int threads = num_threads();
  // A packing run's last vector reads up to kVecFloats - 1 floats past the last plane.
  const Bundle bundle = make_bundle(win, job.batch, threads, win.out_plane, kWindowColumns, kVecFloats);
  const int64_t items = bundle.count * job.groups;
  const bool by_bundle = items >= threads && threads > 1;
  const int slots = by_bundle ? threads : 1;
  const int64_t columns = bundle.images * win.out_plane;
  const int64_t a_floats = packed_a_floats(win.out_channels, win.k);
  const int64_t b_floats = packed_b_floats(columns, win.k);
  const int64_t c_floats = bundle.images > 1 ? win.out_channels * columns : 0;
  float* packed = thread_scratch(Scratch::pack_a, job.groups * a_floats);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * slots);
  float* pads = thread_scratch(Scratch::columns, bundle.floats * slots);
  float* c_bufs = thread_scratch(Scratch::partial, c_floats * slots);
  int64_t* offsets = thread_scratch_i64(Scratch::indices, win.k);
  tap_offsets(offsets, win, bundle);
#pragma omp parallel num_threads(threads)
  {
    for (int64_t group = 0; group < job.groups; ++group)
      pack_a_matrix(packed + group * a_floats, job.a + group * win.out_channels * win.k, win.k, false,
                    win.out_channels, win.k, true);
    const bool team = !by_bundle;
    const int slot = by_bundle ? omp_get_thread_num() : 0;
    float* padded = pads + slot * bundle.floats;
    float* c_buf = c_bufs + slot * c_floats;
    int64_t begin, end;
    team_range(items, by_bundle, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n0 = (item / job.groups) * bundle.images, group = item % job.groups;
      const int64_t count = min64(bundle.images, job.batch - n0);
      int64_t lo, hi;
      team_range(win.channels, team, &lo, &hi);
      pad_bundle(padded, job.in + n0 * job.in_batch_stride + group * job.in_group_stride, job.in_batch_stride, count,
                 win, bundle, lo, hi, !team || omp_get_thread_num() == 0);
      team_barrier(team);
      float* out = job.out + n0 * job.out_batch_stride + group * job.out_group_stride;
      const float* bias = job.bias ? job.bias + group * win.out_channels : nullptr;
      gemm_packed(win.out_channels, count * win.out_plane, win.k, packed + group * a_floats,
                  WindowPackB{padded, offsets, &win}, bundle.images > 1 ? c_buf : out,
                  count * win.out_plane, 1.0f, 0.0f, bias, b_bufs + slot * b_floats, team);
      if (bundle.images > 1) {
        team_range(win.out_channels, team, &lo, &hi);
        scatter_images(out, c_buf, job.out_batch_stride, count, win.out_plane, lo, hi);
      }
      team_barrier(team);  // the padded bundle and C are rewritten for the next item
    }
  }
}

// ---------------------------------------------------------------- backward-weight
// dw[oc][kk] = sum over images and positions of dy[oc][position] times the input tap kk reads
// there, as dot products of two contiguous runs in one of two layouts (as the direct tiles'):
// - shifted copies: positions p = oh * out_w + ow of each image, read from copy (c, s) past kernel
//   row r's offset; dy rows gathered per bundle of images, each image's run rounded up to whole
//   vectors with zeros;
// - rows: positions in phase-width coordinates running across a bundle's padded images
//   (q = g * plane + oh * phase_w + ow), dy spread to rows of that layout with zeros everywhere
//   else (the dropped columns and the rows between images cost products, no copies).
// Tiles of output channels x taps keep their dot products in vector registers, in one of a few
// shapes, the one that wastes least on the layer's channel and tap counts.
#if defined(PCN_ISA_IS_avx512)
constexpr int kDotShapes[][2] = {{4, 4}, {6, 4}, {8, 3}};
#else
constexpr int kDotShapes[][2] = {{4, 3}, {6, 2}};
#endif
constexpr int kDotShapeCount = sizeof(kDotShapes) / sizeof(kDotShapes[0]);

static inline float lane_sum(vfloat v) {
  float sum = 0.0f;
  for (int lane = 0; lane < kVecFloats; ++lane) sum += v[lane];
  return sum;
}

// One bundle's dot products, as read by dot_bundle: `count` images, dy rows of each output
// channel `row` floats apart (image g's run of `positions` at g * dy_image), tap kk's inputs for
// image g at copies + g * image + offsets[kk].
struct DotBundle {
  const float* dy_rows;
  int64_t row, positions, dy_image, count;
  const float* copies;
  int64_t image;
  const int64_t* offsets;
};

// Positions [q_begin, q_end) of each image, tiles [t_begin, t_end) of kRows output channels x kCols
// taps (tile t: channels from
// t / col_tiles * kRows, taps from t % col_tiles * kCols: a row tile's dy rows stay in L1 while
// its taps' copies stream past) stored (`first`) or added into the vector sums (vector
// (oc, kk) at (oc * k + kk) * kVecFloats). A tile's unused rows and columns repeat its last real
// one and are not stored. The sums stay vectors until the whole batch is done: summing lanes
// after every bundle made ResNet-20's 16-channel weight gradient ~15 % slower.
template <int kRows, int kCols>
void dot_bundle(float* sums, const DotBundle& bundle, const Window& win, int64_t t_begin, int64_t t_end, int64_t q_begin,
                int64_t q_end, bool first) {
  const int64_t col_tiles = (win.k + kCols - 1) / kCols;
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t oc0 = t / col_tiles * kRows, k0 = t % col_tiles * kCols;
    const int rows_used = static_cast<int>(min64(kRows, win.out_channels - oc0));
    const int cols_used = static_cast<int>(min64(kCols, win.k - k0));
    const float* rows[kRows];
    const float* cols[kCols];
    for (int i = 0; i < kRows; ++i) rows[i] = bundle.dy_rows + (oc0 + min64(i, rows_used - 1)) * bundle.row;
    for (int j = 0; j < kCols; ++j) cols[j] = bundle.copies + bundle.offsets[k0 + min64(j, cols_used - 1)];
    vfloat acc[kRows][kCols] = {};
    for (int64_t g = 0; g < bundle.count; ++g) {
      const int64_t dy_at = g * bundle.dy_image, x_at = g * bundle.image;
      for (int64_t q = q_begin; q < q_end; q += kVecFloats) {
        vfloat xv[kCols];
        for (int j = 0; j < kCols; ++j) xv[j] = vload(cols[j] + x_at + q);
        for (int i = 0; i < kRows; ++i) {
          vfloat dv = vload(rows[i] + dy_at + q);
#if defined(__x86_64__) || defined(__i386__)
          asm("" : "+x"(dv));  // one load, not one per tap: GCC would load dv again as each FMA's operand
#endif
          for (int j = 0; j < kCols; ++j) acc[i][j] += dv * xv[j];
        }
      }
    }
    for (int i = 0; i < rows_used; ++i)
      for (int j = 0; j < cols_used; ++j) {
        float* sum = sums + ((oc0 + i) * win.k + k0 + j) * kVecFloats;
        vstore(sum, first ? acc[i][j] : vload(sum) + acc[i][j]);
      }
  }
}

// The tile shape (an index into kDotShapes) that computes the fewest products, counting a
// tile's loads at half a product each.
int choose_dot_shape(const Window& win) {
  int best = 0;
  double best_cost = -1.0;
  for (int shape = 0; shape < kDotShapeCount; ++shape) {
    const int rows = kDotShapes[shape][0], cols = kDotShapes[shape][1];
    const double tiles = double((win.out_channels + rows - 1) / rows) * double((win.k + cols - 1) / cols);
    const double cost = tiles * (rows * cols + 0.5 * (rows + cols));
    if (best_cost < 0.0 || cost < best_cost) best = shape, best_cost = cost;
  }
  return best;
}

// Tiles of one shape in one tiling: row_tiles x col_tiles of them.
int64_t dot_tiles(int shape, const Window& win) {
  const int rows = kDotShapes[shape][0], cols = kDotShapes[shape][1];
  return (win.out_channels + rows - 1) / rows * ((win.k + cols - 1) / cols);
}

void dot_bundle_shape(int shape, float* sums, const DotBundle& bundle, const Window& win, int64_t t_begin,
                      int64_t t_end, int64_t q_begin, int64_t q_end, bool first) {
  switch (shape) {
#if defined(PCN_ISA_IS_avx512)
    case 0: return dot_bundle<kDotShapes[0][0], kDotShapes[0][1]>(sums, bundle, win, t_begin, t_end, q_begin, q_end, first);
    case 1: return dot_bundle<kDotShapes[1][0], kDotShapes[1][1]>(sums, bundle, win, t_begin, t_end, q_begin, q_end, first);
    default: return dot_bundle<kDotShapes[2][0], kDotShapes[2][1]>(sums, bundle, win, t_begin, t_end, q_begin, q_end, first);
#else
    case 0: return dot_bundle<kDotShapes[0][0], kDotShapes[0][1]>(sums, bundle, win, t_begin, t_end, q_begin, q_end, first);
    default: return dot_bundle<kDotShapes[1][0], kDotShapes[1][1]>(sums, bundle, win, t_begin, t_end, q_begin, q_end, first);
#endif
  }
}

// dst[i] = the lane sums of the first `slots` slots' vector sums (slot s holds vector i at
// (s * count + i) * kVecFloats), added in slot order. Called by the whole team.
static inline void reduce_vector_sums(float* dst, const float* sums, int slots, int64_t count) {
  team_barrier(true);
#pragma omp for schedule(static) nowait
  for (int64_t i = 0; i < count; ++i) {
    float total = 0.0f;
    for (int s = 0; s < slots; ++s) total += lane_sum(vload(sums + (s * count + i) * kVecFloats));
    dst[i] = total;
  }
  team_barrier(true);
}

// Maps with fewer positions than this (per image) and layers with more than
// kDirectMaxChannels output channels form the weight gradient as a GEMM instead of dot products:
// dw (out_channels x k) = dy (out_channels x columns) * B, with B[column][kk] the transposed
// window matrix (the same columns as the forward GEMM's), which wastes nothing on the
// padded-width positions that dominate small maps.
constexpr int64_t kDotMinPositions = 1024;

bool gemm_forms_weight_gradient(int64_t out_channels, int64_t out_plane) {
  return out_channels > kDirectMaxChannels && out_plane < kDotMinPositions;
}

struct WindowTransposedPackB {
  const float* padded;
  const int64_t* offsets;
  const Window* win;
  // Rows [p0, p0 + pc) (columns of the forward matrix), taps [j0, j0 + cols), zero-padded to NR.
  void operator()(float* out, int64_t p0, int64_t pc, int64_t j0, int64_t cols) const {
    int64_t run_source[kGemmKC], run_row[kGemmKC], run_length[kGemmKC];
    const int runs = position_runs(*win, p0, pc, run_source, run_row, run_length);
#if defined(__AVX2__)
    if (cols == kGemmNR) {
      // Eight taps by eight positions of a run at a time through a register transpose.
      for (int run = 0; run < runs; ++run) {
        const int64_t whole = run_length[run] / 8 * 8;
        for (int64_t j = 0; j < kGemmNR; j += 8) {
          const float* rows[8];
          for (int r = 0; r < 8; ++r) rows[r] = padded + offsets[j0 + j + r] + run_source[run];
          for (int64_t t = 0; t < whole; t += 8) {
            store_transposed8x8(out + (run_row[run] + t) * kGemmNR + j, kGemmNR, rows);
            for (int r = 0; r < 8; ++r) rows[r] += 8;
          }
          for (int64_t t = whole; t < run_length[run]; ++t)
            for (int r = 0; r < 8; ++r) out[(run_row[run] + t) * kGemmNR + j + r] = rows[r][t - whole];
        }
      }
      return;
    }
#endif
    for (int64_t j = 0; j < cols; ++j) {
      const float* base = padded + offsets[j0 + j];
      for (int run = 0; run < runs; ++run) {
        const float* src = base + run_source[run];
        float* dst = out + run_row[run] * kGemmNR + j;
        for (int64_t t = 0; t < run_length[run]; ++t) dst[t * kGemmNR] = src[t];
      }
    }
    for (int64_t i = 0; i < pc; ++i)
      for (int64_t j = cols; j < kGemmNR; ++j) out[i * kGemmNR + j] = 0.0f;
  }
};

}  // namespace

bool window_applies(const Conv2dDesc& d) {
  // An unpadded 1x1 kernel is a plain GEMM at stride 1. A stride beyond the kernel's extent
  // leaves phases that no tap reads (a 1x1 kernel at stride 2 reads one of four): the patch
  // packer's gather then beats copying every phase.
  const bool plain_gemm = d.kernel_h == 1 && d.kernel_w == 1 && d.pad_h == 0 && d.pad_w == 0 && d.stride_h == 1 &&
                          d.stride_w == 1;
  return !plain_gemm && d.stride_h <= d.dilation_h * (d.kernel_h - 1) + 1 &&
         d.stride_w <= d.dilation_w * (d.kernel_w - 1) + 1;
}

bool window_backward_data_applies(const Conv2dDesc& d) {
  // At stride 1, dx is the forward window convolution of dy padded by dilation * (kernel - 1) -
  // padding.
  return window_applies(d) && d.stride_h == 1 && d.stride_w == 1 && d.pad_h <= d.dilation_h * (d.kernel_h - 1) &&
         d.pad_w <= d.dilation_w * (d.kernel_w - 1);
}

void window_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d, bool direct) {
  if (d.batch == 0) return;
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  const Window win(cin_g, d.in_h, d.in_w, d.pad_h, d.pad_w, d.stride_h, d.stride_w, d, cout_g);
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
  window_convolution({&win, d.batch, d.groups, x, d.in_channels * in_plane, cin_g * in_plane, y,
                      d.out_channels * out_plane, cout_g * out_plane, w, bias},
                     direct);
}

void window_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d, bool direct) {
  if (d.batch == 0) return;
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  const int64_t taps = d.kernel_h * d.kernel_w;
  // Input channels: the dy planes of the group; output channels: the group's dx planes; tap
  // (oc, r, s) of dx channel c is weight (oc, c, kernel_h - 1 - r, kernel_w - 1 - s).
  const Window win(cout_g, d.out_h, d.out_w, d.dilation_h * (d.kernel_h - 1) - d.pad_h,
                   d.dilation_w * (d.kernel_w - 1) - d.pad_w, 1, 1, d, cin_g);
  float* flipped = thread_scratch(Scratch::weights, d.groups * cin_g * win.k);
  for (int64_t group = 0; group < d.groups; ++group)
    for (int64_t oc = 0; oc < cout_g; ++oc)
      for (int64_t c = 0; c < cin_g; ++c) {
        const float* src = w + ((group * cout_g + oc) * cin_g + c) * taps;
        float* dst = flipped + (group * cin_g + c) * win.k + oc * taps;
        for (int64_t tap = 0; tap < taps; ++tap) dst[tap] = src[taps - 1 - tap];
      }
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
  window_convolution({&win, d.batch, d.groups, dy, d.out_channels * out_plane, cout_g * out_plane, dx,
                      d.in_channels * in_plane, cin_g * in_plane, flipped, nullptr},
                     direct);
}

namespace {

// The weight gradient as a GEMM over bundles of images (many output channels, small maps).
void gemm_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d, const Window& win) {
  const int64_t cin_g = win.channels, cout_g = win.out_channels;
  const int64_t in_plane = d.in_h * d.in_w, out_plane = win.out_plane, w_floats = d.out_channels * win.k;
  const int threads = num_threads();
  const Bundle bundle = make_bundle(win, d.batch, threads, out_plane, kWindowColumns, 0);
  const int64_t row_floats = bundle.images * out_plane;
  const int64_t items = bundle.count * d.groups;
  const bool by_bundle = items >= threads && threads > 1;
  const int slots = by_bundle ? threads : 1;
  const int64_t a_floats = packed_a_floats(cout_g, row_floats);
  const int64_t b_floats = packed_b_floats(win.k, row_floats);
  float* pads = thread_scratch(Scratch::columns, bundle.floats * slots);
  float* dy_bufs = thread_scratch(Scratch::weights, cout_g * row_floats * slots);
  float* a_bufs = thread_scratch(Scratch::pack_a, a_floats * slots);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * slots);
  // The GEMM adds into dw, or per-thread partials.
  float* partials = by_bundle ? thread_scratch(Scratch::partial, w_floats * slots) : nullptr;
  int64_t* offsets = thread_scratch_i64(Scratch::indices, win.k);
  tap_offsets(offsets, win, bundle);
#pragma omp parallel num_threads(threads)
  {
    const bool team = !by_bundle;
    const int slot = by_bundle ? omp_get_thread_num() : 0;
    float* padded = pads + slot * bundle.floats;
    float* dy_rows = dy_bufs + slot * cout_g * row_floats;
    float* out = partials ? partials + slot * w_floats : dw;
    zero_shared(out, w_floats, team);
    int64_t begin, end;
    team_range(items, by_bundle, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n0 = (item / d.groups) * bundle.images, group = item % d.groups;
      const int64_t count = min64(bundle.images, d.batch - n0);
      const float* dyg = dy + n0 * d.out_channels * out_plane + group * cout_g * out_plane;
      int64_t lo, hi;
      team_range(cin_g, team, &lo, &hi);
      pad_bundle(padded, x + n0 * d.in_channels * in_plane + group * cin_g * in_plane, d.in_channels * in_plane, count,
                 win, bundle, lo, hi, !team || omp_get_thread_num() == 0);
      team_range(cout_g, team, &lo, &hi);
      gather_images(dy_rows, dyg, d.out_channels * out_plane, count, out_plane, lo, hi);
      team_barrier(team);
      const int64_t columns = count * out_plane;
      float* a_buf = a_bufs + slot * a_floats;
      pack_a_matrix(a_buf, dy_rows, columns, false, cout_g, columns, team);
      gemm_packed(cout_g, win.k, columns, a_buf, WindowTransposedPackB{padded, offsets, &win}, out + group * cout_g * win.k,
                  win.k, 1.0f, 1.0f, nullptr, b_bufs + slot * b_floats, team);
      // gemm_packed ends with a barrier in a team
    }
    if (by_bundle) reduce_thread_partials(dw, partials, w_floats);
  }
}

// dy rows [oc_begin, oc_end) of `count` images (dy planes image_stride floats apart), image g's
// run at g * positions of its row (rows `row` floats apart), zeros up to `positions`.
void gather_dy_rows(float* dst, const float* dy, int64_t image_stride, int64_t count, const Window& win,
                    int64_t positions, int64_t row, int64_t oc_begin, int64_t oc_end) {
  for (int64_t oc = oc_begin; oc < oc_end; ++oc)
    for (int64_t g = 0; g < count; ++g) {
      const float* in = dy + g * image_stride + oc * win.out_plane;
      float* out = dst + oc * row + g * positions;
      for (int64_t q = 0; q < positions; q += kVecFloats) vstore(out + q, load_lanes(in + q, min64(kVecFloats, win.out_plane - q)));
    }
}

// dy rows [oc_begin, oc_end) of `count` images (dy planes image_stride floats apart) in the
// bundle's phase-width layout, `row` floats apart, zeros everywhere but the positions.
void spread_dy_rows(float* dst, const float* dy, int64_t image_stride, int64_t count, const Window& win, int64_t row,
                    int64_t oc_begin, int64_t oc_end) {
  for (int64_t oc = oc_begin; oc < oc_end; ++oc) {
    float* out = dst + oc * row;
    std::memset(out, 0, sizeof(float) * row);
    for (int64_t g = 0; g < count; ++g) {
      const float* in = dy + g * image_stride + oc * win.out_plane;
      for (int64_t oh = 0; oh < win.out_h; ++oh)
        std::memcpy(out + g * win.plane + oh * win.phase_w, in + oh * win.out_w, sizeof(float) * win.out_w);
    }
  }
}

// Positions per pass of the rows layout: kDotRows dy rows of it fill about L1.
constexpr int64_t kDotChunk = 2048;

// The weight gradient as dot products over bundles of images. The shifted copies are taken where
// the rows layout would compute at least a quarter more positions (LeNet-5's 10x10 map in 14x14
// planes: 96 % more); below that their kernel_w copies cost more than they save (ResNet-20's
// 32x32 maps in 34x34 planes, 13 % more: 3.6 -> 3.8 ms on the copies).
void dot_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d, const Window& win) {
  const int64_t cin_g = win.channels, cout_g = win.out_channels;
  const int64_t in_plane = d.in_h * d.in_w, out_plane = win.out_plane, w_floats = d.out_channels * win.k;
  const int threads = num_threads();
  const int shape = choose_dot_shape(win);
  const int tile_rows = kDotShapes[shape][0];
  const ShiftedCopies sc(win);
  const int64_t compact = round_up(out_plane, kVecFloats);
  const bool shifted = 4 * win.plane >= 5 * compact;
  // Shifted copies of whole-vector runs read dy where it is (LeNet-5's conv1: 784 positions).
  const bool dy_in_place = shifted && out_plane == compact;
  // Shifted copies: images per bundle such that a tile's dy rows fill about L1. Rows: about
  // kDotChunk positions per bundle, their slack read by the last vector shifted by the farthest tap.
  const int64_t image = shifted ? cin_g * sc.channel : 0;
  const Bundle bundle = shifted ? make_bundle(win, d.batch, threads, tile_rows * compact, kShiftedFloats, 0)
                                : make_bundle(win, d.batch, threads, win.plane, kDotChunk, win.column_overhang() + kVecFloats);
  const int64_t positions = shifted ? compact : 0;
  const int64_t row = shifted ? bundle.images * compact : round_up(bundle.phase_stride, kVecFloats);
  const int64_t image_floats = shifted ? bundle.images * image : bundle.floats;
  const int64_t items = bundle.count * d.groups;
  const bool by_bundle = items >= threads && threads > 1;
  const int slots = by_bundle ? threads : 1;
  float* copies_bufs = thread_scratch(Scratch::columns, image_floats * slots);
  float* dy_bufs = thread_scratch(Scratch::weights, dy_in_place ? 0 : cout_g * row * slots);
  const int64_t sum_floats = w_floats * kVecFloats;
  float* partials = thread_scratch(Scratch::partial, sum_floats * slots);
  int64_t* offsets = thread_scratch_i64(Scratch::indices, win.k);
  if (shifted)
    shifted_offsets(offsets, win, sc, cin_g);
  else
    tap_offsets(offsets, win, bundle);
#pragma omp parallel num_threads(threads)
  {
    const bool team = !by_bundle;
    const int slot = by_bundle ? omp_get_thread_num() : 0;
    float* copies = copies_bufs + slot * image_floats;
    float* dy_rows = dy_bufs + slot * cout_g * row;
    float* out = partials + slot * sum_floats;
    int64_t begin, end;
    team_range(items, by_bundle, &begin, &end);
    // A thread's first item of each group stores its sums (no zeroing pass), unless it has fewer
    // items than groups.
    const bool store_first = end - begin >= d.groups;
    if (!store_first) zero_shared(out, sum_floats, team);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n0 = (item / d.groups) * bundle.images, group = item % d.groups;
      const int64_t count = min64(bundle.images, d.batch - n0);
      const float* xg = x + n0 * d.in_channels * in_plane + group * cin_g * in_plane;
      const float* dyg = dy + n0 * d.out_channels * out_plane + group * cout_g * out_plane;
      int64_t lo, hi;
      team_range(cin_g, team, &lo, &hi);
      if (shifted) {
        for (int64_t g = 0; g < count; ++g)
          shift_image(copies + g * image + lo * sc.channel, xg + g * d.in_channels * in_plane, win, sc, lo, hi);
      } else {
        pad_bundle(copies, xg, d.in_channels * in_plane, count, win, bundle, lo, hi, !team || omp_get_thread_num() == 0);
      }
      team_range(cout_g, team, &lo, &hi);
      if (!shifted)
        spread_dy_rows(dy_rows, dyg, d.out_channels * out_plane, count, win, row, lo, hi);
      else if (!dy_in_place)
        gather_dy_rows(dy_rows, dyg, d.out_channels * out_plane, count, win, positions, row, lo, hi);
      team_barrier(team);
      // The rows layout's positions run to the last image's last output row (its bottom padding
      // rows add nothing), in equal chunks of at most kDotChunk, as one "image".
      const int64_t span = shifted ? positions : round_up((count - 1) * win.plane + win.out_h * win.phase_w, kVecFloats);
      const int64_t chunks = shifted ? 1 : (span + kDotChunk - 1) / kDotChunk;
      const int64_t chunk = round_up((span + chunks - 1) / chunks, kVecFloats);
      const DotBundle dots = dy_in_place ? DotBundle{dyg, out_plane, positions, d.out_channels * out_plane, count,
                                                    copies, image, offsets}
                                         : DotBundle{dy_rows, row, positions, positions, shifted ? count : 1, copies,
                                                     image, offsets};
      // In a team each thread owns whole tiles, so no two add into the same sums.
      int64_t t_begin, t_end;
      team_range(dot_tiles(shape, win), team, &t_begin, &t_end);
      for (int64_t q0 = 0; q0 < span; q0 += chunk)
        dot_bundle_shape(shape, out + group * cout_g * win.k * kVecFloats, dots, win, t_begin, t_end, q0,
                         min64(span, q0 + chunk), store_first && item - begin < d.groups && q0 == 0);
      team_barrier(team);  // the buffers are rewritten for the next item
    }
    // Per-thread slots: the team the runtime started, which may be smaller than was asked for.
    reduce_vector_sums(dw, partials, by_bundle ? omp_get_num_threads() : 1, w_floats);
  }
}

}  // namespace

void window_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d, bool direct) {
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  const Window win(cin_g, d.in_h, d.in_w, d.pad_h, d.pad_w, d.stride_h, d.stride_w, d, cout_g);
  if (d.batch == 0) {
    for (int64_t i = 0; i < d.out_channels * win.k; ++i) dw[i] = 0.0f;
    return;
  }
  if (!direct && gemm_forms_weight_gradient(cout_g, win.out_plane)) return gemm_backward_weight(dw, dy, x, d, win);
  dot_backward_weight(dw, dy, x, d, win);
}

bool direct_differs(ConvPass pass, const Conv2dDesc& d) {
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  switch (pass) {
    case ConvPass::forward: return window_applies(d) && cout_g > kDirectMaxChannels;
    case ConvPass::backward_data: return window_backward_data_applies(d) && cin_g > kDirectMaxChannels;
    case ConvPass::backward_weight:
      return window_applies(d) && gemm_forms_weight_gradient(cout_g, d.out_h * d.out_w);
  }
  return false;
}

PCN_ISA_END
