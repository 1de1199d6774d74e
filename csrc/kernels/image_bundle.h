// Several small images of a batch side by side as one matrix, so that GEMMs over output
// positions get enough columns (or a long enough reduction) to run at speed: row r of a bundle of
// `count` images holds plane r of image 0, then of image 1, ... (count * plane floats a row).
#pragma once
#include <cstring>

#include "core/simd.h"

PCN_ISA_BEGIN

// Images per bundle: about target / per_image of them, but no fewer bundles than threads (each
// thread takes whole bundles), and equal shares for the threads.
static inline int64_t images_per_bundle(int64_t batch, int threads, int64_t per_image, int64_t target) {
  const int64_t per_thread = max64(1, (batch + threads - 1) / threads);
  const int64_t most = max64(1, min64(per_thread, target / max64(1, per_image)));
  const int64_t passes = (per_thread + most - 1) / most;
  return (per_thread + passes - 1) / passes;
}

// Rows [row_begin, row_end) of `count` images (planes of `plane` floats, consecutive within an
// image, images image_stride floats apart) into the bundle dst.
static inline void gather_images(float* dst, const float* src, int64_t image_stride, int64_t count, int64_t plane,
                                 int64_t row_begin, int64_t row_end) {
  const int64_t columns = count * plane;
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t g = 0; g < count; ++g)
      std::memcpy(dst + r * columns + g * plane, src + g * image_stride + r * plane, sizeof(float) * plane);
}

// The inverse: rows [row_begin, row_end) of the bundle src back into the images' planes.
static inline void scatter_images(float* dst, const float* src, int64_t image_stride, int64_t count, int64_t plane,
                                  int64_t row_begin, int64_t row_end) {
  const int64_t columns = count * plane;
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t g = 0; g < count; ++g)
      std::memcpy(dst + g * image_stride + r * plane, src + r * columns + g * plane, sizeof(float) * plane);
}

PCN_ISA_END
