// Convolutions as sliding windows over a zero-padded image split into stride phases (see
// conv_window.h).
#include "kernels/conv_window.h"

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
        int64_t done = 0;  // input columns 2t + b for t < done are placed
        if (win.stride_w == 2) {
          float* even = phase_row + (win.pad_w % 2) * bundle.phase_stride + win.pad_w / 2;
          float* odd = phase_row + ((win.pad_w + 1) % 2) * bundle.phase_stride + (win.pad_w + 1) / 2;
          for (; 2 * (done + kVecFloats) <= win.in_w; done += kVecFloats) {
            const vfloat a = vload(in_row + 2 * done), b = vload(in_row + 2 * done + kVecFloats);
            vstore(even + done, every_other_lane<0>(a, b));
            vstore(odd + done, every_other_lane<1>(a, b));
          }
        }
        for (int64_t b = 0; b < win.stride_w && b < win.in_w; ++b) {
          const int64_t column = b + win.pad_w;
          float* out = phase_row + (column % win.stride_w) * bundle.phase_stride + column / win.stride_w;
          const int64_t n = (win.in_w - b + win.stride_w - 1) / win.stride_w;
          for (int64_t t = done; t < n; ++t) out[t] = in_row[b + t * win.stride_w];
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

// Few output channels: packing B would cost more than the multiply-adds each packed value
// feeds, so the tiles read their inputs straight from the padded image instead. Positions then
// run in phase-width coordinates (q = oh * phase_w + ow), which makes every tap's NR inputs
// one contiguous run; the columns ow >= out_w are computed and dropped.
constexpr int64_t kDirectMaxChannels = 16;

// The kRows x (kVecs vectors) tile of output rows [row0, row0 + kRows) at phase-width positions
// [q0, min(q0 + width, end)), A packed by pack_a_matrix (m_pad rows, k-blocks of KC; row0 starts an
// MR-row panel), stored into the output planes without the discarded columns, plus bias[i] if
// given. Only the rows that exist are computed: AVX-512's 12-row panel holds LeNet's 6 output
// channels (or 1, for its first layer's backward-data) with the rest zero padding.
template <int kRows, int kVecs>
void direct_tile(float* out, const float* packed_a, int64_t m_pad, int64_t row0, int64_t q0, int64_t end,
                 const float* padded, const int64_t* __restrict offsets, const Window& win, const float* bias) {
  constexpr int kWidth = kVecs * kVecFloats;
  vfloat acc[kRows][kVecs] = {};
  for (int64_t pc = 0; pc < win.k; pc += kGemmKC) {
    const int64_t kc = min64(kGemmKC, win.k - pc);
    const float* __restrict a = packed_a + pc * m_pad + row0 * kc;
    for (int64_t kk = 0; kk < kc; ++kk) {
      const float* b = padded + q0 + offsets[pc + kk];
      vfloat bv[kVecs];
      for (int j = 0; j < kVecs; ++j) bv[j] = vload(b + j * kVecFloats);
      for (int i = 0; i < kRows; ++i) {
        const vfloat ai = vbroadcast(a[kk * kGemmMR + i]);
        for (int j = 0; j < kVecs; ++j) acc[i][j] += ai * bv[j];
      }
    }
  }
  // The kept columns come in runs along output rows, at any offset in the tile: through a
  // spilled copy (one vector of slack past the last row for the runs' last loads).
  alignas(64) float tile[kRows * kWidth + kVecFloats];
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < kVecs; ++j) vstore(tile + i * kWidth + j * kVecFloats, acc[i][j]);
  for (int64_t j = 0; j < kWidth && q0 + j < end;) {
    const int64_t q = q0 + j, oh = q / win.phase_w, ow = q % win.phase_w;
    const int64_t run = min64(min64(kWidth - j, win.phase_w - ow), end - q);
    const int64_t kept = min64(run, win.out_w - ow);
    for (int i = 0; i < kRows; ++i) {
      float* dst = out + (row0 + i) * win.out_plane + oh * win.out_w + ow;
      const float* src = tile + i * kWidth + j;
      const float add = bias ? bias[row0 + i] : 0.0f;
#if defined(PCN_ISA_IS_avx512)
      // Masked stores (LeNet-5's first backward-data 0.67 -> 0.57 ms); elsewhere GCC's
      // vectorisation of the plain loop was faster than whole vectors and a lane-by-lane tail.
      for (int64_t t = 0; t < kept; t += kVecFloats) vstore_first(dst + t, vload(src + t) + vbroadcast(add), kept - t);
#else
      for (int64_t t = 0; t < kept; ++t) dst[t] = src[t] + add;
#endif
    }
    j += run;
  }
}

// direct_tile for the `rows` (1 to kRows) rows that exist.
template <int kRows, int kVecs>
void direct_tile_rows(int64_t rows, float* out, const float* packed_a, int64_t m_pad, int64_t row0, int64_t q0,
                      int64_t end, const float* padded, const int64_t* offsets, const Window& win, const float* bias) {
  if constexpr (kRows > 1) {
    if (rows < kRows)
      return direct_tile_rows<kRows - 1, kVecs>(rows, out, packed_a, m_pad, row0, q0, end, padded, offsets, win, bias);
  }
  direct_tile<kRows, kVecs>(out, packed_a, m_pad, row0, q0, end, padded, offsets, win, bias);
}

// How one image's positions split into direct tiles of `width` columns: running on along the
// phase-width positions, or starting at every output row when that makes fewer of them (LeNet-5's
// 14-wide rows of 18: 14 tiles of 16 instead of 16).
struct DirectTiles {
  int64_t width, positions, row_tiles, count;
  bool by_row;
  DirectTiles(const Window& win, int64_t width_) : width(width_), positions(win.out_h * win.phase_w) {
    row_tiles = (win.out_w + width - 1) / width;
    const int64_t running = (positions + width - 1) / width;
    by_row = row_tiles * win.out_h < running;
    count = by_row ? row_tiles * win.out_h : running;
  }
  int64_t columns() const { return count * width; }
  // Tile t's first position and the end of the positions it may keep.
  void range(int64_t tile, const Window& win, int64_t* q0, int64_t* q_end) const {
    *q0 = tile * width;
    *q_end = positions;
    if (by_row) {
      const int64_t oh = tile / row_tiles;
      *q0 = oh * win.phase_w + tile % row_tiles * width;
      *q_end = oh * win.phase_w + win.out_w;
    }
  }
};

// One image's output planes by direct tiles; a team shares the tiles. Tiles of half the width
// where that computes at least 10 % fewer columns (AVX-512's 32 on LeNet-5's 10- and 14-wide maps).
void direct_image(float* out, const float* packed_a, const float* padded, const int64_t* offsets, const Window& win,
                  const float* bias, bool team) {
  constexpr int kHalfVecs = kGemmNRVecs / 2;
  static_assert(kHalfVecs * 2 == kGemmNRVecs, "the narrow tile is half the GEMM tile");
  const DirectTiles wide(win, kGemmNR), narrow(win, kHalfVecs * kVecFloats);
  const bool use_narrow = 10 * narrow.columns() <= 9 * wide.columns();
  const DirectTiles& tiles = use_narrow ? narrow : wide;
  const int64_t m_pad = round_up(win.out_channels, kGemmMR);
  int64_t begin, end;
  team_range(tiles.count, team, &begin, &end);
  for (int64_t tile = begin; tile < end; ++tile) {
    int64_t q0, q_end;
    tiles.range(tile, win, &q0, &q_end);
    for (int64_t row0 = 0; row0 < win.out_channels; row0 += kGemmMR) {
      const int64_t rows = min64(kGemmMR, win.out_channels - row0);
      if (use_narrow)
        direct_tile_rows<kGemmMR, kHalfVecs>(rows, out, packed_a, m_pad, row0, q0, q_end, padded, offsets, win, bias);
      else
        direct_tile_rows<kGemmMR, kGemmNRVecs>(rows, out, packed_a, m_pad, row0, q0, q_end, padded, offsets, win, bias);
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

// Threads take whole bundles when there are enough of them, otherwise the team shares each
// bundle's GEMM. A one-image bundle's GEMM writes straight into the output planes.
void window_convolution(const WindowJob& job) {
  const Window& win = *job.win;
  const int threads = num_threads();
  const bool direct = win.out_channels <= kDirectMaxChannels;
  // Direct tiles work image by image and read up to NR positions past the last output row,
  // shifted by the farthest tap; a packing run's last vector up to kVecFloats - 1 floats.
  const Bundle bundle = direct ? make_bundle(win, job.batch, threads, 1, 1, win.column_overhang() + kGemmNR)
                               : make_bundle(win, job.batch, threads, win.out_plane, kWindowColumns, kVecFloats);
  const int64_t items = bundle.count * job.groups;
  const bool by_bundle = items >= threads && threads > 1;
  const int slots = by_bundle ? threads : 1;
  const int64_t columns = bundle.images * win.out_plane;
  const int64_t a_floats = packed_a_floats(win.out_channels, win.k);
  const int64_t b_floats = direct ? 0 : packed_b_floats(columns, win.k);
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
      if (direct) {
        direct_image(out, packed + group * a_floats, padded, offsets, win, bias, team);
        team_barrier(team);  // the padded image is rewritten for the next item
        continue;
      }
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
// dw[oc][kk] = sum over images and positions q of dy[oc][q] * padded[q + offset(kk)], with the
// positions in phase-width coordinates (q = g * plane + oh * phase_w + ow) and dy spread to
// rows of that layout with zeros everywhere else. Tiles of kDotRows output channels x kDotCols
// taps keep their dot products in vector registers along q.
#if defined(PCN_ISA_IS_avx512)
constexpr int kDotRows = 4, kDotCols = 4;
#else
constexpr int kDotRows = 4, kDotCols = 3;
#endif
constexpr int64_t kDotChunk = 2048;  // positions per pass: kDotRows dy rows of it fill about L1

// dy rows [oc_begin, oc_end) of `count` images (dy planes image_stride floats apart) in the
// bundle's padded-width layout, row_floats apart, zeros everywhere but the positions.
void spread_rows(float* dst, const float* dy, int64_t image_stride, int64_t count, const Window& win,
                 int64_t row_floats, int64_t oc_begin, int64_t oc_end) {
  for (int64_t oc = oc_begin; oc < oc_end; ++oc) {
    float* row = dst + oc * row_floats;
    std::memset(row, 0, sizeof(float) * row_floats);
    for (int64_t g = 0; g < count; ++g) {
      const float* in = dy + g * image_stride + oc * win.out_plane;
      for (int64_t oh = 0; oh < win.out_h; ++oh)
        std::memcpy(row + g * win.plane + oh * win.phase_w, in + oh * win.out_w, sizeof(float) * win.out_w);
    }
  }
}

static inline float lane_sum(vfloat v) {
  float sum = 0.0f;
  for (int lane = 0; lane < kVecFloats; ++lane) sum += v[lane];
  return sum;
}

// sums[i * ld + j * kVecFloats : +kVecFloats] += the lane-wise products of rows[i][q0:q1] and
// padded[offsets[j] + q0 : offsets[j] + q1], for i < rows_used, j < cols_used (the unused
// rows/columns repeat the last real one and are not stored). The sums stay vectors until the
// whole batch is done: summing lanes after every chunk made ResNet-20's 16-channel weight gradient ~15 % slower.
static inline void dot_tile(float* sums, int64_t ld, const float* const (&rows)[kDotRows], const float* padded,
                            const int64_t (&offsets)[kDotCols], int64_t q0, int64_t q1, int rows_used, int cols_used) {
  vfloat acc[kDotRows][kDotCols] = {};
  for (int64_t q = q0; q < q1; q += kVecFloats) {
    vfloat xv[kDotCols];
    for (int j = 0; j < kDotCols; ++j) xv[j] = vload(padded + offsets[j] + q);
    for (int i = 0; i < kDotRows; ++i) {
      const vfloat dv = vload(rows[i] + q);
      for (int j = 0; j < kDotCols; ++j) acc[i][j] += dv * xv[j];
    }
  }
  for (int i = 0; i < rows_used; ++i)
    for (int j = 0; j < cols_used; ++j) {
      float* sum = sums + i * ld + j * kVecFloats;
      vstore(sum, vload(sum) + acc[i][j]);
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

void window_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d) {
  if (d.batch == 0) return;
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  const Window win(cin_g, d.in_h, d.in_w, d.pad_h, d.pad_w, d.stride_h, d.stride_w, d, cout_g);
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
  window_convolution({&win, d.batch, d.groups, x, d.in_channels * in_plane, cin_g * in_plane, y,
                      d.out_channels * out_plane, cout_g * out_plane, w, bias});
}

void window_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d) {
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
                      d.in_channels * in_plane, cin_g * in_plane, flipped, nullptr});
}

void window_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d) {
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  const Window win(cin_g, d.in_h, d.in_w, d.pad_h, d.pad_w, d.stride_h, d.stride_w, d, cout_g);
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w, w_floats = d.out_channels * win.k;
  if (d.batch == 0) {
    for (int64_t i = 0; i < w_floats; ++i) dw[i] = 0.0f;
    return;
  }
  const int threads = num_threads();
  const bool use_gemm = cout_g > kDirectMaxChannels && out_plane < kDotMinPositions;
  // Dot products read to the last position rounded up to a vector, shifted by the farthest tap.
  const int64_t dot_slack = win.column_overhang() + kVecFloats;
  const Bundle bundle = use_gemm ? make_bundle(win, d.batch, threads, out_plane, kWindowColumns, 0)
                                 : make_bundle(win, d.batch, threads, win.plane, kDotChunk, dot_slack);
  const int64_t row_floats = use_gemm ? bundle.images * out_plane : round_up(bundle.phase_stride, kVecFloats);
  const int64_t items = bundle.count * d.groups;
  const bool by_bundle = items >= threads && threads > 1;
  const int slots = by_bundle ? threads : 1;
  const int64_t a_floats = use_gemm ? packed_a_floats(cout_g, row_floats) : 0;
  const int64_t b_floats = use_gemm ? packed_b_floats(win.k, row_floats) : 0;
  float* pads = thread_scratch(Scratch::columns, bundle.floats * slots);
  float* dy_bufs = thread_scratch(Scratch::weights, cout_g * row_floats * slots);
  float* a_bufs = thread_scratch(Scratch::pack_a, a_floats * slots);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * slots);
  // The GEMM adds into dw (or per-thread partials); the dot products into per-slot vector sums.
  const int64_t sum_floats = use_gemm ? w_floats : w_floats * kVecFloats;
  float* partials = by_bundle || !use_gemm ? thread_scratch(Scratch::partial, sum_floats * slots) : nullptr;
  int64_t* offsets = thread_scratch_i64(Scratch::indices, win.k);
  tap_offsets(offsets, win, bundle);
  const int64_t row_tiles = (cout_g + kDotRows - 1) / kDotRows;
#pragma omp parallel num_threads(threads)
  {
    const bool team = !by_bundle;
    const int slot = by_bundle ? omp_get_thread_num() : 0;
    float* padded = pads + slot * bundle.floats;
    float* dy_rows = dy_bufs + slot * cout_g * row_floats;
    float* out = partials ? partials + slot * sum_floats : dw;
    zero_shared(out, sum_floats, team);
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
      if (use_gemm) {
        gather_images(dy_rows, dyg, d.out_channels * out_plane, count, out_plane, lo, hi);
        team_barrier(team);
        const int64_t columns = count * out_plane;
        float* a_buf = a_bufs + slot * a_floats;
        pack_a_matrix(a_buf, dy_rows, columns, false, cout_g, columns, team);
        gemm_packed(cout_g, win.k, columns, a_buf, WindowTransposedPackB{padded, offsets, &win}, out + group * cout_g * win.k,
                    win.k, 1.0f, 1.0f, nullptr, b_bufs + slot * b_floats, team);
        continue;  // gemm_packed ends with a barrier in a team
      }
      spread_rows(dy_rows, dyg, d.out_channels * out_plane, count, win, row_floats, lo, hi);
      team_barrier(team);
      // The positions run to the last image's last output row (its bottom padding rows add
      // nothing), in equal chunks of at most kDotChunk.
      const int64_t span = round_up((count - 1) * win.plane + win.out_h * win.phase_w, kVecFloats);
      const int64_t chunks = (span + kDotChunk - 1) / kDotChunk;
      const int64_t chunk = round_up((span + chunks - 1) / chunks, kVecFloats);
      float* sums = out + group * cout_g * win.k * kVecFloats;
      int64_t t_begin, t_end;  // in a team, each thread owns whole tiles of output channels
      team_range(row_tiles, team, &t_begin, &t_end);
      for (int64_t q0 = 0; q0 < span; q0 += chunk) {
        const int64_t q1 = min64(span, q0 + chunk);
        for (int64_t tile = t_begin; tile < t_end; ++tile) {
          const int64_t oc0 = tile * kDotRows;
          const int rows_used = static_cast<int>(min64(kDotRows, cout_g - oc0));
          const float* rows[kDotRows];
          for (int i = 0; i < kDotRows; ++i) rows[i] = dy_rows + (oc0 + min64(i, rows_used - 1)) * row_floats;
          for (int64_t k0 = 0; k0 < win.k; k0 += kDotCols) {
            const int cols_used = static_cast<int>(min64(kDotCols, win.k - k0));
            int64_t tap[kDotCols];
            for (int j = 0; j < kDotCols; ++j) tap[j] = offsets[k0 + min64(j, cols_used - 1)];
            dot_tile(sums + (oc0 * win.k + k0) * kVecFloats, win.k * kVecFloats, rows, padded, tap, q0, q1, rows_used,
                     cols_used);
          }
        }
      }
      team_barrier(team);  // the buffers are rewritten for the next item
    }
    // Per-thread slots: the team the runtime started, which may be smaller than was asked for.
    if (!use_gemm)
      reduce_vector_sums(dw, partials, by_bundle ? omp_get_num_threads() : 1, w_floats);
    else if (by_bundle)
      reduce_thread_partials(dw, partials, w_floats);
  }
}

PCN_ISA_END
