// Conv2dDesc checks; see kernels/conv.h.
#include <sstream>

#include "core/checks.h"
#include "kernels/conv.h"

namespace pcn {

void validate(Conv2dDesc& d) {
  const std::vector<int64_t> input{d.batch, d.in_channels, d.in_h, d.in_w};
  const std::vector<int64_t> weight{d.out_channels, d.groups > 0 ? d.in_channels / d.groups : 0, d.kernel_h, d.kernel_w};
  std::ostringstream out;
  out << "conv2d: ";
  if (d.groups <= 0) {
    out << "groups must be positive, got " << d.groups;
    fail(out.str());
  }
  if (d.batch < 0 || d.in_channels <= 0 || d.in_h <= 0 || d.in_w <= 0) {
    out << "input must have positive channels, height and width, got input shape " << shape_str(input);
    fail(out.str());
  }
  if (d.out_channels <= 0 || d.kernel_h <= 0 || d.kernel_w <= 0) {
    out << "weight must have positive out_channels and kernel size, got weight shape " << shape_str(weight);
    fail(out.str());
  }
  if (d.in_channels % d.groups != 0 || d.out_channels % d.groups != 0) {
    out << "groups=" << d.groups << " must divide both in_channels=" << d.in_channels
        << " and out_channels=" << d.out_channels;
    fail(out.str());
  }
  checked_numel(input, "conv2d: input");
  checked_numel(weight, "conv2d: weight");
  d.out_h = window_output_size("conv2d", "height", d.in_h, d.kernel_h, d.stride_h, d.pad_h, d.dilation_h, false);
  d.out_w = window_output_size("conv2d", "width", d.in_w, d.kernel_w, d.stride_w, d.pad_w, d.dilation_w, false);
  checked_numel({d.batch, d.out_channels, d.out_h, d.out_w}, "conv2d: output");
  // The backward-data column buffer and packed panels are indexed with K * P.
  checked_mul(d.in_channels / d.groups * d.kernel_h * d.kernel_w, d.out_h * d.out_w, "conv2d: patch matrix");
}

}  // namespace pcn
