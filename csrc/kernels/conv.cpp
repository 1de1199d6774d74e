// conv2d forward / backward-data / backward-weight / bias gradient as GEMMs (see conv.h).
// Per image and group, with K = (in_channels/groups) * kernel_h * kernel_w and P = out_h * out_w:
//   forward          y[oc x P]  = w[oc x K] * patches[K x P]     (patches packed straight into B panels)
//   backward-data    cols[K x P] = w^T * dy[oc x P], then scatter-added into dx (col2im), in P chunks
//   backward-weight  dw[oc x K] += dy[oc x P] * patches^T[P x K]
// A 1x1, stride-1, unpadded convolution reads x/dx directly as the GEMM operand; every other
// convolution whose stride stays within the kernel's extent runs on sliding windows over a padded
// image instead (conv_window.h), as does backward-data at stride 1: what is left here is strides
// beyond the kernel (1x1 at stride 2, say) and strided backward-data. Under autocast (desc.bf16) the
// choice is the same; these GEMMs then multiply bfloat16 panels in the avx512bf16 build.
// Which path a pass takes is the descriptor's algorithm when one is forced (measured selection,
// pyconvnet/plans.py), otherwise the fixed heuristic below.
// Threads take whole images when there are enough of them (each with its own scratch and, for
// backward-weight, its own partial sum reduced in thread order: deterministic for a fixed thread
// count); otherwise the whole team shares each image's GEMM.
#include "kernels/conv.h"

#include "kernels/conv_tiles.h"
#include "kernels/conv_window.h"
#include "kernels/conv_winograd.h"
#include "kernels/gemm_driver.h"
#include "kernels/image_bundle.h"

PCN_ISA_BEGIN
namespace {

struct ConvGeometry {
  int64_t groups, cin_g, cout_g, k, p, in_plane, out_plane;
  bool pointwise;  // 1x1 kernel, stride 1, no padding: patches are the input itself
};

ConvGeometry geometry(const Conv2dDesc& d) {
  ConvGeometry g;
  g.groups = d.groups;
  g.cin_g = d.in_channels / d.groups;
  g.cout_g = d.out_channels / d.groups;
  g.k = g.cin_g * d.kernel_h * d.kernel_w;
  g.p = d.out_h * d.out_w;
  g.in_plane = d.in_h * d.in_w;
  g.out_plane = g.p;
  g.pointwise = d.kernel_h == 1 && d.kernel_w == 1 && d.stride_h == 1 && d.stride_w == 1 && d.pad_h == 0 &&
                d.pad_w == 0;
  return g;
}

// Patch row k = (c, r, s) of the implicit im2col matrix: input channel c, kernel tap (r, s).
struct Tap {
  int64_t c, r, s;
};

static inline Tap tap_of(const Conv2dDesc& d, int64_t k) {
  const int64_t taps = d.kernel_h * d.kernel_w;
  return {k / taps, (k % taps) / d.kernel_w, k % d.kernel_w};
}

// Walks output positions p in [p0, p0 + count) for tap t, one output row at a time, split
// analytically into the zero-padded edges and the in-bounds middle: zeros(i, n) for n positions
// from i = p - p0 that read padding, run(i, index, n) for n positions reading the input at
// index, index + stride_w, ... (contiguous for stride 1), so callers' loops are plain copies.
template <class Zeros, class Run>
static inline void for_each_patch_run(const Conv2dDesc& d, Tap t, int64_t p0, int64_t count, Zeros&& zeros, Run&& run) {
  int64_t oh = p0 / d.out_w, ow = p0 % d.out_w;
  const int64_t plane = d.in_h * d.in_w;
  for (int64_t i = 0; i < count; oh += 1, ow = 0) {
    const int64_t width = min64(count - i, d.out_w - ow);
    const int64_t ih = oh * d.stride_h - d.pad_h + t.r * d.dilation_h;
    if (ih < 0 || ih >= d.in_h) {
      zeros(i, width);
    } else {
      const int64_t iw0 = ow * d.stride_w - d.pad_w + t.s * d.dilation_w;
      // In-bounds positions j satisfy 0 <= iw0 + j*stride_w < in_w.
      const int64_t lo = iw0 >= 0 ? 0 : min64(width, (-iw0 + d.stride_w - 1) / d.stride_w);
      const int64_t hi = iw0 >= d.in_w ? lo : max64(lo, min64(width, (d.in_w - 1 - iw0) / d.stride_w + 1));
      if (lo > 0) zeros(i, lo);
      if (hi > lo) run(i + lo, t.c * plane + ih * d.in_w + iw0 + lo * d.stride_w, hi - lo);
      if (width > hi) zeros(i + hi, width - hi);
    }
    i += width;
  }
}

// dst[2 m] += src[m] for m < n: col2im's runs at stride 2. AVX-512 spreads 8 values at a time
// to the even lanes of a vector (vexpandps) and adds them there under the same mask; the
// other ISAs add one float at a time. Either way every float gets the same single add.
static inline void add_to_every_other(float* dst, const float* src, int64_t n) {
  int64_t m = 0;
#if defined(PCN_ISA_IS_avx512)
  for (; m < n; m += 8) {
    const int64_t count = min64(8, n - m);
    const __mmask16 even = __mmask16(0x5555u & ((1u << (2 * count - 1)) - 1));
    const __m512 values = _mm512_maskz_expandloadu_ps(even, src + m);
    float* p = dst + 2 * m;
    _mm512_mask_storeu_ps(p, even, _mm512_add_ps(_mm512_maskz_loadu_ps(even, p), values));
  }
#endif
  for (; m < n; ++m) dst[2 * m] += src[m];
}

// B = patches (K x P) of one image/group, for the forward GEMM.
struct PatchPackB {
  const float* x;
  const Conv2dDesc* d;
  void operator()(float* out, int64_t k0, int64_t kc, int64_t p0, int64_t cols) const {
    const float* src = x;
    for (int64_t kk = 0; kk < kc; ++kk) {
      float* row = out + kk * kGemmNR;
      const int64_t stride = d->stride_w;
      for_each_patch_run(
          *d, tap_of(*d, k0 + kk), p0, cols,
          [&](int64_t i, int64_t n) {
            for (int64_t j = 0; j < n; ++j) row[i + j] = 0.0f;
          },
          [&](int64_t i, int64_t index, int64_t n) {
            const float* in = src + index;
            for (int64_t j = 0; j < n; ++j) row[i + j] = in[j * stride];
          });
      for (int64_t j = cols; j < kGemmNR; ++j) row[j] = 0.0f;
    }
  }
};

// B = patches^T (P x K) of one image/group, for the backward-weight GEMM: filled one patch row
// (a run along P) at a time, which reads the input contiguously.
struct PatchTransposedPackB {
  const float* x;
  const Conv2dDesc* d;
  void operator()(float* out, int64_t p0, int64_t pc, int64_t k0, int64_t cols) const {
    const float* src = x;
    for (int64_t j = 0; j < cols; ++j)
      for_each_patch_run(
          *d, tap_of(*d, k0 + j), p0, pc,
          [&](int64_t i, int64_t n) {
            for (int64_t pp = i; pp < i + n; ++pp) out[pp * kGemmNR + j] = 0.0f;
          },
          [&](int64_t i, int64_t index, int64_t n) {
            const float* in = src + index;
            for (int64_t m = 0; m < n; ++m) out[(i + m) * kGemmNR + j] = in[m * d->stride_w];
          });
    for (int64_t pp = 0; pp < pc; ++pp)
      for (int64_t j = cols; j < kGemmNR; ++j) out[pp * kGemmNR + j] = 0.0f;
  }
};

// Images are shared out whole when there are at least as many (image, group) items as threads
// (the caller's one reading of num_threads()).
bool parallel_over_images(const Conv2dDesc& d, int threads) { return d.batch * d.groups >= threads && threads > 1; }

// Pointwise convolutions are GEMMs over each image's positions. On maps of fewer than
// kBundledMapPositions, several images go side by side into one GEMM of about kPointwiseColumns
// columns (gathered into a bundle, results scattered back): 7x7 maps then fill the column panels
// (49 columns make 4 panels of 16 with 15 columns wasted), and the weight gradient reduces over
// many images at once instead of re-reading and re-writing dw per image. GoogLeNet's 7x7 layers
// gained 7-17 %; its 14x14 ones (6 % of the panel wasted) did not pay for the copies.
constexpr int64_t kBundledMapPositions = 128, kPointwiseColumns = 512;

// How a pointwise convolution's batch is cut: bundles of `images` (the last holds `count` of
// them), shared out whole between threads when there are enough (bundle, group) items.
struct PointwiseSplit {
  int64_t images, items;
  bool by_bundle;
  int slots;
  PointwiseSplit(const Conv2dDesc& d, const ConvGeometry& g, int threads) {
    images = g.p < kBundledMapPositions ? images_per_bundle(d.batch, threads, g.p, kPointwiseColumns) : 1;
    items = (d.batch + images - 1) / images * g.groups;
    by_bundle = items >= threads && threads > 1;
    slots = by_bundle ? threads : 1;
  }
};

// A GEMM operand from rows [0, rows) of images n0.. of a bundle: read in place for one image,
// otherwise gathered into buf (the team shares the copy). Returns the rows; their stride is
// count * g.p either way.
const float* bundle_rows(float* buf, const float* src, int64_t image_stride, int64_t count, int64_t rows,
                         const ConvGeometry& g, bool team) {
  if (count == 1) return src;
  int64_t lo, hi;
  team_range(rows, team, &lo, &hi);
  gather_images(buf, src, image_stride, count, g.p, lo, hi);
  team_barrier(team);
  return buf;
}

// out (rows x count * p of a bundle) = packed_a * B rows, into the images' planes (dst).
void pointwise_gemm(float* dst, int64_t dst_image_stride, float* out_buf, int64_t count, int64_t rows,
                    int64_t reduce, const float* packed_a, const float* b_rows, const float* bias, float* b_buf,
                    const ConvGeometry& g, bool team, bool bf16) {
  const int64_t columns = count * g.p;
  float* out = count == 1 ? dst : out_buf;
  gemm_packed(rows, columns, reduce, packed_a, MatrixPackB{b_rows, columns, false}, out, columns, 1.0f, 0.0f, bias,
              b_buf, team, bf16);
  if (count == 1) return;
  int64_t lo, hi;
  team_range(rows, team, &lo, &hi);
  scatter_images(dst, out_buf, dst_image_stride, count, g.p, lo, hi);
  team_barrier(team);  // the bundle buffers are rewritten for the next item
}

// The pointwise convolution of `in` (in_rows channels) into `out` (out_rows channels): forward
// (y from x with the weights as stored) or backward-data (dx from dy, the weights transposed).
void pointwise_convolution(float* out, const float* in, const float* w, const float* bias, const Conv2dDesc& d,
                           const ConvGeometry& g, bool backward_data) {
  const int64_t in_rows = backward_data ? g.cout_g : g.cin_g, out_rows = backward_data ? g.cin_g : g.cout_g;
  const int64_t in_stride = (backward_data ? d.out_channels : d.in_channels) * g.p;
  const int64_t out_stride = (backward_data ? d.in_channels : d.out_channels) * g.p;
  const int threads = num_threads();
  const PointwiseSplit split(d, g, threads);
  const int64_t columns = split.images * g.p, bundled = split.images > 1 ? columns : 0;
  const int64_t a_floats = packed_a_floats(out_rows, in_rows), b_floats = packed_b_floats(columns, in_rows);
  float* packed_w = thread_scratch(Scratch::pack_a, g.groups * a_floats);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * split.slots);
  float* in_bufs = thread_scratch(Scratch::columns, in_rows * bundled * split.slots);
  float* out_bufs = thread_scratch(Scratch::partial, out_rows * bundled * split.slots);
#pragma omp parallel num_threads(threads)
  {
    for (int64_t group = 0; group < g.groups; ++group)
      pack_a_matrix(packed_w + group * a_floats, w + group * g.cout_g * g.k, g.k, backward_data, out_rows, in_rows,
                    true, d.bf16);
    const bool team = !split.by_bundle;
    const int slot = split.by_bundle ? omp_get_thread_num() : 0;
    int64_t begin, end;
    team_range(split.items, split.by_bundle, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n0 = item / g.groups * split.images, group = item % g.groups;
      const int64_t count = min64(split.images, d.batch - n0);
      const float* rows = bundle_rows(in_bufs + slot * in_rows * bundled, in + n0 * in_stride + group * in_rows * g.p,
                                      in_stride, count, in_rows, g, team);
      pointwise_gemm(out + n0 * out_stride + group * out_rows * g.p, out_stride, out_bufs + slot * out_rows * bundled,
                     count, out_rows, in_rows, packed_w + group * a_floats, rows,
                     bias ? bias + group * out_rows : nullptr, b_bufs + slot * b_floats, g, team, d.bf16);
    }
  }
}

void pointwise_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d,
                               const ConvGeometry& g) {
  const int64_t w_floats = d.out_channels * g.k;
  const int threads = num_threads();
  const PointwiseSplit split(d, g, threads);
  const int64_t columns = split.images * g.p, bundled = split.images > 1 ? columns : 0;
  const int64_t a_floats = packed_a_floats(g.cout_g, columns), b_floats = packed_b_floats(g.k, columns);
  float* a_bufs = thread_scratch(Scratch::pack_a, a_floats * split.slots);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * split.slots);
  float* dy_bufs = thread_scratch(Scratch::weights, g.cout_g * bundled * split.slots);
  float* in_bufs = thread_scratch(Scratch::columns, g.cin_g * bundled * split.slots);
  float* partials = split.by_bundle ? thread_scratch(Scratch::partial, w_floats * threads) : nullptr;
#pragma omp parallel num_threads(threads)
  {
    const bool team = !split.by_bundle;
    const int slot = split.by_bundle ? omp_get_thread_num() : 0;
    float* out = split.by_bundle ? partials + slot * w_floats : dw;
    zero_shared(out, w_floats, team);
    int64_t begin, end;
    team_range(split.items, split.by_bundle, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n0 = item / g.groups * split.images, group = item % g.groups;
      const int64_t count = min64(split.images, d.batch - n0), reduce = count * g.p;
      const float* grad = bundle_rows(dy_bufs + slot * g.cout_g * bundled,
                                      dy + (n0 * d.out_channels + group * g.cout_g) * g.out_plane,
                                      d.out_channels * g.out_plane, count, g.cout_g, g, team);
      const float* in = bundle_rows(in_bufs + slot * g.cin_g * bundled,
                                    x + (n0 * d.in_channels + group * g.cin_g) * g.in_plane, d.in_channels * g.in_plane,
                                    count, g.cin_g, g, team);
      float* a_buf = a_bufs + slot * a_floats;
      pack_a_matrix(a_buf, grad, reduce, false, g.cout_g, reduce, team, d.bf16);
      gemm_packed(g.cout_g, g.k, reduce, a_buf, MatrixPackB{in, reduce, true}, out + group * g.cout_g * g.k, g.k, 1.0f,
                  1.0f, nullptr, b_bufs + slot * b_floats, team, d.bf16);
    }
    if (split.by_bundle) reduce_thread_partials(dw, partials, w_floats);
  }
}

// Note [dense convolution]
// On a map no larger than the kernel's window (VGG's 2x2 maps under a 3x3 kernel) most taps of
// most outputs read padding, and every path above either multiplies those zeros or runs GEMMs a
// few columns wide. Seen whole, such a convolution is a fully connected layer: image n's outputs
// (O * P of them, NCHW order) from its inputs (C * Q) through a matrix L[O * P x C * Q], laid out
// as a linear layer's weight, whose entry for output (o, oy, ox) and input (c, iy, ix) is the
// weight w[o, c, ky, kx] of the tap that joins them. So forward is y = x L^T (+ bias),
// backward-data dx = dy L and backward-weight dL = dy^T x, folded back onto the taps: three GEMMs
// over the whole batch. The path is offered where every input position meets every output
// position under some tap (a 2x2 map under a 3x3 kernel with padding 1; a map of one position): L
// then has no entry that is zero by construction, and the products are exactly the direct
// convolution's (a NaN or infinity reaches the same outputs), summed in another order. The GEMMs
// gather L's panels from w as they pack them (DensePackB); backward-weight writes dL out in
// scratch, up to kDenseMatrixFloats.
constexpr int64_t kDenseMatrixFloats = int64_t(1) << 23;

// The tap offset (ky or kx) joining input row/column i to output row/column o along one axis, or -1.
static inline int64_t joining_tap(int64_t i, int64_t o, int64_t stride, int64_t pad, int64_t dilation,
                                  int64_t kernel) {
  const int64_t offset = i - (o * stride - pad);
  return offset >= 0 && offset % dilation == 0 && offset / dilation < kernel ? offset / dilation : -1;
}

bool dense_possible(const Conv2dDesc& d) {
  const int64_t rows = d.out_channels * d.out_h * d.out_w, cols = d.in_channels * d.in_h * d.in_w;
  if (d.groups != 1 || rows == 0 || cols == 0 || rows > kDenseMatrixFloats / cols) return false;
  if (d.out_channels * d.in_channels * d.kernel_h * d.kernel_w > INT32_MAX) return false;  // DensePackB's offsets
  for (int64_t i = 0; i < d.in_h; ++i)
    for (int64_t o = 0; o < d.out_h; ++o)
      if (joining_tap(i, o, d.stride_h, d.pad_h, d.dilation_h, d.kernel_h) < 0) return false;
  for (int64_t i = 0; i < d.in_w; ++i)
    for (int64_t o = 0; o < d.out_w; ++o)
      if (joining_tap(i, o, d.stride_w, d.pad_w, d.dilation_w, d.kernel_w) < 0) return false;
  return true;
}

// tap[p * Q + q]: the kernel tap (ky * kernel_w + kx) joining output position p to input position q.
int64_t* dense_taps(const Conv2dDesc& d) {
  const int64_t q_count = d.in_h * d.in_w, p_count = d.out_h * d.out_w;
  int64_t* tap = thread_scratch_i64(Scratch::indices, p_count * q_count);
  for (int64_t p = 0; p < p_count; ++p)
    for (int64_t q = 0; q < q_count; ++q)
      tap[p * q_count + q] =
          joining_tap(q / d.in_w, p / d.out_w, d.stride_h, d.pad_h, d.dilation_h, d.kernel_h) * d.kernel_w +
          joining_tap(q % d.in_w, p % d.out_w, d.stride_w, d.pad_w, d.dilation_w, d.kernel_w);
  return tap;
}

// B panels of L^T (forward: rows are inputs (c, q), columns outputs (o, p)) or of L (backward-data:
// rows outputs (o, p), columns inputs (c, q)), gathered from the weights as the GEMM packs them: L
// itself is never written out. Rows sharing their position r (q or p) take their weights at the
// same offsets from their own channel's: one table of offsets per r, then a gather per row.
struct DensePackB {
  const float* w;
  const int64_t* tap;
  int64_t q_count, p_count, in_channels, taps;
  bool rows_are_inputs;
  void operator()(float* out, int64_t k0, int64_t kc, int64_t j0, int64_t cols) const {
    const int64_t positions = rows_are_inputs ? q_count : p_count;
    const int64_t channel_floats = rows_are_inputs ? taps : in_channels * taps;  // from one row channel to the next
    int32_t offset[kGemmNR];
    for (int64_t r = 0; r < positions; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t index = j0 + j;
        offset[j] = static_cast<int32_t>(
            rows_are_inputs ? index / p_count * in_channels * taps + tap[index % p_count * q_count + r]
                            : index / q_count * taps + tap[r * q_count + index % q_count]);
      }
      for (int64_t kk = ((r - k0) % positions + positions) % positions; kk < kc; kk += positions) {
        const float* filters = w + (k0 + kk) / positions * channel_floats;
        float* row = out + kk * kGemmNR;
        for (int64_t j = 0; j < cols; ++j) row[j] = filters[offset[j]];
        for (int64_t j = cols; j < kGemmNR; ++j) row[j] = 0.0f;
      }
    }
  }
};

// C (m x n) = op(A) B (+ beta C) with B packed by pack_b. The GEMMs multiply autocast's bfloat16
// operands as they pack where this build has bfloat16 dot products; elsewhere conv2d_* has handed
// them rounded copies (rounds_as_it_packs).
template <class PackB>
void dense_gemm(float* c, const float* a, bool trans_a, const PackB& pack_b, int64_t m, int64_t n, int64_t k,
                float beta, bool bf16) {
  team_gemm(c, n, a, trans_a ? m : k, trans_a, pack_b, m, n, k, 1.0f, beta, bf16 && kGemmBf16Dot);
}

DensePackB dense_pack(const float* w, const Conv2dDesc& d, bool rows_are_inputs) {
  return {w, dense_taps(d), d.in_h * d.in_w, d.out_h * d.out_w, d.in_channels, d.kernel_h * d.kernel_w,
          rows_are_inputs};
}

void dense_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d) {
  const int64_t p_count = d.out_h * d.out_w, outputs = d.out_channels * p_count;
  if (bias) {  // y starts as the bias and the products are added to it
#pragma omp parallel for num_threads(threads_for(d.batch, d.batch * outputs)) schedule(static)
    for (int64_t n = 0; n < d.batch; ++n)
      for (int64_t o = 0; o < d.out_channels; ++o)
        for (int64_t p = 0; p < p_count; ++p) y[n * outputs + o * p_count + p] = bias[o];
  }
  dense_gemm(y, x, false, dense_pack(w, d, true), d.batch, outputs, d.in_channels * d.in_h * d.in_w,
             bias ? 1.0f : 0.0f, d.bf16);
}

void dense_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d) {
  dense_gemm(dx, dy, false, dense_pack(w, d, false), d.batch, d.in_channels * d.in_h * d.in_w,
             d.out_channels * d.out_h * d.out_w, 0.0f, d.bf16);
}

// dL = dy^T x, then each weight is the sum of its tap's entries of dL in p order (one per p), taken
// one (p, q) pair at a time across the input channels (no two channels share a weight).
void dense_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d) {
  const int64_t q_count = d.in_h * d.in_w, p_count = d.out_h * d.out_w, taps = d.kernel_h * d.kernel_w;
  const int64_t outputs = d.out_channels * p_count, inputs = d.in_channels * q_count, channels = d.in_channels;
  float* dl = thread_scratch(Scratch::weights, outputs * inputs);
  dense_gemm(dl, dy, true, MatrixPackB{x, inputs, false}, outputs, inputs, d.batch, 0.0f, d.bf16);
  const int64_t* tap = dense_taps(d);
#pragma omp parallel for num_threads(threads_for(d.out_channels, outputs * inputs)) schedule(static)
  for (int64_t o = 0; o < d.out_channels; ++o) {
    float* filters = dw + o * channels * taps;
    for (int64_t i = 0; i < channels * taps; ++i) filters[i] = 0.0f;
    for (int64_t p = 0; p < p_count; ++p) {
      const float* row = dl + (o * p_count + p) * inputs;
      for (int64_t q = 0; q < q_count; ++q) {
        float* weights = filters + tap[p * q_count + q];
        for (int64_t c = 0; c < channels; ++c) weights[c * taps] += row[c * q_count + q];
      }
    }
  }
}

// The paths each pass can take (gemm, the patch packer, takes every convolution) and the one the
// fixed heuristic takes: the AMX tiles for autocast's bfloat16 operands where they can, else the
// dense product where it applies (1.7-10x the window path on 2x2 and 1x1 maps), else Winograd where
// it pays, then the window path, then the pointwise GEMM.
uint32_t candidate_mask(ConvPass pass, const Conv2dDesc& d) {
  const auto bit = [](ConvAlgorithm a) { return uint32_t(1) << static_cast<int>(a); };
  uint32_t mask = bit(ConvAlgorithm::gemm);
  if (geometry(d).pointwise) mask |= bit(ConvAlgorithm::pointwise);
  if (pass == ConvPass::backward_data ? window_backward_data_applies(d) : window_applies(d))
    mask |= bit(ConvAlgorithm::window);
  if (winograd_possible(pass, d)) mask |= bit(ConvAlgorithm::winograd);
  if (tiles_possible(pass, d)) mask |= bit(ConvAlgorithm::tiles);
  if (direct_differs(pass, d)) mask |= bit(ConvAlgorithm::direct);
  if (dense_possible(d)) mask |= bit(ConvAlgorithm::dense);
  return mask;
}

ConvAlgorithm heuristic_algorithm(ConvPass pass, const Conv2dDesc& d) {
  if (tiles_possible(pass, d)) return ConvAlgorithm::tiles;
  if (dense_possible(d)) return ConvAlgorithm::dense;
  bool winograd = false, window = false;
  switch (pass) {
    case ConvPass::forward: winograd = winograd_applies(d), window = window_applies(d); break;
    case ConvPass::backward_data:
      winograd = winograd_backward_data_applies(d), window = window_backward_data_applies(d);
      break;
    case ConvPass::backward_weight: winograd = winograd_backward_weight_applies(d), window = window_applies(d); break;
  }
  if (winograd) return ConvAlgorithm::winograd;
  if (window) return ConvAlgorithm::window;
  return geometry(d).pointwise ? ConvAlgorithm::pointwise : ConvAlgorithm::gemm;
}

// The descriptor's algorithm, or the heuristic's for `automatic` (the binding has checked that a
// forced one is a candidate).
ConvAlgorithm algorithm_for(ConvPass pass, const Conv2dDesc& d) {
  return d.algorithm == ConvAlgorithm::automatic ? heuristic_algorithm(pass, d) : d.algorithm;
}

// Whether a path rounds autocast's operands (Conv2dDesc::bf16) itself as it packs bfloat16; the
// others are handed rounded copies.
bool rounds_as_it_packs(ConvAlgorithm algorithm) {
  return algorithm == ConvAlgorithm::tiles ||
         (kGemmBf16Dot && (algorithm == ConvAlgorithm::gemm || algorithm == ConvAlgorithm::pointwise ||
                           algorithm == ConvAlgorithm::dense));
}

}  // namespace

void conv2d_algorithms(uint32_t* candidates, ConvAlgorithm* heuristic, ConvPass pass, const Conv2dDesc& d) {
  *candidates = candidate_mask(pass, d);
  *heuristic = heuristic_algorithm(pass, d);
}

void conv2d_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d) {
  const ConvGeometry g = geometry(d);
  if (d.batch == 0) return;
  const ConvAlgorithm algorithm = algorithm_for(ConvPass::forward, d);
  if (d.bf16 && !rounds_as_it_packs(algorithm)) {
    x = bf16_rounded(Scratch::rounded_first, x, d.batch * d.in_channels * g.in_plane);
    w = bf16_rounded(Scratch::rounded_second, w, d.out_channels * g.k);
  }
  switch (algorithm) {
    case ConvAlgorithm::winograd: return winograd_forward(y, x, w, bias, d);
    case ConvAlgorithm::window: return window_forward(y, x, w, bias, d, false);
    case ConvAlgorithm::direct: return window_forward(y, x, w, bias, d, true);
    case ConvAlgorithm::pointwise: return pointwise_convolution(y, x, w, bias, d, g, false);
    case ConvAlgorithm::dense: return dense_forward(y, x, w, bias, d);
#if defined(PCN_ISA_IS_amx)
    case ConvAlgorithm::tiles: return tiles_forward(y, x, w, bias, d);
#endif
    default: break;
  }
  const int threads = num_threads();
  const bool by_image = parallel_over_images(d, threads);
  const int64_t a_floats = packed_a_floats(g.cout_g, g.k), b_floats = packed_b_floats(g.p, g.k);
  float* packed_w = thread_scratch(Scratch::pack_a, g.groups * a_floats);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * (by_image ? threads : 1));
  const int64_t items = d.batch * g.groups;
#pragma omp parallel num_threads(threads)
  {
    for (int64_t group = 0; group < g.groups; ++group)
      pack_a_matrix(packed_w + group * a_floats, w + group * g.cout_g * g.k, g.k, false, g.cout_g, g.k, true, d.bf16);
    const bool team = !by_image;
    float* b_buf = b_bufs + (by_image ? omp_get_thread_num() * b_floats : 0);
    int64_t begin, end;
    team_range(items, by_image, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / g.groups, group = item % g.groups;
      const float* xg = x + (n * d.in_channels + group * g.cin_g) * g.in_plane;
      float* yg = y + (n * d.out_channels + group * g.cout_g) * g.out_plane;
      const float* bg = bias ? bias + group * g.cout_g : nullptr;
      gemm_packed(g.cout_g, g.p, g.k, packed_w + group * a_floats, PatchPackB{xg, &d}, yg, g.p, 1.0f, 0.0f, bg, b_buf,
                  team, d.bf16);
    }
  }
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d) {
  const ConvGeometry g = geometry(d);
  if (d.batch == 0) return;
  const ConvAlgorithm algorithm = algorithm_for(ConvPass::backward_data, d);
  if (d.bf16 && !rounds_as_it_packs(algorithm)) {
    dy = bf16_rounded(Scratch::rounded_first, dy, d.batch * d.out_channels * g.out_plane);
    w = bf16_rounded(Scratch::rounded_second, w, d.out_channels * g.k);
  }
  switch (algorithm) {
    case ConvAlgorithm::winograd: return winograd_backward_data(dx, dy, w, d);
    case ConvAlgorithm::window: return window_backward_data(dx, dy, w, d, false);
    case ConvAlgorithm::direct: return window_backward_data(dx, dy, w, d, true);
    case ConvAlgorithm::pointwise: return pointwise_convolution(dx, dy, w, nullptr, d, g, true);
    case ConvAlgorithm::dense: return dense_backward_data(dx, dy, w, d);
#if defined(PCN_ISA_IS_amx)
    case ConvAlgorithm::tiles: return tiles_backward_data(dx, dy, w, d);
#endif
    default: break;
  }
  const int threads = num_threads();
  const bool by_image = parallel_over_images(d, threads);
  // Column chunks keep the K x chunk buffer near 16 MB whatever the image size.
  const int64_t chunk = max64(kGemmNR, min64(g.p, (int64_t(1) << 22) / g.k));
  const int64_t a_floats = packed_a_floats(g.k, g.cout_g), b_floats = packed_b_floats(chunk, g.cout_g);
  const int64_t col_floats = g.k * chunk;
  const int slots = by_image ? threads : 1;
  float* packed_wt = thread_scratch(Scratch::pack_a, g.groups * a_floats);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * slots);
  float* col_bufs = thread_scratch(Scratch::columns, col_floats * slots);
  const int64_t items = d.batch * g.groups;
#pragma omp parallel num_threads(threads)
  {
    for (int64_t group = 0; group < g.groups; ++group)
      pack_a_matrix(packed_wt + group * a_floats, w + group * g.cout_g * g.k, g.k, true, g.k, g.cout_g, true, d.bf16);
    const bool team = !by_image;
    const int slot = by_image ? omp_get_thread_num() : 0;
    float* b_buf = b_bufs + slot * b_floats;
    float* cols = col_bufs + slot * col_floats;
    int64_t begin, end;
    team_range(items, by_image, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / g.groups, group = item % g.groups;
      float* dxg = dx + (n * d.in_channels + group * g.cin_g) * g.in_plane;
      const float* dyg = dy + (n * d.out_channels + group * g.cout_g) * g.out_plane;
      const float* ag = packed_wt + group * a_floats;
      int64_t c_begin, c_end;  // this thread's input channels for zeroing and col2im
      team_range(g.cin_g, team, &c_begin, &c_end);
      for (int64_t c = c_begin * g.in_plane; c < c_end * g.in_plane; ++c) dxg[c] = 0.0f;
      const int64_t taps = d.kernel_h * d.kernel_w;
      for (int64_t p0 = 0; p0 < g.p; p0 += chunk) {
        const int64_t pc = min64(chunk, g.p - p0);
        gemm_packed(g.k, pc, g.cout_g, ag, MatrixPackB{dyg + p0, g.p, false}, cols, pc, 1.0f, 0.0f, nullptr, b_buf,
                    team, d.bf16);
        // Rows of one input channel only touch that channel of dx: channels split the team.
        for (int64_t k = c_begin * taps; k < c_end * taps; ++k) {
          const float* col = cols + k * pc;
          for_each_patch_run(
              d, tap_of(d, k), p0, pc, [](int64_t, int64_t) {},
              [&](int64_t i, int64_t index, int64_t n) {
                float* dst = dxg + index;
                if (d.stride_w == 2) return add_to_every_other(dst, col + i, n);
                for (int64_t m = 0; m < n; ++m) dst[m * d.stride_w] += col[i + m];
              });
        }
        team_barrier(team);  // cols is rewritten by the next chunk
      }
    }
  }
}

void conv2d_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d) {
  const ConvGeometry g = geometry(d);
  const ConvAlgorithm algorithm = algorithm_for(ConvPass::backward_weight, d);
  if (d.bf16 && !rounds_as_it_packs(algorithm)) {
    dy = bf16_rounded(Scratch::rounded_first, dy, d.batch * d.out_channels * g.out_plane);
    x = bf16_rounded(Scratch::rounded_second, x, d.batch * d.in_channels * g.in_plane);
  }
  switch (algorithm) {
    case ConvAlgorithm::winograd: return winograd_backward_weight(dw, dy, x, d);
    case ConvAlgorithm::window: return window_backward_weight(dw, dy, x, d, false);
    case ConvAlgorithm::direct: return window_backward_weight(dw, dy, x, d, true);
    case ConvAlgorithm::pointwise: return pointwise_backward_weight(dw, dy, x, d, g);
    case ConvAlgorithm::dense: return dense_backward_weight(dw, dy, x, d);
#if defined(PCN_ISA_IS_amx)
    case ConvAlgorithm::tiles: return tiles_backward_weight(dw, dy, x, d);
#endif
    default: break;
  }
  const int64_t w_floats = d.out_channels * g.k;
  const int threads = num_threads();
  const bool by_image = parallel_over_images(d, threads);
  const int slots = by_image ? threads : 1;
  const int64_t a_floats = packed_a_floats(g.cout_g, g.p), b_floats = packed_b_floats(g.k, g.p);
  float* a_bufs = thread_scratch(Scratch::pack_a, a_floats * slots);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * slots);
  float* partials = by_image ? thread_scratch(Scratch::partial, w_floats * threads) : nullptr;
  const int64_t items = d.batch * g.groups;
#pragma omp parallel num_threads(threads)
  {
    const bool team = !by_image;
    const int slot = by_image ? omp_get_thread_num() : 0;
    float* a_buf = a_bufs + slot * a_floats;
    float* b_buf = b_bufs + slot * b_floats;
    float* out = by_image ? partials + slot * w_floats : dw;
    zero_shared(out, w_floats, team);
    int64_t begin, end;
    team_range(items, by_image, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / g.groups, group = item % g.groups;
      const float* xg = x + (n * d.in_channels + group * g.cin_g) * g.in_plane;
      const float* dyg = dy + (n * d.out_channels + group * g.cout_g) * g.out_plane;
      float* dwg = out + group * g.cout_g * g.k;
      pack_a_matrix(a_buf, dyg, g.p, false, g.cout_g, g.p, team, d.bf16);
      gemm_packed(g.cout_g, g.k, g.p, a_buf, PatchTransposedPackB{xg, &d}, dwg, g.k, 1.0f, 1.0f, nullptr, b_buf, team,
                  d.bf16);
    }
    if (by_image) reduce_thread_partials(dw, partials, w_floats);
  }
}

// Each plane (image, channel) is summed in float vector lanes, then its tail, with threads taking
// runs of planes in memory order (channel by channel, a thread would jump between images every
// plane); each channel then adds its planes' sums in double, image after image.
void conv2d_backward_bias(float* db, const float* dy, const Conv2dDesc& d) {
  const int64_t plane = d.out_h * d.out_w, planes = d.batch * d.out_channels;
  float* sums = thread_scratch(Scratch::partial, planes);
#pragma omp parallel for num_threads(threads_for(planes, planes * plane)) schedule(static)
  for (int64_t k = 0; k < planes; ++k) {
    const float* src = dy + k * plane;
    vfloat lanes = vfloat{};  // a float reduction does not auto-vectorise
    int64_t i = 0;
    if (d.bf16) {  // autocast: the rounded dy, as the other passes read it
      for (; i + kVecFloats <= plane; i += kVecFloats) lanes += round_to_bf16(vload(src + i));
    } else {
      for (; i + kVecFloats <= plane; i += kVecFloats) lanes += vload(src + i);
    }
    float sum = 0.0f;
    if (i > 0)  // planes shorter than a vector skip adding its zeros
      for (int lane = 0; lane < kVecFloats; ++lane) sum += lanes[lane];
    for (; i < plane; ++i) sum += d.bf16 ? round_to_bf16(src[i]) : src[i];
    sums[k] = sum;
  }
  double* totals = reinterpret_cast<double*>(thread_scratch(Scratch::columns, 2 * d.out_channels));
  for (int64_t c = 0; c < d.out_channels; ++c) totals[c] = 0.0;
  for (int64_t n = 0; n < d.batch; ++n)  // across the channels: the loop vectorises
    for (int64_t c = 0; c < d.out_channels; ++c) totals[c] += sums[n * d.out_channels + c];
  for (int64_t c = 0; c < d.out_channels; ++c) db[c] = static_cast<float>(totals[c]);
}

PCN_ISA_END
