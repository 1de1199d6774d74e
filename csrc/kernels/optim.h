// Fused, in-place optimiser updates over one float32 parameter of `count` elements (any shape,
// C-contiguous): one pass reads the gradient and state and writes the parameter and state.
//   sgd_update   param, momentum_buffer (nullable when momentum == 0), grad: (count)
//   adam_update  param, exp_avg, exp_avg_sq, max_exp_avg_sq (nullable unless amsgrad), grad: (count)
// The arithmetic follows torch.optim.SGD / Adam / AdamW's single-tensor (foreach=False) code:
// maximize negates the gradient; L2 weight decay adds weight_decay * param to it (Adam, SGD);
// decoupled weight decay (AdamW) scales param by 1 - lr * weight_decay first; SGD's first step
// copies the gradient into the momentum buffer (no dampening); Adam's bias corrections use
// `step`, the 1-based count of updates including this one, evaluated in double.
// Hyper-parameters are doubles (Python floats) so that derived scalars such as 1 - beta2 are
// formed in double and rounded to float once, as torch does; with float fields 1 - 0.999f would
// be off by 1.3e-5 relative.
#pragma once
#include <cstdint>

namespace pcn {

struct SgdDesc {
  int64_t count = 0;
  double lr = 0.0, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false, maximize = false, first_step = false;
};

struct AdamDesc {
  int64_t count = 0;
  double lr = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;
  bool amsgrad = false, maximize = false, decoupled_weight_decay = false;
};

void validate(SgdDesc& desc);
void validate(AdamDesc& desc);

#define PCN_OPTIM_KERNELS(X)                                                                         \
  X(sgd_update, (float* param, float* momentum_buffer, const float* grad, const SgdDesc& d))        \
  X(adam_update, (float* param, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq, const float* grad, \
                  const AdamDesc& d))

}  // namespace pcn
