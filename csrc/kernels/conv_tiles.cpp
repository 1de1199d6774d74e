// Convolutions of bfloat16 operands on AMX tiles (see conv_tiles.h).
#include "kernels/conv_tiles.h"

#include <cstring>
#include <deque>
#include <vector>

#include "core/runtime.h"
#include "kernels/gemm_driver.h"
#include "kernels/run_queue.h"

PCN_ISA_BEGIN

bool tiles_possible(ConvPass pass, const Conv2dDesc& d) {
  if (!kGemmAmx || !d.bf16 || d.groups != 1) return false;
  // The channels-last copy and the weight tiles are gathered 16 values at a time with 32-bit offsets.
  const int64_t weights = d.in_channels * d.kernel_h * d.kernel_w;
  if (16 * d.in_h * d.in_w >= (int64_t(1) << 29) || 16 * d.out_h * d.out_w >= (int64_t(1) << 29) ||
      16 * weights >= (int64_t(1) << 29))
    return false;
  switch (pass) {
    case ConvPass::forward: return true;
    case ConvPass::backward_data:  // Note [backward-data phases]: every phase has taps
      return d.dilation_h == 1 && d.dilation_w == 1 && d.kernel_h >= d.stride_h && d.kernel_w >= d.stride_w;
    case ConvPass::backward_weight: return true;
  }
  return false;
}

#if defined(PCN_ISA_IS_amx)
namespace {

constexpr int64_t kTile = 16;   // rows and columns of a C tile
constexpr int64_t kBlock = 32;  // positions per block: two A tiles
constexpr int64_t kStep = 32;   // bfloat16 values along k per tile multiply (16 pairs)
constexpr int64_t kBTileWords = kTile * kTile;

struct TileGeometry {
  int64_t channels, padded_h, padded_w, taps, k, k_padded, k_steps, out_tiles, plane, positions, blocks;
  int64_t image_values;  // of the channels-last copy
  explicit TileGeometry(const Conv2dDesc& d)
      : channels(d.in_channels), padded_h(d.in_h + 2 * d.pad_h), padded_w(d.in_w + 2 * d.pad_w),
        taps(d.kernel_h * d.kernel_w), k(taps * channels), k_padded(round_up(k, kStep)), k_steps(k_padded / kStep),
        out_tiles((d.out_channels + kTile - 1) / kTile), plane(d.out_h * d.out_w), positions(d.batch * plane),
        blocks((positions + kBlock - 1) / kBlock), image_values(d.batch * padded_h * padded_w * channels) {}
};

// The tap of w that tap (r, s) of a tile convolution multiplies: row r0 + r * r_step and column
// s0 + s * s_step of w's kernel, which has `kernel_w` columns and `taps` taps.
struct WeightTaps {
  int64_t r0, r_step, s0, s_step, kernel_w, taps;
};

// Where output position (n, oh, ow) of out channel co goes: y + n * image + co * channel +
// oh * row + ow * column. The NCHW output of the convolution itself, or for a phase of a strided
// backward-data (Note [backward-data phases]) every stride-th pixel of dx.
struct OutputLayout {
  float* y;
  int64_t image, channel, row, column;
};

// Every tile is 16 rows of 64 bytes: C in 0-3, A in 4 and 5, B in 6 and 7.
void configure_tiles() {
  const uint8_t rows[8] = {kTile, kTile, kTile, kTile, kTile, kTile, kTile, kTile};
  amx_load_config(rows, 8);
}

// Lane i holds i * step.
static inline __m512i lane_multiples(int64_t step) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(static_cast<int>(step)));
}

// Rows [begin, end) of the zero-bordered channels-last copy, row r at xp + (r - first) rows: row
// (n, padded row) holds padded_w pixels of `channels` bfloat16 values, rounded to nearest even as
// pack_bf16_pairs rounds (zeros past the images).
void layout_rows(uint16_t* xp, const float* x, const Conv2dDesc& d, const TileGeometry& g, int64_t first,
                 int64_t begin, int64_t end) {
  const int64_t channels = g.channels, plane = d.in_h * d.in_w, row_values = g.padded_w * channels;
  const __m512i channel_offsets = lane_multiples(plane);
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / g.padded_h, ih = row % g.padded_h - d.pad_h;
    uint16_t* out = xp + (row - first) * row_values;
    if (n >= d.batch || ih < 0 || ih >= d.in_h) {
      std::memset(out, 0, sizeof(uint16_t) * row_values);
      continue;
    }
    std::memset(out, 0, sizeof(uint16_t) * d.pad_w * channels);
    std::memset(out + (d.pad_w + d.in_w) * channels, 0, sizeof(uint16_t) * (g.padded_w - d.pad_w - d.in_w) * channels);
    const float* in = x + (n * channels * d.in_h + ih) * d.in_w;  // channel c of pixel iw: in[c * plane + iw]
    if (channels < kTile) {
      // Few channels (3 in an image's first layer): a gather per pixel would load 3 of its 16
      // lanes. The channels' rows are rounded a vector at a time, then interleaved value by value.
      alignas(64) uint16_t rounded[kTile][kTile];
      for (int64_t iw0 = 0; iw0 < d.in_w; iw0 += kTile) {
        const int64_t count = min64(kTile, d.in_w - iw0);
        const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1);
        for (int64_t c = 0; c < channels; ++c) {
          const __m512 v = _mm512_maskz_loadu_ps(mask, in + c * plane + iw0);
          _mm256_store_si256(reinterpret_cast<__m256i*>(rounded[c]), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
        }
        uint16_t* pixels = out + (d.pad_w + iw0) * channels;
        for (int64_t i = 0; i < count; ++i)
          for (int64_t c = 0; c < channels; ++c) pixels[i * channels + c] = rounded[c][i];
      }
      continue;
    }
    for (int64_t iw = 0; iw < d.in_w; ++iw) {
      uint16_t* pixel = out + (d.pad_w + iw) * channels;
      for (int64_t c0 = 0; c0 < channels; c0 += kTile) {
        const __mmask16 mask = static_cast<__mmask16>((1u << min64(kTile, channels - c0)) - 1);
        const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, channel_offsets, in + c0 * plane + iw, 4);
        _mm256_mask_storeu_epi16(pixel + c0, mask, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
      }
    }
  }
}

// B tiles of the weights, out-channel tiles [t_begin, t_end): tile (t, s) holds out channels
// [16t, 16t + 16) and k [32s, 32s + 32) at words (t * k_steps + s) * 256, word r * 16 + j the pair
// k = 32s + 2r, k + 1 of out channel 16t + j, where k = tap * channels + c reads w[co][c][w_tap],
// or (`flipped`: w holds the weights of the convolution whose backward-data this is, out channels
// and channels swapped) w[c][co][w_tap], w_tap the tap of w that `taps` maps tap to (at stride 1,
// taps - 1 - tap); zeros past k and out_channels.
void pack_weight_tiles(uint32_t* bp, const float* w, bool flipped, const WeightTaps& taps, const Conv2dDesc& d,
                       const TileGeometry& g, int64_t t_begin, int64_t t_end) {
  // Lane j reads out channel 16t + j: a gather of one k for the tile's 16 out channels.
  const int64_t lane_step = flipped ? taps.taps : g.channels * taps.taps;
  const __m512i lanes = lane_multiples(lane_step);
  const auto column_values = [&](int64_t k, int64_t co0, __mmask16 mask) -> __m512i {
    if (k >= g.k) return _mm512_setzero_si512();
    const int64_t tap = k / g.channels, c = k % g.channels, r = tap / d.kernel_w, s = tap % d.kernel_w;
    const int64_t w_tap = (taps.r0 + r * taps.r_step) * taps.kernel_w + taps.s0 + s * taps.s_step;
    const float* base = flipped ? w + (c * d.out_channels + co0) * taps.taps + w_tap
                                : w + (co0 * g.channels + c) * taps.taps + w_tap;
    const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, lanes, base, 4);
    return _mm512_cvtepu16_epi32(reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
  };
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t co0 = t * kTile;
    const __mmask16 mask = static_cast<__mmask16>((1u << min64(kTile, d.out_channels - co0)) - 1);
    uint32_t* tiles = bp + t * g.k_steps * kBTileWords;
    for (int64_t pair = 0; pair < g.k_padded / 2; ++pair) {  // row pair % 16 of tile pair / 16
      const __m512i even = column_values(2 * pair, co0, mask), odd = column_values(2 * pair + 1, co0, mask);
      _mm512_storeu_si512(tiles + pair * kTile, _mm512_or_si512(even, _mm512_slli_epi32(odd, 16)));
    }
  }
}

// n half-words from src to dst, as masked vectors: most runs are a few hundred bytes or less,
// where a memcpy call costs more than the copy.
static inline void copy_halves(uint16_t* dst, const uint16_t* src, int64_t n) {
  for (int64_t i = 0; i < n; i += 32) {
    const int64_t count = min64(32, n - i);
    const __mmask32 mask = static_cast<__mmask32>(count == 32 ? ~0u : (1u << count) - 1);
    _mm512_mask_storeu_epi16(dst + i, mask, _mm512_maskz_loadu_epi16(mask, src + i));
  }
}

// Values [k_begin, k_end) of the patches of positions [f0, f0 + 32) (flat over images, zeros past
// the last) as rows of `width` bfloat16 values, zeros past k.
void build_patches(uint16_t* a, const uint16_t* xp, const Conv2dDesc& d, const TileGeometry& g, int64_t f0,
                   int64_t k_begin, int64_t k_end, int64_t width) {
  const int64_t c = g.channels, row_values = d.kernel_w * c, last = min64(k_end, g.k);
  const int64_t filled = max64(0, last - k_begin);
  if (d.dilation_w == 1 && row_values <= 32 && k_begin == 0 && last == g.k) {
    // Few channels (ResNet's first layer: 7 rows of 21 values): each kernel row is one masked
    // copy with a fixed mask, the position stepped along rather than divided out.
    const __mmask32 mask = static_cast<__mmask32>(row_values == 32 ? ~0u : (1u << row_values) - 1);
    const int64_t row_step = d.dilation_h * g.padded_w * c;
    int64_t n = f0 / g.plane, oh = f0 % g.plane / d.out_w, ow = f0 % d.out_w;
    for (int64_t i = 0; i < kBlock; ++i) {
      uint16_t* row = a + i * width;
      if (f0 + i >= g.positions) {
        std::memset(row, 0, sizeof(uint16_t) * width);
        continue;
      }
      const uint16_t* src = xp + ((n * g.padded_h + oh * d.stride_h) * g.padded_w + ow * d.stride_w) * c;
      for (int64_t r = 0; r < d.kernel_h; ++r)
        _mm512_mask_storeu_epi16(row + r * row_values, mask, _mm512_maskz_loadu_epi16(mask, src + r * row_step));
      std::memset(row + filled, 0, sizeof(uint16_t) * (width - filled));
      if (++ow == d.out_w) {
        ow = 0;
        if (++oh == d.out_h) oh = 0, ++n;
      }
    }
    return;
  }
  for (int64_t i = 0; i < kBlock; ++i) {
    uint16_t* row = a + i * width;
    const int64_t f = f0 + i;
    if (f >= g.positions) {
      std::memset(row, 0, sizeof(uint16_t) * width);
      continue;
    }
    const int64_t n = f / g.plane, p = f % g.plane, oh = p / d.out_w, ow = p % d.out_w;
    for (int64_t r = k_begin / row_values; r * row_values < last; ++r) {
      // The kernel row's pixels, then the part of its values in [k_begin, last).
      const uint16_t* src =
          xp + ((n * g.padded_h + oh * d.stride_h + r * d.dilation_h) * g.padded_w + ow * d.stride_w) * c;
      const int64_t lo = max64(k_begin, r * row_values), hi = min64(last, (r + 1) * row_values);
      if (d.dilation_w == 1) {
        copy_halves(row + lo - k_begin, src + lo - r * row_values, hi - lo);
        continue;
      }
      for (int64_t s = 0; s < d.kernel_w; ++s) {
        const int64_t tap = r * row_values + s * c, from = max64(lo, tap), to = min64(hi, tap + c);
        if (from < to) copy_halves(row + from - k_begin, src + s * d.dilation_w * c + from - tap, to - from);
      }
    }
    std::memset(row + filled, 0, sizeof(uint16_t) * (width - filled));
  }
}

// Where 16 consecutive positions of a block land in the output: runs of lanes whose output
// pixels follow each other (`column` apart) within one image, at `offset` from channel 0 of image
// 0. Positions are flat over the images' output planes, or (`grid`, Note [grid positions]) over
// the padded images, where positions outside the output are dropped.
struct LaneRun {
  int lane, count;
  int64_t offset;
};

int lane_runs(LaneRun* runs, int64_t f, bool grid, const Conv2dDesc& d, const TileGeometry& g,
              const OutputLayout& out) {
  const bool planes = out.column == 1 && out.row == d.out_w;  // each channel's positions are one run
  int count = 0;
  for (int lane = 0; lane < kTile; ++lane) {
    const int64_t q = f + lane;
    int64_t n, p;
    if (grid) {
      const int64_t padded_plane = g.padded_h * g.padded_w, rest = q % padded_plane;
      const int64_t row = rest / g.padded_w, column = rest % g.padded_w;
      n = q / padded_plane;
      if (n >= d.batch) break;
      if (row >= d.out_h || column >= d.out_w) continue;
      p = row * d.out_w + column;
    } else {
      if (q >= g.positions) break;
      n = q / g.plane, p = q % g.plane;
    }
    const int64_t offset = n * out.image + (planes ? p : p / d.out_w * out.row + p % d.out_w * out.column);
    LaneRun* last = count > 0 ? &runs[count - 1] : nullptr;
    if (last && last->lane + last->count == lane && last->offset + last->count * out.column == offset)
      ++last->count;
    else
      runs[count++] = {lane, 1, offset};
  }
  return count;
}

// r[i] (row i of a 16 x 16 block) becomes column i.
static inline void transpose16x16(__m512 (&r)[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // Rows 4i..4i+3 of column 4L + m now lie in 128-bit lane L of r[4i + m].
  for (int i = 0; i < 16; i += 4)
    for (int h = 0; h < 2; ++h) {
      const __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + h + 2]);
      r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
      r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    }
  for (int m = 0; m < 4; ++m) {
    const __m512 even0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88), odd0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xDD);
    const __m512 even1 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);
    const __m512 odd1 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xDD);
    t[m] = _mm512_shuffle_f32x4(even0, even1, 0x88);
    t[4 + m] = _mm512_shuffle_f32x4(odd0, odd1, 0x88);
    t[8 + m] = _mm512_shuffle_f32x4(even0, even1, 0xDD);
    t[12 + m] = _mm512_shuffle_f32x4(odd0, odd1, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// stage (32 positions x 32 out channels, from out channel co0; `columns` of them exist) plus the
// bias into the output, 16 x 16 at a time transposed in registers.
void store_transposed(const OutputLayout& out, const float* stage, const float* bias, const Conv2dDesc& d,
                      const TileGeometry& g, int64_t f0, bool grid, int64_t co0, int64_t columns) {
  const __m512i spread = lane_multiples(out.column);  // a phase's pixels, `column` apart
  for (int64_t half = 0; half < kBlock; half += kTile) {
    LaneRun runs[kTile];
    const int count = lane_runs(runs, f0 + half, grid, d, g, out);
    if (count == 0) continue;
    for (int64_t j0 = 0; j0 < columns; j0 += kTile) {
      __m512 v[kTile];
      for (int64_t i = 0; i < kTile; ++i) v[i] = _mm512_load_ps(stage + (half + i) * kBlock + j0);
      transpose16x16(v);
      for (int64_t j = j0; j < min64(columns, j0 + kTile); ++j) {
        const int64_t co = co0 + j;
        const __m512 values = bias ? _mm512_add_ps(v[j - j0], _mm512_set1_ps(bias[co])) : v[j - j0];
        float* channel = out.y + co * out.channel;
        for (int r = 0; r < count; ++r) {
          const __mmask16 mask = static_cast<__mmask16>((1u << runs[r].count) - 1);
          const __m512 lanes = runs[r].lane == 0
                                   ? values
                                   : _mm512_maskz_compress_ps(static_cast<__mmask16>(mask << runs[r].lane), values);
          float* to = channel + runs[r].offset;
          if (out.column == 1) {
            _mm512_mask_storeu_ps(to, mask, lanes);
          } else if (out.column == 2) {  // every second float: the lanes spread to even ones, 8 a store
            const int low = runs[r].count < 8 ? runs[r].count : 8, high = runs[r].count - low;
            _mm512_mask_storeu_ps(to, static_cast<__mmask16>(0x5555u & ((1u << 2 * low) - 1)),
                                  _mm512_maskz_expand_ps(0x5555, lanes));
            if (high > 0)
              _mm512_mask_storeu_ps(to + 16, static_cast<__mmask16>(0x5555u & ((1u << 2 * high) - 1)),
                                    _mm512_maskz_expand_ps(0x5555, _mm512_shuffle_f32x4(lanes, lanes, 0xEE)));
          } else {
            _mm512_mask_i32scatter_ps(to, mask, spread, lanes, 4);
          }
        }
      }
    }
  }
}

// The A tiles of one block: step s of k (a step of the chunk from s_begin) starts at
// a + steps[s - s_begin], the second tile's rows `second` values after the first's, rows a_stride
// bytes apart.
struct BlockRows {
  const uint16_t* a;
  const int64_t* steps;
  int64_t second, a_stride;
};

// Steps [s_begin, s_end) of k of one block of 32 positions against every out channel, two C
// tiles' columns at a time. The first chunk of k starts from zero, the others from the block's
// float32 sums in acc (32 x 32 per pair of out tiles); the last stores to the output, the others
// to acc.
void multiply_block(const OutputLayout& out, const BlockRows& rows, const uint32_t* bp, const float* bias,
                    const Conv2dDesc& d, const TileGeometry& g, int64_t f0, bool grid, int64_t s_begin, int64_t s_end,
                    float* acc, bool first, bool last) {
  alignas(64) float stage[kBlock * kBlock];
  const int64_t c_stride = kBlock * sizeof(float);
  const uint16_t* a = rows.a;
  const uint16_t* a1 = a + rows.second;
  for (int64_t t0 = 0; t0 < g.out_tiles; t0 += 2) {
    const int64_t t1 = min64(t0 + 1, g.out_tiles - 1);  // an odd last tile is multiplied twice
    const uint32_t* b0 = bp + t0 * g.k_steps * kBTileWords;
    const uint32_t* b1 = bp + t1 * g.k_steps * kBTileWords;
    float* sums = acc + t0 / 2 * kBlock * kBlock;
    if (first) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
    } else {
      _tile_loadd(0, sums, c_stride);
      _tile_loadd(1, sums + kTile, c_stride);
      _tile_loadd(2, sums + kTile * kBlock, c_stride);
      _tile_loadd(3, sums + kTile * kBlock + kTile, c_stride);
    }
    for (int64_t s = s_begin; s < s_end; ++s) {
      const int64_t step = rows.steps[s - s_begin];
      _tile_loadd(4, a + step, rows.a_stride);
      _tile_loadd(5, a1 + step, rows.a_stride);
      _tile_loadd(6, b0 + s * kBTileWords, 64);
      _tile_loadd(7, b1 + s * kBTileWords, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    float* c = last ? stage : sums;
    _tile_stored(0, c, c_stride);
    _tile_stored(1, c + kTile, c_stride);
    _tile_stored(2, c + kTile * kBlock, c_stride);
    _tile_stored(3, c + kTile * kBlock + kTile, c_stride);
    if (!last) continue;
    amx_memory_barrier();
    store_transposed(out, stage, bias, d, g, f0, grid, t0 * kTile, min64(kBlock, d.out_channels - t0 * kTile));
  }
}

// ---------------------------------------------------------------- weight gradient
// dW_tap (out channels x channels) = dY^T (out channels x positions) * X_tap (positions x channels)
// for each tap, the positions (the reduction) running through 16 pairs per tile step: A tiles are
// rows of dy, rounded to bfloat16 for a span of positions (dy_rows); B tiles are the tap's pixel
// vectors of the channels-last copy, two positions interleaved per row of pairs (tap_pairs), or
// for few channels the whole patches as one group of taps (patch_pairs). The C tiles (16 out
// channels x 16 columns) of a (group, out-channel pair) item stay in tile registers through a span
// and in a float32 table between spans. Threads take whole items of a shared span, or whole parts
// of the spans with tables of their own (Note [weight gradient parts]), so the sums do not depend
// on the team.

// dy rows of positions [f0, f0 + span), rounded, rows of span values `stride` apart (zeros past the
// out channels and the positions). Positions are flat over the output planes, or (`grid`, Note
// [grid weight gradient]) over the padded images, zeros where a grid position is dropped.
void dy_rows(uint16_t* out, const float* dy, const Conv2dDesc& d, const TileGeometry& g, bool grid, int64_t f0,
             int64_t span, int64_t stride, int64_t co_begin, int64_t co_end) {
  const int64_t padded_plane = g.padded_h * g.padded_w;
  // The run of positions from f, at most `limit` long, that is consecutive in dy: its length, and
  // its offset in channel 0 of dy or -1 where the run is zeros.
  const auto run_at = [&](int64_t f, int64_t limit, int64_t* offset) -> int64_t {
    *offset = -1;
    if (!grid) {
      if (f >= g.positions) return limit;
      const int64_t n = f / g.plane, p = f % g.plane;
      *offset = n * d.out_channels * g.plane + p;
      return min64(limit, g.plane - p);
    }
    const int64_t n = f / padded_plane, rest = f % padded_plane, row = rest / g.padded_w, column = rest % g.padded_w;
    if (n >= d.batch) return limit;
    if (row >= d.out_h) return min64(limit, padded_plane - rest);
    if (column >= d.out_w) return min64(limit, g.padded_w - column);
    *offset = n * d.out_channels * g.plane + row * d.out_w + column;
    return min64(limit, d.out_w - column);
  };
  // The runs are found a batch at a time (divisions), then copied for every out channel.
  constexpr int kRuns = 64;
  struct Run {
    int64_t at, length, offset;
  } runs[kRuns];
  for (int64_t j = 0; j < span;) {
    int count = 0;
    for (; count < kRuns && j < span; ++count) {
      int64_t offset;
      const int64_t length = run_at(f0 + j, span - j, &offset);
      runs[count] = {j, length, offset};
      j += length;
    }
    for (int64_t co = co_begin; co < min64(co_end, d.out_channels); ++co) {
      uint16_t* row = out + co * stride;
      for (int r = 0; r < count; ++r) {
        const Run& run = runs[r];
        if (run.offset < 0) {
          std::memset(row + run.at, 0, sizeof(uint16_t) * run.length);
          continue;
        }
        const float* src = dy + run.offset + co * g.plane;
        for (int64_t i = 0; i < run.length; i += kTile) {
          const __mmask16 mask = static_cast<__mmask16>((1u << min64(kTile, run.length - i)) - 1);
          const __m512 v = _mm512_maskz_loadu_ps(mask, src + i);
          _mm256_mask_storeu_epi16(row + run.at + i, mask, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
        }
      }
    }
  }
  for (int64_t co = max64(co_begin, d.out_channels); co < co_end; ++co)
    std::memset(out + co * stride, 0, sizeof(uint16_t) * span);
}

// row (width words, width a multiple of 16): word i pairs value i of a and of b, the first
// `count` values of each (a null a or b: zeros), zeros after.
static inline void interleave_pair(uint32_t* row, const uint16_t* a, const uint16_t* b, int64_t count, int64_t width) {
  // Half-word 2i of a row of pairs takes value i of a, 2i + 1 value i of b (32 + i in the
  // permutation's second source).
  static const struct Order {
    alignas(64) uint16_t index[32];
    Order() {
      for (int i = 0; i < 32; ++i) index[i] = static_cast<uint16_t>(i / 2 + (i % 2) * 32);
    }
  } order;
  const __m512i low = _mm512_load_si512(order.index);
  const __m512i high = _mm512_add_epi16(low, _mm512_set1_epi16(16));
  for (int64_t c0 = 0; c0 < width; c0 += 32) {
    const int64_t n = max64(0, min64(32, count - c0));
    const __mmask32 mask = static_cast<__mmask32>(n == 32 ? ~0u : (1u << n) - 1);
    const __m512i va = a ? _mm512_maskz_loadu_epi16(mask, a + c0) : _mm512_setzero_si512();
    const __m512i vb = b ? _mm512_maskz_loadu_epi16(mask, b + c0) : _mm512_setzero_si512();
    _mm512_storeu_si512(row + c0, _mm512_permutex2var_epi16(va, low, vb));
    if (c0 + kTile < width) _mm512_storeu_si512(row + c0 + kTile, _mm512_permutex2var_epi16(va, high, vb));
  }
}

// Tap `tap`'s pixel vectors for positions [f0, f0 + span) as span / 2 rows of `columns` words,
// word c of row q pairing channel c of positions 2q and 2q + 1 (zeros past the channels and the
// positions).
void tap_pairs(uint32_t* out, const uint16_t* xp, const Conv2dDesc& d, const TileGeometry& g, int64_t columns,
               int64_t tap, int64_t f0, int64_t span) {
  const int64_t c = g.channels, r = tap / d.kernel_w, s = tap % d.kernel_w;
  // Position f0 + i is (n, oh, ow), stepped along rather than divided out for each pixel (the
  // divisions took longer than the pixel's copy).
  int64_t n = f0 / g.plane, oh = f0 % g.plane / d.out_w, ow = f0 % d.out_w;
  const auto next_pixel = [&](int64_t f) -> const uint16_t* {
    if (f >= g.positions) return nullptr;
    const uint16_t* pixel = xp + ((n * g.padded_h + oh * d.stride_h + r * d.dilation_h) * g.padded_w +
                                  ow * d.stride_w + s * d.dilation_w) * c;
    if (++ow == d.out_w) {
      ow = 0;
      if (++oh == d.out_h) oh = 0, ++n;
    }
    return pixel;
  };
  for (int64_t q = 0; q < span / 2; ++q) {
    const uint16_t* a = next_pixel(f0 + 2 * q);
    const uint16_t* b = next_pixel(f0 + 2 * q + 1);
    interleave_pair(out + q * columns, a, b, c, columns);
  }
}

// Rows [begin, end) of a span's pixel pairs (Note [grid weight gradient]): row j, `columns` words,
// pairs channel c of padded pixels first + j and first + j + 1 (flat over the zero-bordered
// images, zeros in the border, past the images and past the channels), rounded from x itself.
void pixel_pairs(uint32_t* out, const float* x, const Conv2dDesc& d, const TileGeometry& g, int64_t columns,
                 int64_t first, int64_t begin, int64_t end) {
  const int64_t plane = d.in_h * d.in_w, padded_plane = g.padded_h * g.padded_w;
  const __m512i channel_offsets = lane_multiples(plane);
  for (int64_t c0 = 0; c0 < columns; c0 += kTile) {
    const __mmask16 mask = static_cast<__mmask16>((1u << min64(kTile, g.channels - c0)) - 1);
    // The pixel's (image, padded row, padded column), stepped along; its 16 channels from c0,
    // rounded, in the low halves of 32-bit lanes.
    int64_t n = (first + begin) / padded_plane, row = (first + begin) % padded_plane / g.padded_w,
            column = (first + begin) % g.padded_w;
    const auto values = [&]() -> __m512i {
      const int64_t ih = row - d.pad_h, iw = column - d.pad_w;
      if (n >= d.batch || ih < 0 || ih >= d.in_h || iw < 0 || iw >= d.in_w) return _mm512_setzero_si512();
      const float* base = x + ((n * g.channels + c0) * d.in_h + ih) * d.in_w + iw;
      const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, channel_offsets, base, 4);
      return _mm512_cvtepu16_epi32(reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
    };
    const auto next_pixel = [&]() {
      if (++column == g.padded_w) {
        column = 0;
        if (++row == g.padded_h) row = 0, ++n;
      }
    };
    __m512i current = values();
    for (int64_t j = begin; j < end; ++j) {
      next_pixel();
      const __m512i following = values();
      _mm512_storeu_si512(out + j * columns + c0, _mm512_or_si512(current, _mm512_slli_epi32(following, 16)));
      current = following;
    }
  }
}

// The whole patches (k_padded values) of positions [f0, f0 + span) as span / 2 rows of k_padded
// words pairing positions 2q and 2q + 1; `block` holds 32 patches on the way.
void patch_pairs(uint32_t* out, uint16_t* block, const uint16_t* xp, const Conv2dDesc& d, const TileGeometry& g,
                 int64_t f0, int64_t span) {
  for (int64_t b = 0; b < span; b += kBlock) {
    build_patches(block, xp, d, g, f0 + b, 0, g.k_padded, g.k_padded);
    for (int64_t q = 0; q < kBlock / 2; ++q)
      interleave_pair(out + (b / 2 + q) * g.k_padded, block + 2 * q * g.k_padded, block + (2 * q + 1) * g.k_padded,
                      g.k_padded, g.k_padded);
  }
}

// C tiles (out-channel tile pair from ct0, channel tiles from kt0; kRows and kCols of them) of one
// group's table (row stride `columns` floats) += A rows (span wide, a_values apart) * B pairs over a span
// (rows of pairs b_stride words apart).
template <bool kTwoRows, bool kTwoCols>
void reduce_span(float* table, const uint16_t* a, int64_t a_values, const uint32_t* b, int64_t b_stride, int64_t span,
                 int64_t columns, int64_t ct0, int64_t kt0, bool first) {
  const int64_t c_stride = columns * sizeof(float), a_stride = a_values * sizeof(uint16_t);
  const int64_t b_bytes = b_stride * sizeof(uint32_t);
  float* c00 = table + ct0 * kTile * columns + kt0 * kTile;
  float* c10 = c00 + kTile * columns;
  if (first) {
    _tile_zero(0);
    if constexpr (kTwoCols) _tile_zero(1);
    if constexpr (kTwoRows) _tile_zero(2);
    if constexpr (kTwoRows && kTwoCols) _tile_zero(3);
  } else {
    _tile_loadd(0, c00, c_stride);
    if constexpr (kTwoCols) _tile_loadd(1, c00 + kTile, c_stride);
    if constexpr (kTwoRows) _tile_loadd(2, c10, c_stride);
    if constexpr (kTwoRows && kTwoCols) _tile_loadd(3, c10 + kTile, c_stride);
  }
  const uint16_t* a0 = a + ct0 * kTile * a_values;
  const uint16_t* a1 = a0 + kTile * a_values;
  for (int64_t step = 0; step < span; step += kStep) {
    const uint32_t* b0 = b + step / 2 * b_stride + kt0 * kTile;
    _tile_loadd(4, a0 + step, a_stride);
    _tile_loadd(6, b0, b_bytes);
    if constexpr (kTwoCols) _tile_loadd(7, b0 + kTile, b_bytes);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (kTwoCols) _tile_dpbf16ps(1, 4, 7);
    if constexpr (kTwoRows) {
      _tile_loadd(5, a1 + step, a_stride);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (kTwoCols) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c00, c_stride);
  if constexpr (kTwoCols) _tile_stored(1, c00 + kTile, c_stride);
  if constexpr (kTwoRows) _tile_stored(2, c10, c_stride);
  if constexpr (kTwoRows && kTwoCols) _tile_stored(3, c10 + kTile, c_stride);
}

// Note [grid positions]
// At stride 1, number the positions over the zero-bordered images instead of the output planes:
// grid position q = (n * padded_h + row) * padded_w + column reads tap (r, s) at pixel
// q + r * dilation_h * padded_w + s * dilation_w of the channels-last copy. A tile of 16
// consecutive grid positions then loads straight from that image, one pixel's channels a row,
// with no patches copied; the grid positions whose window leaves the image (the last rows and
// columns of each padded image) are computed and dropped. That pays while few are dropped and a
// step of k is 32 channels of one tap (channels a multiple of 32).
bool grid_fits(const Conv2dDesc& d, const TileGeometry& g) {
  return d.stride_h == 1 && d.stride_w == 1 && 4 * g.padded_h * g.padded_w <= 5 * g.plane;  // a fifth dropped
}

bool grid_applies(const Conv2dDesc& d, const TileGeometry& g) { return g.channels % kStep == 0 && grid_fits(d, g); }

// Note [grid weight gradient]
// The weight gradient numbers its positions over the padded images too where they fit (stride 1,
// little dropped). Tap (r, s) of grid positions q and q + 1 is then the pair of padded pixels
// q + o and q + o + 1, o = r * dilation_h * padded_w + s * dilation_w, so one table of pairs for
// every pixel of a span (both parities: pixel_pairs, rounded from x with no channels-last copy)
// serves all the taps: tap o's B tile is its rows o + step, o + step + 2, ..., o + step + 30. The
// tap-by-tap path instead interleaves a copy of the span's pixels for each tap (tap_pairs), nine
// copies for a 3 x 3 kernel. dy's rows hold zeros at the dropped grid positions, so those add
// nothing.

// One stride-1 convolution over the channels-last copy of x: the kernel and positions of `d`
// (whose input, channels and padding are the copy's), the taps of w it multiplies, where its
// position 0 reads its first tap (`origin_h` rows and `origin_w` pixels into each image's copy)
// and where its outputs go. A convolution is one phase; a strided backward-data has several (Note
// [backward-data phases]).
struct TilePhase {
  Conv2dDesc d;
  WeightTaps taps;
  int64_t origin_h, origin_w;
  OutputLayout out;
};

// A phase's share of the work: its geometry, its chunks of k, its B tiles and its queue of blocks.
struct PhaseWork {
  TileGeometry g;
  int64_t chunk_values, chunks, group, blocks, b_offset;  // its B tiles b_offset words into the B buffer
  RunQueue queue;
  explicit PhaseWork(const Conv2dDesc& d) : g(d) {}
};

// The phases (all of them over one copy of x, so with the same input, channels, padding and out
// channels) with w, or with the flipped weights of the convolution whose backward-data they are
// (pack_weight_tiles).
void tile_convolution(const std::vector<TilePhase>& phases, const float* x, const float* w, bool flipped,
                      const float* bias) {
  const Conv2dDesc& d = phases[0].d;
  if (d.batch == 0) return;
  const TileGeometry g(d);  // the copy's
  const int threads = num_threads();
  const bool grid = phases.size() == 1 && phases[0].origin_h == 0 && phases[0].origin_w == 0 && grid_applies(d, g);
  // Chunks of k whose B tiles, for every out channel, take at most 512 KiB, so that they stay in
  // L2 while the blocks stream past (VGG's 512-channel layers have 4.5 MiB of them), and the
  // block's patches for the chunk (32 rows) stay in L1 with them.
  const int64_t out_pairs = (g.out_tiles + 1) / 2;
  const int64_t chunk_limit = max64(kStep, (int64_t(1) << 18) / (g.out_tiles * kTile) / kStep * kStep);
  std::deque<PhaseWork> work;  // not moved: each holds an atomic
  int64_t width = kStep, acc_floats = 0, b_words = 0;
  for (const TilePhase& phase : phases) {
    PhaseWork& p = work.emplace_back(phase.d);
    p.chunk_values = min64(p.g.k_padded, chunk_limit);
    p.chunks = (p.g.k_padded + p.chunk_values - 1) / p.chunk_values;
    // Blocks taken through all the chunks together: their sums between chunks take at most 1 MiB.
    p.group = p.chunks == 1 ? 1 : max64(1, (int64_t(1) << 18) / (out_pairs * kBlock * kBlock));
    p.blocks = grid ? ((d.batch - 1) * g.padded_h * g.padded_w + (d.out_h - 1) * g.padded_w + d.out_w + kBlock - 1) /
                          kBlock
                    : p.g.blocks;
    width = max64(width, p.chunk_values);
    acc_floats = max64(acc_floats, p.chunks == 1 ? 0 : p.group * out_pairs * kBlock * kBlock);
    p.b_offset = b_words;
    b_words += g.out_tiles * p.g.k_steps * kBTileWords;
  }
  // Grid positions with k in one chunk go in bands: each thread lays out the rows of the
  // channels-last copy its next blocks read (about 256 KiB, plus the `reach` rows one block reads
  // from its first row) and multiplies them while they are in L2, instead of the team writing the
  // whole copy to memory and reading it back. Otherwise the whole copy is made first; the last
  // grid block reads up to a block of pixels past the images.
  const bool banded = grid && work[0].chunks == 1;
  const int64_t copy_row = g.padded_w * g.channels;  // values of a row of the copy
  const int64_t last_offset = (d.kernel_h - 1) * d.dilation_h * g.padded_w + (d.kernel_w - 1) * d.dilation_w;
  const int64_t reach = (g.padded_w + kBlock - 2 + last_offset) / g.padded_w + 1;
  const int64_t band_rows = reach + max64(1, (int64_t(1) << 17) / copy_row);
  const int64_t slack = grid && !banded ? kBlock * g.channels : 0;
  const int64_t copy_values = banded ? threads * band_rows * copy_row : g.image_values + slack;
  uint16_t* xp = reinterpret_cast<uint16_t*>(thread_scratch(Scratch::columns, (copy_values + 1) / 2));
  uint32_t* bp = reinterpret_cast<uint32_t*>(thread_scratch(Scratch::pack_b, b_words));
  uint16_t* patches =
      grid ? nullptr : reinterpret_cast<uint16_t*>(thread_scratch(Scratch::pack_a, threads * kBlock * width / 2));
  float* sums = thread_scratch(Scratch::partial, threads * acc_floats);
  // Where each step of k starts: in the image for grid positions (tap and channel offset), else in
  // the chunk's patch rows.
  int64_t* steps = thread_scratch_i64(Scratch::indices, grid ? g.k_steps : width / kStep);
  for (int64_t s = 0; s < (grid ? g.k_steps : width / kStep); ++s) {
    const int64_t tap = s * kStep / g.channels, r = tap / d.kernel_w, c = tap % d.kernel_w;
    steps[s] = grid ? (r * d.dilation_h * g.padded_w + c * d.dilation_w) * g.channels + s * kStep % g.channels
                    : s * kStep;
  }
  if (!banded) std::memset(xp + g.image_values, 0, sizeof(uint16_t) * slack);
  for (PhaseWork& p : work) {
    // Blocks go in guided runs of at least a band's worth (its rows less the reach), or a
    // sixteenth of a thread's share. With k in chunks a thread takes its whole share in one run:
    // each run reads every chunk's B tiles again (4.5 MiB for a 512-channel layer).
    p.queue.reset(p.blocks, p.chunks > 1 ? (p.blocks + threads - 1) / threads
                            : banded     ? (band_rows - reach) * g.padded_w / kBlock
                                         : p.blocks / (16 * threads),
                  threads);
  }
  const int64_t pack_items = static_cast<int64_t>(work.size()) * g.out_tiles;
#pragma omp parallel num_threads(threads)
  {
    int64_t begin, end;
    if (!banded) {
      team_range(d.batch * g.padded_h, true, &begin, &end);
      layout_rows(xp, x, d, g, 0, begin, end);
    }
    uint16_t* band = banded ? xp + omp_get_thread_num() * band_rows * copy_row : nullptr;
    int64_t band_first = -1;  // the band's first row, -1 before the first
    team_range(pack_items, true, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t i = item / g.out_tiles, t = item % g.out_tiles;
      pack_weight_tiles(bp + work[i].b_offset, w, flipped, phases[i].taps, phases[i].d, work[i].g, t, t + 1);
    }
    team_barrier(true);
    amx_memory_barrier();
    configure_tiles();
    uint16_t* a = grid ? nullptr : patches + omp_get_thread_num() * kBlock * width;
    float* acc = sums + omp_get_thread_num() * acc_floats;
    for (size_t i = 0; i < work.size(); ++i) {  // no barrier between phases: their outputs are apart
      PhaseWork& p = work[i];
      const TilePhase& phase = phases[i];
      const uint16_t* origin = xp + (phase.origin_h * g.padded_w + phase.origin_w) * g.channels;
      while (p.queue.next(&begin, &end)) {
        for (int64_t first = begin; first < end; first += p.group) {
          const int64_t count = min64(p.group, end - first);
          for (int64_t chunk = 0; chunk < p.chunks; ++chunk) {
            const int64_t k_begin = chunk * p.chunk_values, k_end = min64(p.g.k_padded, k_begin + p.chunk_values);
            const int64_t s_begin = k_begin / kStep, s_end = k_end / kStep;
            for (int64_t block = first; block < first + count; ++block) {
              BlockRows rows;
              if (grid) {
                const uint16_t* a_rows = xp + block * kBlock * g.channels;
                if (banded) {
                  const int64_t f = block * kBlock, last_row = (f + kBlock - 1 + last_offset) / g.padded_w;
                  if (band_first < 0 || last_row >= band_first + band_rows) {
                    band_first = f / g.padded_w;
                    layout_rows(band, x, d, g, band_first, band_first, band_first + band_rows);
                    amx_memory_barrier();
                  }
                  a_rows = band + (f - band_first * g.padded_w) * g.channels;
                }
                rows = {a_rows, steps + s_begin, kTile * g.channels,
                        static_cast<int64_t>(g.channels * sizeof(uint16_t))};
              } else {
                build_patches(a, origin, phase.d, p.g, block * kBlock, k_begin, k_end, k_end - k_begin);
                amx_memory_barrier();
                const int64_t row_values = k_end - k_begin;
                rows = {a, steps, kTile * row_values, static_cast<int64_t>(row_values * sizeof(uint16_t))};
              }
              multiply_block(phase.out, rows, bp + p.b_offset, bias, phase.d, p.g, block * kBlock, grid, s_begin, s_end,
                             acc + (block - first) * out_pairs * kBlock * kBlock, chunk == 0, chunk == p.chunks - 1);
            }
          }
        }
      }
    }
    amx_release();
  }
}

// The phase of the convolution `d` itself, writing its NCHW output y.
TilePhase whole_convolution(float* y, const Conv2dDesc& d, const WeightTaps& taps) {
  return {d, taps, 0, 0, {y, d.out_channels * d.out_h * d.out_w, d.out_h * d.out_w, d.out_w, 1}};
}

}  // namespace

void tiles_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d) {
  const WeightTaps taps{0, 1, 0, 1, d.kernel_w, d.kernel_h * d.kernel_w};
  tile_convolution({whole_convolution(y, d, taps)}, x, w, false, bias);
}

// Note [backward-data phases]
// At stride S, dx pixel (S i + a, S j + b) takes only the taps (r, s) with r = a + pad_h and
// s = b + pad_w modulo S, each from one dy pixel. Phase (a, b), the pixels of dx with those
// remainders, is then a stride-1 convolution of dy with those taps, flipped and transposed, onto
// a grid of its own: one TilePhase each, all over one channels-last copy of dy padded for every
// phase. Together the phases do the forward pass's multiply-adds (dy dilated by S with zeros
// would take S^2 times as many); their outputs, S apart in dx, are scattered. Every phase has taps
// where the kernel is at least the stride (tiles_possible: a 1x1 kernel at stride 2 would leave
// three phases of zeros, which the GEMM path writes faster). At stride 1 the one phase is the
// convolution of dy, padded by kernel - 1 - pad, with the flipped, transposed weights.
void tiles_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d) {
  // Along one dimension, for remainder a: the first tap, the number of taps, the dy pixel that
  // pixel 0 of the phase reads with its first (flipped) tap, relative to 0, and the phase's pixels.
  struct Axis {
    int64_t first_tap, taps, offset, pixels;
  };
  const auto axis = [](int64_t a, int64_t stride, int64_t pad, int64_t kernel, int64_t in) {
    const int64_t first_tap = (a + pad) % stride;
    const int64_t taps = first_tap < kernel ? (kernel - 1 - first_tap) / stride + 1 : 0;
    return Axis{first_tap, taps, (a + pad - first_tap) / stride - (taps - 1), a < in ? (in - a - 1) / stride + 1 : 0};
  };
  // The copy's padding: enough for every phase's first and last reads.
  const auto padding = [&](int64_t stride, int64_t pad, int64_t kernel, int64_t in, int64_t out) {
    int64_t padded = 0;
    for (int64_t a = 0; a < stride; ++a) {
      const Axis phase = axis(a, stride, pad, kernel, in);
      if (phase.pixels > 0)
        padded = max64(padded, max64(-phase.offset, phase.offset + phase.pixels + phase.taps - 1 - out));
    }
    return padded;
  };
  Conv2dDesc copy = d;  // dy, channels-last and padded
  copy.in_channels = d.out_channels, copy.out_channels = d.in_channels;
  copy.in_h = d.out_h, copy.in_w = d.out_w;
  copy.pad_h = padding(d.stride_h, d.pad_h, d.kernel_h, d.in_h, d.out_h);
  copy.pad_w = padding(d.stride_w, d.pad_w, d.kernel_w, d.in_w, d.out_w);
  copy.stride_h = copy.stride_w = 1;
  std::vector<TilePhase> phases;
  for (int64_t a = 0; a < d.stride_h; ++a)
    for (int64_t b = 0; b < d.stride_w; ++b) {
      const Axis rows = axis(a, d.stride_h, d.pad_h, d.kernel_h, d.in_h);
      const Axis columns = axis(b, d.stride_w, d.pad_w, d.kernel_w, d.in_w);
      if (rows.pixels == 0 || columns.pixels == 0) continue;
      Conv2dDesc phase = copy;
      phase.kernel_h = rows.taps, phase.kernel_w = columns.taps;
      phase.out_h = rows.pixels, phase.out_w = columns.pixels;
      const WeightTaps taps{rows.first_tap + d.stride_h * (rows.taps - 1), -d.stride_h,
                            columns.first_tap + d.stride_w * (columns.taps - 1), -d.stride_w,
                            d.kernel_w, d.kernel_h * d.kernel_w};
      const OutputLayout out{dx + a * d.in_w + b, d.in_channels * d.in_h * d.in_w, d.in_h * d.in_w,
                             d.stride_h * d.in_w, d.stride_w};
      phases.push_back({phase, taps, copy.pad_h + rows.offset, copy.pad_w + columns.offset, out});
    }
  if (!phases.empty()) tile_convolution(phases, dy, w, true, nullptr);
}

void tiles_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d) {
  const TileGeometry g(d);
  if (g.positions == 0) {
    std::memset(dw, 0, sizeof(float) * d.out_channels * g.k);
    return;
  }
  const int threads = num_threads();
  // B's columns: each tap's channels (padded to a tile's 16), or, where that pads more (few
  // channels: ResNet's 3-channel first layer, 49 taps of 16 columns for 3 values), whole patches
  // of taps * channels values as one group.
  const bool whole = g.k_padded < g.taps * round_up(g.channels, kTile);
  const bool grid = !whole && grid_fits(d, g);
  const int64_t groups = whole ? 1 : g.taps, columns = whole ? g.k_padded : round_up(g.channels, kTile);
  const int64_t k_tiles = columns / kTile;
  const int64_t co_padded = g.out_tiles * kTile, co_pairs = (g.out_tiles + 1) / 2, items = groups * co_pairs;
  // The positions reduced over: the output positions, or the grid positions up to the last
  // output one (Note [grid weight gradient]). The last tap's B rows start `halo` pixels on from
  // the positions, so a span reads the pairs of span + halo - 1 pixels.
  const int64_t pixels = d.batch * g.padded_h * g.padded_w;
  const int64_t positions = grid ? pixels - (g.padded_h - d.out_h) * g.padded_w - (g.padded_w - d.out_w) : g.positions;
  const int64_t halo = grid ? (d.kernel_h - 1) * d.dilation_h * g.padded_w + (d.kernel_w - 1) * d.dilation_w : 0;
  // Positions per span: a multiple of 32 whose B operand takes about 512 KiB, so that it stays in
  // L2 while every out-channel pair reads it: the interleaved columns of one tap (4 bytes a
  // channel per two positions), or the grid's pairs (4 bytes a channel per position).
  // The spans are then evened out: a short last span would leave the thread of its part idle
  // (ResNet-18's 14x14 layers had spans of 1024, 1024, 1024 and 64 positions in two parts).
  const int64_t span_limit = max64(kStep, (int64_t(1) << (grid ? 17 : 18)) / columns / kStep * kStep);
  const int64_t span_count = (positions + span_limit - 1) / span_limit;
  const int64_t span = round_up((positions + span_count - 1) / span_count, kStep);
  const int64_t spans = (positions + span - 1) / span;
  const int64_t pair_words = grid ? (span + halo - 1) * columns : span / 2 * columns;
  // dy rows of an odd number of cache lines (kStep values each), at least one past the span: at
  // a length of many cache lines times a power of two, the 16 rows of an A tile would share a few
  // L1 sets and evict each other.
  const int64_t row_values = ((span / kStep + 1) | 1) * kStep;
  // Note [weight gradient parts]
  // Where there are many spans, they go in parts (a power of two, up to 16, fixed by the shape):
  // threads take parts from a queue, each part with the thread's own rows and pairs and its own
  // float32 tables, and the parts' tables are added in order at the end. A thread then reads only
  // the x and dy of its own positions, with no barrier between spans. Sharing every span out by
  // items instead made each thread read all of the span's rows and pairs, half of them written by
  // the other thread; on the 2-core VM the 56x56 and 28x28 layers ran slower on two threads than
  // on one. Few spans (the small planes of many channels, whose tables are large) keep the shared
  // spans. The parts do not depend on the team, so the bits do not either.
  const int64_t table_floats = groups * co_padded * columns;
  int64_t parts = 1;
  while (2 * parts <= min64(16, spans / 2) && 2 * parts * table_floats <= (int64_t(1) << 22)) parts *= 2;
  const bool shared = parts == 1;  // the team shares each span's rows (and grid pairs)
  // The channels-last copy, for the tap-by-tap pairs and the patches.
  uint16_t* xp =
      grid ? nullptr : reinterpret_cast<uint16_t*>(thread_scratch(Scratch::columns, (g.image_values + 1) / 2));
  uint16_t* rows = reinterpret_cast<uint16_t*>(
      thread_scratch(Scratch::pack_a, (shared ? 1 : threads) * co_padded * row_values / 2));
  // The tap-by-tap pairs are each thread's own; the grid's are shared with the rows.
  const bool shared_pairs = shared && grid;
  uint32_t* pairs =
      reinterpret_cast<uint32_t*>(thread_scratch(Scratch::pack_b, (shared_pairs ? 1 : threads) * pair_words));
  float* tables = thread_scratch(Scratch::partial, parts * table_floats);
  uint16_t* blocks =
      whole ? reinterpret_cast<uint16_t*>(thread_scratch(Scratch::weights, threads * kBlock * g.k_padded / 2)) : nullptr;
  // Shared spans hand out their (group, out-channel pair) items in runs of at least a group's,
  // from two queues in turn: one is reset for the next span while the team uses the other.
  RunQueue part_queue, item_queues[2];
  part_queue.reset(parts, 1, threads);
  item_queues[0].reset(items, co_pairs, threads);
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    int64_t begin, end;
    team_range(d.batch * g.padded_h, true, &begin, &end);
    if (!grid) {
      layout_rows(xp, x, d, g, 0, begin, end);
      team_barrier(true);  // pairs read pixels other threads wrote
    }
    configure_tiles();
    uint16_t* own_rows = shared ? rows : rows + tid * co_padded * row_values;
    uint32_t* own_pairs = shared_pairs ? pairs : pairs + tid * pair_words;
    const int64_t b_stride = grid ? 2 * columns : columns;
    const auto reduce_part = [&](int64_t part) {
      float* part_tables = tables + part * table_floats;
      const int64_t sp_begin = spans * part / parts, sp_end = spans * (part + 1) / parts;
      for (int64_t sp = sp_begin; sp < sp_end; ++sp) {
        const int64_t f0 = sp * span;
        team_range(co_padded, shared, &begin, &end);
        dy_rows(own_rows, dy, d, g, grid, f0, span, row_values, begin, end);
        if (grid) {
          team_range(span + halo - 1, shared, &begin, &end);
          pixel_pairs(own_pairs, x, d, g, columns, f0, begin, end);
        }
        team_barrier(shared);  // every row and pair is written
        amx_memory_barrier();
        int64_t group_in_pairs = -1;
        const auto reduce_item = [&](int64_t item) {
          const int64_t group = item / co_pairs, ct0 = item % co_pairs * 2;
          const uint32_t* b = own_pairs;
          if (grid) {
            b = own_pairs +
                ((group / d.kernel_w) * d.dilation_h * g.padded_w + group % d.kernel_w * d.dilation_w) * columns;
          } else if (group != group_in_pairs) {
            if (whole)
              patch_pairs(own_pairs, blocks + tid * kBlock * g.k_padded, xp, d, g, f0, span);
            else
              tap_pairs(own_pairs, xp, d, g, columns, group, f0, span);
            amx_memory_barrier();
            group_in_pairs = group;
          }
          float* table = part_tables + group * co_padded * columns;
          const bool two_rows = ct0 + 1 < g.out_tiles, first = sp == sp_begin;
          for (int64_t kt = 0; kt < k_tiles; kt += 2) {
            const bool two_cols = kt + 1 < k_tiles;
            if (two_rows && two_cols)
              reduce_span<true, true>(table, own_rows, row_values, b, b_stride, span, columns, ct0, kt, first);
            else if (two_rows)
              reduce_span<true, false>(table, own_rows, row_values, b, b_stride, span, columns, ct0, kt, first);
            else if (two_cols)
              reduce_span<false, true>(table, own_rows, row_values, b, b_stride, span, columns, ct0, kt, first);
            else
              reduce_span<false, false>(table, own_rows, row_values, b, b_stride, span, columns, ct0, kt, first);
          }
        };
        if (shared) {  // the span's items from its queue; the other queue is free for the next span
          if (tid == 0) item_queues[(sp + 1) % 2].reset(items, co_pairs, threads);
          for (int64_t item_begin, item_end; item_queues[sp % 2].next(&item_begin, &item_end);)
            for (int64_t item = item_begin; item < item_end; ++item) reduce_item(item);
        } else {
          for (int64_t item = 0; item < items; ++item) reduce_item(item);
        }
        team_barrier(shared);  // the rows and pairs are rewritten for the next span
      }
    };
    if (shared) {
      reduce_part(0);
    } else {  // parts are taken from the queue; the results do not depend on which thread takes each
      for (int64_t part, part_end; part_queue.next(&part, &part_end);) reduce_part(part);
    }
    amx_release();
    amx_memory_barrier();  // the tables were written by tile stores
    team_barrier(true);
    if (parts > 1) {  // the parts' sums into the first part's tables, in part order
      team_range(table_floats, true, &begin, &end);
      for (int64_t part = 1; part < parts; ++part) {
        const float* add = tables + part * table_floats;
        for (int64_t i = begin; i < end; ++i) tables[i] += add[i];
      }
      team_barrier(true);
    }
    team_range(d.out_channels, true, &begin, &end);
    for (int64_t co = begin; co < end; ++co)
      for (int64_t c = 0; c < g.channels; ++c)
        for (int64_t tap = 0; tap < g.taps; ++tap)
          dw[(co * g.channels + c) * g.taps + tap] = whole ? tables[co * columns + tap * g.channels + c]
                                                          : tables[(tap * co_padded + co) * columns + c];
  }
}
#endif

PCN_ISA_END

