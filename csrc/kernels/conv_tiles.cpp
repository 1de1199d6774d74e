// Convolutions of bfloat16 operands on AMX tiles (see conv_tiles.h).
#include "kernels/conv_tiles.h"

#include <cstring>

#include "core/runtime.h"
#include "kernels/gemm_driver.h"

PCN_ISA_BEGIN

bool tiles_possible(ConvPass pass, const Conv2dDesc& d) {
  if (!kGemmAmx || !d.bf16 || d.groups != 1) return false;
  // The channels-last copy is gathered 16 channels at a time with 32-bit offsets.
  if (16 * d.in_h * d.in_w >= (int64_t(1) << 29) || 16 * d.out_h * d.out_w >= (int64_t(1) << 29)) return false;
  switch (pass) {
    case ConvPass::forward: return true;
    case ConvPass::backward_data:
      return d.stride_h == 1 && d.stride_w == 1 && d.dilation_h == 1 && d.dilation_w == 1 &&
             d.pad_h <= d.kernel_h - 1 && d.pad_w <= d.kernel_w - 1;
    case ConvPass::backward_weight: return false;
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
  explicit TileGeometry(const Conv2dDesc& d)
      : channels(d.in_channels), padded_h(d.in_h + 2 * d.pad_h), padded_w(d.in_w + 2 * d.pad_w),
        taps(d.kernel_h * d.kernel_w), k(taps * channels), k_padded(round_up(k, kStep)), k_steps(k_padded / kStep),
        out_tiles((d.out_channels + kTile - 1) / kTile), plane(d.out_h * d.out_w), positions(d.batch * plane),
        blocks((positions + kBlock - 1) / kBlock) {}
  int64_t image_values(const Conv2dDesc& d) const { return d.batch * padded_h * padded_w * channels; }
};

// Every tile is 16 rows of 64 bytes: C in 0-3, A in 4 and 5, B in 6 and 7.
void configure_tiles() {
  AmxTileConfig config = {};
  config.palette = 1;
  for (int tile = 0; tile < 8; ++tile) {
    config.rows[tile] = kTile;
    config.bytes_per_row[tile] = 64;
  }
  amx_memory_barrier();
  _tile_loadconfig(&config);
}

static inline uint32_t bf16_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bf16_upper_half(bits);
}

// Rows [begin, end) of the zero-bordered channels-last copy: row (n, padded row) holds padded_w
// pixels of `channels` bfloat16 values, rounded to nearest even as pack_bf16_pairs rounds.
void layout_rows(uint16_t* xp, const float* x, const Conv2dDesc& d, const TileGeometry& g, int64_t begin,
                 int64_t end) {
  const int64_t channels = g.channels, plane = d.in_h * d.in_w, row_values = g.padded_w * channels;
  const __m512i channel_offsets =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(plane)));
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / g.padded_h, ih = row % g.padded_h - d.pad_h;
    uint16_t* out = xp + row * row_values;
    if (ih < 0 || ih >= d.in_h) {
      std::memset(out, 0, sizeof(uint16_t) * row_values);
      continue;
    }
    std::memset(out, 0, sizeof(uint16_t) * d.pad_w * channels);
    std::memset(out + (d.pad_w + d.in_w) * channels, 0, sizeof(uint16_t) * (g.padded_w - d.pad_w - d.in_w) * channels);
    const float* in = x + (n * channels * d.in_h + ih) * d.in_w;  // channel c of pixel iw: in[c * plane + iw]
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
// k = 32s + 2r, k + 1 of out channel 16t + j, where k = tap * channels + c reads w[co][c][tap];
// zeros past k and out_channels. Walks the weights in memory order, each value to its half-word.
void pack_weight_tiles(uint32_t* bp, const float* w, const Conv2dDesc& d, const TileGeometry& g, int64_t t_begin,
                       int64_t t_end) {
  std::memset(bp + t_begin * g.k_steps * kBTileWords, 0, sizeof(uint32_t) * (t_end - t_begin) * g.k_steps * kBTileWords);
  uint16_t* halves = reinterpret_cast<uint16_t*>(bp);
  const int64_t co_end = min64(d.out_channels, t_end * kTile);
  for (int64_t co = t_begin * kTile; co < co_end; ++co) {
    uint16_t* tiles = halves + 2 * (co / kTile * g.k_steps * kBTileWords + co % kTile);
    const float* weights = w + co * g.k;
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t tap = 0; tap < g.taps; ++tap) {
        const int64_t k = tap * g.channels + c;  // word k / 2 of the column: row k / 2 of the stacked tiles
        tiles[2 * (k / 2 * kTile) + (k & 1)] = static_cast<uint16_t>(bf16_bits(weights[c * g.taps + tap]));
      }
  }
}

// The patches of positions [f0, f0 + 32) (flat over images, zeros past the last) as rows of
// k_padded bfloat16 values.
void build_patches(uint16_t* a, const uint16_t* xp, const Conv2dDesc& d, const TileGeometry& g, int64_t f0) {
  const int64_t c = g.channels;
  for (int64_t i = 0; i < kBlock; ++i) {
    uint16_t* row = a + i * g.k_padded;
    const int64_t f = f0 + i;
    if (f >= g.positions) {
      std::memset(row, 0, sizeof(uint16_t) * g.k_padded);
      continue;
    }
    const int64_t n = f / g.plane, p = f % g.plane, oh = p / d.out_w, ow = p % d.out_w;
    for (int64_t r = 0; r < d.kernel_h; ++r) {
      const uint16_t* src =
          xp + ((n * g.padded_h + oh * d.stride_h + r * d.dilation_h) * g.padded_w + ow * d.stride_w) * c;
      uint16_t* dst = row + r * d.kernel_w * c;
      if (d.dilation_w == 1) {
        std::memcpy(dst, src, sizeof(uint16_t) * d.kernel_w * c);
        continue;
      }
      for (int64_t s = 0; s < d.kernel_w; ++s) std::memcpy(dst + s * c, src + s * d.dilation_w * c, sizeof(uint16_t) * c);
    }
    std::memset(row + g.k, 0, sizeof(uint16_t) * (g.k_padded - g.k));
  }
}

// stage (32 positions x 32 out channels, from out channel co0; `columns` of them exist) plus the
// bias into the NCHW output.
void store_transposed(float* y, const float* stage, const float* bias, const Conv2dDesc& d, const TileGeometry& g,
                      int64_t f0, int64_t co0, int64_t columns) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(kBlock));
  for (int64_t half = 0; half < kBlock; half += kTile) {
    const int64_t f = f0 + half, count = min64(kTile, g.positions - f);
    if (count <= 0) return;
    const int64_t n = f / g.plane, p = f % g.plane;
    const bool one_image = p + count <= g.plane;
    const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1);
    for (int64_t j = 0; j < columns; ++j) {
      const int64_t co = co0 + j;
      __m512 v = _mm512_i32gather_ps(rows, stage + half * kBlock + j, 4);
      if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[co]));
      if (one_image) {
        _mm512_mask_storeu_ps(y + (n * d.out_channels + co) * g.plane + p, mask, v);
        continue;
      }
      alignas(64) float lanes[kTile];
      _mm512_store_ps(lanes, v);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t fi = f + i;
        y[(fi / g.plane * d.out_channels + co) * g.plane + fi % g.plane] = lanes[i];
      }
    }
  }
}

// One block of 32 positions against every out channel, two C tiles' columns at a time.
void multiply_block(float* y, const uint16_t* a, const uint32_t* bp, const float* bias, const Conv2dDesc& d,
                    const TileGeometry& g, int64_t f0) {
  alignas(64) float stage[kBlock * kBlock];
  const int64_t a_stride = g.k_padded * sizeof(uint16_t);
  const uint16_t* a1 = a + kTile * g.k_padded;
  for (int64_t t0 = 0; t0 < g.out_tiles; t0 += 2) {
    const int64_t t1 = min64(t0 + 1, g.out_tiles - 1);  // an odd last tile is multiplied twice
    const uint32_t* b0 = bp + t0 * g.k_steps * kBTileWords;
    const uint32_t* b1 = bp + t1 * g.k_steps * kBTileWords;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t s = 0; s < g.k_steps; ++s) {
      _tile_loadd(4, a + s * kStep, a_stride);
      _tile_loadd(5, a1 + s * kStep, a_stride);
      _tile_loadd(6, b0 + s * kBTileWords, 64);
      _tile_loadd(7, b1 + s * kBTileWords, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, stage, kBlock * sizeof(float));
    _tile_stored(1, stage + kTile, kBlock * sizeof(float));
    _tile_stored(2, stage + kTile * kBlock, kBlock * sizeof(float));
    _tile_stored(3, stage + kTile * kBlock + kTile, kBlock * sizeof(float));
    amx_memory_barrier();
    store_transposed(y, stage, bias, d, g, f0, t0 * kTile, min64(kBlock, d.out_channels - t0 * kTile));
  }
}

}  // namespace

void tiles_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d) {
  if (d.batch == 0) return;
  const TileGeometry g(d);
  const int threads = num_threads();
  uint16_t* xp = reinterpret_cast<uint16_t*>(thread_scratch(Scratch::columns, (g.image_values(d) + 1) / 2));
  uint32_t* bp = reinterpret_cast<uint32_t*>(thread_scratch(Scratch::pack_b, g.out_tiles * g.k_steps * kBTileWords));
  uint16_t* patches = reinterpret_cast<uint16_t*>(thread_scratch(Scratch::pack_a, threads * kBlock * g.k_padded / 2));
#pragma omp parallel num_threads(threads)
  {
    int64_t begin, end;
    team_range(d.batch * g.padded_h, true, &begin, &end);
    layout_rows(xp, x, d, g, begin, end);
    team_range(g.out_tiles, true, &begin, &end);
    pack_weight_tiles(bp, w, d, g, begin, end);
    team_barrier(true);
    amx_memory_barrier();
    configure_tiles();
    uint16_t* a = patches + omp_get_thread_num() * kBlock * g.k_padded;
    team_range(g.blocks, true, &begin, &end);
    for (int64_t block = begin; block < end; ++block) {
      build_patches(a, xp, d, g, block * kBlock);
      amx_memory_barrier();
      multiply_block(y, a, bp, bias, d, g, block * kBlock);
    }
    _tile_release();
  }
}

void tiles_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d) {
  // dx is the stride-1 convolution of dy, padded by kernel - 1 - pad, with the weights flipped
  // and transposed.
  Conv2dDesc t = d;
  t.in_channels = d.out_channels, t.out_channels = d.in_channels;
  t.in_h = d.out_h, t.in_w = d.out_w, t.out_h = d.in_h, t.out_w = d.in_w;
  t.pad_h = d.kernel_h - 1 - d.pad_h, t.pad_w = d.kernel_w - 1 - d.pad_w;
  const int64_t taps = d.kernel_h * d.kernel_w;
  float* flipped = thread_scratch(Scratch::weights, d.in_channels * d.out_channels * taps);
  for (int64_t co = 0; co < d.out_channels; ++co)
    for (int64_t c = 0; c < d.in_channels; ++c)
      for (int64_t tap = 0; tap < taps; ++tap)
        flipped[(c * d.out_channels + co) * taps + taps - 1 - tap] = w[(co * d.in_channels + c) * taps + tap];
  tiles_forward(dx, dy, flipped, nullptr, t);
}
#endif

PCN_ISA_END
