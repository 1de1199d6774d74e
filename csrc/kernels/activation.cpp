// Element-wise activations and dropout (see activation.h). Work is cut into blocks of kBlock
// floats shared out statically; each block is one vector loop plus a tail that runs the same
// vector code on a zero-padded copy, so every element gets bit-identical treatment wherever it
// falls. sigmoid, tanh, gelu and silu use their own vector exp (no libm call, so every ISA vectorises it).
#include "kernels/activation.h"

#include "core/counter_hash.h"
#include "core/simd.h"

PCN_ISA_BEGIN
namespace {

constexpr int64_t kBlock = 16384;  // floats per parallel work item

// y[i] = f(x[i]) over [0, count), parallel over blocks. y may equal x.
template <class F>
void map_unary(float* y, const float* x, int64_t count, F f) {
  const int64_t blocks = (count + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(blocks, count)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock, end = min64(count, begin + kBlock);
    int64_t i = begin;
    for (; i + kVecFloats <= end; i += kVecFloats) vstore(y + i, f(vload(x + i)));
    if (i < end) {
      vfloat in = {};
      for (int64_t j = i; j < end; ++j) in[j - i] = x[j];
      const vfloat out = f(in);
      for (int64_t j = i; j < end; ++j) y[j] = out[j - i];
    }
  }
}

// dx[i] = f(dy[i], v[i]). dx may equal dy.
template <class F>
void map_binary(float* dx, const float* dy, const float* v, int64_t count, F f) {
  const int64_t blocks = (count + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(blocks, count)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock, end = min64(count, begin + kBlock);
    int64_t i = begin;
    for (; i + kVecFloats <= end; i += kVecFloats) vstore(dx + i, f(vload(dy + i), vload(v + i)));
    if (i < end) {
      vfloat g = {}, in = {};
      for (int64_t j = i; j < end; ++j) {
        g[j - i] = dy[j];
        in[j - i] = v[j];
      }
      const vfloat out = f(g, in);
      for (int64_t j = i; j < end; ++j) dx[j] = out[j - i];
    }
  }
}

vfloat abs_of(vfloat v) { return (vfloat)((vint)v & 0x7fffffff); }

// e^t = scale * (1 + p) for t in [-103.9, 0] (clamped below; NaN passes through as NaN in p):
// t = n ln2 + r with |r| <= ln2/2, p = e^r - 1 by its Taylor series to r^7 (error < 2e-8
// relative), scale = 2^n built from two exponent fields so that n down to -150 stays exact
// until the final product rounds.
void exp_parts(vfloat t, vfloat* scale, vfloat* p) {
  const vfloat lowest = vbroadcast(-103.9f);
  t = t < lowest ? lowest : t;
  const vfloat round = vbroadcast(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vfloat n = (t * 1.44269504f + round) - round;
  const vfloat r = (t - n * 0.693359375f) - n * -2.12194440e-4f;
  const vfloat poly =
      0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))));
  *p = r + r * r * poly;
  const vint ni = __builtin_convertvector(n, vint);
  const vint half = ni >> 1;
  const vfloat s1 = (vfloat)((half + 127) << 23), s2 = (vfloat)((ni - half + 127) << 23);
  *scale = s1 * s2;
}

// e^t for t <= 0 (down to the clamp of exp_parts).
vfloat exp_nonpositive(vfloat t) {
  vfloat scale, p;
  exp_parts(t, &scale, &p);
  return scale + scale * p;
}

vfloat sigmoid_vec(vfloat x) {
  const vfloat e = exp_nonpositive(-abs_of(x));  // exp(-|x|) in (0, 1]
  const vfloat s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

// tanh(|x|) = -m / (2 + m) with m = expm1(-2|x|), sign restored from x.
vfloat tanh_vec(vfloat x) {
  vfloat scale, p;
  exp_parts(-2.0f * abs_of(x), &scale, &p);
  const vfloat m = scale * p + (scale - 1.0f);
  const vfloat magnitude = abs_of(-m / (2.0f + m));
  const vint sign = (vint)x & int32_t(0x80000000u);
  return (vfloat)((vint)magnitude | sign);
}

// erfc(z) for z >= 0 as t * exp(P(t) - z^2) with t = 2 / (2 + z) and P of degree 9, least-squares
// fitted on Chebyshev nodes of z in [0, 10] to log(erfc(z) / t) + z^2: relative error about 5e-8
// before float rounding (the rounding of z^2 adds ~z^2 ulp). 0 beyond z = 10, where erfc is
// below float's smallest subnormal; NaN passes through.
vfloat erfc_nonnegative(vfloat z) {
  const vfloat t = 2.0f / (2.0f + z);
  const vfloat poly =
      -1.26544800f +
      t * (0.998632783f +
           t * (0.386640412f +
                t * (0.0346027999f +
                     t * (0.00126758663f +
                          t * (-0.0802804327f +
                               t * (-0.696251898f + t * (1.15673376f + t * (-0.680827177f + t * 0.144930214f))))))));
  const vfloat q = t * exp_nonpositive(poly - z * z);
  return z > 10.0f ? vfloat{} : q;
}

constexpr float kSqrtHalf = 0.707106781f, kInvSqrt2Pi = 0.398942280f;

// Phi(x), the standard normal CDF, from erfc(|x| / sqrt 2) on the side where it is small.
vfloat normal_cdf(vfloat x) {
  const vfloat tail = 0.5f * erfc_nonnegative(abs_of(x) * kSqrtHalf);
  return x >= 0.0f ? 1.0f - tail : tail;
}

// phi(x), the standard normal density; 0 where exp(-x^2 / 2) is below float's range.
vfloat normal_pdf(vfloat x) {
  const vfloat half_square = 0.5f * x * x;
  return half_square > 103.0f ? vfloat{} : kInvSqrt2Pi * exp_nonpositive(-half_square);
}

constexpr float kGeluBeta = 0.797884561f, kGeluKappa = 0.044715f;  // sqrt(2/pi), the cubic's weight

// min(max(v, 0), 6); NaN stays NaN.
vfloat clamp_0_6(vfloat v) {
  v = v < 0.0f ? vfloat{} : v;
  return v > 6.0f ? vbroadcast(6.0f) : v;
}

}  // namespace

void relu_forward(float* y, const float* x, const ActivationDesc& d) {
  map_unary(y, x, d.count, [](vfloat v) { return v < 0.0f ? vfloat{} : v; });
}

void relu_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d) {
  map_binary(dx, dy, y, d.count, [](vfloat g, vfloat v) { return v <= 0.0f ? vfloat{} : g; });
}

void leaky_relu_forward(float* y, const float* x, const ActivationDesc& d) {
  const float slope = d.negative_slope;
  map_unary(y, x, d.count, [slope](vfloat v) { return v > 0.0f ? v : v * slope; });
}

void leaky_relu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  const float slope = d.negative_slope;
  map_binary(dx, dy, x, d.count, [slope](vfloat g, vfloat v) { return v > 0.0f ? g : g * slope; });
}

void sigmoid_forward(float* y, const float* x, const ActivationDesc& d) { map_unary(y, x, d.count, sigmoid_vec); }

void sigmoid_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d) {
  map_binary(dx, dy, y, d.count, [](vfloat g, vfloat v) { return g * (v * (1.0f - v)); });
}

void tanh_forward(float* y, const float* x, const ActivationDesc& d) { map_unary(y, x, d.count, tanh_vec); }

void tanh_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d) {
  map_binary(dx, dy, y, d.count, [](vfloat g, vfloat v) { return g * (1.0f - v * v); });
}

void gelu_forward(float* y, const float* x, const ActivationDesc& d) {
  map_unary(y, x, d.count, [](vfloat v) { return v * normal_cdf(v); });
}

void gelu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  map_binary(dx, dy, x, d.count, [](vfloat g, vfloat v) { return g * (normal_cdf(v) + v * normal_pdf(v)); });
}

void gelu_tanh_forward(float* y, const float* x, const ActivationDesc& d) {
  map_unary(y, x, d.count, [](vfloat v) {
    const vfloat inner = kGeluBeta * (v + kGeluKappa * v * v * v);
    return 0.5f * v * (1.0f + tanh_vec(inner));
  });
}

void gelu_tanh_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  map_binary(dx, dy, x, d.count, [](vfloat g, vfloat v) {
    const vfloat square = v * v;
    const vfloat t = tanh_vec(kGeluBeta * (v + kGeluKappa * square * v));
    const vfloat inner_derivative = kGeluBeta * (1.0f + 3.0f * kGeluKappa * square);
    return g * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * inner_derivative);
  });
}

void silu_forward(float* y, const float* x, const ActivationDesc& d) {
  map_unary(y, x, d.count, [](vfloat v) { return v * sigmoid_vec(v); });
}

void silu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  map_binary(dx, dy, x, d.count, [](vfloat g, vfloat v) {
    const vfloat s = sigmoid_vec(v);
    return g * (s * (1.0f + v * (1.0f - s)));
  });
}

void relu6_forward(float* y, const float* x, const ActivationDesc& d) { map_unary(y, x, d.count, clamp_0_6); }

void relu6_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d) {
  map_binary(dx, dy, y, d.count, [](vfloat g, vfloat v) { return (v <= 0.0f) | (v >= 6.0f) ? vfloat{} : g; });
}

void hardswish_forward(float* y, const float* x, const ActivationDesc& d) {
  map_unary(y, x, d.count, [](vfloat v) { return v * clamp_0_6(v + 3.0f) / 6.0f; });
}

void hardswish_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  map_binary(dx, dy, x, d.count, [](vfloat g, vfloat v) {
    const vfloat middle = g * (v / 3.0f + 0.5f);
    return v <= -3.0f ? vfloat{} : (v < 3.0f ? middle : g);
  });
}

void hardsigmoid_forward(float* y, const float* x, const ActivationDesc& d) {
  map_unary(y, x, d.count, [](vfloat v) { return clamp_0_6(v + 3.0f) / 6.0f; });
}

void hardsigmoid_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d) {
  map_binary(dx, dy, x, d.count,
             [](vfloat g, vfloat v) { return (v > -3.0f) & (v < 3.0f) ? g / 6.0f : vfloat{}; });
}

// Mask entries are shared out in blocks of about kBlock elements.
int64_t entries_per_block(const DropoutDesc& d) { return max64(1, kBlock / max64(d.plane, 1)); }

void dropout_forward(float* y, uint8_t* mask, const float* x, const DropoutDesc& d) {
  const uint64_t key = dropout_key(d.seed), threshold = drop_threshold(d.p);
  const float keep_scale = d.p < 1.0f ? 1.0f / (1.0f - d.p) : 0.0f;
  const int64_t per_block = entries_per_block(d), blocks = (d.count + per_block - 1) / per_block;
#pragma omp parallel for num_threads(threads_for(blocks, d.count * d.plane)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = min64(d.count, (b + 1) * per_block);
    for (int64_t k = b * per_block; k < end; ++k) {
      const bool keep = dropout_keeps(key, k, threshold);
      mask[k] = keep;
      const float scale = keep ? keep_scale : 0.0f;
      for (int64_t i = k * d.plane; i < (k + 1) * d.plane; ++i) y[i] = x[i] * scale;  // a dropped NaN stays NaN
    }
  }
}

void dropout_backward(float* dx, const float* dy, const uint8_t* mask, const DropoutDesc& d) {
  const float keep_scale = d.p < 1.0f ? 1.0f / (1.0f - d.p) : 0.0f;
  const int64_t per_block = entries_per_block(d), blocks = (d.count + per_block - 1) / per_block;
#pragma omp parallel for num_threads(threads_for(blocks, d.count * d.plane)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = min64(d.count, (b + 1) * per_block);
    for (int64_t k = b * per_block; k < end; ++k) {
      const float scale = mask[k] ? keep_scale : 0.0f;
      for (int64_t i = k * d.plane; i < (k + 1) * d.plane; ++i) dx[i] = dy[i] * scale;
    }
  }
}

PCN_ISA_END
