// Element-wise activations and dropout (see activation.h). Work is cut into blocks of kBlock
// floats shared out statically; each block is one vector loop plus a tail that runs the same
// vector code on a zero-padded copy, so every element gets bit-identical treatment wherever it
// falls. sigmoid and tanh use their own vector exp (no libm call, so every ISA vectorises it).
#include "kernels/activation.h"

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

vfloat sigmoid_vec(vfloat x) {
  vfloat scale, p;
  exp_parts(-abs_of(x), &scale, &p);
  const vfloat e = scale + scale * p;  // exp(-|x|) in (0, 1]
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

// splitmix64's finaliser: a bijective 64-bit mix.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// Element i is kept when the top 32 bits of its hash reach p * 2^32 (never for p = 1).
uint64_t drop_threshold(float p) { return static_cast<uint64_t>(static_cast<double>(p) * 4294967296.0); }

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

void dropout_forward(float* y, uint8_t* mask, const float* x, const DropoutDesc& d) {
  const uint64_t key = mix64(d.seed + kGolden), threshold = drop_threshold(d.p);
  const float keep_scale = d.p < 1.0f ? 1.0f / (1.0f - d.p) : 0.0f;
  const int64_t blocks = (d.count + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(blocks, d.count)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = min64(d.count, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) {
      const bool keep = (mix64(key + static_cast<uint64_t>(i + 1) * kGolden) >> 32) >= threshold;
      mask[i] = keep;
      y[i] = x[i] * (keep ? keep_scale : 0.0f);  // a dropped NaN stays NaN, as torch's x * mask
    }
  }
}

void dropout_backward(float* dx, const float* dy, const uint8_t* mask, const DropoutDesc& d) {
  const float keep_scale = d.p < 1.0f ? 1.0f / (1.0f - d.p) : 0.0f;
  const int64_t blocks = (d.count + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(blocks, d.count)) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = min64(d.count, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) dx[i] = dy[i] * (mask[i] ? keep_scale : 0.0f);
  }
}

PCN_ISA_END
