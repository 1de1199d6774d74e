// An autocast operand as the reference kernels read it: with bf16 (Conv2dDesc/GemmDesc::bf16) the
// values rounded to bfloat16 by the reference round_bf16, else the values as given.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/eltwise.h"

namespace pcn::reference {

void round_bf16_forward(float* y, const float* x, const EltwiseDesc& d);

class Operand {
 public:
  Operand(const float* values, int64_t count, bool bf16) : data_(values) {
    if (!bf16) return;
    rounded_.resize(count);
    EltwiseDesc desc;
    desc.count = count;
    round_bf16_forward(rounded_.data(), values, desc);
    data_ = rounded_.data();
  }
  float operator[](int64_t i) const { return data_[i]; }

 private:
  std::vector<float> rounded_;
  const float* data_;
};

}  // namespace pcn::reference
