// Argument checks shared by every descriptor's validate(): errors carry the argument's name and
// the shapes involved, and all size arithmetic is done in checked 64-bit integers before any
// allocation. Compiled once (not per ISA). Failures throw std::invalid_argument, which pybind11
// turns into a Python ValueError.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace pcn {

[[noreturn]] void fail(const std::string& message);

// "[8, 3, 32, 32]"
std::string shape_str(const std::vector<int64_t>& shape);

// a * b, or a ValueError naming `what` when the product leaves int64 (or exceeds the limit a
// kernel can index, kMaxElements).
int64_t checked_mul(int64_t a, int64_t b, const char* what);
int64_t checked_numel(const std::vector<int64_t>& shape, const char* what);

// Largest element count any buffer may have: leaves headroom so that index arithmetic on
// element offsets (and their byte offsets) never overflows int64.
constexpr int64_t kMaxElements = int64_t(1) << 46;

// Output size of a sliding window along one axis, as PyTorch computes it for conv and pooling.
// Fails (naming `op`, the axis and the sizes) when the window does not fit.
int64_t window_output_size(const char* op, const char* axis, int64_t input, int64_t kernel, int64_t stride,
                           int64_t padding, int64_t dilation, bool ceil_mode);

}  // namespace pcn
