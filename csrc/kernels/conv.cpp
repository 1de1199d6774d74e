// conv2d forward / backward-data / backward-weight / bias gradient as GEMMs (see conv.h).
// Per image and group, with K = (in_channels/groups) * kernel_h * kernel_w and P = out_h * out_w:
//   forward          y[oc x P]  = w[oc x K] * patches[K x P]     (patches packed straight into B panels)
//   backward-data    cols[K x P] = w^T * dy[oc x P], then scatter-added into dx (col2im), in P chunks
//   backward-weight  dw[oc x K] += dy[oc x P] * patches^T[P x K]
// A 1x1, stride-1, unpadded convolution reads x/dx directly as the GEMM operand.
// Threads take whole images when there are enough of them (each with its own scratch and, for
// backward-weight, its own partial sum reduced in thread order: deterministic for a fixed thread
// count); otherwise the whole team shares each image's GEMM.
#include "kernels/conv.h"

#include "kernels/gemm_driver.h"

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

// Index tables that map a patch row k = (c, r, s) and an output position p = (oh, ow) to the
// input element x[c][oh*stride_h - pad_h + r*dilation_h][ow*stride_w - pad_w + s*dilation_w].
struct PatchTables {
  const int64_t *k_offset, *k_row, *k_col;  // c*H*W + r*dh*W + s*dw, r*dh, s*dw
  const int64_t *p_base, *p_row, *p_col;    // row0*W + col0, row0, col0 (top-left of the window)
  int64_t in_h, in_w;

  float at(const float* x, int64_t k, int64_t p) const {
    const int64_t row = p_row[p] + k_row[k], col = p_col[p] + k_col[k];
    const bool inside = static_cast<uint64_t>(row) < static_cast<uint64_t>(in_h) &&
                        static_cast<uint64_t>(col) < static_cast<uint64_t>(in_w);
    return inside ? x[k_offset[k] + p_base[p]] : 0.0f;
  }
};

// Builds the tables in the calling thread's index scratch.
PatchTables patch_tables(const Conv2dDesc& d, const ConvGeometry& g) {
  int64_t* buf = thread_scratch_i64(Scratch::indices, 3 * (g.k + g.p));
  int64_t *k_offset = buf, *k_row = buf + g.k, *k_col = buf + 2 * g.k;
  int64_t *p_base = buf + 3 * g.k, *p_row = p_base + g.p, *p_col = p_base + 2 * g.p;
  int64_t k = 0;
  for (int64_t c = 0; c < g.cin_g; ++c)
    for (int64_t r = 0; r < d.kernel_h; ++r)
      for (int64_t s = 0; s < d.kernel_w; ++s, ++k) {
        k_row[k] = r * d.dilation_h;
        k_col[k] = s * d.dilation_w;
        k_offset[k] = c * g.in_plane + k_row[k] * d.in_w + k_col[k];
      }
  for (int64_t oh = 0, p = 0; oh < d.out_h; ++oh)
    for (int64_t ow = 0; ow < d.out_w; ++ow, ++p) {
      p_row[p] = oh * d.stride_h - d.pad_h;
      p_col[p] = ow * d.stride_w - d.pad_w;
      p_base[p] = p_row[p] * d.in_w + p_col[p];
    }
  return {k_offset, k_row, k_col, p_base, p_row, p_col, d.in_h, d.in_w};
}

// B = patches (K x P) of one image/group, for the forward GEMM.
struct PatchPackB {
  const float* x;
  const PatchTables* t;
  void operator()(float* out, int64_t k0, int64_t kc, int64_t p0, int64_t cols) const {
    for (int64_t kk = 0; kk < kc; ++kk) {
      float* row = out + kk * kGemmNR;
      for (int64_t j = 0; j < cols; ++j) row[j] = t->at(x, k0 + kk, p0 + j);
      for (int64_t j = cols; j < kGemmNR; ++j) row[j] = 0.0f;
    }
  }
};

// B = patches^T (P x K) of one image/group, for the backward-weight GEMM.
struct PatchTransposedPackB {
  const float* x;
  const PatchTables* t;
  void operator()(float* out, int64_t p0, int64_t pc, int64_t k0, int64_t cols) const {
    for (int64_t pp = 0; pp < pc; ++pp) {
      float* row = out + pp * kGemmNR;
      for (int64_t j = 0; j < cols; ++j) row[j] = t->at(x, k0 + j, p0 + pp);
      for (int64_t j = cols; j < kGemmNR; ++j) row[j] = 0.0f;
    }
  }
};

// Images are shared out whole when there are at least as many (image, group) items as threads.
bool parallel_over_images(const Conv2dDesc& d) { return d.batch * d.groups >= num_threads() && num_threads() > 1; }

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d) {
  const ConvGeometry g = geometry(d);
  if (d.batch == 0) return;
  const int threads = num_threads();
  const bool by_image = parallel_over_images(d);
  const int64_t a_floats = packed_a_floats(g.cout_g, g.k), b_floats = packed_b_floats(g.p, g.k);
  float* packed_w = thread_scratch(Scratch::pack_a, g.groups * a_floats);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * (by_image ? threads : 1));
  const PatchTables tables = patch_tables(d, g);
  const int64_t items = d.batch * g.groups;
#pragma omp parallel num_threads(threads)
  {
    for (int64_t group = 0; group < g.groups; ++group)
      pack_a_matrix(packed_w + group * a_floats, w + group * g.cout_g * g.k, g.k, false, g.cout_g, g.k, true);
    const bool team = !by_image;
    float* b_buf = b_bufs + (by_image ? omp_get_thread_num() * b_floats : 0);
    int64_t begin, end;
    team_range(items, by_image, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / g.groups, group = item % g.groups;
      const float* xg = x + (n * d.in_channels + group * g.cin_g) * g.in_plane;
      float* yg = y + (n * d.out_channels + group * g.cout_g) * g.out_plane;
      const float* bg = bias ? bias + group * g.cout_g : nullptr;
      const float* ag = packed_w + group * a_floats;
      if (g.pointwise)
        gemm_packed(g.cout_g, g.p, g.k, ag, MatrixPackB{xg, g.in_plane, false}, yg, g.p, 1.0f, 0.0f, bg, b_buf, team);
      else
        gemm_packed(g.cout_g, g.p, g.k, ag, PatchPackB{xg, &tables}, yg, g.p, 1.0f, 0.0f, bg, b_buf, team);
    }
  }
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d) {
  const ConvGeometry g = geometry(d);
  if (d.batch == 0) return;
  const int threads = num_threads();
  const bool by_image = parallel_over_images(d);
  // Column chunks keep the K x chunk buffer near 16 MB whatever the image size.
  const int64_t chunk = g.pointwise ? g.p : max64(kGemmNR, min64(g.p, (int64_t(1) << 22) / g.k));
  const int64_t a_floats = packed_a_floats(g.k, g.cout_g), b_floats = packed_b_floats(chunk, g.cout_g);
  const int64_t col_floats = g.pointwise ? 0 : g.k * chunk;
  const int slots = by_image ? threads : 1;
  float* packed_wt = thread_scratch(Scratch::pack_a, g.groups * a_floats);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * slots);
  float* col_bufs = thread_scratch(Scratch::columns, col_floats * slots);
  const PatchTables tables = patch_tables(d, g);
  const int64_t items = d.batch * g.groups;
#pragma omp parallel num_threads(threads)
  {
    for (int64_t group = 0; group < g.groups; ++group)
      pack_a_matrix(packed_wt + group * a_floats, w + group * g.cout_g * g.k, g.k, true, g.k, g.cout_g, true);
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
      if (g.pointwise) {
        gemm_packed(g.k, g.p, g.cout_g, ag, MatrixPackB{dyg, g.p, false}, dxg, g.in_plane, 1.0f, 0.0f, nullptr, b_buf,
                    team);
        continue;
      }
      int64_t c_begin, c_end;  // this thread's input channels for zeroing and col2im
      team_range(g.cin_g, team, &c_begin, &c_end);
      for (int64_t c = c_begin * g.in_plane; c < c_end * g.in_plane; ++c) dxg[c] = 0.0f;
      const int64_t taps = d.kernel_h * d.kernel_w;
      for (int64_t p0 = 0; p0 < g.p; p0 += chunk) {
        const int64_t pc = min64(chunk, g.p - p0);
        gemm_packed(g.k, pc, g.cout_g, ag, MatrixPackB{dyg + p0, g.p, false}, cols, pc, 1.0f, 0.0f, nullptr, b_buf,
                    team);
        // Rows of one input channel only touch that channel of dx: channels split the team.
        for (int64_t k = c_begin * taps; k < c_end * taps; ++k) {
          const float* col = cols + k * pc;
          for (int64_t j = 0; j < pc; ++j) {
            const int64_t p = p0 + j;
            const int64_t row = tables.p_row[p] + tables.k_row[k], column = tables.p_col[p] + tables.k_col[k];
            if (static_cast<uint64_t>(row) < static_cast<uint64_t>(d.in_h) &&
                static_cast<uint64_t>(column) < static_cast<uint64_t>(d.in_w))
              dxg[tables.k_offset[k] + tables.p_base[p]] += col[j];
          }
        }
        team_barrier(team);  // cols is rewritten by the next chunk
      }
    }
  }
}

void conv2d_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d) {
  const ConvGeometry g = geometry(d);
  const int64_t w_floats = d.out_channels * g.k;
  const int threads = num_threads();
  const bool by_image = parallel_over_images(d);
  const int slots = by_image ? threads : 1;
  const int64_t a_floats = packed_a_floats(g.cout_g, g.p), b_floats = packed_b_floats(g.k, g.p);
  float* a_bufs = thread_scratch(Scratch::pack_a, a_floats * slots);
  float* b_bufs = thread_scratch(Scratch::pack_b, b_floats * slots);
  float* partials = by_image ? thread_scratch(Scratch::partial, w_floats * threads) : nullptr;
  const PatchTables tables = patch_tables(d, g);
  const int64_t items = d.batch * g.groups;
#pragma omp parallel num_threads(threads)
  {
    const bool team = !by_image;
    const int slot = by_image ? omp_get_thread_num() : 0;
    float* a_buf = a_bufs + slot * a_floats;
    float* b_buf = b_bufs + slot * b_floats;
    float* out = by_image ? partials + slot * w_floats : dw;
    int64_t begin, end;
    team_range(w_floats, team, &begin, &end);
    for (int64_t i = begin; i < end; ++i) out[i] = 0.0f;
    team_barrier(team);
    team_range(items, by_image, &begin, &end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / g.groups, group = item % g.groups;
      const float* xg = x + (n * d.in_channels + group * g.cin_g) * g.in_plane;
      const float* dyg = dy + (n * d.out_channels + group * g.cout_g) * g.out_plane;
      float* dwg = out + group * g.cout_g * g.k;
      pack_a_matrix(a_buf, dyg, g.p, false, g.cout_g, g.p, team);
      if (g.pointwise)
        gemm_packed(g.cout_g, g.k, g.p, a_buf, MatrixPackB{xg, g.in_plane, true}, dwg, g.k, 1.0f, 1.0f, nullptr, b_buf,
                    team);
      else
        gemm_packed(g.cout_g, g.k, g.p, a_buf, PatchTransposedPackB{xg, &tables}, dwg, g.k, 1.0f, 1.0f, nullptr,
                    b_buf, team);
    }
    if (by_image) {
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

void conv2d_backward_bias(float* db, const float* dy, const Conv2dDesc& d) {
  const int64_t plane = d.out_h * d.out_w;
#pragma omp parallel for num_threads(threads_for(d.out_channels)) schedule(static)
  for (int64_t c = 0; c < d.out_channels; ++c) {
    double total = 0.0;
    for (int64_t n = 0; n < d.batch; ++n) {
      const float* src = dy + (n * d.out_channels + c) * plane;
      float sum = 0.0f;
      for (int64_t i = 0; i < plane; ++i) sum += src[i];
      total += sum;
    }
    db[c] = static_cast<float>(total);
  }
}

PCN_ISA_END
