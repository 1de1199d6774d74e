// GPU conv2d (see conv.cuh): forward, backward-data and backward-weight as implicit GEMMs on the
// shared tiled kernel (gemm_tile.cuh), the im2col element computed when a tile is loaded and never
// stored; backward-bias as a per-channel tree reduction. Groups are the tile kernel's z dimension.
// Everything is deterministic: no atomics, every sum in a fixed order. The three GEMMs use TF32
// tensor cores when allow_tf32_conv() (gemm.cuh) is set.
#include "cuda/conv.cuh"

#include <algorithm>

#include "cuda/device_array.h"
#include "cuda/gemm.cuh"
#include "cuda/gemm_tile.cuh"

namespace pcn::cuda {
namespace {

// The sizes all three implicit GEMMs use, derived once from the descriptor on the host.
struct ConvGeometry {
  Conv2dDesc d;
  int64_t cin_g, cout_g;  // channels per group
  int64_t taps;           // kernel_h * kernel_w
  int64_t in_plane;       // in_h * in_w
  int64_t out_plane;      // out_h * out_w

  explicit ConvGeometry(const Conv2dDesc& desc)
      : d(desc),
        cin_g(desc.in_channels / desc.groups),
        cout_g(desc.out_channels / desc.groups),
        taps(desc.kernel_h * desc.kernel_w),
        in_plane(desc.in_h * desc.in_w),
        out_plane(desc.out_h * desc.out_w) {}

  // x[n, g * cin_g + c, ih, iw] for the tap (r, s) of output pixel (oh, ow), or 0 in the padding:
  // the element (c * taps + r * kernel_w + s, n * out_plane + oh * out_w + ow) of group g's im2col.
  __device__ float im2col(const float* x, int64_t g, int64_t c, int64_t r, int64_t s, int64_t n, int64_t oh,
                          int64_t ow) const {
    const int64_t ih = oh * d.stride_h - d.pad_h + r * d.dilation_h;
    const int64_t iw = ow * d.stride_w - d.pad_w + s * d.dilation_w;
    if (ih < 0 || ih >= d.in_h || iw < 0 || iw >= d.in_w) return 0.0f;
    return x[((n * d.in_channels + g * cin_g + c) * d.in_h + ih) * d.in_w + iw];
  }
};

// Forward, per group g: y_g (cout_g x batch*out_plane) = w_g (cout_g x cin_g*taps) * im2col_g(x).
// Rows i are the group's output channels, columns j = n * out_plane + (oh * out_w + ow).
struct ForwardProblem {
  ConvGeometry geo;
  int64_t M, N, K;
  const float* x;
  const float* w;
  const float* bias;  // may be null
  float* y;
  static constexpr bool a_k_fast = true, b_k_fast = false;

  __device__ void k_range(int64_t, int64_t& begin, int64_t& end) const {
    begin = 0;
    end = K;
  }
  __device__ float load_a(int64_t g, int64_t i, int64_t k) const { return w[(g * geo.cout_g + i) * K + k]; }
  __device__ float load_b(int64_t g, int64_t k, int64_t j) const {
    const int64_t c = k / geo.taps, rs = k % geo.taps, n = j / geo.out_plane, p = j % geo.out_plane;
    return geo.im2col(x, g, c, rs / geo.d.kernel_w, rs % geo.d.kernel_w, n, p / geo.d.out_w, p % geo.d.out_w);
  }
  __device__ void store(int64_t g, int64_t i, int64_t j, float sum) const {
    const int64_t oc = g * geo.cout_g + i, n = j / geo.out_plane, p = j % geo.out_plane;
    y[(n * geo.d.out_channels + oc) * geo.out_plane + p] = sum + (bias ? bias[oc] : 0.0f);
  }
};

// Backward data, per group g, as the transposed implicit GEMM:
// dx_g (cin_g x batch*in_plane) = w_g^T (cin_g x cout_g*taps) * taps(dy), where taps(dy) at
// (o * taps + r * kernel_w + s, n * in_plane + ih * in_w + iw) is dy[n, g * cout_g + o, oh, ow] for
// the output pixel whose tap (r, s) lands on (ih, iw) (ih + pad_h - r * dilation_h = oh * stride_h),
// and 0 where no output pixel's tap does.
struct BackwardDataProblem {
  ConvGeometry geo;
  int64_t M, N, K;
  const float* dy;
  const float* w;
  float* dx;
  static constexpr bool a_k_fast = true, b_k_fast = false;

  __device__ void k_range(int64_t, int64_t& begin, int64_t& end) const {
    begin = 0;
    end = K;
  }
  __device__ float load_a(int64_t g, int64_t c, int64_t k) const {
    const int64_t o = k / geo.taps, rs = k % geo.taps;
    return w[((g * geo.cout_g + o) * geo.cin_g + c) * geo.taps + rs];
  }
  __device__ float load_b(int64_t g, int64_t k, int64_t j) const {
    const Conv2dDesc& d = geo.d;
    const int64_t o = k / geo.taps, rs = k % geo.taps, r = rs / d.kernel_w, s = rs % d.kernel_w;
    const int64_t n = j / geo.in_plane, q = j % geo.in_plane, ih = q / d.in_w, iw = q % d.in_w;
    const int64_t th = ih + d.pad_h - r * d.dilation_h, tw = iw + d.pad_w - s * d.dilation_w;
    if (th < 0 || tw < 0 || th % d.stride_h != 0 || tw % d.stride_w != 0) return 0.0f;
    const int64_t oh = th / d.stride_h, ow = tw / d.stride_w;
    if (oh >= d.out_h || ow >= d.out_w) return 0.0f;
    return dy[((n * d.out_channels + g * geo.cout_g + o) * d.out_h + oh) * d.out_w + ow];
  }
  __device__ void store(int64_t g, int64_t c, int64_t j, float sum) const {
    const int64_t n = j / geo.in_plane, q = j % geo.in_plane;
    dx[(n * geo.d.in_channels + g * geo.cin_g + c) * geo.in_plane + q] = sum;
  }
};

// Backward weight, per group g: dw_g (cout_g x cin_g*taps) = dy_g (cout_g x batch*out_plane) *
// im2col_g(x)^T. The reduction over batch*out_plane is cut into `splits` fixed chunks of `chunk`
// (z = g * splits + split); with more than one chunk each writes its partial sums to its own slice
// of `out` (a workspace of splits x weights) and sum_splits adds them in split order.
struct BackwardWeightProblem {
  ConvGeometry geo;
  int64_t M, N, K;
  int64_t splits, chunk;
  const float* dy;
  const float* x;
  float* out;
  static constexpr bool a_k_fast = true, b_k_fast = true;

  __device__ void k_range(int64_t z, int64_t& begin, int64_t& end) const {
    begin = (z % splits) * chunk;
    end = begin + chunk < K ? begin + chunk : K;
  }
  __device__ float load_a(int64_t z, int64_t o, int64_t k) const {
    const int64_t g = z / splits, n = k / geo.out_plane, p = k % geo.out_plane;
    return dy[(n * geo.d.out_channels + g * geo.cout_g + o) * geo.out_plane + p];
  }
  __device__ float load_b(int64_t z, int64_t k, int64_t j) const {
    const int64_t g = z / splits, c = j / geo.taps, rs = j % geo.taps, n = k / geo.out_plane, p = k % geo.out_plane;
    return geo.im2col(x, g, c, rs / geo.d.kernel_w, rs % geo.d.kernel_w, n, p / geo.d.out_w, p % geo.d.out_w);
  }
  __device__ void store(int64_t z, int64_t o, int64_t j, float sum) const {
    const int64_t g = z / splits, split = z % splits, weights = geo.d.out_channels * N;
    out[split * weights + (g * geo.cout_g + o) * N + j] = sum;
  }
};

// out[i] = sum over s in order of partial[s * count + i].
__global__ void sum_splits(float* out, const float* partial, int64_t splits, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int64_t s = 0; s < splits; ++s) sum += partial[s * count + i];
    out[i] = sum;
  }
}

// db[oc] = sum of dy[:, oc, :, :]: one block per channel (grid-stride over channels), each thread a
// strided partial sum, then a shared-memory tree in a fixed order.
constexpr int kBiasThreads = 256;
__global__ void __launch_bounds__(kBiasThreads)
    bias_grad(float* db, const float* dy, int64_t batch, int64_t channels, int64_t plane) {
  __shared__ float partial[kBiasThreads];
  const int64_t count = batch * plane;
  for (int64_t oc = blockIdx.x; oc < channels; oc += gridDim.x) {
    float sum = 0.0f;
    for (int64_t e = threadIdx.x; e < count; e += kBiasThreads)
      sum += dy[((e / plane) * channels + oc) * plane + e % plane];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kBiasThreads / 2; half > 0; half /= 2) {
      if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) db[oc] = partial[0];
    __syncthreads();  // partial[0] is read before the next channel overwrites it
  }
}

// Split-K sizing for the weight gradient: enough z-blocks to fill a large GPU when the weight tiles
// alone are few, chunks of at least kMinChunk products. Fixed constants (not the device's SM count),
// so the summation order, and the result, is the same on every GPU.
constexpr int64_t kTargetBlocks = 1024, kMinChunk = 512;

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dDesc& d,
                    cudaStream_t stream) {
  const ConvGeometry geo(d);
  const ForwardProblem p{geo, geo.cout_g, d.batch * geo.out_plane, geo.cin_g * geo.taps, x, w, bias, y};
  tile::launch_gemm_tile(p, d.groups, allow_tf32_conv(), stream, "conv2d_forward");
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dDesc& d, cudaStream_t stream) {
  const ConvGeometry geo(d);
  const BackwardDataProblem p{geo, geo.cin_g, d.batch * geo.in_plane, geo.cout_g * geo.taps, dy, w, dx};
  tile::launch_gemm_tile(p, d.groups, allow_tf32_conv(), stream, "conv2d_backward_data");
}

void conv2d_backward_weight(float* dw, const float* dy, const float* x, const Conv2dDesc& d, cudaStream_t stream) {
  const ConvGeometry geo(d);
  const int64_t M = geo.cout_g, N = geo.cin_g * geo.taps, K = d.batch * geo.out_plane;
  const int64_t weight_tiles =
      ((M + tile::kTileM - 1) / tile::kTileM) * ((N + tile::kTileN - 1) / tile::kTileN) * d.groups;
  int64_t splits = 1;
  if (weight_tiles < kTargetBlocks && K > kMinChunk)
    splits = std::min((K + kMinChunk - 1) / kMinChunk, (kTargetBlocks + weight_tiles - 1) / weight_tiles);
  int64_t chunk = (K + splits - 1) / splits;
  chunk = std::max<int64_t>((chunk + tile::kTileK - 1) / tile::kTileK * tile::kTileK, tile::kTileK);
  splits = std::max<int64_t>((K + chunk - 1) / chunk, 1);  // K == 0 (empty batch): one chunk writes zeros
  if (splits == 1) {
    const BackwardWeightProblem p{geo, M, N, K, 1, chunk, dy, x, dw};
    tile::launch_gemm_tile(p, d.groups, allow_tf32_conv(), stream, "conv2d_backward_weight");
    return;
  }
  const int64_t weights = d.out_channels * N;
  int device = 0;
  check(cudaGetDevice(&device), "conv2d_backward_weight: cudaGetDevice");
  // Freed on return: the stream orders any later user of the block after these two kernels.
  const DeviceArray workspace = empty({splits, weights}, Dtype::float32, device);
  const BackwardWeightProblem p{geo, M, N, K, splits, chunk, dy, x, workspace.data<float>()};
  tile::launch_gemm_tile(p, d.groups * splits, allow_tf32_conv(), stream, "conv2d_backward_weight");
  sum_splits<<<grid_for(weights), 256, 0, stream>>>(dw, workspace.data<float>(), splits, weights);
  check_launch("conv2d_backward_weight sum_splits");
}

void conv2d_backward_bias(float* db, const float* dy, const Conv2dDesc& d, cudaStream_t stream) {
  if (d.out_channels <= 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(d.out_channels, 65535));
  bias_grad<<<blocks, kBiasThreads, 0, stream>>>(db, dy, d.batch, d.out_channels, d.out_h * d.out_w);
  check_launch("conv2d_backward_bias");
}

}  // namespace pcn::cuda
