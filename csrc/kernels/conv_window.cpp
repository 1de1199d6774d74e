// Stride-1 convolutions as sliding windows over a zero-padded image (see conv_window.h).
#include "kernels/conv_window.h"

#include "kernels/gemm_driver.h"

PCN_ISA_BEGIN
namespace {

// One image (one group) of a stride-1 convolution: `channels` input planes of in_h x in_w,
// copied into planes of padded_h x padded_w, feeding out_channels planes of out_h x out_w.
struct Window {
  int64_t channels, in_h, in_w, pad_h, pad_w, kernel_h, kernel_w, dilation_h, dilation_w, out_channels;
  int64_t padded_h, padded_w, plane, out_h, out_w;
  int64_t positions;      // out_h * padded_w: output positions in padded-width coordinates
  int64_t k;              // channels * kernel_h * kernel_w taps
  int64_t padded_floats;  // channels * plane, plus the slack the last (rounded-up) tiles read

  Window(int64_t channels_, int64_t in_h_, int64_t in_w_, int64_t pad_h_, int64_t pad_w_, const Conv2dDesc& d,
         int64_t out_channels_)
      : channels(channels_), in_h(in_h_), in_w(in_w_), pad_h(pad_h_), pad_w(pad_w_), kernel_h(d.kernel_h),
        kernel_w(d.kernel_w), dilation_h(d.dilation_h), dilation_w(d.dilation_w), out_channels(out_channels_) {
    padded_h = in_h + 2 * pad_h;
    padded_w = in_w + 2 * pad_w;
    plane = padded_h * padded_w;
    out_h = padded_h - dilation_h * (kernel_h - 1);
    out_w = padded_w - dilation_w * (kernel_w - 1);
    positions = out_h * padded_w;
    k = channels * kernel_h * kernel_w;
    // A tile starting below `positions` reads up to kGemmNR (or a vector) past it, and the
    // farthest tap lies (kernel_w - 1) * dilation_w past the last plane's end.
    padded_floats = channels * plane + (kernel_w - 1) * dilation_w + kGemmNR + kVecFloats;
  }

  // Offset of tap kk = (c, r, s) from an output position's base in a padded image whose
  // channels lie channel_stride floats apart.
  int64_t tap_offset(int64_t kk, int64_t channel_stride) const {
    const int64_t taps = kernel_h * kernel_w, c = kk / taps, r = (kk % taps) / kernel_w, s = kk % kernel_w;
    return c * channel_stride + r * dilation_h * padded_w + s * dilation_w;
  }
};

// Channels [c_begin, c_end) of src (in_h x in_w planes, consecutive) into padded planes with
// zero borders, channel_stride floats apart in dst.
void pad_channels(float* dst, const float* src, const Window& win, int64_t c_begin, int64_t c_end,
                  int64_t channel_stride) {
  const int64_t right = win.padded_w - win.pad_w - win.in_w;
  for (int64_t c = c_begin; c < c_end; ++c) {
    float* out = dst + c * channel_stride;
    const float* in = src + c * win.in_h * win.in_w;
    std::memset(out, 0, sizeof(float) * win.pad_h * win.padded_w);
    for (int64_t ih = 0; ih < win.in_h; ++ih) {
      float* row = out + (win.pad_h + ih) * win.padded_w;
      std::memset(row, 0, sizeof(float) * win.pad_w);
      std::memcpy(row + win.pad_w, in + ih * win.in_w, sizeof(float) * win.in_w);
      std::memset(row + win.pad_w + win.in_w, 0, sizeof(float) * right);
    }
    std::memset(out + (win.pad_h + win.in_h) * win.padded_w, 0, sizeof(float) * win.pad_h * win.padded_w);
  }
}

// The slack after the last plane holds zeros so the discarded positions stay finite.
void zero_slack(float* padded, const Window& win) {
  std::memset(padded + win.channels * win.plane, 0, sizeof(float) * (win.padded_floats - win.channels * win.plane));
}

// Offsets of every tap, in k order (the weights' (c, r, s) order).
void tap_offsets(int64_t* offsets, const Window& win, int64_t channel_stride) {
  for (int64_t kk = 0; kk < win.k; ++kk) offsets[kk] = win.tap_offset(kk, channel_stride);
}

// Packs an m x k operand, element(row, kk), as MR-row panels each holding all of k: panel p's
// value for (row p * MR + i, kk) is at dst[(p * k + kk) * MR + i]; rows past m are zero.
template <class Element>
void pack_panels(float* dst, int64_t m, int64_t k, const Element& element) {
  const int64_t panels = (m + kGemmMR - 1) / kGemmMR;
  int64_t begin, end;
  team_range(panels, true, &begin, &end);
  for (int64_t panel = begin; panel < end; ++panel)
    for (int64_t kk = 0; kk < k; ++kk)
      for (int i = 0; i < kGemmMR; ++i) {
        const int64_t row = panel * kGemmMR + i;
        dst[(panel * k + kk) * kGemmMR + i] = row < m ? element(row, kk) : 0.0f;
      }
#pragma omp barrier
}

// The MR x NR register tile for output rows of one panel at positions [q, q + NR): every tap's
// NR inputs are one contiguous run of the padded image.
static inline void window_tile(vfloat (&acc)[kGemmMR][kGemmNRVecs], int64_t k, const float* __restrict a,
                               const float* at_q, const int64_t* __restrict offsets) {
  for (int i = 0; i < kGemmMR; ++i)
    for (int j = 0; j < kGemmNRVecs; ++j) acc[i][j] = vfloat{};
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* b = at_q + offsets[kk];
    vfloat bv[kGemmNRVecs];
    for (int j = 0; j < kGemmNRVecs; ++j) bv[j] = vload(b + j * kVecFloats);
    for (int i = 0; i < kGemmMR; ++i) {
      const vfloat ai = vbroadcast(a[kk * kGemmMR + i]);
      for (int j = 0; j < kGemmNRVecs; ++j) acc[i][j] += ai * bv[j];
    }
  }
}

// Stores rows [0, rows) of a tile at positions [q0, q0 + NR) into output planes of
// out_h x out_w (plane stride out_plane), dropping the discarded columns; adds bias[i] if given.
void store_tile(const vfloat (&acc)[kGemmMR][kGemmNRVecs], float* out, int64_t out_plane, int64_t rows, int64_t q0,
                const Window& win, const float* bias) {
  alignas(64) float tile[kGemmMR * kGemmNR];
  for (int i = 0; i < kGemmMR; ++i)
    for (int j = 0; j < kGemmNRVecs; ++j) vstore(tile + i * kGemmNR + j * kVecFloats, acc[i][j]);
  for (int64_t j = 0; j < kGemmNR && q0 + j < win.positions;) {
    const int64_t q = q0 + j, oh = q / win.padded_w, ow = q % win.padded_w;
    const int64_t run = min64(min64(kGemmNR - j, win.padded_w - ow), win.positions - q);
    const int64_t kept = max64(0, min64(run, win.out_w - ow));
    for (int64_t i = 0; i < rows; ++i) {
      float* dst = out + i * out_plane + oh * win.out_w + ow;
      const float* src = tile + i * kGemmNR + j;
      const float add = bias ? bias[i] : 0.0f;
      for (int64_t t = 0; t < kept; ++t) dst[t] = src[t] + add;
    }
    j += run;
  }
}

// Panels of A per block, so that a block of packed weights stays in L2 while the tiles of the
// image sweep over it.
int64_t panels_per_block(const Window& win) {
  constexpr int64_t kBlockFloats = int64_t(1) << 16;  // 256 KiB
  return max64(1, kBlockFloats / (win.k * kGemmMR));
}

// out[n][group] = the window convolution of in[n][group] with the packed weights of the group.
// Strides are in floats; packed holds one pack_panels block of out_channels x k per group.
struct WindowJob {
  const Window* win;
  int64_t batch, groups;
  const float* in;
  int64_t in_batch_stride, in_group_stride;
  float* out;
  int64_t out_batch_stride, out_group_stride;
  const float* bias;  // per output channel of all groups, or null
};

void run_window(const WindowJob& job, float* packed, const int64_t* offsets, float* pads, bool by_image) {
  const Window& win = *job.win;
  const int64_t a_floats = round_up(win.out_channels, kGemmMR) * win.k;
  const int64_t q_tiles = (win.positions + kGemmNR - 1) / kGemmNR;
  const int64_t m_panels = (win.out_channels + kGemmMR - 1) / kGemmMR, block = panels_per_block(win);
  const int64_t out_plane = win.out_h * win.out_w;
  const bool team = !by_image;
  float* padded = pads + (by_image ? omp_get_thread_num() * win.padded_floats : 0);
  int64_t begin, end;
  team_range(job.batch * job.groups, by_image, &begin, &end);
  for (int64_t item = begin; item < end; ++item) {
    const int64_t n = item / job.groups, group = item % job.groups;
    int64_t c_begin, c_end;
    team_range(win.channels, team, &c_begin, &c_end);
    pad_channels(padded, job.in + n * job.in_batch_stride + group * job.in_group_stride, win, c_begin, c_end,
                 win.plane);
    if (!team || omp_get_thread_num() == 0) zero_slack(padded, win);
    team_barrier(team);
    float* out = job.out + n * job.out_batch_stride + group * job.out_group_stride;
    const float* bias = job.bias ? job.bias + group * win.out_channels : nullptr;
    const float* a = packed + group * a_floats;
    for (int64_t p0 = 0; p0 < m_panels; p0 += block) {
      int64_t t_begin, t_end;
      team_range(q_tiles, team, &t_begin, &t_end);
      for (int64_t tile = t_begin; tile < t_end; ++tile) {
        const int64_t q0 = tile * kGemmNR;
        for (int64_t panel = p0; panel < min64(p0 + block, m_panels); ++panel) {
          const int64_t row0 = panel * kGemmMR;
          vfloat acc[kGemmMR][kGemmNRVecs];
          window_tile(acc, win.k, a + panel * win.k * kGemmMR, padded + q0, offsets);
          store_tile(acc, out + row0 * out_plane, out_plane, min64(kGemmMR, win.out_channels - row0), q0, win,
                     bias ? bias + row0 : nullptr);
        }
      }
    }
    team_barrier(team);  // the padded image is rewritten for the next item
  }
}

// Runs a window convolution over the batch: threads take whole images when there are enough
// of them, otherwise the team shares each image's tiles. element(group, row, kk) gives the
// weights before packing.
template <class Element>
void window_convolution(const WindowJob& job, const Element& element) {
  const Window& win = *job.win;
  const int threads = num_threads();
  const bool by_image = job.batch * job.groups >= threads && threads > 1;
  const int64_t a_floats = round_up(win.out_channels, kGemmMR) * win.k;
  float* packed = thread_scratch(Scratch::pack_a, job.groups * a_floats);
  float* pads = thread_scratch(Scratch::columns, win.padded_floats * (by_image ? threads : 1));
  int64_t* offsets = thread_scratch_i64(Scratch::indices, win.k);
  tap_offsets(offsets, win, win.plane);
#pragma omp parallel num_threads(threads)
  {
    for (int64_t group = 0; group < job.groups; ++group)
      pack_panels(packed + group * a_floats, win.out_channels, win.k,
                  [&](int64_t row, int64_t kk) { return element(group, row, kk); });
    run_window(job, packed, offsets, pads, by_image);
  }
}

bool stride_one(const Conv2dDesc& d) {
  const bool pointwise = d.kernel_h == 1 && d.kernel_w == 1 && d.pad_h == 0 && d.pad_w == 0;
  return d.stride_h == 1 && d.stride_w == 1 && !pointwise;
}

// ---------------------------------------------------------------- backward-weight
// dw[oc][kk] = sum over images and positions q of dy[oc][q] * padded[q + offset(kk)], with dy
// spread to padded-width rows (zeros in the discarded columns). Tiles of kDotRows output
// channels x kDotCols taps keep their dot products in vector registers along q. Small images
// are bundled side by side along q (channel c of bundle image g at (c * images + g) * plane) so
// that every dot product is long enough to pay for its final lane sum.
#if defined(PCN_ISA_IS_avx512)
constexpr int kDotRows = 4, kDotCols = 4;
#else
constexpr int kDotRows = 4, kDotCols = 3;
#endif
constexpr int64_t kDotChunk = 1024;  // positions per pass: kDotRows dy rows of it stay in L1

struct Bundle {
  int64_t images;         // images side by side
  int64_t stride;         // images * plane: one channel (or one dy row) of the bundle
  int64_t row_floats;     // stride rounded up to whole vectors
  int64_t padded_floats;  // the bundle's padded input, plus the slack the last vectors read
};

// Images per bundle: about kDotChunk positions, but at least one bundle per thread.
Bundle make_bundle(const Window& win, int64_t batch, int threads) {
  const int64_t per_thread = (batch + threads - 1) / threads;
  const int64_t most = max64(1, min64(per_thread, kDotChunk / win.plane));
  const int64_t passes = (per_thread + most - 1) / most;
  Bundle b;
  b.images = max64(1, (per_thread + passes - 1) / passes);
  b.stride = b.images * win.plane;
  b.row_floats = round_up(b.stride, kVecFloats);
  b.padded_floats = win.channels * b.stride + (win.kernel_h - 1) * win.dilation_h * win.padded_w +
                    (win.kernel_w - 1) * win.dilation_w + kVecFloats;
  return b;
}

// dy rows [oc_begin, oc_end) of `count` images (dy planes image_stride floats apart) in bundle
// layout: image g's positions at g * plane, zeros in the discarded columns, after each image's
// positions, for the bundle's missing images and up to row_floats.
void spread_rows(float* dst, const float* dy, int64_t image_stride, int64_t count, const Window& win,
                 const Bundle& bundle, int64_t oc_begin, int64_t oc_end) {
  const int64_t out_plane = win.out_h * win.out_w;
  for (int64_t oc = oc_begin; oc < oc_end; ++oc) {
    float* row = dst + oc * bundle.row_floats;
    std::memset(row, 0, sizeof(float) * bundle.row_floats);
    for (int64_t g = 0; g < count; ++g) {
      const float* in = dy + g * image_stride + oc * out_plane;
      for (int64_t oh = 0; oh < win.out_h; ++oh)
        std::memcpy(row + g * win.plane + oh * win.padded_w, in + oh * win.out_w, sizeof(float) * win.out_w);
    }
  }
}

static inline float lane_sum(vfloat v) {
  float sum = 0.0f;
  for (int lane = 0; lane < kVecFloats; ++lane) sum += v[lane];
  return sum;
}

// out[i][j] += dot(rows[i][q0:q1], padded[offsets[j] + q0 : offsets[j] + q1]) for i < rows_used,
// j < cols_used (the unused rows/columns repeat the last real one and are not stored).
static inline void dot_tile(float* out, int64_t ldo, const float* const (&rows)[kDotRows], const float* padded,
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
    for (int j = 0; j < cols_used; ++j) out[i * ldo + j] += lane_sum(acc[i][j]);
}

}  // namespace

bool window_forward_applies(const Conv2dDesc& d) { return stride_one(d); }

bool window_backward_data_applies(const Conv2dDesc& d) {
  // dx is the forward window convolution of dy padded by dilation * (kernel - 1) - padding.
  return stride_one(d) && d.pad_h <= d.dilation_h * (d.kernel_h - 1) && d.pad_w <= d.dilation_w * (d.kernel_w - 1);
}

bool window_backward_weight_applies(const Conv2dDesc& d) { return stride_one(d); }

void window_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d) {
  if (d.batch == 0) return;
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  const Window win(cin_g, d.in_h, d.in_w, d.pad_h, d.pad_w, d, cout_g);
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
  const WindowJob job{&win, d.batch, d.groups, x, d.in_channels * in_plane, cin_g * in_plane,
                      y, d.out_channels * out_plane, cout_g * out_plane, bias};
  window_convolution(job, [&](int64_t group, int64_t oc, int64_t kk) { return w[(group * cout_g + oc) * win.k + kk]; });
}

void window_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d) {
  if (d.batch == 0) return;
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  const int64_t taps = d.kernel_h * d.kernel_w;
  // Input channels: the dy planes of the group; output channels: the group's dx planes; tap
  // (oc, r, s) of dx channel c is weight (oc, c, kernel_h - 1 - r, kernel_w - 1 - s).
  const Window win(cout_g, d.out_h, d.out_w, d.dilation_h * (d.kernel_h - 1) - d.pad_h,
                   d.dilation_w * (d.kernel_w - 1) - d.pad_w, d, cin_g);
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w;
  const WindowJob job{&win, d.batch, d.groups, dy, d.out_channels * out_plane, cout_g * out_plane,
                      dx, d.in_channels * in_plane, cin_g * in_plane, nullptr};
  window_convolution(job, [&](int64_t group, int64_t c, int64_t kk) {
    const int64_t oc = kk / taps, tap = kk % taps;
    return w[((group * cout_g + oc) * cin_g + c) * taps + (taps - 1 - tap)];
  });
}

void window_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d) {
  const int64_t cin_g = d.in_channels / d.groups, cout_g = d.out_channels / d.groups;
  const Window win(cin_g, d.in_h, d.in_w, d.pad_h, d.pad_w, d, cout_g);
  const int64_t in_plane = d.in_h * d.in_w, out_plane = d.out_h * d.out_w, w_floats = d.out_channels * win.k;
  if (d.batch == 0) {
    for (int64_t i = 0; i < w_floats; ++i) dw[i] = 0.0f;
    return;
  }
  const int threads = num_threads();
  const Bundle bundle = make_bundle(win, d.batch, threads);
  const int64_t bundles = (d.batch + bundle.images - 1) / bundle.images, items = bundles * d.groups;
  const bool by_bundle = items >= threads && threads > 1;
  const int slots = by_bundle ? threads : 1;
  float* pads = thread_scratch(Scratch::columns, bundle.padded_floats * slots);
  float* spread = thread_scratch(Scratch::pack_b, cout_g * bundle.row_floats * slots);
  float* partials = by_bundle ? thread_scratch(Scratch::partial, w_floats * threads) : nullptr;
  int64_t* offsets = thread_scratch_i64(Scratch::indices, win.k);
  tap_offsets(offsets, win, bundle.stride);
  const int64_t row_tiles = (cout_g + kDotRows - 1) / kDotRows;
#pragma omp parallel num_threads(threads)
  {
    const bool team = !by_bundle;
    const int slot = by_bundle ? omp_get_thread_num() : 0;
    float* padded = pads + slot * bundle.padded_floats;
    float* dy_rows = spread + slot * cout_g * bundle.row_floats;
    float* out = by_bundle ? partials + slot * w_floats : dw;
    int64_t begin, end;
    team_range(w_floats, team, &begin, &end);
    for (int64_t i = begin; i < end; ++i) out[i] = 0.0f;
    team_barrier(team);
    team_range(items, by_bundle, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n0 = (item / d.groups) * bundle.images, group = item % d.groups;
      const int64_t count = min64(bundle.images, d.batch - n0);
      int64_t lo, hi;
      team_range(cin_g, team, &lo, &hi);
      for (int64_t g = 0; g < count; ++g)
        pad_channels(padded + g * win.plane, x + (n0 + g) * d.in_channels * in_plane + group * cin_g * in_plane, win,
                     lo, hi, bundle.stride);
      for (int64_t c = lo; c < hi; ++c)  // a last, partial bundle: its missing images are zeros
        std::memset(padded + c * bundle.stride + count * win.plane, 0,
                    sizeof(float) * (bundle.images - count) * win.plane);
      if (!team || omp_get_thread_num() == 0)
        std::memset(padded + cin_g * bundle.stride, 0, sizeof(float) * (bundle.padded_floats - cin_g * bundle.stride));
      team_range(cout_g, team, &lo, &hi);
      spread_rows(dy_rows, dy + n0 * d.out_channels * out_plane + group * cout_g * out_plane,
                  d.out_channels * out_plane, count, win, bundle, lo, hi);
      team_barrier(team);
      float* dwg = out + group * cout_g * win.k;
      int64_t t_begin, t_end;  // in a team, each thread owns whole tiles of output channels
      team_range(row_tiles, team, &t_begin, &t_end);
      for (int64_t q0 = 0; q0 < bundle.row_floats; q0 += kDotChunk) {
        const int64_t q1 = min64(bundle.row_floats, q0 + kDotChunk);
        for (int64_t tile = t_begin; tile < t_end; ++tile) {
          const int64_t oc0 = tile * kDotRows;
          const int rows_used = static_cast<int>(min64(kDotRows, cout_g - oc0));
          const float* rows[kDotRows];
          for (int i = 0; i < kDotRows; ++i) rows[i] = dy_rows + (oc0 + min64(i, rows_used - 1)) * bundle.row_floats;
          for (int64_t k0 = 0; k0 < win.k; k0 += kDotCols) {
            const int cols_used = static_cast<int>(min64(kDotCols, win.k - k0));
            int64_t tap[kDotCols];
            for (int j = 0; j < kDotCols; ++j) tap[j] = offsets[k0 + min64(j, cols_used - 1)];
            dot_tile(dwg + oc0 * win.k + k0, win.k, rows, padded, tap, q0, q1, rows_used, cols_used);
          }
        }
      }
      team_barrier(team);  // the buffers are rewritten for the next item
    }
    if (by_bundle) {
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t i = 0; i < w_floats; ++i) {
        float sum = 0.0f;
        for (int t = 0; t < threads; ++t) sum += partials[t * w_floats + i];
        dw[i] = sum;
      }
    }
  }
}

PCN_ISA_END
