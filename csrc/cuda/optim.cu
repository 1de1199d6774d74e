// GPU fused SGD, Adam/AdamW, RMSprop, Adagrad and Adadelta updates (see kernels/optim.h and
// optim.cuh): one thread per element (grid-stride), reading the gradient and state and writing
// the parameter and state in place. Scalars are derived on the host in double and rounded to float
// once, and each element's float arithmetic follows the CPU kernel's order (torch's single-tensor
// code), so both devices agree to rounding (FMA contraction aside).
#include "cuda/optim.cuh"

#include <math.h>

#include "cuda/device_array.h"

namespace pcn::cuda {
namespace {

constexpr unsigned kThreads = 256;

// Calls f(i) for every element i < count.
template <class F>
__global__ void for_each_element(int64_t count, F f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) f(i);
}

template <class F>
void launch(int64_t count, F f, cudaStream_t stream, const char* name) {
  if (count == 0) return;
  for_each_element<<<grid_for(count, kThreads), kThreads, 0, stream>>>(count, f);
  check_launch(name);
}

// torch.lerp(from, to, weight), evaluated from the nearer end as torch does.
__device__ float lerp(float from, float to, float weight) {
  return weight < 0.5f ? from + (to - from) * weight : to - (to - from) * (1.0f - weight);
}

// The gradient (negated when maximizing) plus L2 weight decay, as RMSprop, Adagrad and Adadelta form it.
__device__ float decayed_grad(float grad, float param, float sign, float decay) {
  float g = grad * sign;
  if (decay != 0.0f) g = g + param * decay;
  return g;
}

struct Sgd {
  float *param, *momentum_buffer;
  const float* grad;
  float lr, momentum, decay, damp, sign;
  bool use_momentum, first, nesterov;
  __device__ void operator()(int64_t i) const {
    float g = sign * grad[i];
    if (decay != 0.0f) g = g + decay * param[i];
    if (use_momentum) {
      const float buf = first ? g : momentum_buffer[i] * momentum + damp * g;
      momentum_buffer[i] = buf;
      g = nesterov ? g + momentum * buf : buf;
    }
    param[i] = param[i] - lr * g;
  }
};

// lerp for exp_avg, mul + addcmul for exp_avg_sq, then param += -step_size * exp_avg / denom.
struct Adam {
  float *param, *exp_avg, *exp_avg_sq, *max_exp_avg_sq;
  const float* grad;
  AdamScalars s;
  __device__ void operator()(int64_t i) const {
    float g = grad[i] * s.sign, p = param[i];
    if (s.decoupled) p = p * s.decay_scale;
    if (s.coupled) g = g + p * s.decay;
    const float m = lerp(exp_avg[i], g, s.avg_weight);
    float v = exp_avg_sq[i] * s.beta2;
    v = v + g * s.sq_weight * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if (s.amsgrad) {
      const float top = max_exp_avg_sq[i];
      v = top > v ? top : v;
      max_exp_avg_sq[i] = v;
    }
    const float denom = sqrtf(v) / s.correction2_sqrt + s.eps;
    p = p + m * -s.step_size / denom;
    param[i] = p;
  }
};

struct Rmsprop {
  float *param, *square_avg, *grad_avg, *momentum_buffer;
  const float* grad;
  float sign, decay, alpha, avg_weight, eps, momentum, neg_lr;
  bool centered, use_momentum;
  __device__ void operator()(int64_t i) const {
    const float g = decayed_grad(grad[i], param[i], sign, decay);
    float sq = square_avg[i] * alpha;
    sq = sq + g * avg_weight * g;
    square_avg[i] = sq;
    float avg;
    if (centered) {
      const float mean = lerp(grad_avg[i], g, avg_weight);
      grad_avg[i] = mean;
      avg = sqrtf(sq + mean * -1.0f * mean);
    } else {
      avg = sqrtf(sq);
    }
    avg = avg + eps;
    float p = param[i];
    if (use_momentum) {
      const float buf = momentum_buffer[i] * momentum + g / avg;
      momentum_buffer[i] = buf;
      p = p + buf * neg_lr;
    } else {
      p = p + g * neg_lr / avg;
    }
    param[i] = p;
  }
};

struct Adagrad {
  float *param, *state_sum;
  const float* grad;
  float sign, decay, eps, neg_clr;
  __device__ void operator()(int64_t i) const {
    const float g = decayed_grad(grad[i], param[i], sign, decay);
    const float sum = state_sum[i] + g * g;
    state_sum[i] = sum;
    param[i] = param[i] + g * neg_clr / (sqrtf(sum) + eps);
  }
};

struct Adadelta {
  float *param, *square_avg, *acc_delta;
  const float* grad;
  float sign, decay, rho, avg_weight, eps, neg_lr;
  __device__ void operator()(int64_t i) const {
    const float g = decayed_grad(grad[i], param[i], sign, decay);
    float sq = square_avg[i] * rho;
    sq = sq + g * avg_weight * g;
    square_avg[i] = sq;
    const float delta = sqrtf(acc_delta[i] + eps) / sqrtf(sq + eps) * g;
    float acc = acc_delta[i] * rho;
    acc = acc + delta * avg_weight * delta;
    acc_delta[i] = acc;
    param[i] = param[i] + delta * neg_lr;
  }
};

}  // namespace

void sgd_update(float* param, float* momentum_buffer, const float* grad, const SgdDesc& d, cudaStream_t stream) {
  Sgd f;
  f.param = param;
  f.momentum_buffer = momentum_buffer;
  f.grad = grad;
  f.lr = static_cast<float>(d.lr);
  f.momentum = static_cast<float>(d.momentum);
  f.decay = static_cast<float>(d.weight_decay);
  f.damp = static_cast<float>(1.0 - d.dampening);
  f.sign = d.maximize ? -1.0f : 1.0f;
  f.use_momentum = d.momentum != 0.0;
  f.first = d.first_step;
  f.nesterov = d.nesterov;
  launch(d.count, f, stream, "sgd_update");
}

void adam_update(float* param, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq, const float* grad,
                 const AdamDesc& d, cudaStream_t stream) {
  Adam f;
  f.param = param;
  f.exp_avg = exp_avg;
  f.exp_avg_sq = exp_avg_sq;
  f.max_exp_avg_sq = max_exp_avg_sq;
  f.grad = grad;
  f.s = adam_scalars(d);
  launch(d.count, f, stream, "adam_update");
}

void rmsprop_update(float* param, float* square_avg, float* grad_avg, float* momentum_buffer, const float* grad,
                    const RmspropDesc& d, cudaStream_t stream) {
  Rmsprop f;
  f.param = param;
  f.square_avg = square_avg;
  f.grad_avg = grad_avg;
  f.momentum_buffer = momentum_buffer;
  f.grad = grad;
  f.sign = d.maximize ? -1.0f : 1.0f;
  f.decay = static_cast<float>(d.weight_decay);
  f.alpha = static_cast<float>(d.alpha);
  f.avg_weight = static_cast<float>(1.0 - d.alpha);
  f.eps = static_cast<float>(d.eps);
  f.momentum = static_cast<float>(d.momentum);
  f.neg_lr = static_cast<float>(-d.lr);
  f.centered = d.centered;
  f.use_momentum = d.momentum > 0.0;
  launch(d.count, f, stream, "rmsprop_update");
}

void adagrad_update(float* param, float* state_sum, const float* grad, const AdagradDesc& d, cudaStream_t stream) {
  Adagrad f;
  f.param = param;
  f.state_sum = state_sum;
  f.grad = grad;
  f.sign = d.maximize ? -1.0f : 1.0f;
  f.decay = static_cast<float>(d.weight_decay);
  f.eps = static_cast<float>(d.eps);
  f.neg_clr = static_cast<float>(-(d.lr / (1.0 + static_cast<double>(d.step - 1) * d.lr_decay)));
  launch(d.count, f, stream, "adagrad_update");
}

void adadelta_update(float* param, float* square_avg, float* acc_delta, const float* grad, const AdadeltaDesc& d,
                     cudaStream_t stream) {
  Adadelta f;
  f.param = param;
  f.square_avg = square_avg;
  f.acc_delta = acc_delta;
  f.grad = grad;
  f.sign = d.maximize ? -1.0f : 1.0f;
  f.decay = static_cast<float>(d.weight_decay);
  f.rho = static_cast<float>(d.rho);
  f.avg_weight = static_cast<float>(1.0 - d.rho);
  f.eps = static_cast<float>(d.eps);
  f.neg_lr = static_cast<float>(-d.lr);
  launch(d.count, f, stream, "adadelta_update");
}

}  // namespace pcn::cuda
