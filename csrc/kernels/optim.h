// Fused, in-place optimiser updates over one float32 parameter of `count` elements (any shape,
// C-contiguous): one pass reads the gradient and state and writes the parameter and state.
//   sgd_update       param, momentum_buffer (nullable when momentum == 0), grad: (count)
//   adam_update      param, exp_avg, exp_avg_sq, max_exp_avg_sq (nullable unless amsgrad), grad: (count)
//   rmsprop_update   param, square_avg, grad_avg (nullable unless centered),
//                    momentum_buffer (nullable unless momentum > 0), grad: (count)
//   adagrad_update   param, state_sum, grad: (count)
//   adadelta_update  param, square_avg, acc_delta, grad: (count)
// The arithmetic follows torch.optim.SGD / Adam / AdamW / RMSprop / Adagrad / Adadelta's
// single-tensor (foreach=False) code:
// maximize negates the gradient; L2 weight decay adds weight_decay * param to it (all but AdamW);
// decoupled weight decay (AdamW) scales param by 1 - lr * weight_decay first; SGD's first step
// copies the gradient into the momentum buffer (no dampening); Adam's bias corrections use
// `step`, the 1-based count of updates including this one, evaluated in double, and so does
// Adagrad's decayed rate lr / (1 + (step - 1) * lr_decay). RMSprop's buffers start at zero.
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

// The per-step float32 scalars of an Adam update, derived once from the descriptor (in double and
// rounded once, like torch's Python-side arithmetic); shared by the CPU and GPU kernels.
struct AdamScalars {
  float step_size, correction2_sqrt, decay_scale, avg_weight, beta2, sq_weight, eps, decay, sign;
  bool decoupled, coupled, amsgrad;
};
AdamScalars adam_scalars(const AdamDesc& d);

struct RmspropDesc {
  int64_t count = 0;
  double lr = 0.0, alpha = 0.99, eps = 1e-8, weight_decay = 0.0, momentum = 0.0;
  bool centered = false, maximize = false;
};

struct AdagradDesc {
  int64_t count = 0;
  double lr = 0.0, lr_decay = 0.0, eps = 1e-10, weight_decay = 0.0;
  int64_t step = 1;
  bool maximize = false;
};

struct AdadeltaDesc {
  int64_t count = 0;
  double lr = 0.0, rho = 0.9, eps = 1e-6, weight_decay = 0.0;
  bool maximize = false;
};

void validate(SgdDesc& desc);
void validate(AdamDesc& desc);
void validate(RmspropDesc& desc);
void validate(AdagradDesc& desc);
void validate(AdadeltaDesc& desc);

#define PCN_OPTIM_KERNELS(X)                                                                         \
  X(sgd_update, (float* param, float* momentum_buffer, const float* grad, const SgdDesc& d))        \
  X(adam_update, (float* param, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq, const float* grad, \
                  const AdamDesc& d))                                                               \
  X(rmsprop_update, (float* param, float* square_avg, float* grad_avg, float* momentum_buffer, const float* grad, \
                     const RmspropDesc& d))                                                         \
  X(adagrad_update, (float* param, float* state_sum, const float* grad, const AdagradDesc& d))       \
  X(adadelta_update, (float* param, float* square_avg, float* acc_delta, const float* grad, const AdadeltaDesc& d))

}  // namespace pcn
