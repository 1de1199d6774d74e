// The one shared-memory tiled GEMM kernel behind sgemm and the three implicit-GEMM convolutions
// (device code: included only by gemm.cu and conv.cu, never by g++).
//
// C (M x N) = op(A) (M x K) * op(B) (K x N), where a `Problem` says how to read A(z, i, k) (load_a)
// and B(z, k, j) (load_b) (a plain matrix, or an im2col element computed on the fly) and how to store
// the sum for (z, i, j). z indexes independent problems of the same M, N (conv groups, split-K
// chunks); Problem::k_range(z) gives the slice of K that z sums. Problem also has M, N and two flags,
// a_k_fast / b_k_fast, saying whether consecutive threads should load along k (k is the operand's
// contiguous axis) or along i / j, so global loads stay coalesced.
//
// One block of 256 threads owns a 64 x 64 tile of C; it walks K in 8-deep slices staged in shared
// memory. Exact fp32 (kTf32 false): each thread owns a 4 x 4 micro-tile at rows ty + 16 * r, columns
// tx + 16 * c (strided so a warp's shared-memory reads broadcast or hit distinct banks), one fmaf
// chain per element in increasing k order. TF32 (kTf32 true, sm_80+): each of the 8 warps owns a
// 32 x 16 sub-tile, 2 x 2 mma.sync m16n8k8 tf32 tiles per slice with fp32 accumulation. Either way
// the order of every sum is fixed: deterministic. Grid loops over z, tile rows and tile columns cover
// any size past the grid limits; they are uniform per block, so __syncthreads is safe.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/device_array.h"

namespace pcn::cuda::tile {

constexpr int kTileM = 64, kTileN = 64, kTileK = 8, kMicro = 4, kThreads = 256;
constexpr int kThreadsPerRow = kTileN / kMicro;  // 16 threads across a tile's columns
constexpr int kPad = 4;  // shared rows of 68 floats: the TF32 fragment reads of a warp hit 32 banks
static_assert(kThreadsPerRow * (kTileM / kMicro) == kThreads, "one thread per 4x4 micro-tile");
static_assert(kTileK == 8 && kThreads == 256 && kTileM == 64 && kTileN == 64, "the TF32 warp layout");

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
__device__ inline uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

// c (16 x 8, fp32) += a (16 x 8, tf32, row-major fragment) * b (8 x 8, tf32, column fragment).
__device__ inline void mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

template <class Problem, bool kTf32>
__global__ void __launch_bounds__(kThreads) gemm_tile_kernel(Problem p, int64_t z_count) {
  __shared__ float a_tile[kTileK][kTileM + kPad];  // a_tile[kk][ii] = A(z, row0 + ii, k0 + kk)
  __shared__ float b_tile[kTileK][kTileN + kPad];  // b_tile[kk][jj] = B(z, k0 + kk, col0 + jj)
  const int t = static_cast<int>(threadIdx.x), tx = t % kThreadsPerRow, ty = t / kThreadsPerRow;
  // TF32: warp w owns rows warp_m .. +32, columns warp_n .. +16; lane = 4 * group + quad (PTX's
  // groupID and threadID_in_group) places the fragments' elements.
  const int lane = t % 32, group = lane / 4, quad = lane % 4;
  const int warp_m = (t / 32) / 4 * 32, warp_n = (t / 32) % 4 * 16;
  const int64_t tiles_m = (p.M + kTileM - 1) / kTileM, tiles_n = (p.N + kTileN - 1) / kTileN;
  for (int64_t z = blockIdx.z; z < z_count; z += gridDim.z) {
    int64_t k_begin = 0, k_end = 0;
    p.k_range(z, k_begin, k_end);
    for (int64_t tm = blockIdx.y; tm < tiles_m; tm += gridDim.y)
      for (int64_t tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
        const int64_t row0 = tm * kTileM, col0 = tn * kTileN;
        float acc[kMicro][kMicro];
#pragma unroll
        for (int r = 0; r < kMicro; ++r)
#pragma unroll
          for (int c = 0; c < kMicro; ++c) acc[r][c] = 0.0f;
        for (int64_t k0 = k_begin; k0 < k_end; k0 += kTileK) {
          for (int e = t; e < kTileM * kTileK; e += kThreads) {
            const int kk = p.a_k_fast ? e % kTileK : e / kTileM;
            const int ii = p.a_k_fast ? e / kTileK : e % kTileM;
            const int64_t i = row0 + ii, k = k0 + kk;
            a_tile[kk][ii] = (i < p.M && k < k_end) ? p.load_a(z, i, k) : 0.0f;
          }
          for (int e = t; e < kTileN * kTileK; e += kThreads) {
            const int kk = p.b_k_fast ? e % kTileK : e / kTileN;
            const int jj = p.b_k_fast ? e / kTileK : e % kTileN;
            const int64_t j = col0 + jj, k = k0 + kk;
            b_tile[kk][jj] = (j < p.N && k < k_end) ? p.load_b(z, k, j) : 0.0f;
          }
          __syncthreads();
          if constexpr (kTf32) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
            uint32_t af[2][4], bf[2][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
              const int m = warp_m + 16 * mi + group;
              af[mi][0] = to_tf32(a_tile[quad][m]);
              af[mi][1] = to_tf32(a_tile[quad][m + 8]);
              af[mi][2] = to_tf32(a_tile[quad + 4][m]);
              af[mi][3] = to_tf32(a_tile[quad + 4][m + 8]);
            }
#pragma unroll
            for (int ni = 0; ni < 2; ++ni) {
              const int n = warp_n + 8 * ni + group;
              bf[ni][0] = to_tf32(b_tile[quad][n]);
              bf[ni][1] = to_tf32(b_tile[quad + 4][n]);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
              for (int ni = 0; ni < 2; ++ni) mma_tf32(acc[2 * mi + ni], af[mi], bf[ni]);
#else
            __trap();  // the launcher picks TF32 only on sm_80 and newer
#endif
          } else {
#pragma unroll
            for (int kk = 0; kk < kTileK; ++kk) {
              float av[kMicro], bv[kMicro];
#pragma unroll
              for (int r = 0; r < kMicro; ++r) av[r] = a_tile[kk][ty + kThreadsPerRow * r];
#pragma unroll
              for (int c = 0; c < kMicro; ++c) bv[c] = b_tile[kk][tx + kThreadsPerRow * c];
#pragma unroll
              for (int r = 0; r < kMicro; ++r)
#pragma unroll
                for (int c = 0; c < kMicro; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
            }
          }
          __syncthreads();  // the next slice overwrites the tiles
        }
        // Exact: acc[r][c] is (ty + 16 r, tx + 16 c). TF32: acc[2 mi + ni][e] is the mma tile (mi, ni)'s
        // element e, at row group + 8 (e / 2), column 2 quad + e % 2 of that 16 x 8 tile.
#pragma unroll
        for (int r = 0; r < kMicro; ++r)
#pragma unroll
          for (int c = 0; c < kMicro; ++c) {
            const int64_t i = row0 + (kTf32 ? warp_m + 16 * (r / 2) + group + 8 * (c / 2) : ty + kThreadsPerRow * r);
            const int64_t j = col0 + (kTf32 ? warp_n + 8 * (r % 2) + 2 * quad + c % 2 : tx + kThreadsPerRow * c);
            if (i < p.M && j < p.N) p.store(z, i, j, acc[r][c]);
          }
      }
  }
}

// Whether the current device has TF32 tensor cores (sm_80 and newer).
inline bool device_has_tf32() {
  int device = 0, major = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
  return major >= 8;
}

// Launches gemm_tile_kernel for `z_count` problems of p.M x p.N on `stream` (nothing when empty),
// with TF32 tensor cores when `tf32` is allowed and the device has them, else in exact fp32.
template <class Problem>
void launch_gemm_tile(const Problem& p, int64_t z_count, bool tf32, cudaStream_t stream, const char* name) {
  if (p.M <= 0 || p.N <= 0 || z_count <= 0) return;
  const int64_t tiles_m = (p.M + kTileM - 1) / kTileM, tiles_n = (p.N + kTileN - 1) / kTileN;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(tiles_n, INT32_MAX)),
                  static_cast<unsigned>(std::min<int64_t>(tiles_m, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(z_count, 65535)));
  if (tf32 && device_has_tf32())
    gemm_tile_kernel<Problem, true><<<grid, kThreads, 0, stream>>>(p, z_count);
  else
    gemm_tile_kernel<Problem, false><<<grid, kThreads, 0, stream>>>(p, z_count);
  check_launch(name);
}

}  // namespace pcn::cuda::tile
