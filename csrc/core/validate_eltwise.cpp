// EltwiseDesc, ConcatDesc and ChannelPadDesc checks; see kernels/eltwise.h.
#include "core/checks.h"
#include "kernels/eltwise.h"

namespace pcn {

void validate(EltwiseDesc& d) {
  if (d.count < 0) fail("elementwise: element count must be non-negative, got " + std::to_string(d.count));
  checked_numel({d.count}, "elementwise: input");
  if (!(d.p >= 0.0)) fail("norm: the order p must be non-negative (or inf), got " + std::to_string(d.p));
}

void validate(ConcatDesc& d, const int64_t* extents) {
  if (d.outer < 0 || d.inner < 0 || d.inputs <= 0)
    fail("cat: expected a non-empty list of tensors with non-negative sizes, got " + std::to_string(d.inputs) +
         " tensors viewed as (outer=" + std::to_string(d.outer) + ", extent, inner=" + std::to_string(d.inner) + ")");
  int64_t total = 0;
  for (int64_t i = 0; i < d.inputs; ++i) {
    if (extents[i] < 0) fail("cat: tensor " + std::to_string(i) + " has negative extent " + std::to_string(extents[i]));
    total += extents[i];
    checked_numel({d.outer, total, d.inner}, "cat: output");
  }
  d.total = total;
}

void validate(ChannelPadDesc& d) {
  if (d.batch < 0 || d.channels < 0 || d.in_h < 0 || d.in_w < 0)
    fail("subsample_pad_channels: input sizes must be non-negative");
  if (d.stride < 1) fail("subsample_pad_channels: stride must be at least 1, got " + std::to_string(d.stride));
  if (d.before < 0 || d.after < 0)
    fail("subsample_pad_channels: the channels added before and after must be non-negative, got " +
         std::to_string(d.before) + " and " + std::to_string(d.after));
  d.out_h = (d.in_h + d.stride - 1) / d.stride;
  d.out_w = (d.in_w + d.stride - 1) / d.stride;
  checked_numel({d.batch, d.before + d.channels + d.after, d.out_h, d.out_w}, "subsample_pad_channels: output");
}

}  // namespace pcn
