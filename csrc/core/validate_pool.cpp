// Pool2dDesc, AdaptivePool2dDesc and ResampleDesc checks; see kernels/pool.h.
#include <cmath>
#include <sstream>

#include "core/checks.h"
#include "kernels/pool.h"

namespace pcn {
namespace {

void check_input(const char* op, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w) {
  const std::vector<int64_t> input{batch, channels, in_h, in_w};
  if (batch < 0 || channels <= 0 || in_h <= 0 || in_w <= 0)
    fail(std::string(op) + ": input must have positive channels, height and width, got input shape " +
         shape_str(input));
  checked_numel(input, op);
}

// A positive output size whose element count fits the kernels' index range.
void check_output(const char* op, const char* name, int64_t batch, int64_t channels, int64_t in_h, int64_t in_w,
                  int64_t out_h, int64_t out_w) {
  if (out_h <= 0 || out_w <= 0) {
    std::ostringstream out;
    out << op << ": " << name << " must be positive, got (" << out_h << ", " << out_w << ") for input shape "
        << shape_str({batch, channels, in_h, in_w});
    fail(out.str());
  }
  checked_numel({batch, channels, out_h, out_w}, op);
}

}  // namespace

void validate(Pool2dDesc& d) {
  check_input(d.op, d.batch, d.channels, d.in_h, d.in_w);
  std::ostringstream out;
  out << d.op << ": ";
  if (d.kernel_h > 0 && d.kernel_w > 0 && (d.pad_h > d.kernel_h / 2 || d.pad_w > d.kernel_w / 2)) {
    out << "padding should be at most half of kernel_size, got padding=(" << d.pad_h << ", " << d.pad_w
        << ") and kernel_size=(" << d.kernel_h << ", " << d.kernel_w << ")";
    fail(out.str());
  }
  // window_output_size forms dilation * (kernel - 1): keep it inside int64.
  if (d.kernel_h > 0 && d.dilation_h > 0) checked_mul(d.kernel_h, d.dilation_h, d.op);
  if (d.kernel_w > 0 && d.dilation_w > 0) checked_mul(d.kernel_w, d.dilation_w, d.op);
  d.out_h = window_output_size(d.op, "height", d.in_h, d.kernel_h, d.stride_h, d.pad_h, d.dilation_h, d.ceil_mode);
  d.out_w = window_output_size(d.op, "width", d.in_w, d.kernel_w, d.stride_w, d.pad_w, d.dilation_w, d.ceil_mode);
  checked_numel({d.batch, d.channels, d.out_h, d.out_w}, d.op);
}

void validate(AdaptivePool2dDesc& d) {
  check_input(d.op, d.batch, d.channels, d.in_h, d.in_w);
  check_output(d.op, "output_size", d.batch, d.channels, d.in_h, d.in_w, d.out_h, d.out_w);
  // Window bounds are computed as i * in / out.
  checked_mul(d.out_h, d.in_h, d.op);
  checked_mul(d.out_w, d.in_w, d.op);
}

void validate(ResampleDesc& d) {
  check_input(d.op, d.batch, d.channels, d.in_h, d.in_w);
  check_output(d.op, "output size", d.batch, d.channels, d.in_h, d.in_w, d.out_h, d.out_w);
  if (!(d.scale_h >= 0.0f && d.scale_w >= 0.0f) || std::isinf(d.scale_h) || std::isinf(d.scale_w)) {
    std::ostringstream out;
    out << d.op << ": scales must be non-negative and finite, got (" << d.scale_h << ", " << d.scale_w << ")";
    fail(out.str());
  }
}

}  // namespace pcn
