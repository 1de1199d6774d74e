// Winograd F(4x4, 3x3) convolutions (see conv_winograd.h).
#include "kernels/conv_winograd.h"

#include "kernels/gemm_driver.h"
#include "kernels/run_queue.h"

PCN_ISA_BEGIN
namespace {

constexpr int kTile = 4;                      // outputs per tile side
constexpr int kAlpha = kTile + 2;             // inputs per tile side
constexpr int kPoints = kAlpha * kAlpha;      // transformed values per tile: the 36 GEMMs
// Row length read from a window inside the image, and of a window copied with zeros around it: the
// AVX2 and AVX-512 transforms read 8 floats per row.
#if defined(__AVX2__)
constexpr int kEdgeRow = 8;
#else
constexpr int kEdgeRow = kAlpha;
#endif
// Transformed inputs and products of one thread's block of tiles: about 1 MB, which keeps a
// block in cache between the transform and GEMM phases (256 KB and 4 MB measured no better).
constexpr int64_t kBlockFloats = int64_t(1) << 18;
// Fewer channels than this on either side and the transforms cost more than they save
// (bench/NOTES.md); the window path takes those layers.
constexpr int64_t kMinChannels = 16;

// One stride-1 3x3 convolution as the transforms see it: `channels` input planes of in_h x in_w
// read with padding pad_h / pad_w, out_channels planes of out_h x out_w.
struct WinogradJob {
  int64_t batch, channels, in_h, in_w, pad_h, pad_w, out_channels, out_h, out_w;
  const float* in;
  float* out;
  // out_channels x channels x 3 x 3, or with transposed_weights channels x out_channels x 3 x 3
  // used rotated by 180 degrees (backward-data's weights are the forward ones, used that way)
  const float* weights;
  bool transposed_weights;
  const float* bias;  // out_channels, or null
};

// The 1-D transforms: rows of B^T, G and A^T for the interpolation points 0, 1, -1, 1/2, -2 and
// infinity. The usual 0, +-1, +-2 cost a few operations less but round about twice as badly:
// 1e-5 of the output's scale instead of 5e-6 over 256 channels (bench/NOTES.md).
template <class T>
static inline void input_transform_1d(const T (&d)[kAlpha], T (&t)[kAlpha]) {
  const T half = T{} + 0.5f, one_half = T{} + 1.5f, two = T{} + 2.0f, three = T{} + 3.0f;
  const T c = d[4] - d[2], e = d[3] - d[1];
  const T u = d[4] + half * (d[2] + d[3]);
  t[0] = (d[0] + d[4]) - two * d[2] + one_half * e;
  t[1] = u + two * d[3] - d[1];
  t[2] = u - three * d[2] + d[1];
  t[3] = c + two * e;
  t[4] = c - half * e;
  t[5] = (d[1] + d[5]) - two * d[3] + one_half * c;
}

template <class T>
static inline void output_transform_1d(const T (&m)[kAlpha], T (&o)[kTile]) {
  const T half = T{} + 0.5f, two = T{} + 2.0f, quarter = T{} + 0.25f, four = T{} + 4.0f, eighth = T{} + 0.125f,
          eight = T{} + 8.0f;
  const T s12 = m[1] + m[2], d12 = m[1] - m[2];
  o[0] = m[0] + s12 + m[3] + m[4];
  o[1] = d12 + half * m[3] - two * m[4];
  o[2] = s12 + quarter * m[3] + four * m[4];
  o[3] = d12 + eighth * m[3] - eight * m[4] + m[5];
}

template <class T>
static inline void weight_transform_1d(const T (&g)[3], T (&u)[kAlpha]) {
  const T third = T{} + 1.0f / 3.0f, fifteenth = T{} + 1.0f / 15.0f, two = T{} + 2.0f, four = T{} + 4.0f,
          eight = T{} + 8.0f, sixteen = T{} + 16.0f;
  u[0] = g[0];
  u[1] = (g[0] + g[1] + g[2]) * third;
  u[2] = (g[1] - g[0] - g[2]) * third;
  u[3] = -(sixteen * g[0] + eight * g[1] + four * g[2]) * fifteenth;
  u[4] = (g[0] - two * g[1] + four * g[2]) * fifteenth;
  u[5] = g[2];
}

// G g G^T of nine tap vectors (tap r * 3 + s), kVecFloats kernels at a time: point i * kAlpha + j.
static inline void weight_transform_2d(const vfloat (&taps)[9], vfloat (&u)[kPoints]) {
  vfloat gg[kAlpha][3];  // G g
  for (int s = 0; s < 3; ++s) {
    const vfloat column[3] = {taps[s], taps[3 + s], taps[6 + s]};
    vfloat t[kAlpha];
    weight_transform_1d(column, t);
    for (int i = 0; i < kAlpha; ++i) gg[i][s] = t[i];
  }
  for (int i = 0; i < kAlpha; ++i) {
    vfloat t[kAlpha];
    weight_transform_1d(gg[i], t);
    for (int j = 0; j < kAlpha; ++j) u[i * kAlpha + j] = t[j];
  }
}

// U = G g G^T for every (out channel k, channel c), written into the packed A layout of each of
// the 36 GEMMs (a_floats apart; rows k, reduction index c), padding rows zeroed. A thread takes
// one A panel's rows for kWeightChunk channels at a time, which are one contiguous run per point.
constexpr int64_t kWeightChunk = 16;
static_assert(kGemmKC % kWeightChunk == 0, "a chunk of channels lies inside one k block");
static_assert(kWeightChunk % kVecFloats == 0, "a chunk is transformed in whole vectors");

void transform_weights(float* packed, int64_t a_floats, const WinogradJob& job) {
  const int64_t rows = job.out_channels, k_dim = job.channels, m_pad = round_up(rows, kGemmMR);
  const int64_t chunks = (k_dim + kWeightChunk - 1) / kWeightChunk;
  int64_t begin, end;
  team_range(m_pad / kGemmMR * chunks, true, &begin, &end);
  for (int64_t item = begin; item < end; ++item) {
    const int64_t panel = item / chunks, c0 = item % chunks * kWeightChunk;
    const int64_t c_count = min64(kWeightChunk, k_dim - c0);
    const int64_t pc = c0 / kGemmKC * kGemmKC, kc = min64(kGemmKC, k_dim - pc);
    float u[kPoints][kWeightChunk * kGemmMR];
    for (int r = 0; r < kGemmMR; ++r) {
      // The chunk's kernels for row k, tap by tap (zeros past the last channel or row), then
      // transformed kVecFloats channels at a time.
      const int64_t k = panel * kGemmMR + r;
      alignas(64) float taps[9][kWeightChunk] = {};
      for (int64_t c = 0; k < rows && c < c_count; ++c) {
        // Backward-data's weights are the forward ones transposed and rotated by 180 degrees.
        const float* g = job.transposed_weights ? job.weights + ((c0 + c) * rows + k) * 9
                                                : job.weights + (k * k_dim + c0 + c) * 9;
        for (int tap = 0; tap < 9; ++tap) taps[tap][c] = g[job.transposed_weights ? 8 - tap : tap];
      }
      for (int64_t c = 0; c < kWeightChunk; c += kVecFloats) {
        vfloat tap_vectors[9], t[kPoints];
        for (int tap = 0; tap < 9; ++tap) tap_vectors[tap] = vload(taps[tap] + c);
        weight_transform_2d(tap_vectors, t);
        for (int point = 0; point < kPoints; ++point)
          for (int lane = 0; lane < kVecFloats; ++lane) u[point][(c + lane) * kGemmMR + r] = t[point][lane];
      }
    }
    float* dst = packed + pc * m_pad + panel * kGemmMR * kc + (c0 - pc) * kGemmMR;
    for (int point = 0; point < kPoints; ++point)
      std::memcpy(dst + point * a_floats, u[point], sizeof(float) * c_count * kGemmMR);
  }
  team_barrier(true);
}

struct TileGrid {
  int64_t tiles_h, tiles_w, per_image, total;
  explicit TileGrid(const WinogradJob& job)
      : tiles_h((job.out_h + kTile - 1) / kTile), tiles_w((job.out_w + kTile - 1) / kTile),
        per_image(tiles_h * tiles_w), total(job.batch * per_image) {}
};

// Where one tile of a block reads and writes, worked out once per block: the input index of its
// 6x6 window's top-left corner in channel 0 (it may lie outside the image, which is then only read
// inside), the window's rows / columns inside the image, and the output index of its top-left
// output in channel 0 with the rows / columns of its 4x4 outputs inside the output.
struct TileWindow {
  int64_t in_offset, out_offset;
  int8_t row_lo, row_hi, col_lo, col_hi, out_rows, out_cols;
  bool inside;  // the whole window inside the image, and kEdgeRow floats readable from each of its rows
  uint8_t read;  // the columns of each of its rows inside the image, a bit each (all 8 when inside)
};

// `count` tile descriptors in the calling thread's scratch (std containers stay out of kernel
// sources, Note [ISA namespaces]).
static_assert(sizeof(TileWindow) % sizeof(int64_t) == 0, "descriptors fill whole index slots");
TileWindow* thread_tile_windows(int64_t count) {
  return reinterpret_cast<TileWindow*>(
      thread_scratch_i64(Scratch::indices, count * static_cast<int64_t>(sizeof(TileWindow) / sizeof(int64_t))));
}

// The windows of tiles [first, first + count) into windows[0, columns); the tiles past count (the
// rest of the last GEMM panel) read nothing and write nothing.
void describe_tiles(TileWindow* windows, int64_t first, int64_t count, int64_t columns, const WinogradJob& job,
                    const TileGrid& grid) {
  const int64_t plane = job.in_h * job.in_w, out_plane = job.out_h * job.out_w;
  const int64_t in_floats = job.batch * job.channels * plane;
  for (int64_t i = 0; i < columns; ++i) {
    TileWindow& w = windows[i];
    if (i >= count) {
      w = TileWindow{0, 0, 0, 0, 0, 0, 0, 0, false, 0};
      continue;
    }
    const int64_t t = first + i, n = t / grid.per_image, r = t % grid.per_image;
    const int64_t oh = (r / grid.tiles_w) * kTile, ow = (r % grid.tiles_w) * kTile;
    const int64_t ih = oh - job.pad_h, iw = ow - job.pad_w;
    // Clamped to the window: a padding of 128 or more must not wrap the int8 bounds.
    w.row_lo = static_cast<int8_t>(min64(kAlpha, max64(0, -ih)));
    w.row_hi = static_cast<int8_t>(max64(w.row_lo, min64(kAlpha, job.in_h - ih)));
    w.col_lo = static_cast<int8_t>(min64(kAlpha, max64(0, -iw)));
    w.col_hi = static_cast<int8_t>(max64(w.col_lo, min64(kAlpha, job.in_w - iw)));
    w.in_offset = n * job.channels * plane + ih * job.in_w + iw;
    w.inside = w.row_lo == 0 && w.row_hi == kAlpha && w.col_lo == 0 && w.col_hi == kAlpha &&
               w.in_offset + (job.channels - 1) * plane + (kAlpha - 1) * job.in_w + kEdgeRow <= in_floats;
    w.read = static_cast<uint8_t>(w.inside ? 0xFFu : ((1u << w.col_hi) - 1) & ~((1u << w.col_lo) - 1));
    w.out_offset = n * job.out_channels * out_plane + oh * job.out_w + ow;
    w.out_rows = static_cast<int8_t>(min64(kTile, job.out_h - oh));
    w.out_cols = static_cast<int8_t>(min64(kTile, job.out_w - ow));
  }
}

// Where transform_inputs puts point p of channel c for tile i: v[p * point + c * channel +
// (i / NR) * panel + i % NR]. For the forward GEMMs that is the packed B panels (channel NR,
// panel channels * NR); for the weight gradient, rows of tiles per channel (panel NR).
struct TransformLayout {
  int64_t point, channel, panel;
};

// B^T d B of every tile in windows[0, columns) and every channel, into v as `layout` says.
// Channel by channel, so that neighbouring tiles fill each line of v while it is in L1.
void transform_inputs(float* v, const TransformLayout& layout, const TileWindow* windows, int64_t columns,
                      const WinogradJob& job) {
  const int64_t plane = job.in_h * job.in_w;
  for (int64_t c = 0; c < job.channels; ++c) {
    const float* in = job.in + c * plane;
    for (int64_t t0 = 0; t0 < columns; t0 += kVecFloats) {
      vfloat rows[kAlpha][kAlpha];  // d B: row i of every lane's window, transformed along j
#if defined(__AVX2__)
      // Each lane reads its window's rows straight from the input, masked to the columns inside
      // the image (zeros for the others, and for rows outside it and missing tiles).
      const TileWindow* w = windows + t0;
      for (int i = 0; i < kAlpha; ++i) {
        const float* row[kVecFloats];
        unsigned read[kVecFloats];
        for (int lane = 0; lane < kVecFloats; ++lane) {
          const bool row_inside = i >= w[lane].row_lo && i < w[lane].row_hi;
          row[lane] = row_inside ? in + w[lane].in_offset + i * job.in_w : in;
          read[lane] = row_inside ? w[lane].read : 0u;
        }
        vfloat columns[8], d[kAlpha];
        load_transposed8(row, read, columns);
        for (int j = 0; j < kAlpha; ++j) d[j] = columns[j];
        input_transform_1d(d, rows[i]);
      }
#else
      // Each lane reads its window's rows from the input or, where the window leaves the image
      // (or for a missing tile), from a copy with zeros outside.
      alignas(64) float edges[kVecFloats][kAlpha][kEdgeRow];
      const float* window[kVecFloats];
      int64_t row_stride[kVecFloats];
      for (int lane = 0; lane < kVecFloats; ++lane) {
        const TileWindow& w = windows[t0 + lane];
        if (w.inside) {
          window[lane] = in + w.in_offset;
          row_stride[lane] = job.in_w;
          continue;
        }
        float(&edge)[kAlpha][kEdgeRow] = edges[lane];
        // Element by element with the bounds as a condition: as a copy of the valid run the
        // loop becomes a memcpy call per row, which costs more than the window's transform.
        for (int i = 0; i < kAlpha; ++i) {
          const bool row_inside = i >= w.row_lo && i < w.row_hi;
          const int64_t row = w.in_offset + i * job.in_w;  // may lie outside the image: read only inside
          for (int j = 0; j < kEdgeRow; ++j)
            edge[i][j] = row_inside && j >= w.col_lo && j < w.col_hi ? in[row + j] : 0.0f;
        }
        window[lane] = edge[0];
        row_stride[lane] = kEdgeRow;
      }
      for (int i = 0; i < kAlpha; ++i) {
        vfloat d[kAlpha];
        for (int j = 0; j < kAlpha; ++j)
          for (int lane = 0; lane < kVecFloats; ++lane) d[j][lane] = window[lane][i * row_stride[lane] + j];
        input_transform_1d(d, rows[i]);
      }
#endif
      float* dst = v + c * layout.channel + (t0 / kGemmNR) * layout.panel + t0 % kGemmNR;
      for (int s = 0; s < kAlpha; ++s) {  // B^T along i, column by column
        vfloat column[kAlpha], t[kAlpha];
        for (int i = 0; i < kAlpha; ++i) column[i] = rows[i][s];
        input_transform_1d(column, t);
        for (int r = 0; r < kAlpha; ++r) vstore(dst + (r * kAlpha + s) * layout.point, t[r]);
      }
    }
  }
}

// A^T M A (+ bias) of every tile in windows[0, count) and every output channel k, from the GEMM
// results m[k * ldm + p * m_point + i] (point p, tile i), into the output planes (the parts of edge
// tiles past the output are dropped).
void transform_outputs(const float* m, int64_t ldm, int64_t m_point, const TileWindow* windows, int64_t count,
                       const WinogradJob& job) {
  const int64_t out_plane = job.out_h * job.out_w;
  for (int64_t k = 0; k < job.out_channels; ++k) {
    const vfloat bias = vbroadcast(job.bias ? job.bias[k] : 0.0f);
    float* out = job.out + k * out_plane;
    for (int64_t t0 = 0; t0 < count; t0 += kVecFloats) {
      const float* src = m + k * ldm + t0;
      vfloat am[kTile][kAlpha];  // A^T M
      for (int s = 0; s < kAlpha; ++s) {
        vfloat column[kAlpha], o[kTile];
        for (int r = 0; r < kAlpha; ++r) column[r] = vload(src + (r * kAlpha + s) * m_point);
        output_transform_1d(column, o);
        for (int i = 0; i < kTile; ++i) am[i][s] = o[i];
      }
      const TileWindow* w = windows + t0;
      const int lanes = static_cast<int>(min64(kVecFloats, count - t0));
#if defined(__AVX2__)
      for (int i = 0; i < kTile; ++i) {
        vfloat o[kTile], r[kTile];
        output_transform_1d(am[i], o);
        for (int j = 0; j < kTile; ++j) r[j] = o[j] + bias;
        // Lanes to rows: a 4 x 4 transpose within each group of four lanes leaves lane 4g + l's row
        // in group g of r[l], stored without the outputs past the edge (nothing for missing tiles).
        transpose4x4_groups(r);
        for (int l = 0; l < kTile; ++l) {
          float* dst[kVecGroups];
          int n[kVecGroups];
          for (int g = 0; g < kVecGroups; ++g) {
            const int lane = 4 * g + l;
            const bool row = lane < lanes && i < w[lane].out_rows;
            dst[g] = row ? out + w[lane].out_offset + i * job.out_w : out;
            n[g] = row ? w[lane].out_cols : 0;
          }
          store_groups(dst, r[l], n);
        }
      }
      continue;
#endif
      alignas(64) float stage[kTile * kTile][kVecFloats];
      for (int i = 0; i < kTile; ++i) {
        vfloat o[kTile];
        output_transform_1d(am[i], o);
        for (int j = 0; j < kTile; ++j) vstore(stage[i * kTile + j], o[j] + bias);
      }
      for (int lane = 0; lane < lanes; ++lane)
        for (int i = 0; i < w[lane].out_rows; ++i)
          for (int j = 0; j < w[lane].out_cols; ++j) out[w[lane].out_offset + i * job.out_w + j] = stage[i * kTile + j][lane];
    }
  }
}

// A stride of at least `floats` floats that is an odd number of 64-byte lines: the 36 points of a
// tile, one stride apart, then fall into different L1 sets whatever the block size.
static inline int64_t odd_line_stride(int64_t floats) {
  const int64_t lines = (floats + 15) / 16;
  return (lines | 1) * 16;
}

void winograd_convolution(const WinogradJob& job) {
  const TileGrid grid(job);
  const int threads = num_threads();
  // Tiles per block: a multiple of NR within the cache budget, and no more than a thread's share.
  const int64_t share = round_up((grid.total + threads - 1) / threads, kGemmNR);
  const int64_t fit = kBlockFloats / (kPoints * (job.channels + job.out_channels)) / kGemmNR * kGemmNR;
  const int64_t block = max64(kGemmNR, min64(fit, share));
  const int64_t blocks = (grid.total + block - 1) / block;
  const int64_t m_pad = round_up(job.out_channels, kGemmMR);
  const int64_t a_floats = m_pad * job.channels;
  const int64_t v_stride = odd_line_stride(job.channels * block), m_point = odd_line_stride(block);
  const int64_t ldm = kPoints * m_point;
  float* packed = thread_scratch(Scratch::pack_a, kPoints * a_floats);
  float* v_bufs = thread_scratch(Scratch::pack_b, kPoints * v_stride * threads);
  float* m_bufs = thread_scratch(Scratch::partial, job.out_channels * ldm * threads);
  TileWindow* tile_windows = thread_tile_windows(block * threads);
#pragma omp parallel num_threads(threads)
  {
    transform_weights(packed, a_floats, job);
    float* v = v_bufs + omp_get_thread_num() * kPoints * v_stride;
    float* m = m_bufs + omp_get_thread_num() * job.out_channels * ldm;
    TileWindow* windows = tile_windows + omp_get_thread_num() * block;
    int64_t begin, end;
    team_range(blocks, true, &begin, &end);
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * block, count = min64(block, grid.total - first);
      const int64_t columns = round_up(count, kGemmNR);  // whole panels; the padding tiles are zeros
      describe_tiles(windows, first, count, columns, job, grid);
      transform_inputs(v, {v_stride, kGemmNR, job.channels * kGemmNR}, windows, columns, job);
      for (int point = 0; point < kPoints; ++point) {
        const float* a = packed + point * a_floats;
        const float* vp = v + point * v_stride;
        float* mp = m + point * m_point;
        for (int64_t pc = 0; pc < job.channels; pc += kGemmKC) {
          const int64_t kc = min64(kGemmKC, job.channels - pc);
          for (int64_t ic = 0; ic < job.out_channels; ic += kGemmMC) {
            const int64_t ic_end = min64(job.out_channels, ic + kGemmMC);
            for (int64_t jr = 0; jr < columns; jr += kGemmNR) {  // one B panel stays in L1 across the A panels
              const float* b_panel = vp + (jr / kGemmNR) * job.channels * kGemmNR + pc * kGemmNR;
              for (int64_t ir = ic; ir < ic_end; ir += kGemmMR)
                gemm_ukernel(kc, a + pc * m_pad + ir * kc, b_panel, mp + ir * ldm + jr, ldm,
                             static_cast<int>(min64(kGemmMR, job.out_channels - ir)), kGemmNR, 1.0f,
                             pc == 0 ? 0.0f : 1.0f, nullptr);
            }
          }
        }
      }
      transform_outputs(m, ldm, m_point, windows, count, job);
    }
  }
}

// ---------------------------------------------------------------- backward-weight
// The forward tile is Y = A^T [sum over c of U_c .* V_c] A with U = G g G^T, so the weight
// gradient is dg = G^T dU G with dU_(k,c) = sum over tiles of (A dY A^T) .* V_c: 36 GEMMs
// (out_channels x tiles) x (tiles x channels) that reduce over the tiles. As GEMMs for 32 to 512
// channels on each side (16-channel layers gained nothing: packing the GEMM operands cost as much as
// the saving; against the window path, 192 to 512 channels on 4x4 to 13x13 maps took 0.5-0.9x its
// time, bench/NOTES.md; the bound keeps the 36 partial sums du within 38 MB), and only where a side
// has more than kLaneMaxChannels: below that the channels-in-lanes path further down is faster.
constexpr int64_t kMinWeightGradChannels = 32, kMaxWeightGradChannels = 512;

// The transposes of the 1-D output and weight transforms: A (6 x 4) and G^T (3 x 6).
template <class T>
static inline void output_grad_transform_1d(const T (&y)[kTile], T (&m)[kAlpha]) {
  const T half = T{} + 0.5f, quarter = T{} + 0.25f, eighth = T{} + 0.125f, two = T{} + 2.0f, four = T{} + 4.0f,
          eight = T{} + 8.0f;
  const T s02 = y[0] + y[2], s13 = y[1] + y[3];
  m[0] = y[0];
  m[1] = s02 + s13;
  m[2] = s02 - s13;
  m[3] = y[0] + half * y[1] + quarter * y[2] + eighth * y[3];
  m[4] = y[0] - two * y[1] + four * y[2] - eight * y[3];
  m[5] = y[3];
}

template <class T>
static inline void weight_grad_transform_1d(const T (&x)[kAlpha], T (&z)[3]) {
  const T third = T{} + 1.0f / 3.0f, fifteenth = T{} + 1.0f / 15.0f, two = T{} + 2.0f, four = T{} + 4.0f,
          eight = T{} + 8.0f, sixteen = T{} + 16.0f;
  const T s12 = (x[1] + x[2]) * third, d12 = (x[1] - x[2]) * third;
  z[0] = x[0] + d12 + (x[4] - sixteen * x[3]) * fifteenth;
  z[1] = s12 - (eight * x[3] + two * x[4]) * fifteenth;
  z[2] = d12 + (four * x[4] - four * x[3]) * fifteenth + x[5];
}

// A dY A^T of every tile in windows[0, columns) and output channel k, from the output gradient
// (the job's out planes), into dm[p * point + k * ld + i] (point p, tile i); zeros for the
// outputs past the edge and for the missing tiles.
void transform_output_grads(float* dm, int64_t point, int64_t ld, const TileWindow* windows, int64_t count,
                            int64_t columns, const WinogradJob& job, const float* dy) {
  const int64_t out_plane = job.out_h * job.out_w;
  for (int64_t k = 0; k < job.out_channels; ++k) {
    const float* grad = dy + k * out_plane;
    for (int64_t t0 = 0; t0 < columns; t0 += kVecFloats) {
      const TileWindow* w = windows + t0;
      vfloat rows[kTile][kAlpha];  // dY A^T: row i of every lane's tile, expanded along j
#if defined(__AVX2__)
      for (int i = 0; i < kTile; ++i) {
        // Rows to lanes: lane 4g + l's row i into group g of y[l] (zeros past the edge and for
        // missing tiles), then a 4 x 4 transpose within each group.
        vfloat y[kTile];
        for (int l = 0; l < kTile; ++l) {
          const float* src[kVecGroups];
          int n[kVecGroups];
          for (int g = 0; g < kVecGroups; ++g) {
            const int lane = 4 * g + l;
            const bool row = t0 + lane < count && i < w[lane].out_rows;
            src[g] = row ? grad + w[lane].out_offset + i * job.out_w : grad;
            n[g] = row ? w[lane].out_cols : 0;
          }
          y[l] = load_groups(src, n);
        }
        transpose4x4_groups(y);
        output_grad_transform_1d(y, rows[i]);
      }
#else
      alignas(64) float stage[kTile * kTile][kVecFloats] = {};
      for (int lane = 0; lane < kVecFloats && t0 + lane < count; ++lane)
        for (int i = 0; i < w[lane].out_rows; ++i)
          for (int j = 0; j < w[lane].out_cols; ++j)
            stage[i * kTile + j][lane] = grad[w[lane].out_offset + i * job.out_w + j];
      for (int i = 0; i < kTile; ++i) {
        vfloat y[kTile];
        for (int j = 0; j < kTile; ++j) y[j] = vload(stage[i * kTile + j]);
        output_grad_transform_1d(y, rows[i]);
      }
#endif
      float* dst = dm + k * ld + t0;
      for (int s = 0; s < kAlpha; ++s) {
        vfloat column[kTile], m[kAlpha];
        for (int i = 0; i < kTile; ++i) column[i] = rows[i][s];
        output_grad_transform_1d(column, m);
        for (int r = 0; r < kAlpha; ++r) vstore(dst + (r * kAlpha + s) * point, m[r]);
      }
    }
  }
}

// dw[k][c] = G^T dU_(k,c) G from du[p * pairs + k * channels + c], kVecFloats channels at a time
// (the job's out_channels rows, its channels columns), shared out over the team by rows.
void transform_weight_grads(float* dw, const float* du, const WinogradJob& job) {
  const int64_t channels = job.channels, pairs = job.out_channels * channels;
  int64_t begin, end;
  team_range(job.out_channels, true, &begin, &end);
  for (int64_t k = begin; k < end; ++k) {
    for (int64_t c0 = 0; c0 < channels; c0 += kVecFloats) {
      const int lanes = static_cast<int>(min64(kVecFloats, channels - c0));
      // Point p's vector of channels: straight from du, or for the last few channels from a
      // zero-padded stage (zeroing a stage for every vector cost three quarters of this function).
      const float* points = du + k * channels + c0;
      int64_t point_stride = pairs;
      alignas(64) float stage[kPoints][kVecFloats];
      if (lanes < kVecFloats) {
        for (int p = 0; p < kPoints; ++p)
          for (int lane = 0; lane < kVecFloats; ++lane) stage[p][lane] = lane < lanes ? points[p * pairs + lane] : 0.0f;
        points = stage[0];
        point_stride = kVecFloats;
      }
      vfloat rows[kAlpha][3];  // dU G, row by row
      for (int r = 0; r < kAlpha; ++r) {
        vfloat x[kAlpha];
        for (int s = 0; s < kAlpha; ++s) x[s] = vload(points + (r * kAlpha + s) * point_stride);
        weight_grad_transform_1d(x, rows[r]);
      }
      for (int j = 0; j < 3; ++j) {
        vfloat x[kAlpha], z[3];
        for (int r = 0; r < kAlpha; ++r) x[r] = rows[r][j];
        weight_grad_transform_1d(x, z);
        for (int i = 0; i < 3; ++i)
          for (int lane = 0; lane < lanes; ++lane) dw[((k * channels + c0 + lane) * 3 + i) * 3 + j] = z[i][lane];
      }
    }
  }
}

// V and dM of the block the team shares: about 4 MB (at 2 threads 15-30 % faster than 1 MB, and
// 8 MB no better).
constexpr int64_t kWeightGradBlockFloats = 4 * kBlockFloats;

// The team works on one block of tiles at a time: the threads transform a share of its channels
// each, then take a share of the 36 points each and add that point's GEMM into its dU, so every
// dU is summed by one thread in block order (no per-thread partial sums to reduce, and results do
// not depend on the thread count).
void winograd_weight_gradient(float* dw, const float* dy, const WinogradJob& job) {
  const TileGrid grid(job);
  // Tiles per block: long reductions for the GEMMs within the cache budget, blocks of equal size.
  const int64_t per_tile = kPoints * (job.channels + job.out_channels);
  const int64_t fit = max64(kGemmNR, kWeightGradBlockFloats / per_tile / kGemmNR * kGemmNR);
  const int64_t blocks = (grid.total + fit - 1) / fit;
  const int64_t block = round_up((grid.total + blocks - 1) / blocks, kGemmNR);
  const int64_t ld = odd_line_stride(block);  // tiles per row of V and dM
  const int64_t v_point = job.channels * ld, m_point = job.out_channels * ld;
  const int64_t pairs = job.out_channels * job.channels;
  const int threads = static_cast<int>(min64(num_threads(), kPoints));
  float* v = thread_scratch(Scratch::columns, kPoints * v_point);
  float* dm = thread_scratch(Scratch::weights, kPoints * m_point);
  float* du = thread_scratch(Scratch::partial, kPoints * pairs);
  const int64_t a_floats = packed_a_floats(job.out_channels, block), b_floats = packed_b_floats(job.channels, block);
  float* a_bufs = thread_scratch(Scratch::pack_a, a_floats * threads);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * threads);
  TileWindow* windows = thread_tile_windows(block);
  const int64_t in_plane = job.in_h * job.in_w, out_plane = job.out_h * job.out_w;
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    float* a_buf = a_bufs + tid * a_floats;
    float* b_buf = b_bufs + tid * b_floats;
    int64_t begin, end, k_begin, k_end, c_begin, c_end, p_begin, p_end;
    team_range(job.channels, true, &c_begin, &c_end);
    team_range(job.out_channels, true, &k_begin, &k_end);
    team_range(kPoints, true, &p_begin, &p_end);
    // This thread's channels and output channels, as jobs of their own (the windows, described
    // with the whole job, give offsets from channel 0 of each image).
    WinogradJob inputs = job, grads = job;
    inputs.in = job.in + c_begin * in_plane;
    inputs.channels = c_end - c_begin;
    grads.out_channels = k_end - k_begin;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t first = b * block, count = min64(block, grid.total - first);
      const int64_t columns = round_up(count, kGemmNR);
      team_range(columns, true, &begin, &end);
      describe_tiles(windows + begin, first + begin, max64(0, min64(count, end) - begin), end - begin, job, grid);
      team_barrier(true);
      transform_inputs(v + c_begin * ld, {v_point, ld, kGemmNR}, windows, columns, inputs);
      transform_output_grads(dm + k_begin * ld, m_point, ld, windows, count, columns, grads, dy + k_begin * out_plane);
      team_barrier(true);
      for (int64_t point = p_begin; point < p_end; ++point) {
        pack_a_matrix(a_buf, dm + point * m_point, ld, false, job.out_channels, columns, false);
        gemm_packed(job.out_channels, job.channels, columns, a_buf, MatrixPackB{v + point * v_point, ld, true},
                    du + point * pairs, job.channels, 1.0f, b == 0 ? 0.0f : 1.0f, nullptr, b_buf, false);
      }
      team_barrier(true);  // v and dm are rewritten for the next block
    }
    transform_weight_grads(dw, du, job);
  }
}

// ---------------------------------------------------------------- channels in lanes
// With few channels the GEMMs above are too narrow for the micro-kernel (16 channels fill half of
// AVX-512's 32-column panels) and the transforms, one tile per lane, need register transposes and
// (weight gradient) stream V and dM through L3. These paths put channels in the vector lanes
// instead: the images go to channels-last copies with the zero padding included, so a tile's
// windows are plain vector loads and its transforms need no transposes, and each point's GEMM runs
// as broadcasts against vectors of channels. A thread takes whole chunks of a few dozen tiles,
// which stay in L2 from the copies to the products.
constexpr int64_t kLaneTiles = 64;  // tiles per chunk: about half of L2 at 16 + 16 channels
// Weight gradients with up to this many channels on each side take this path: against the GEMMs
// it measured 1.2-1.5x on 32 to 128 channels and 0.8x on 256 (bench/NOTES.md).
constexpr int64_t kLaneMaxChannels = 128;

// Rows [row0, row0 + rows) of the channels-last copy of `channels` planes of h x w read with
// padding pad_h / pad_w: dst[(i * width + j) * lanes + c] = src[c][row0 + i - pad_h][j - pad_w],
// zeros outside the planes and for channels c >= channels.
void copy_channels_last(float* dst, const float* src, int64_t channels, int64_t h, int64_t w, int64_t pad_h,
                        int64_t pad_w, int64_t row0, int64_t rows, int64_t width, int64_t lanes) {
  const int64_t plane = h * w;
  const int64_t j0 = min64(width, pad_w), j1 = max64(j0, min64(width, pad_w + w));  // the columns inside
  for (int64_t i = 0; i < rows; ++i) {
    float* out = dst + i * width * lanes;
    std::memset(out, 0, sizeof(float) * width * lanes);
    const int64_t ih = row0 + i - pad_h;
    if (ih < 0 || ih >= h) continue;
    const float* in = src + ih * w + (j0 - pad_w);
    int64_t c = 0;
#if defined(__AVX2__)
    for (; c + 8 <= channels; c += 8) {  // eight channels by eight columns through a register transpose
      const float* row[8];
      for (int r = 0; r < 8; ++r) row[r] = in + (c + r) * plane;
      int64_t j = j0;
      for (; j + 8 <= j1; j += 8) {
        store_transposed8x8(out + j * lanes + c, lanes, row);
        for (int r = 0; r < 8; ++r) row[r] += 8;
      }
      for (; j < j1; ++j)
        for (int r = 0; r < 8; ++r) out[j * lanes + c + r] = *row[r]++;
    }
#endif
    for (; c < channels; ++c)
      for (int64_t j = j0; j < j1; ++j) out[j * lanes + c] = in[c * plane + j - j0];
  }
}

// The inverse for output planes: dst[k][row0 + i][j] = src[(i * width + j) * lanes + k] for the
// rows i < rows inside the planes (h x w), j < w and k < channels.
void copy_planes(float* dst, const float* src, int64_t channels, int64_t h, int64_t w, int64_t row0, int64_t rows,
                 int64_t width, int64_t lanes) {
  const int64_t plane = h * w;
  for (int64_t i = 0; i < rows && row0 + i < h; ++i) {
    const float* in = src + i * width * lanes;
    float* out = dst + (row0 + i) * w;
    int64_t k = 0;
#if defined(__AVX2__)
    for (; k + 8 <= channels; k += 8) {  // eight columns by eight channels through a register transpose
      int64_t j = 0;
      for (; j + 8 <= w; j += 8) {
        const float* column[8];
        for (int r = 0; r < 8; ++r) column[r] = in + (j + r) * lanes + k;
        store_transposed8x8(out + k * plane + j, plane, column);
      }
      for (; j < w; ++j)
        for (int r = 0; r < 8; ++r) out[(k + r) * plane + j] = in[j * lanes + k + r];
    }
#endif
    for (; k < channels; ++k)
      for (int64_t j = 0; j < w; ++j) out[k * plane + j] = in[j * lanes + k];
  }
}

// How the tiles are cut into chunks: `images` whole images (small maps), or bands of `rows` tile
// rows of one image (large ones).
struct LaneChunk {
  int64_t n0, images, row0, rows, tiles;  // tile rows [row0, row0 + rows) of images [n0, n0 + images)
  int64_t tiles_w;
  // Where tile t's window starts in a channels-last copy of the chunk (images `image` floats apart,
  // rows of `width` pixels of `lanes` floats).
  int64_t offset(int64_t t, int64_t image, int64_t width, int64_t lanes) const {
    const int64_t g = t / (rows * tiles_w), r = t % (rows * tiles_w) / tiles_w;
    return g * image + (r * width + t % tiles_w) * kTile * lanes;
  }
};

struct LaneChunks {
  int64_t images, rows, bands, count, tiles;
  LaneChunks(const WinogradJob& job, const TileGrid& grid) {
    if (grid.per_image >= kLaneTiles) {
      images = 1;
      rows = max64(1, kLaneTiles / grid.tiles_w);
      bands = (grid.tiles_h + rows - 1) / rows;
      count = job.batch * bands;
    } else {
      images = kLaneTiles / grid.per_image;
      rows = grid.tiles_h;
      bands = 1;
      count = (job.batch + images - 1) / images;
    }
    tiles = images * rows * grid.tiles_w;
  }
  LaneChunk at(int64_t item, const WinogradJob& job, const TileGrid& grid) const {
    LaneChunk c;
    c.n0 = item / bands * images;
    c.images = min64(images, job.batch - c.n0);
    c.row0 = item % bands * rows;
    c.rows = min64(rows, grid.tiles_h - c.row0);
    c.tiles = c.images * c.rows * grid.tiles_w;
    c.tiles_w = grid.tiles_w;
    return c;
  }
};

// The 2-D transform of one tile's kIn x kIn window of vectors (element (i, j) at window[i * row +
// j * lanes]) by a 1-D transform to kAlpha values, along the rows and then the columns: point (i, s)
// to out[(i * kAlpha + s) * point].
template <int kIn, class Transform>
static inline void lane_tile_transform(float* out, int64_t point, const float* window, int64_t row, int64_t lanes,
                                       Transform transform) {
  vfloat along_rows[kIn][kAlpha];
  for (int i = 0; i < kIn; ++i) {
    vfloat d[kIn];
    for (int j = 0; j < kIn; ++j) d[j] = vload(window + i * row + j * lanes);
    transform(d, along_rows[i]);
  }
  for (int s = 0; s < kAlpha; ++s) {
    vfloat column[kIn], t[kAlpha];
    for (int i = 0; i < kIn; ++i) column[i] = along_rows[i][s];
    transform(column, t);
    for (int i = 0; i < kAlpha; ++i) vstore(out + (i * kAlpha + s) * point, t[i]);
  }
}

// The job's input under a chunk, channels-last (image g at xl + g * x_image, rows of x_width
// pixels of `lanes` floats), then B^T d B of each of its tiles t into v[p * v_point + t * lanes + c].
void lane_input_transforms(float* v, int64_t v_point, float* xl, int64_t x_image, int64_t x_width, int64_t lanes,
                           const LaneChunk& chunk, const WinogradJob& job) {
  const int64_t in_plane = job.in_h * job.in_w;
  for (int64_t g = 0; g < chunk.images; ++g)
    copy_channels_last(xl + g * x_image, job.in + (chunk.n0 + g) * job.channels * in_plane, job.channels, job.in_h,
                       job.in_w, job.pad_h, job.pad_w, chunk.row0 * kTile, chunk.rows * kTile + 2, x_width, lanes);
  for (int64_t t = 0; t < chunk.tiles; ++t) {
    const float* window = xl + chunk.offset(t, x_image, x_width, lanes);
    for (int64_t c = 0; c < lanes; c += kVecFloats)
      lane_tile_transform<kAlpha>(v + t * lanes + c, v_point, window + c, x_width * lanes, lanes,
                                  [](const vfloat(&d)[kAlpha], vfloat(&out)[kAlpha]) { input_transform_1d(d, out); });
  }
}

// ---- forward and backward-data
// The same chunks: V as above, each point's products m[p][t][k] = sum over c of V[p][t][c] *
// U[p][c][k] (V broadcast by tiles against vectors of U), the output tiles A^T M A (+ bias) written
// channels-last and copied to the output planes. Against the GEMMs, one thread: AVX-512 1.26x on
// 16 channels, 1.19x on 32, 1.08x on 64, 0.92x on 128; AVX2 1.05-1.1x on 16, 0.93-1.0x on 32 and
// 64 (bench/NOTES.md).
constexpr int kLaneTileRows = kVecFloats == 16 ? 16 : 8;  // tiles per register tile of the products
constexpr int64_t kLaneConvChannels = kVecFloats == 16 ? 64 : 16;
static_assert(kLaneConvChannels <= kLaneMaxChannels, "the bias vectors are held for kLaneMaxChannels");
static_assert(kLaneConvChannels <= 4 * kVecFloats, "lane_convolution's products take up to 4 vectors of channels");

// u[p * u_point + c * k_lanes + k] = G g G^T of the job's kernel (out channel k, channel c), zeros
// for k past out_channels, kVecFloats output channels at a time; the team shares the channels.
void lane_weights(float* u, int64_t u_point, int64_t k_lanes, const WinogradJob& job) {
  const int64_t rows = job.out_channels, k_dim = job.channels;
  int64_t begin, end;
  team_range(k_dim, true, &begin, &end);
  for (int64_t c = begin; c < end; ++c) {
    for (int64_t k0 = 0; k0 < k_lanes; k0 += kVecFloats) {
      vfloat taps[9] = {};
      for (int lane = 0; lane < kVecFloats && k0 + lane < rows; ++lane) {
        // Backward-data's weights are the forward ones transposed and rotated by 180 degrees.
        const int64_t k = k0 + lane;
        const float* g = job.transposed_weights ? job.weights + (c * rows + k) * 9 : job.weights + (k * k_dim + c) * 9;
        for (int tap = 0; tap < 9; ++tap) taps[tap][lane] = g[job.transposed_weights ? 8 - tap : tap];
      }
      vfloat t[kPoints];
      weight_transform_2d(taps, t);
      for (int point = 0; point < kPoints; ++point) vstore(u + point * u_point + c * k_lanes + k0, t[point]);
    }
  }
  team_barrier(true);
}

// kRows tiles' products with kVecs vectors of output channels: out[r][k] = sum over c of
// a[r * kLanes + c] * b[c * k_lanes + k]. kLanes (a row's length) is a constant so that the
// broadcasts address their rows by fixed displacements: as a run-time value the rows' offsets took
// more registers than there are, and reloading them made the loop bound by loads.
template <int kLanes, int kRows, int kVecs>
static inline void lane_product_tile(float* out, int64_t k_lanes, const float* a, const float* b, int64_t channels) {
  vfloat acc[kRows][kVecs] = {};
  for (int64_t c = 0; c < channels; ++c) {
    vfloat bv[kVecs];
    for (int j = 0; j < kVecs; ++j) bv[j] = vload(b + c * k_lanes + j * kVecFloats);
    for (int r = 0; r < kRows; ++r) {
      const vfloat ar = vbroadcast(a[r * kLanes + c]);
      for (int j = 0; j < kVecs; ++j) acc[r][j] += ar * bv[j];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kVecs; ++j) vstore(out + r * k_lanes + j * kVecFloats, acc[r][j]);
}

// m[p][t][k] for tiles [0, tiles) (a multiple of kLaneTileRows; v's rows past the chunk are zeros),
// v's rows kLanes long. Output channels go two vectors at a time where there are two (half the
// rows a register tile), so that each broadcast feeds two multiply-adds.
template <int kLanes>
void lane_tile_products(float* m, int64_t m_point, const float* u, int64_t u_point, int64_t k_lanes, const float* v,
                        int64_t v_point, int64_t channels, int64_t tiles) {
  constexpr int kHalf = kLaneTileRows / 2;
  for (int p = 0; p < kPoints; ++p) {
    for (int64_t t0 = 0; t0 < tiles; t0 += kLaneTileRows) {
      const float* a = v + p * v_point + t0 * kLanes;
      float* out = m + p * m_point + t0 * k_lanes;
      int64_t k = 0;
      for (; k + 2 * kVecFloats <= k_lanes; k += 2 * kVecFloats)
        for (int half = 0; half < 2; ++half)
          lane_product_tile<kLanes, kHalf, 2>(out + half * kHalf * k_lanes + k, k_lanes, a + half * kHalf * kLanes,
                                              u + p * u_point + k, channels);
      for (; k < k_lanes; k += kVecFloats)
        lane_product_tile<kLanes, kLaneTileRows, 1>(out + k, k_lanes, a, u + p * u_point + k, channels);
    }
  }
}

void lane_convolution(const WinogradJob& job) {
  const TileGrid grid(job);
  const LaneChunks chunks(job, grid);
  const int64_t lanes = round_up(job.channels, kVecFloats), k_lanes = round_up(job.out_channels, kVecFloats);
  const int64_t tiles = round_up(chunks.tiles, kLaneTileRows);
  const int64_t x_width = grid.tiles_w * kTile + 2, x_image = (chunks.rows * kTile + 2) * x_width * lanes;
  const int64_t y_width = grid.tiles_w * kTile, y_image = chunks.rows * kTile * y_width * k_lanes;
  const int64_t v_point = odd_line_stride(tiles * lanes), m_point = odd_line_stride(tiles * k_lanes);
  const int64_t u_point = odd_line_stride(job.channels * k_lanes);
  const int64_t per_thread = chunks.images * (x_image + y_image) + kPoints * (v_point + m_point);
  const int threads = num_threads();
  float* buffers = thread_scratch(Scratch::columns, per_thread * threads);
  float* u = thread_scratch(Scratch::weights, kPoints * u_point);
  const int64_t out_plane = job.out_h * job.out_w;
  alignas(64) float bias[kLaneConvChannels] = {};  // whole vectors of it, zeros past out_channels
  for (int64_t k = 0; job.bias && k < job.out_channels; ++k) bias[k] = job.bias[k];
  // Each chunk's outputs are its own, computed the same way by any thread: the chunks go from a
  // queue, so that a thread the machine slows does not keep the other waiting.
  RunQueue queue;
  queue.reset(chunks.count, 1, threads);
#pragma omp parallel num_threads(threads)
  {
    lane_weights(u, u_point, k_lanes, job);
    float* xl = buffers + omp_get_thread_num() * per_thread;
    float* yl = xl + chunks.images * x_image;
    float* v = yl + chunks.images * y_image;
    float* m = v + kPoints * v_point;
    for (int64_t begin, end; queue.next(&begin, &end);) {
      for (int64_t item = begin; item < end; ++item) {
        const LaneChunk chunk = chunks.at(item, job, grid);
        lane_input_transforms(v, v_point, xl, x_image, x_width, lanes, chunk, job);
        for (int p = 0; p < kPoints; ++p)  // the padding tiles' rows
          std::memset(v + p * v_point + chunk.tiles * lanes, 0, sizeof(float) * (tiles - chunk.tiles) * lanes);
        const int64_t tiles_used = round_up(chunk.tiles, kLaneTileRows);
        switch (lanes / kVecFloats) {  // lanes <= kLaneConvChannels: at most 4 vectors on AVX-512, 2 on AVX2
          case 1: lane_tile_products<kVecFloats>(m, m_point, u, u_point, k_lanes, v, v_point, job.channels, tiles_used); break;
          case 2: lane_tile_products<2 * kVecFloats>(m, m_point, u, u_point, k_lanes, v, v_point, job.channels, tiles_used); break;
          case 3: lane_tile_products<3 * kVecFloats>(m, m_point, u, u_point, k_lanes, v, v_point, job.channels, tiles_used); break;
          default: lane_tile_products<4 * kVecFloats>(m, m_point, u, u_point, k_lanes, v, v_point, job.channels, tiles_used);
        }
        for (int64_t t = 0; t < chunk.tiles; ++t) {
          float* tile = yl + chunk.offset(t, y_image, y_width, k_lanes);
          for (int64_t k = 0; k < k_lanes; k += kVecFloats) {
            vfloat am[kTile][kAlpha];  // A^T M
            for (int s = 0; s < kAlpha; ++s) {
              vfloat column[kAlpha], o[kTile];
              for (int i = 0; i < kAlpha; ++i) column[i] = vload(m + (i * kAlpha + s) * m_point + t * k_lanes + k);
              output_transform_1d(column, o);
              for (int i = 0; i < kTile; ++i) am[i][s] = o[i];
            }
            const vfloat b = vload(bias + k);
            for (int i = 0; i < kTile; ++i) {
              vfloat o[kTile];
              output_transform_1d(am[i], o);
              for (int j = 0; j < kTile; ++j) vstore(tile + (i * y_width + j) * k_lanes + k, o[j] + b);
            }
          }
        }
        for (int64_t g = 0; g < chunk.images; ++g)
          copy_planes(job.out + (chunk.n0 + g) * job.out_channels * out_plane, yl + g * y_image, job.out_channels,
                      job.out_h, job.out_w, chunk.row0 * kTile, chunk.rows * kTile, y_width, k_lanes);
      }
    }
  }
}

// ---- backward-weight
// Each point's dU (out_channels x channels) gathers the chunk's tiles as outer products, dM
// broadcast by rows against vectors of V, into the thread's own sums; the threads' sums are added
// in thread order (deterministic for a fixed thread count).
constexpr int kLaneRows = kVecFloats == 16 ? 16 : 8;  // dU rows per register tile

// dU[p] (rows x lanes, partial[p * point + k * lanes + c]) += sum over the chunk's tiles t of
// dm[p * dm_point + t * rows + k] * v[p * v_point + t * lanes + c]; rows is a multiple of kLaneRows.
// The first chunk (accumulate false) stores its sums instead of adding them.
void lane_products(float* partial, int64_t point, const float* dm, int64_t dm_point, int64_t rows, const float* v,
                   int64_t v_point, int64_t lanes, int64_t tiles, bool accumulate) {
  for (int p = 0; p < kPoints; ++p) {
    for (int64_t c = 0; c < lanes; c += kVecFloats) {
      for (int64_t k0 = 0; k0 < rows; k0 += kLaneRows) {
        float* sum = partial + p * point + k0 * lanes + c;
        vfloat acc[kLaneRows];
        for (int r = 0; r < kLaneRows; ++r) acc[r] = accumulate ? vload(sum + r * lanes) : vfloat{};
        const float* a = dm + p * dm_point + k0;
        const float* b = v + p * v_point + c;
        for (int64_t t = 0; t < tiles; ++t) {
          const vfloat bv = vload(b + t * lanes);
          for (int r = 0; r < kLaneRows; ++r) acc[r] += vbroadcast(a[t * rows + r]) * bv;
        }
        for (int r = 0; r < kLaneRows; ++r) vstore(sum + r * lanes, acc[r]);
      }
    }
  }
}

void lane_weight_gradient(float* dw, const float* dy, const WinogradJob& job) {
  const TileGrid grid(job);
  const LaneChunks chunks(job, grid);
  const int64_t lanes = round_up(job.channels, kVecFloats), rows = round_up(job.out_channels, kLaneRows);
  // The copies: the padded input under the chunk's tile rows, and dy over whole tiles.
  const int64_t x_width = grid.tiles_w * kTile + 2, x_image = (chunks.rows * kTile + 2) * x_width * lanes;
  const int64_t y_width = grid.tiles_w * kTile, y_image = chunks.rows * kTile * y_width * rows;
  const int64_t v_point = odd_line_stride(chunks.tiles * lanes), dm_point = odd_line_stride(chunks.tiles * rows);
  const int64_t point = rows * lanes, pairs = job.out_channels * job.channels;
  const int64_t per_thread = chunks.images * (x_image + y_image) + kPoints * (v_point + dm_point);
  const int threads = num_threads();
  float* buffers = thread_scratch(Scratch::columns, per_thread * threads);
  float* partials = thread_scratch(Scratch::partial, kPoints * point * threads);
  float* du = thread_scratch(Scratch::weights, kPoints * pairs);
  const int64_t out_plane = job.out_h * job.out_w;
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    float* xl = buffers + tid * per_thread;
    float* yl = xl + chunks.images * x_image;
    float* v = yl + chunks.images * y_image;
    float* dm = v + kPoints * v_point;
    float* partial = partials + tid * kPoints * point;
    int64_t begin, end;
    team_range(chunks.count, true, &begin, &end);
    if (begin == end) std::memset(partial, 0, sizeof(float) * kPoints * point);  // otherwise the first chunk stores
    for (int64_t item = begin; item < end; ++item) {
      const LaneChunk chunk = chunks.at(item, job, grid);
      lane_input_transforms(v, v_point, xl, x_image, x_width, lanes, chunk, job);
      for (int64_t g = 0; g < chunk.images; ++g)
        copy_channels_last(yl + g * y_image, dy + (chunk.n0 + g) * job.out_channels * out_plane, job.out_channels,
                           job.out_h, job.out_w, 0, 0, chunk.row0 * kTile, chunk.rows * kTile, y_width, rows);
      for (int64_t t = 0; t < chunk.tiles; ++t) {  // A dY A^T of the tile, output channels in lanes
        const float* grad = yl + chunk.offset(t, y_image, y_width, rows);
        for (int64_t k = 0; k < rows; k += kVecFloats)
          lane_tile_transform<kTile>(dm + t * rows + k, dm_point, grad + k, y_width * rows, rows,
                                     [](const vfloat(&y)[kTile], vfloat(&m)[kAlpha]) { output_grad_transform_1d(y, m); });
      }
      lane_products(partial, point, dm, dm_point, rows, v, v_point, lanes, chunk.tiles, item > begin);
    }
    reduce_thread_partials(partials, partials, kPoints * point);
    int64_t lo, hi;  // the real rows and channels, in transform_weight_grads' layout
    team_range(kPoints * job.out_channels, true, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i)
      std::memcpy(du + i * job.channels, partials + i / job.out_channels * point + i % job.out_channels * lanes,
                  sizeof(float) * job.channels);
    team_barrier(true);
    transform_weight_grads(dw, du, job);
  }
}

// Whether 4x4 tiles cover an h x w output with at most half of their outputs wasted: on smaller
// or odd-sized maps (2x2, 5x5) the padding tiles eat the saving.
bool tiles_fit(int64_t h, int64_t w) {
  const int64_t tiles = ((h + kTile - 1) / kTile) * ((w + kTile - 1) / kTile);
  return 2 * h * w >= tiles * kTile * kTile;
}

bool winograd_shape(const Conv2dDesc& d) {
  return d.kernel_h == 3 && d.kernel_w == 3 && d.stride_h == 1 && d.stride_w == 1 && d.dilation_h == 1 &&
         d.dilation_w == 1 && d.groups == 1 && d.in_channels >= kMinChannels && d.out_channels >= kMinChannels;
}

// Whether the weight gradient's point GEMMs take these channel counts.
bool weight_grad_channels(const Conv2dDesc& d) {
  const auto in_range = [](int64_t channels) {
    return channels >= kMinWeightGradChannels && channels <= kMaxWeightGradChannels;
  };
  return in_range(d.in_channels) && in_range(d.out_channels);
}

// Whether the weight gradient runs with channels in lanes (lane_weight_gradient) instead.
bool lane_weight_grad_channels(const Conv2dDesc& d) {
  return d.in_channels <= kLaneMaxChannels && d.out_channels <= kLaneMaxChannels;
}

// The forward tiles of forward and backward-data: with channels in lanes up to kLaneConvChannels a
// side, otherwise as GEMMs.
void forward_tiles(const WinogradJob& job) {
  if (job.channels <= kLaneConvChannels && job.out_channels <= kLaneConvChannels)
    lane_convolution(job);
  else
    winograd_convolution(job);
}

}  // namespace

bool winograd_possible(ConvPass pass, const Conv2dDesc& d) {
  if (!winograd_shape(d)) return false;
  switch (pass) {
    case ConvPass::forward: return true;
    // dx is the convolution of dy padded by 2 - padding with the flipped weights.
    case ConvPass::backward_data: return d.pad_h <= 2 && d.pad_w <= 2;
    case ConvPass::backward_weight: return weight_grad_channels(d) || lane_weight_grad_channels(d);
  }
  return false;
}

bool winograd_applies(const Conv2dDesc& d) {
  return winograd_enabled() && winograd_possible(ConvPass::forward, d) && tiles_fit(d.out_h, d.out_w);
}

bool winograd_backward_weight_applies(const Conv2dDesc& d) {
  return winograd_applies(d) && winograd_possible(ConvPass::backward_weight, d);
}

bool winograd_backward_data_applies(const Conv2dDesc& d) {
  return winograd_enabled() && winograd_possible(ConvPass::backward_data, d) && tiles_fit(d.in_h, d.in_w);
}

void winograd_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d) {
  if (d.batch == 0) return;
  forward_tiles({d.batch, d.in_channels, d.in_h, d.in_w, d.pad_h, d.pad_w, d.out_channels, d.out_h, d.out_w, x, y, w,
                false, bias});
}

void winograd_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d) {
  if (d.batch == 0) return;
  forward_tiles({d.batch, d.out_channels, d.out_h, d.out_w, 2 - d.pad_h, 2 - d.pad_w, d.in_channels, d.in_h, d.in_w,
                dy, dx, w, true, nullptr});
}

void winograd_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d) {
  if (d.batch == 0) {
    for (int64_t i = 0; i < d.out_channels * d.in_channels * 9; ++i) dw[i] = 0.0f;
    return;
  }
  const WinogradJob job{d.batch, d.in_channels, d.in_h, d.in_w, d.pad_h, d.pad_w, d.out_channels, d.out_h, d.out_w,
                        x, nullptr, nullptr, false, nullptr};
  if (lane_weight_grad_channels(d))
    lane_weight_gradient(dw, dy, job);
  else
    winograd_weight_gradient(dw, dy, job);
}

PCN_ISA_END
