// BatchNormDesc, GroupNormDesc and LrnDesc checks; see kernels/norm.h.
#include <cmath>
#include <sstream>

#include "core/checks.h"
#include "kernels/norm.h"

namespace pcn {

void validate(BatchNormDesc& d) {
  const std::vector<int64_t> input{d.batch, d.channels, d.spatial};
  std::ostringstream out;
  out << "batch_norm: ";
  if (d.batch < 0 || d.channels <= 0 || d.spatial < 0) {
    out << "input must have positive channels, got (batch, channels, spatial) = " << shape_str(input);
    fail(out.str());
  }
  if (!(d.eps >= 0.0f) || std::isinf(d.eps)) {
    out << "eps must be a non-negative finite number, got " << d.eps;
    fail(out.str());
  }
  if (!std::isfinite(d.momentum)) {
    out << "momentum must be finite, got " << d.momentum;
    fail(out.str());
  }
  checked_numel(input, "batch_norm: input");
  if (d.training && checked_mul(d.batch, d.spatial, "batch_norm: input") == 1) {
    out << "Expected more than 1 value per channel when training, got (batch, channels, spatial) = "
        << shape_str(input);
    fail(out.str());
  }
}

void validate(GroupNormDesc& d, const char* op) {
  const std::vector<int64_t> input{d.batch, d.channels, d.spatial};
  std::ostringstream out;
  out << op << ": ";
  if (d.batch < 0 || d.channels < 0 || d.spatial < 0 || d.groups <= 0) {
    out << "invalid sizes: (batch, channels, spatial) = " << shape_str(input) << " with " << d.groups << " groups";
    fail(out.str());
  }
  if (d.channels % d.groups != 0) {
    out << "Expected number of channels in input to be divisible by num_groups, but got " << d.channels
        << " channels and num_groups=" << d.groups;
    fail(out.str());
  }
  if (!(d.eps >= 0.0f) || std::isinf(d.eps)) {
    out << "eps must be a non-negative finite number, got " << d.eps;
    fail(out.str());
  }
  checked_numel(input, op);
}

void validate(LrnDesc& d) {
  const std::vector<int64_t> input{d.batch, d.channels, d.spatial};
  std::ostringstream out;
  out << "local_response_norm: ";
  if (d.size <= 0) {
    out << "size must be positive, got " << d.size;
    fail(out.str());
  }
  if (d.batch < 0 || d.channels <= 0 || d.spatial < 0) {
    out << "input must have positive channels, got (batch, channels, spatial) = " << shape_str(input);
    fail(out.str());
  }
  if (!std::isfinite(d.alpha) || !std::isfinite(d.beta) || !std::isfinite(d.k)) {
    out << "alpha, beta and k must be finite, got alpha=" << d.alpha << ", beta=" << d.beta << ", k=" << d.k;
    fail(out.str());
  }
  checked_numel(input, "local_response_norm: input");
}

}  // namespace pcn
