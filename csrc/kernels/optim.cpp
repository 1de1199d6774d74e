// Fused SGD and Adam/AdamW updates (see optim.h): one pass per parameter, threads over chunks of
// kChunk elements, each element's arithmetic in the order torch.optim's single-tensor code uses.
// Element-wise only, so the result does not depend on the thread count.
#include "kernels/optim.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "core/simd.h"

PCN_ISA_BEGIN
namespace {

constexpr int64_t kChunk = 16384;

int64_t chunks_of(int64_t count) { return (count + kChunk - 1) / kChunk; }

// Adam's per-call scalars, in float as torch's kernels apply them.
struct AdamScalars {
  float step_size, correction2_sqrt, decay_scale, avg_weight, beta2, sq_weight, eps, decay, sign;
  bool decoupled, coupled, amsgrad;
};

// Square roots. GCC will not vectorise sqrtf while it may set errno, so vectors use the ISA's
// sqrt instruction directly (correctly rounded, like the scalar one).
float root(float x) { return __builtin_sqrtf(x); }
vfloat root(vfloat x) {
#if defined(PCN_ISA_IS_avx512)
  return (vfloat)_mm512_maskz_sqrt_ps(static_cast<__mmask16>(0xFFFF), (__m512)x);  // maskz: no GCC 12 false warning
#elif defined(PCN_ISA_IS_avx2)
  return (vfloat)_mm256_sqrt_ps((__m256)x);
#elif defined(__SSE2__)
  return (vfloat)_mm_sqrt_ps((__m128)x);
#else
  for (int k = 0; k < kVecFloats; ++k) x[k] = __builtin_sqrtf(x[k]);
  return x;
#endif
}

// One float (V = float) or one vector (V = vfloat) of the Adam update at element i, in the
// order of torch's single-tensor code: lerp for exp_avg (from the nearer end, as torch's lerp),
// mul + addcmul for exp_avg_sq, then param += -step_size * exp_avg / denom.
template <class V>
void adam_at(int64_t i, float* param, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq, const float* grad,
             const AdamScalars& s) {
  V g, p, m, v;
  memcpy(&g, grad + i, sizeof(V));
  memcpy(&p, param + i, sizeof(V));
  memcpy(&m, exp_avg + i, sizeof(V));
  memcpy(&v, exp_avg_sq + i, sizeof(V));
  g = g * s.sign;
  if (s.decoupled) p = p * s.decay_scale;
  if (s.coupled) g = g + p * s.decay;
  m = s.avg_weight < 0.5f ? m + (g - m) * s.avg_weight : g - (g - m) * (1.0f - s.avg_weight);
  v = v * s.beta2;
  v = v + g * s.sq_weight * g;
  memcpy(exp_avg + i, &m, sizeof(V));
  memcpy(exp_avg_sq + i, &v, sizeof(V));
  if (s.amsgrad) {
    V top;
    memcpy(&top, max_exp_avg_sq + i, sizeof(V));
    v = top > v ? top : v;
    memcpy(max_exp_avg_sq + i, &v, sizeof(V));
  }
  const V denom = root(v) / s.correction2_sqrt + s.eps;
  p = p + m * -s.step_size / denom;
  memcpy(param + i, &p, sizeof(V));
}

}  // namespace

void sgd_update(float* param, float* momentum_buffer, const float* grad, const SgdDesc& d) {
  const float lr = static_cast<float>(d.lr), momentum = static_cast<float>(d.momentum);
  const float decay = static_cast<float>(d.weight_decay), damp = static_cast<float>(1.0 - d.dampening);
  const float sign = d.maximize ? -1.0f : 1.0f;
  const bool use_momentum = d.momentum != 0.0, first = d.first_step, nesterov = d.nesterov;
  const int64_t chunks = chunks_of(d.count);
#pragma omp parallel for num_threads(threads_for(chunks, d.count)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kChunk, end = min64(d.count, begin + kChunk);
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      float g = sign * grad[i];
      if (decay != 0.0f) g = g + decay * param[i];
      if (use_momentum) {
        const float buf = first ? g : momentum_buffer[i] * momentum + damp * g;
        momentum_buffer[i] = buf;
        g = nesterov ? g + momentum * buf : buf;
      }
      param[i] = param[i] - lr * g;
    }
  }
}

void adam_update(float* param, float* exp_avg, float* exp_avg_sq, float* max_exp_avg_sq, const float* grad,
                 const AdamDesc& d) {
  // Scalars derived in double and rounded once, like torch's Python-side arithmetic.
  const double step = static_cast<double>(d.step);
  const double correction1 = 1.0 - pow(d.beta1, step), correction2 = 1.0 - pow(d.beta2, step);
  AdamScalars s;
  s.step_size = static_cast<float>(d.lr / correction1);
  s.correction2_sqrt = static_cast<float>(sqrt(correction2));
  s.decay_scale = static_cast<float>(1.0 - d.lr * d.weight_decay);
  s.avg_weight = static_cast<float>(1.0 - d.beta1);
  s.beta2 = static_cast<float>(d.beta2);
  s.sq_weight = static_cast<float>(1.0 - d.beta2);
  s.eps = static_cast<float>(d.eps);
  s.decay = static_cast<float>(d.weight_decay);
  s.sign = d.maximize ? -1.0f : 1.0f;
  s.decoupled = d.decoupled_weight_decay && d.weight_decay != 0.0;
  s.coupled = !d.decoupled_weight_decay && d.weight_decay != 0.0;
  s.amsgrad = d.amsgrad;
  const int64_t chunks = chunks_of(d.count);
#pragma omp parallel for num_threads(threads_for(chunks, d.count)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kChunk, end = min64(d.count, begin + kChunk);
    int64_t i = begin;
    for (; i + kVecFloats <= end; i += kVecFloats) adam_at<vfloat>(i, param, exp_avg, exp_avg_sq, max_exp_avg_sq, grad, s);
    for (; i < end; ++i) adam_at<float>(i, param, exp_avg, exp_avg_sq, max_exp_avg_sq, grad, s);
  }
}

PCN_ISA_END
