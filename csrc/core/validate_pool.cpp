// Pool2dDesc and AdaptivePool2dDesc checks; see kernels/pool.h.
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
  if (d.out_h <= 0 || d.out_w <= 0) {
    std::ostringstream out;
    out << d.op << ": output_size must be positive, got (" << d.out_h << ", " << d.out_w << ") for input shape "
        << shape_str({d.batch, d.channels, d.in_h, d.in_w});
    fail(out.str());
  }
  checked_numel({d.batch, d.channels, d.out_h, d.out_w}, d.op);
  // Window bounds are computed as i * in / out.
  checked_mul(d.out_h, d.in_h, d.op);
  checked_mul(d.out_w, d.in_w, d.op);
}

}  // namespace pcn
