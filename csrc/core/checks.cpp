// Argument checks shared by every descriptor's validate(); see checks.h.
#include "core/checks.h"

#include <sstream>
#include <stdexcept>

namespace pcn {

void fail(const std::string& message) { throw std::invalid_argument(message); }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0) fail(std::string(what) + ": negative size");
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product) || product > kMaxElements) {
    std::ostringstream out;
    out << what << ": size " << a << " x " << b << " is too large (limit " << kMaxElements << " elements)";
    fail(out.str());
  }
  return product;
}

int64_t checked_numel(const std::vector<int64_t>& shape, const char* what) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(std::string(what) + ": negative dimension in shape " + shape_str(shape));
    numel = checked_mul(numel, d, what);
  }
  return numel;
}

int64_t window_output_size(const char* op, const char* axis, int64_t input, int64_t kernel, int64_t stride,
                           int64_t padding, int64_t dilation, bool ceil_mode) {
  std::ostringstream out;
  out << op << ": ";
  if (kernel <= 0) out << "kernel_size must be positive, got " << kernel << " along " << axis;
  else if (stride <= 0) out << "stride must be positive, got " << stride << " along " << axis;
  else if (padding < 0) out << "padding must be non-negative, got " << padding << " along " << axis;
  else if (dilation <= 0) out << "dilation must be positive, got " << dilation << " along " << axis;
  else if (input <= 0) out << "input " << axis << " must be positive, got " << input;
  else if (kernel > kMaxElements || stride > kMaxElements || padding > kMaxElements || dilation > kMaxElements)
    out << "kernel/stride/padding/dilation along " << axis << " is too large";
  else {
    const int64_t span = checked_mul(dilation, kernel - 1, op) + 1;  // extent of the dilated window
    const int64_t padded = input + 2 * padding;
    if (span > padded) {
      out << "kernel (" << kernel << ", dilation " << dilation << ", spanning " << span << ") is larger than the padded input "
          << axis << " (" << input << " + 2*" << padding << " = " << padded << ")";
      fail(out.str());
    }
    int64_t size = (ceil_mode ? (padded - span + stride - 1) / stride : (padded - span) / stride) + 1;
    // PyTorch's rule: with ceil_mode the last window must start inside the input or left padding.
    if (ceil_mode && (size - 1) * stride >= input + padding) --size;
    return size;
  }
  fail(out.str());
}

}  // namespace pcn
