// The one shared-memory tiled fp32 GEMM kernel behind sgemm and the three implicit-GEMM convolutions
// (device code: included only by gemm.cu and conv.cu, never by g++).
//
// C (M x N) = op(A) (M x K) * op(B) (K x N), where a `Problem` says how to read A(z, i, k) (load_a) and
// B(z, k, j) (load_b) (a plain matrix, or an im2col element computed on the fly) and how to store the sum
// for (z, i, j). z indexes independent problems of the same M, N (conv groups, split-K chunks);
// Problem::k_range(z) gives the slice of K that z sums. Problem also has M, N and two flags,
// a_k_fast / b_k_fast, saying whether consecutive threads should load along k (k is the operand's
// contiguous axis) or along i / j, so global loads stay coalesced.
//
// One block of 256 threads owns a 64 x 64 tile of C; it walks K in 8-deep slices staged in shared
// memory, and each thread owns a 4 x 4 micro-tile at rows ty + 16 * r, columns tx + 16 * c (strided
// so the shared-memory reads of a warp hit distinct banks or broadcast). Every C element is one
// fmaf chain in increasing k order: deterministic. Grid loops over z, tile rows and tile columns
// cover any size past the grid limits; the loops are uniform per block, so __syncthreads is safe.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/device_array.h"

namespace pcn::cuda::tile {

constexpr int kTileM = 64, kTileN = 64, kTileK = 8, kMicro = 4, kThreads = 256;
constexpr int kThreadsPerRow = kTileN / kMicro;  // 16 threads across a tile's columns
static_assert(kThreadsPerRow * (kTileM / kMicro) == kThreads, "one thread per 4x4 micro-tile");

template <class Problem>
__global__ void __launch_bounds__(kThreads) gemm_tile_kernel(Problem p, int64_t z_count) {
  __shared__ float a_tile[kTileK][kTileM];  // a_tile[kk][ii] = A(z, row0 + ii, k0 + kk)
  __shared__ float b_tile[kTileK][kTileN];  // b_tile[kk][jj] = B(z, k0 + kk, col0 + jj)
  const int t = static_cast<int>(threadIdx.x), tx = t % kThreadsPerRow, ty = t / kThreadsPerRow;
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
          __syncthreads();  // the next slice overwrites the tiles
        }
#pragma unroll
        for (int r = 0; r < kMicro; ++r)
#pragma unroll
          for (int c = 0; c < kMicro; ++c) {
            const int64_t i = row0 + ty + kThreadsPerRow * r, j = col0 + tx + kThreadsPerRow * c;
            if (i < p.M && j < p.N) p.store(z, i, j, acc[r][c]);
          }
      }
  }
}

// Launches gemm_tile_kernel for `z_count` problems of p.M x p.N on `stream` (nothing when empty).
template <class Problem>
void launch_gemm_tile(const Problem& p, int64_t z_count, cudaStream_t stream, const char* name) {
  if (p.M <= 0 || p.N <= 0 || z_count <= 0) return;
  const int64_t tiles_m = (p.M + kTileM - 1) / kTileM, tiles_n = (p.N + kTileN - 1) / kTileN;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(tiles_n, INT32_MAX)),
                  static_cast<unsigned>(std::min<int64_t>(tiles_m, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(z_count, 65535)));
  gemm_tile_kernel<Problem><<<grid, kThreads, 0, stream>>>(p, z_count);
  check_launch(name);
}

}  // namespace pcn::cuda::tile
