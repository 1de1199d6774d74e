// GPU softmax, log-softmax, cross-entropy, NLL and the element-wise losses (see kernels/loss.h for
// the formulas, loss.cuh for the launchers). The arithmetic of each element follows the CPU kernel
// (the same float / double steps), so results agree to rounding.
// Class-axis work: arrays are (outer, classes, inner); a "row" is one (outer, inner) position, whose
// class c sits at (r / inner) * classes * inner + c * inner + r % inner. One warp owns a row: lanes
// stride over the classes, then xor-butterfly shuffles combine them (max-subtracted logsumexp,
// double sums), which gives every lane the same value in a fixed order.
// Element-wise losses and NLL: one thread per element.
// Reductions (mean / sum): per-element values in double go to scratch and sum_doubles (eltwise.cu)
// adds them in a fixed order; a one-thread kernel divides and writes the 0-d loss. No atomics.
#include "cuda/loss.cuh"

#include <math.h>

#include "cuda/device_array.h"
#include "cuda/eltwise.cuh"

namespace pcn::cuda {
namespace {

constexpr unsigned kThreads = 256, kWarp = 32, kRowsPerBlock = kThreads / kWarp;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ float warp_max(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

__device__ double warp_sum(double v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ int64_t row_base(int64_t r, int64_t classes, int64_t inner) {
  const int64_t n = r / inner;
  return n * classes * inner + (r - n * inner);
}

// Grid-stride loop of warps over rows: the loop bound is the same for every lane of a warp, so the
// shuffles inside always see the whole warp.
#define PCN_FOR_EACH_ROW(r, rows)                                                                          \
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp; r < (rows); \
       r += static_cast<int64_t>(gridDim.x) * kRowsPerBlock)

unsigned row_blocks(int64_t rows) { return grid_for(rows, kRowsPerBlock); }

// log(sum_c exp(x[c * inner])), max-subtracted, the sum in double; every lane gets the result.
__device__ float row_logsumexp(const float* x, int64_t classes, int64_t inner, unsigned lane) {
  float top = -INFINITY;
  for (int64_t c = lane; c < classes; c += kWarp) top = fmaxf(top, x[c * inner]);  // a NaN makes the sum NaN below
  top = warp_max(top);
  double sum = 0.0;
  for (int64_t c = lane; c < classes; c += kWarp) sum += expf(x[c * inner] - top);
  sum = warp_sum(sum);
  return top + static_cast<float>(log(sum));
}

__global__ void softmax_forward_kernel(float* y, const float* x, int64_t rows, int64_t classes, int64_t inner,
                                       bool log_output) {
  const unsigned lane = threadIdx.x % kWarp;
  PCN_FOR_EACH_ROW(r, rows) {
    const int64_t base = row_base(r, classes, inner);
    const float lse = row_logsumexp(x + base, classes, inner, lane);
    for (int64_t c = lane; c < classes; c += kWarp) {
      const float lp = x[base + c * inner] - lse;
      y[base + c * inner] = log_output ? lp : expf(lp);
    }
  }
}

// softmax: dx = y * (dy - sum_c dy * y); log-softmax: dx = dy - exp(y) * sum_c dy.
__global__ void softmax_backward_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t classes,
                                        int64_t inner, bool log_output) {
  const unsigned lane = threadIdx.x % kWarp;
  PCN_FOR_EACH_ROW(r, rows) {
    const int64_t base = row_base(r, classes, inner);
    double total = 0.0;
    for (int64_t c = lane; c < classes; c += kWarp) {
      const int64_t i = base + c * inner;
      total += log_output ? static_cast<double>(dy[i]) : static_cast<double>(dy[i]) * y[i];
    }
    const float totalf = static_cast<float>(warp_sum(total));
    for (int64_t c = lane; c < classes; c += kWarp) {
      const int64_t i = base + c * inner;
      dx[i] = log_output ? dy[i] - expf(y[i]) * totalf : y[i] * (dy[i] - totalf);
    }
  }
}

__device__ float class_weight_at(const float* class_weight, int64_t c) { return class_weight ? class_weight[c] : 1.0f; }

// The gradient scale of element i of a loss: dloss[i] for none, dloss[0] / divisor for mean.
__device__ float loss_grad_scale(const float* dloss, int64_t i, const double* divisor, int reduction) {
  if (reduction == kReductionNone) return dloss[i];
  if (reduction == kReductionMean) return static_cast<float>(dloss[0] / divisor[0]);
  return dloss[0];
}

// weights[r] = weight[target[r]] (0 when ignored, NaN when out of range): summed, the divisor of 'mean'.
__global__ void target_weights_kernel(double* weights, const int64_t* target, const float* class_weight, int64_t rows,
                                      int64_t classes, int64_t ignore_index) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows; r += stride) {
    const int64_t t = target[r];
    weights[r] = t == ignore_index ? 0.0 : (t >= 0 && t < classes ? class_weight_at(class_weight, t) : NAN);
  }
}

// loss[0] = total / divisor (divisor_total[0] when given): the 0-d result of mean and sum.
__global__ void finish_loss_kernel(float* loss, const double* total, const double* divisor_total, double divisor) {
  loss[0] = static_cast<float>(total[0] / (divisor_total ? divisor_total[0] : divisor));
}

// Scratch of `rows` values and 2 totals for a reduced loss (none: nothing).
struct Reduction {
  DeviceArray scratch;
  double* values = nullptr;  // rows
  double* totals = nullptr;  // [sum of values, mean divisor]
};

Reduction reduction_scratch(const LossDesc& d, int64_t rows) {
  Reduction red;
  if (d.reduction == kReductionNone) return red;
  red.scratch = double_scratch(rows + 2);
  red.values = red.scratch.data<double>();
  red.totals = red.values + rows;
  return red;
}

// The sum of weight[target] over non-ignored rows into *out (rows doubles of scratch at weights).
void launch_target_weight_total(double* out, double* weights, const int64_t* target, const float* class_weight,
                                const LossDesc& d, int64_t rows, cudaStream_t stream) {
  if (rows > 0) {
    target_weights_kernel<<<grid_for(rows, kThreads), kThreads, 0, stream>>>(weights, target, class_weight, rows,
                                                                             d.classes, d.ignore_index);
    check_launch("target_weights");
  }
  sum_doubles(out, weights, rows, stream);
}

// Finishes a class loss (cross-entropy, NLL) from red.values: sum, or sum / the total target weight.
void finish_class_loss(float* loss, Reduction& red, const int64_t* target, const float* class_weight,
                       const LossDesc& d, int64_t rows, cudaStream_t stream) {
  if (d.reduction == kReductionNone) return;
  sum_doubles(red.totals, red.values, rows, stream);
  const double* divisor_total = nullptr;
  if (d.reduction == kReductionMean) {
    // the values are summed already, so their scratch holds the per-row weights now (stream order)
    launch_target_weight_total(red.totals + 1, red.values, target, class_weight, d, rows, stream);
    divisor_total = red.totals + 1;
  }
  finish_loss_kernel<<<1, 1, 0, stream>>>(loss, red.totals, divisor_total, 1.0);
  check_launch("finish_loss");
}

// The device divisor of reduction='mean' for a class loss's backward (nullptr otherwise); `keep`
// owns its scratch.
const double* class_mean_divisor(DeviceArray& keep, const int64_t* target, const float* class_weight,
                                 const LossDesc& d, int64_t rows, cudaStream_t stream) {
  if (d.reduction != kReductionMean) return nullptr;
  keep = double_scratch(rows + 1);
  double* weights = keep.data<double>();
  launch_target_weight_total(weights + rows, weights, target, class_weight, d, rows, stream);
  return weights + rows;
}

__global__ void cross_entropy_forward_kernel(float* loss, double* values, float* log_probs, const float* logits,
                                             const int64_t* target, const float* class_weight, LossDesc d,
                                             int64_t rows, float nll_share, float smooth_share) {
  const unsigned lane = threadIdx.x % kWarp;
  const bool smoothing = d.label_smoothing != 0.0f;
  PCN_FOR_EACH_ROW(r, rows) {
    const int64_t base = row_base(r, d.classes, d.inner);
    const float lse = row_logsumexp(logits + base, d.classes, d.inner, lane);
    double smooth = 0.0;  // -sum_c weight[c] * log_prob[c]
    for (int64_t c = lane; c < d.classes; c += kWarp) {
      const float lp = logits[base + c * d.inner] - lse;
      log_probs[base + c * d.inner] = lp;
      if (smoothing) smooth -= static_cast<double>(class_weight_at(class_weight, c)) * lp;
    }
    smooth = warp_sum(smooth);
    if (lane == 0) {
      const int64_t t = target[r];
      double value = 0.0;
      if (t != d.ignore_index) {
        if (t < 0 || t >= d.classes) {
          value = NAN;
        } else {
          const float lp_t = logits[base + t * d.inner] - lse;  // as written above, recomputed by this lane
          value = -static_cast<double>(class_weight_at(class_weight, t)) * lp_t * nll_share;
          if (smoothing) value += smooth * smooth_share;
        }
      }
      if (values)
        values[r] = value;
      else
        loss[r] = static_cast<float>(value);
    }
  }
}

// d(loss)/d(log_prob[c]) = -g * (smooth_share * w[c] + nll_share * w[t] * [c == t]); with the sum of
// those over c, the softmax backward gives dlogits = dlp - exp(lp) * sum(dlp).
__global__ void cross_entropy_backward_kernel(float* dlogits, const float* dloss, const float* log_probs,
                                              const int64_t* target, const float* class_weight,
                                              const double* divisor, LossDesc d, int64_t rows, float nll_share,
                                              float smooth_share) {
  const unsigned lane = threadIdx.x % kWarp;
  PCN_FOR_EACH_ROW(r, rows) {
    const int64_t base = row_base(r, d.classes, d.inner);
    double weight_sum = 0.0;
    for (int64_t c = lane; c < d.classes; c += kWarp) weight_sum += class_weight_at(class_weight, c);
    weight_sum = warp_sum(weight_sum);
    const int64_t t = target[r];
    const bool ignored = t == d.ignore_index;
    float g = 0.0f;
    double target_part = 0.0;
    if (!ignored) {
      g = loss_grad_scale(dloss, r, divisor, d.reduction);
      if (t >= 0 && t < d.classes)
        target_part = static_cast<double>(nll_share) * class_weight_at(class_weight, t);
      else
        g = NAN;
    }
    const float total = static_cast<float>(-g * (smooth_share * weight_sum + target_part));
    for (int64_t c = lane; c < d.classes; c += kWarp) {
      const int64_t i = base + c * d.inner;
      const float smooth_c = smooth_share * class_weight_at(class_weight, c);
      float out = -g * smooth_c - expf(log_probs[i]) * total;
      if (!ignored && c == t) out -= g * nll_share * class_weight_at(class_weight, t);
      dlogits[i] = out;
    }
  }
}

__global__ void nll_forward_kernel(float* loss, double* values, const float* log_probs, const int64_t* target,
                                   const float* class_weight, LossDesc d, int64_t rows) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows; r += stride) {
    const int64_t t = target[r];
    double value = 0.0;
    if (t != d.ignore_index)
      value = t >= 0 && t < d.classes ? -static_cast<double>(class_weight_at(class_weight, t)) *
                                            log_probs[row_base(r, d.classes, d.inner) + t * d.inner]
                                      : NAN;
    if (values)
      values[r] = value;
    else
      loss[r] = static_cast<float>(value);
  }
}

// One thread per element of dlog_probs (batch, classes, inner).
__global__ void nll_backward_kernel(float* dlog_probs, const float* dloss, const int64_t* target,
                                    const float* class_weight, const double* divisor, LossDesc d, int64_t total) {
  const int64_t per_sample = d.classes * d.inner, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t n = i / per_sample, rest = i - n * per_sample, c = rest / d.inner, j = rest - c * d.inner;
    const int64_t r = n * d.inner + j, t = target[r];
    float out = 0.0f;
    if (t != d.ignore_index) {
      if (t < 0 || t >= d.classes)
        out = NAN;
      else if (c == t)
        out = -loss_grad_scale(dloss, r, divisor, d.reduction) * class_weight_at(class_weight, t);
    }
    dlog_probs[i] = out;
  }
}

// ---- element-wise losses: a functor gives value(i), derivative(i) and target_derivative(i) of
// element i, in double, per unit of incoming gradient.

__device__ double weight_at(const float* weight, int64_t i) { return weight ? weight[i] : 1.0; }

// max(log(v), -100): torch's clamp that keeps log(0) finite.
__device__ double clamped_log(double v) { return v > 0.0 ? fmax(log(v), -100.0) : -100.0; }

// log(1 + exp(v)) without overflow.
__device__ double softplus(double v) { return fmax(v, 0.0) + log1p(exp(-fabs(v))); }

struct Mse {
  const float *input, *target;
  __device__ double value(int64_t i) const {
    const double diff = static_cast<double>(input[i]) - target[i];
    return diff * diff;
  }
  __device__ double derivative(int64_t i) const { return 2.0 * (static_cast<double>(input[i]) - target[i]); }
  __device__ double target_derivative(int64_t) const { return 0.0; }
};

struct SmoothL1 {
  const float *input, *target;
  double beta, scale;
  __device__ double value(int64_t i) const {
    const double diff = fabs(static_cast<double>(input[i]) - target[i]);
    return scale * (diff < beta ? 0.5 * diff * diff / beta : diff - 0.5 * beta);
  }
  __device__ double derivative(int64_t i) const {
    const double diff = static_cast<double>(input[i]) - target[i];
    if (fabs(diff) < beta) return scale * diff / beta;
    return diff > 0.0 ? scale : (diff < 0.0 ? -scale : scale * diff);  // sign(0) = 0; NaN stays NaN
  }
  __device__ double target_derivative(int64_t) const { return 0.0; }
};

struct BinaryCrossEntropy {
  const float *input, *target, *weight;
  __device__ double value(int64_t i) const {
    const double x = input[i], t = target[i];
    return -weight_at(weight, i) * (t * clamped_log(x) + (1.0 - t) * clamped_log(1.0 - x));
  }
  __device__ double derivative(int64_t i) const {
    const double x = input[i];
    return weight_at(weight, i) * (x - target[i]) / fmax(x * (1.0 - x), 1e-12);
  }
  __device__ double target_derivative(int64_t i) const {
    return weight_at(weight, i) * (clamped_log(1.0 - input[i]) - clamped_log(input[i]));
  }
};

// d/dx = w (lw sigmoid(x) - p t) with lw = 1 + (p - 1) t; d/dt = w ((p - 1) softplus(-x) - x).
struct BceWithLogits {
  const float *input, *target, *weight, *pos_weight;
  __device__ double value(int64_t i) const {
    const double x = input[i], t = target[i], log_weight = pos_weight ? 1.0 + (pos_weight[i] - 1.0) * t : 1.0;
    return weight_at(weight, i) * ((1.0 - t) * x + log_weight * softplus(-x));
  }
  __device__ double derivative(int64_t i) const {
    const double x = input[i], t = target[i], p = pos_weight ? pos_weight[i] : 1.0;
    const double sigmoid = 1.0 / (1.0 + exp(-x));
    return weight_at(weight, i) * ((1.0 + (p - 1.0) * t) * sigmoid - p * t);
  }
  __device__ double target_derivative(int64_t i) const {
    const double x = input[i], p = pos_weight ? pos_weight[i] : 1.0;
    return weight_at(weight, i) * ((p - 1.0) * softplus(-x) - x);
  }
};

// values[i] = value(i) when values is given (reduced), else loss[i] = value(i) (none).
template <class Loss>
__global__ void flat_forward_kernel(float* loss, double* values, int64_t count, Loss f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const double v = f.value(i);
    if (values)
      values[i] = v;
    else
      loss[i] = static_cast<float>(v);
  }
}

template <class Loss>
__global__ void flat_backward_kernel(float* dinput, float* dtarget, const float* dloss, int64_t count, int reduction,
                                     double divisor, Loss f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const double g = reduction == kReductionNone ? dloss[i] : dloss[0] / divisor;
    dinput[i] = static_cast<float>(g * f.derivative(i));
    if (dtarget) dtarget[i] = static_cast<float>(g * f.target_derivative(i));
  }
}

template <class Loss>
void flat_forward(float* loss, const LossDesc& d, Loss f, cudaStream_t stream, const char* name) {
  const int64_t count = d.batch;
  Reduction red = reduction_scratch(d, count);
  if (count > 0) {
    flat_forward_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(loss, red.values, count, f);
    check_launch(name);
  }
  if (d.reduction == kReductionNone) return;
  sum_doubles(red.totals, red.values, count, stream);
  finish_loss_kernel<<<1, 1, 0, stream>>>(loss, red.totals, nullptr,
                                          d.reduction == kReductionMean ? static_cast<double>(count) : 1.0);
  check_launch(name);
}

template <class Loss>
void flat_backward(float* dinput, float* dtarget, const float* dloss, const LossDesc& d, Loss f, cudaStream_t stream,
                   const char* name) {
  const int64_t count = d.batch;
  if (count == 0) return;
  const double divisor = d.reduction == kReductionMean ? static_cast<double>(count) : 1.0;
  flat_backward_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(dinput, dtarget, dloss, count, d.reduction,
                                                                           divisor, f);
  check_launch(name);
}

void softmax_family_forward(float* y, const float* x, const SoftmaxDesc& d, bool log_output, cudaStream_t stream) {
  const int64_t rows = d.outer * d.inner;
  if (rows == 0 || d.classes == 0) return;  // empty output
  softmax_forward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(y, x, rows, d.classes, d.inner, log_output);
  check_launch(log_output ? "log_softmax_forward" : "softmax_forward");
}

void softmax_family_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d, bool log_output,
                             cudaStream_t stream) {
  const int64_t rows = d.outer * d.inner;
  if (rows == 0 || d.classes == 0) return;  // empty output
  softmax_backward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(dx, dy, y, rows, d.classes, d.inner, log_output);
  check_launch(log_output ? "log_softmax_backward" : "softmax_backward");
}

// label smoothing's two shares: (1 - eps) of the NLL term, eps / classes of each class's term.
float nll_share_of(const LossDesc& d) { return 1.0f - d.label_smoothing; }
float smooth_share_of(const LossDesc& d) {
  return d.classes > 0 ? d.label_smoothing / static_cast<float>(d.classes) : 0.0f;
}

}  // namespace

void softmax_forward(float* y, const float* x, const SoftmaxDesc& d, cudaStream_t stream) {
  softmax_family_forward(y, x, d, false, stream);
}

void softmax_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d, cudaStream_t stream) {
  softmax_family_backward(dx, dy, y, d, false, stream);
}

void log_softmax_forward(float* y, const float* x, const SoftmaxDesc& d, cudaStream_t stream) {
  softmax_family_forward(y, x, d, true, stream);
}

void log_softmax_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d, cudaStream_t stream) {
  softmax_family_backward(dx, dy, y, d, true, stream);
}

void cross_entropy_forward(float* loss, float* log_probs, const float* logits, const int64_t* target,
                           const float* class_weight, const LossDesc& d, cudaStream_t stream) {
  const int64_t rows = d.batch * d.inner;
  Reduction red = reduction_scratch(d, rows);
  if (rows > 0) {
    cross_entropy_forward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(
        loss, red.values, log_probs, logits, target, class_weight, d, rows, nll_share_of(d), smooth_share_of(d));
    check_launch("cross_entropy_forward");
  }
  finish_class_loss(loss, red, target, class_weight, d, rows, stream);
}

void cross_entropy_backward(float* dlogits, const float* dloss, const float* log_probs, const int64_t* target,
                            const float* class_weight, const LossDesc& d, cudaStream_t stream) {
  const int64_t rows = d.batch * d.inner;
  if (rows == 0) return;
  DeviceArray scratch;
  const double* divisor = class_mean_divisor(scratch, target, class_weight, d, rows, stream);
  cross_entropy_backward_kernel<<<row_blocks(rows), kThreads, 0, stream>>>(
      dlogits, dloss, log_probs, target, class_weight, divisor, d, rows, nll_share_of(d), smooth_share_of(d));
  check_launch("cross_entropy_backward");
}

void nll_loss_forward(float* loss, const float* log_probs, const int64_t* target, const float* class_weight,
                      const LossDesc& d, cudaStream_t stream) {
  const int64_t rows = d.batch * d.inner;
  Reduction red = reduction_scratch(d, rows);
  if (rows > 0) {
    nll_forward_kernel<<<grid_for(rows, kThreads), kThreads, 0, stream>>>(loss, red.values, log_probs, target,
                                                                          class_weight, d, rows);
    check_launch("nll_loss_forward");
  }
  finish_class_loss(loss, red, target, class_weight, d, rows, stream);
}

void nll_loss_backward(float* dlog_probs, const float* dloss, const int64_t* target, const float* class_weight,
                       const LossDesc& d, cudaStream_t stream) {
  const int64_t rows = d.batch * d.inner, total = rows * d.classes;
  if (total == 0) return;
  DeviceArray scratch;
  const double* divisor = class_mean_divisor(scratch, target, class_weight, d, rows, stream);
  nll_backward_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(dlog_probs, dloss, target, class_weight,
                                                                          divisor, d, total);
  check_launch("nll_loss_backward");
}

void mse_loss_forward(float* loss, const float* input, const float* target, const LossDesc& d, cudaStream_t stream) {
  flat_forward(loss, d, Mse{input, target}, stream, "mse_loss_forward");
}

void mse_loss_backward(float* dinput, const float* dloss, const float* input, const float* target, const LossDesc& d,
                       cudaStream_t stream) {
  flat_backward(dinput, nullptr, dloss, d, Mse{input, target}, stream, "mse_loss_backward");
}

void smooth_l1_loss_forward(float* loss, const float* input, const float* target, const LossDesc& d,
                            cudaStream_t stream) {
  const double beta = d.beta, scale = d.huber ? beta : 1.0;
  flat_forward(loss, d, SmoothL1{input, target, beta, scale}, stream, "smooth_l1_loss_forward");
}

void smooth_l1_loss_backward(float* dinput, const float* dloss, const float* input, const float* target,
                             const LossDesc& d, cudaStream_t stream) {
  const double beta = d.beta, scale = d.huber ? beta : 1.0;
  flat_backward(dinput, nullptr, dloss, d, SmoothL1{input, target, beta, scale}, stream, "smooth_l1_loss_backward");
}

void binary_cross_entropy_forward(float* loss, const float* input, const float* target, const float* weight,
                                  const LossDesc& d, cudaStream_t stream) {
  flat_forward(loss, d, BinaryCrossEntropy{input, target, weight}, stream, "binary_cross_entropy_forward");
}

void binary_cross_entropy_backward(float* dinput, float* dtarget, const float* dloss, const float* input,
                                   const float* target, const float* weight, const LossDesc& d, cudaStream_t stream) {
  flat_backward(dinput, dtarget, dloss, d, BinaryCrossEntropy{input, target, weight}, stream,
                "binary_cross_entropy_backward");
}

void bce_with_logits_forward(float* loss, const float* input, const float* target, const float* weight,
                             const float* pos_weight, const LossDesc& d, cudaStream_t stream) {
  flat_forward(loss, d, BceWithLogits{input, target, weight, pos_weight}, stream, "bce_with_logits_forward");
}

void bce_with_logits_backward(float* dinput, float* dtarget, const float* dloss, const float* input,
                              const float* target, const float* weight, const float* pos_weight, const LossDesc& d,
                              cudaStream_t stream) {
  flat_backward(dinput, dtarget, dloss, d, BceWithLogits{input, target, weight, pos_weight}, stream,
                "bce_with_logits_backward");
}

}  // namespace pcn::cuda
