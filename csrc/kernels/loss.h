// Softmax, log-softmax and the classification / regression losses, float32, forward and backward.
// Inputs are viewed as (outer, classes, inner), C-contiguous, and every reduction runs over the
// middle axis: (N, C) is outer=N, inner=1; (N, C, d1, ...) is outer=N, inner=d1*...; a softmax over
// any dim of any shape is outer = prod(shape[:dim]), classes = shape[dim], inner = prod(shape[dim+1:]).
//   softmax/log_softmax   x, y, dy, dx   (outer, classes, inner)
//   cross_entropy / nll   logits/log_probs (batch, classes, inner); target (batch, inner) int64
//                         loss: (batch, inner) for reduction none, 1 value for mean and sum
//   mse, smooth_l1, bce   input, target, dinput (count); loss as above (count values for none);
//                         the binary cross-entropies' optional weight and pos_weight are given
//                         per element (count each; the caller broadcasts) and their backward
//                         also writes dtarget when it is not null
//   smooth_l1             |x - t| - beta/2 beyond beta, (x - t)^2 / (2 beta) inside (beta 0: L1);
//                         huber multiplies it by beta (= delta): (x - t)^2 / 2 inside
//   binary_cross_entropy  -w (t log x + (1 - t) log(1 - x)), each log clamped at -100 as torch;
//                         gradient w (x - t) / max(x (1 - x), 1e-12)
//   bce_with_logits       w ((1 - t) x + (1 + (p - 1) t) softplus(-x)), p the pos_weight (1 if none)
// Losses follow torch.nn.functional: class weights scale each element by weight[target]; mean
// divides by the sum of weight[target] over non-ignored elements (NaN when all are ignored);
// ignored elements give 0 loss and 0 gradient; label smoothing eps mixes (1 - eps) * nll with
// eps/classes * sum_c weight[c] * -log_prob[c]. Reductions accumulate in double in a fixed order.
// The caller checks that targets lie in [0, classes) or equal ignore_index.
#pragma once
#include <cstdint>

namespace pcn {

struct SoftmaxDesc {
  int64_t outer = 0, classes = 0, inner = 0;
};

enum LossReduction : int { kReductionNone = 0, kReductionMean = 1, kReductionSum = 2 };

struct LossDesc {
  int64_t batch = 0, classes = 0, inner = 0;  // element-wise losses: batch = element count, classes = inner = 1
  int64_t ignore_index = -100;
  int reduction = kReductionMean;
  float label_smoothing = 0.0f;
  float beta = 0.0f;   // smooth_l1: the quadratic region's half-width (huber: delta)
  bool huber = false;  // smooth_l1: scale by beta (huber_loss)
};

void validate(SoftmaxDesc& desc);
// `op` names the loss in messages ("cross_entropy", "nll_loss", "mse_loss", ...).
void validate(LossDesc& desc, const char* op);

#define PCN_LOSS_KERNELS(X)                                                                                     \
  X(softmax_forward, (float* y, const float* x, const SoftmaxDesc& d))                                          \
  X(softmax_backward, (float* dx, const float* dy, const float* y, const SoftmaxDesc& d))                       \
  X(log_softmax_forward, (float* y, const float* x, const SoftmaxDesc& d))                                      \
  X(log_softmax_backward, (float* dx, const float* dy, const float* y, const SoftmaxDesc& d))                   \
  X(cross_entropy_forward, (float* loss, float* log_probs, const float* logits, const int64_t* target,          \
                            const float* class_weight, const LossDesc& d))                                      \
  X(cross_entropy_backward, (float* dlogits, const float* dloss, const float* log_probs, const int64_t* target, \
                             const float* class_weight, const LossDesc& d))                                     \
  X(nll_loss_forward, (float* loss, const float* log_probs, const int64_t* target, const float* class_weight,   \
                       const LossDesc& d))                                                                      \
  X(nll_loss_backward, (float* dlog_probs, const float* dloss, const int64_t* target, const float* class_weight, \
                        const LossDesc& d))                                                                     \
  X(mse_loss_forward, (float* loss, const float* input, const float* target, const LossDesc& d))                \
  X(mse_loss_backward, (float* dinput, const float* dloss, const float* input, const float* target,             \
                        const LossDesc& d))                                                                     \
  X(smooth_l1_loss_forward, (float* loss, const float* input, const float* target, const LossDesc& d))          \
  X(smooth_l1_loss_backward, (float* dinput, const float* dloss, const float* input, const float* target,       \
                              const LossDesc& d))                                                               \
  X(binary_cross_entropy_forward, (float* loss, const float* input, const float* target, const float* weight,   \
                                   const LossDesc& d))                                                          \
  X(binary_cross_entropy_backward, (float* dinput, float* dtarget, const float* dloss, const float* input,      \
                                    const float* target, const float* weight, const LossDesc& d))               \
  X(bce_with_logits_forward, (float* loss, const float* input, const float* target, const float* weight,        \
                              const float* pos_weight, const LossDesc& d))                                      \
  X(bce_with_logits_backward, (float* dinput, float* dtarget, const float* dloss, const float* input,           \
                               const float* target, const float* weight, const float* pos_weight,               \
                               const LossDesc& d))

}  // namespace pcn
