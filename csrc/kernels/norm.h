// Batch normalisation, group / layer normalisation and local response normalisation (LRN), float32,
// forward and backward.
// Every input is viewed as (batch, channels, spatial): (N, C) has spatial = 1, (N, C, L) has
// spatial = L, (N, C, H, W) has spatial = H * W. Channel c of image n is the contiguous plane
// x[(n * channels + c) * spatial ...].
//
// Batch norm (torch.nn.functional.batch_norm):
//   train   y = (x - mean_c) * invstd_c * weight_c + bias_c with the batch mean and the biased
//           batch variance, invstd = 1 / sqrt(var + eps); writes save_mean, save_invstd (C) and,
//           when running_mean / running_var are not null, updates them in place:
//           running = (1 - momentum) * running + momentum * stat, with the unbiased variance.
//   eval    the same with running_mean / running_var in place of the batch statistics.
//   backward  dx, dweight = sum(dy * xhat), dbias = sum(dy) (each nullable). d.training selects
//           the full batch-statistics gradient; otherwise mean / invstd are the running stats and
//           dx = dy * weight * invstd. weight / bias null mean affine=False (1 and 0).
//   relu    (d.relu) fuses a ReLU after the normalisation: forward writes y = relu(bn(x)) (NaN
//           kept, as relu), and backward reads that y and takes dy as 0 where y <= 0 (relu's
//           gradient) in the same passes: one read and one write of the activation fewer each way.
// Per-channel sums are float partials (vector lanes over short blocks) of parts of a channel (a
// run of images' planes), added in double in a fixed order: results do not depend on the thread
// count.
//
// Group norm, and layer norm as its one-group case (torch.nn.functional.group_norm / layer_norm):
//   x is (batch, channels, spatial) cut into `groups` groups of channels/groups whole channels;
//   each (sample, group) row of (channels/groups) * spatial contiguous values is normalised by its
//   own mean and biased variance: y = (x - mean) * rstd * weight_c + bias_c, rstd = 1/sqrt(var + eps),
//   writing mean and rstd (batch * groups). layer_norm over the last dims D of an (R, D) view is
//   batch = R, channels = D, groups = 1, spatial = 1 (weight and bias D-shaped).
//   backward  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row with g = dy * weight_c;
//           dweight_c = sum dy * xhat and dbias_c = sum dy over samples and spatial positions
//           (each of dx, dweight, dbias nullable). Sums in double in a fixed order.
//
// LRN across channels (torch.nn.functional.local_response_norm):
//   scale = k + alpha / size * sum_{c' in [c - size/2, c + (size-1)/2], zero outside} x[c']^2
//   y = x * scale^-beta          writes y and scale (N, C, spatial), scale kept for backward.
//   dx = dy * scale^-beta - 2 * alpha * beta / size * x * sum_{c' whose window holds c} dy*y/scale
#pragma once
#include <cstdint>

namespace pcn {

struct BatchNormDesc {
  int64_t batch = 0, channels = 0, spatial = 1;
  float eps = 1e-5f, momentum = 0.1f;
  bool training = true;  // backward: batch statistics (true) or running statistics (false)
  bool relu = false;     // a fused ReLU after the normalisation (see above)
};

struct GroupNormDesc {
  int64_t batch = 0, channels = 0, spatial = 1, groups = 1;
  float eps = 1e-5f;
};

struct LrnDesc {
  int64_t batch = 0, channels = 0, spatial = 1, size = 1;
  float alpha = 1e-4f, beta = 0.75f, k = 1.0f;
};

// ValueError naming the op and argument when a size or parameter is out of range.
void validate(BatchNormDesc& desc);
// `op` names the function in messages ("group_norm" or "layer_norm").
void validate(GroupNormDesc& desc, const char* op);
void validate(LrnDesc& desc);

#define PCN_NORM_KERNELS(X)                                                                                   \
  X(batch_norm_forward_train, (float* y, float* save_mean, float* save_invstd, float* running_mean,            \
                               float* running_var, const float* x, const float* weight, const float* bias,     \
                               const BatchNormDesc& d))                                                        \
  X(batch_norm_forward_eval, (float* y, const float* x, const float* running_mean, const float* running_var,  \
                              const float* weight, const float* bias, const BatchNormDesc& d))                \
  X(batch_norm_backward, (float* dx, float* dweight, float* dbias, const float* dy, const float* x,            \
                          const float* y, const float* mean, const float* invstd, const float* weight,          \
                          const BatchNormDesc& d))                                                               \
  X(group_norm_forward, (float* y, float* mean, float* rstd, const float* x, const float* weight,               \
                         const float* bias, const GroupNormDesc& d))                                           \
  X(group_norm_backward, (float* dx, float* dweight, float* dbias, const float* dy, const float* x,            \
                          const float* mean, const float* rstd, const float* weight, const GroupNormDesc& d))  \
  X(lrn_forward, (float* y, float* scale, const float* x, const LrnDesc& d))                                   \
  X(lrn_backward, (float* dx, const float* dy, const float* x, const float* y, const float* scale,            \
                   const LrnDesc& d))

}  // namespace pcn
