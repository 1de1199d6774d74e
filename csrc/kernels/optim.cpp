// Fused SGD, Adam/AdamW, RMSprop, Adagrad and Adadelta updates (see optim.h): one pass per
// parameter, threads over chunks of kChunk elements, each element's arithmetic in the order
// torch.optim's single-tensor code uses (torch's addcmul and addcdiv scale the first factor:
// s + (value * a) * b, s + (value * a) / b). Element-wise only, so the result does not depend on
// the thread count.
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

// Calls update(i, V{}) with V = vfloat for each whole vector of [0, count) and V = float for the
// tail, threading over chunks.
template <class Update>
void over_chunks(int64_t count, const Update& update) {
  const int64_t chunks = chunks_of(count);
#pragma omp parallel for num_threads(threads_for(chunks, count)) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kChunk, end = min64(count, begin + kChunk);
    int64_t i = begin;
    for (; i + kVecFloats <= end; i += kVecFloats) update(i, vfloat{});
    for (; i < end; ++i) update(i, 0.0f);
  }
}

// One float or one vector at `at`, at any float alignment.
template <class V>
V load(const float* at) {
  V v;
  memcpy(&v, at, sizeof(V));
  return v;
}
template <class V>
void store(float* at, const V& v) {
  memcpy(at, &v, sizeof(V));
}

// torch.lerp(from, to, weight), evaluated from the nearer end as torch does.
template <class V>
V lerp(const V& from, const V& to, float weight) {
  return weight < 0.5f ? from + (to - from) * weight : to - (to - from) * (1.0f - weight);
}

// Adam's per-call scalars, in float as torch's kernels apply them.
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
  V g = load<V>(grad + i) * s.sign, p = load<V>(param + i);
  if (s.decoupled) p = p * s.decay_scale;
  if (s.coupled) g = g + p * s.decay;
  const V m = lerp(load<V>(exp_avg + i), g, s.avg_weight);
  V v = load<V>(exp_avg_sq + i) * s.beta2;
  v = v + g * s.sq_weight * g;
  store(exp_avg + i, m);
  store(exp_avg_sq + i, v);
  if (s.amsgrad) {
    const V top = load<V>(max_exp_avg_sq + i);
    v = top > v ? top : v;
    store(max_exp_avg_sq + i, v);
  }
  const V denom = root(v) / s.correction2_sqrt + s.eps;
  p = p + m * -s.step_size / denom;
  store(param + i, p);
}

// The gradient (negated when maximizing) plus L2 weight decay, as RMSprop, Adagrad and Adadelta
// form it before their update.
template <class V>
V decayed_grad(int64_t i, const float* param, const float* grad, float sign, float decay) {
  V g = load<V>(grad + i) * sign;
  if (decay != 0.0f) g = g + load<V>(param + i) * decay;
  return g;
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
  const AdamScalars s = adam_scalars(d);
  over_chunks(d.count, [&](int64_t i, auto lanes) {
    adam_at<decltype(lanes)>(i, param, exp_avg, exp_avg_sq, max_exp_avg_sq, grad, s);
  });
}

void rmsprop_update(float* param, float* square_avg, float* grad_avg, float* momentum_buffer, const float* grad,
                    const RmspropDesc& d) {
  const float sign = d.maximize ? -1.0f : 1.0f, decay = static_cast<float>(d.weight_decay);
  const float alpha = static_cast<float>(d.alpha), avg_weight = static_cast<float>(1.0 - d.alpha);
  const float eps = static_cast<float>(d.eps), momentum = static_cast<float>(d.momentum);
  const float neg_lr = static_cast<float>(-d.lr);
  const bool centered = d.centered, use_momentum = d.momentum > 0.0;
  over_chunks(d.count, [&](int64_t i, auto lanes) {
    using V = decltype(lanes);
    const V g = decayed_grad<V>(i, param, grad, sign, decay);
    V sq = load<V>(square_avg + i) * alpha;
    sq = sq + g * avg_weight * g;
    store(square_avg + i, sq);
    V avg;
    if (centered) {
      const V mean = lerp(load<V>(grad_avg + i), g, avg_weight);
      store(grad_avg + i, mean);
      avg = root(sq + mean * -1.0f * mean);
    } else {
      avg = root(sq);
    }
    avg = avg + eps;
    V p = load<V>(param + i);
    if (use_momentum) {
      const V buf = load<V>(momentum_buffer + i) * momentum + g / avg;
      store(momentum_buffer + i, buf);
      p = p + buf * neg_lr;
    } else {
      p = p + g * neg_lr / avg;
    }
    store(param + i, p);
  });
}

void adagrad_update(float* param, float* state_sum, const float* grad, const AdagradDesc& d) {
  const float sign = d.maximize ? -1.0f : 1.0f, decay = static_cast<float>(d.weight_decay);
  const float eps = static_cast<float>(d.eps);
  const float neg_clr = static_cast<float>(-(d.lr / (1.0 + static_cast<double>(d.step - 1) * d.lr_decay)));
  over_chunks(d.count, [&](int64_t i, auto lanes) {
    using V = decltype(lanes);
    const V g = decayed_grad<V>(i, param, grad, sign, decay);
    const V sum = load<V>(state_sum + i) + g * g;
    store(state_sum + i, sum);
    store(param + i, load<V>(param + i) + g * neg_clr / (root(sum) + eps));
  });
}

void adadelta_update(float* param, float* square_avg, float* acc_delta, const float* grad, const AdadeltaDesc& d) {
  const float sign = d.maximize ? -1.0f : 1.0f, decay = static_cast<float>(d.weight_decay);
  const float rho = static_cast<float>(d.rho), avg_weight = static_cast<float>(1.0 - d.rho);
  const float eps = static_cast<float>(d.eps), neg_lr = static_cast<float>(-d.lr);
  over_chunks(d.count, [&](int64_t i, auto lanes) {
    using V = decltype(lanes);
    const V g = decayed_grad<V>(i, param, grad, sign, decay);
    V sq = load<V>(square_avg + i) * rho;
    sq = sq + g * avg_weight * g;
    store(square_avg + i, sq);
    const V delta = root(load<V>(acc_delta + i) + eps) / root(sq + eps) * g;
    V acc = load<V>(acc_delta + i) * rho;
    acc = acc + delta * avg_weight * delta;
    store(acc_delta + i, acc);
    store(param + i, load<V>(param + i) + delta * neg_lr);
  });
}

PCN_ISA_END
