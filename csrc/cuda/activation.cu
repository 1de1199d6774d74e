// GPU activations and dropout (see kernels/activation.h for the formulas; activation.cuh for the
// launchers). Every kernel is a grid-stride loop with one thread per element of the flat array;
// each thread reads its element before writing it, so outputs may alias inputs. Transcendentals
// use CUDA's accurate expf/erfcf/tanhf (a few ulp from the CPU's own vector versions).
// Dropout draws its mask from core/counter_hash.h, the CPU kernel's hash: the masks are bit-identical.
#include "cuda/activation.cuh"

#include "core/counter_hash.h"
#include "cuda/device_array.h"

namespace pcn::cuda {
namespace {

constexpr unsigned kThreads = 256;

// y[i] = f(x[i]) over [0, count).
template <class F>
__global__ void map_unary(float* y, const float* x, int64_t count, F f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) y[i] = f(x[i]);
}

// dx[i] = f(dy[i], v[i]) over [0, count).
template <class F>
__global__ void map_binary(float* dx, const float* dy, const float* v, int64_t count, F f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    dx[i] = f(dy[i], v[i]);
}

template <class F>
void launch_unary(float* y, const float* x, int64_t count, F f, cudaStream_t stream, const char* name) {
  if (count == 0) return;
  map_unary<<<grid_for(count, kThreads), kThreads, 0, stream>>>(y, x, count, f);
  check_launch(name);
}

template <class F>
void launch_binary(float* dx, const float* dy, const float* v, int64_t count, F f, cudaStream_t stream,
                   const char* name) {
  if (count == 0) return;
  map_binary<<<grid_for(count, kThreads), kThreads, 0, stream>>>(dx, dy, v, count, f);
  check_launch(name);
}

__device__ float sigmoid_of(float x) {
  const float e = expf(-fabsf(x));  // exp(-|x|) in (0, 1]: nothing overflows
  const float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

constexpr float kSqrtHalf = 0.707106781f, kInvSqrt2Pi = 0.398942280f;
constexpr float kGeluBeta = 0.797884561f, kGeluKappa = 0.044715f;  // sqrt(2/pi), the cubic's weight

// Phi(x) from erfc on the side where it is small, as the CPU kernel.
__device__ float normal_cdf(float x) {
  const float tail = 0.5f * erfcf(fabsf(x) * kSqrtHalf);
  return x >= 0.0f ? 1.0f - tail : tail;
}

__device__ float normal_pdf(float x) { return kInvSqrt2Pi * expf(-0.5f * x * x); }

// min(max(v, 0), 6); NaN stays NaN.
__device__ float clamp_0_6(float v) {
  v = v < 0.0f ? 0.0f : v;
  return v > 6.0f ? 6.0f : v;
}

struct ReluForward {
  __device__ float operator()(float v) const { return v < 0.0f ? 0.0f : v; }
};
struct ReluBackward {
  __device__ float operator()(float g, float v) const { return v <= 0.0f ? 0.0f : g; }
};
struct LeakyForward {
  float slope;
  __device__ float operator()(float v) const { return v > 0.0f ? v : v * slope; }
};
struct LeakyBackward {
  float slope;
  __device__ float operator()(float g, float v) const { return v > 0.0f ? g : g * slope; }
};
struct SigmoidForward {
  __device__ float operator()(float v) const { return sigmoid_of(v); }
};
struct SigmoidBackward {
  __device__ float operator()(float g, float v) const { return g * (v * (1.0f - v)); }
};
struct TanhForward {
  __device__ float operator()(float v) const { return tanhf(v); }
};
struct TanhBackward {
  __device__ float operator()(float g, float v) const { return g * (1.0f - v * v); }
};
struct GeluForward {
  __device__ float operator()(float v) const { return v * normal_cdf(v); }
};
struct GeluBackward {
  __device__ float operator()(float g, float v) const { return g * (normal_cdf(v) + v * normal_pdf(v)); }
};
struct GeluTanhForward {
  __device__ float operator()(float v) const {
    const float inner = kGeluBeta * (v + kGeluKappa * v * v * v);
    return 0.5f * v * (1.0f + tanhf(inner));
  }
};
struct GeluTanhBackward {
  __device__ float operator()(float g, float v) const {
    const float square = v * v;
    const float t = tanhf(kGeluBeta * (v + kGeluKappa * square * v));
    const float inner_derivative = kGeluBeta * (1.0f + 3.0f * kGeluKappa * square);
    return g * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * inner_derivative);
  }
};
struct SiluForward {
  __device__ float operator()(float v) const { return v * sigmoid_of(v); }
};
struct SiluBackward {
  __device__ float operator()(float g, float v) const {
    const float s = sigmoid_of(v);
    return g * (s * (1.0f + v * (1.0f - s)));
  }
};
struct Relu6Forward {
  __device__ float operator()(float v) const { return clamp_0_6(v); }
};
struct Relu6Backward {
  __device__ float operator()(float g, float v) const { return v <= 0.0f || v >= 6.0f ? 0.0f : g; }
};
struct HardswishForward {
  __device__ float operator()(float v) const { return v * clamp_0_6(v + 3.0f) / 6.0f; }
};
struct HardswishBackward {
  __device__ float operator()(float g, float v) const {
    return v <= -3.0f ? 0.0f : (v < 3.0f ? g * (v / 3.0f + 0.5f) : g);
  }
};
struct HardsigmoidForward {
  __device__ float operator()(float v) const { return clamp_0_6(v + 3.0f) / 6.0f; }
};
struct HardsigmoidBackward {
  __device__ float operator()(float g, float v) const { return v > -3.0f && v < 3.0f ? g / 6.0f : 0.0f; }
};

// mask[k] for k < count (one thread per entry, so entries whose plane is empty are written too) and
// y[i] = x[i] * scale of entry i / plane for i < count * plane. The hash is recomputed per element:
// cheaper than a second launch reading the mask back.
__global__ void dropout_forward_kernel(float* y, uint8_t* mask, const float* x, int64_t count, int64_t plane,
                                       uint64_t key, uint64_t threshold, float keep_scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t k = first; k < count; k += stride) mask[k] = dropout_keeps(key, k, threshold) ? 1 : 0;
  const int64_t total = count * plane;
  for (int64_t i = first; i < total; i += stride)
    y[i] = x[i] * (dropout_keeps(key, i / plane, threshold) ? keep_scale : 0.0f);  // a dropped NaN stays NaN
}

__global__ void dropout_backward_kernel(float* dx, const float* dy, const uint8_t* mask, int64_t total, int64_t plane,
                                        float keep_scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride)
    dx[i] = dy[i] * (mask[i / plane] ? keep_scale : 0.0f);
}

float keep_scale_of(const DropoutDesc& d) { return d.p < 1.0f ? 1.0f / (1.0f - d.p) : 0.0f; }

}  // namespace

void relu_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, ReluForward{}, stream, "relu_forward");
}
void relu_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, y, d.count, ReluBackward{}, stream, "relu_backward");
}
void leaky_relu_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, LeakyForward{d.negative_slope}, stream, "leaky_relu_forward");
}
void leaky_relu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, x, d.count, LeakyBackward{d.negative_slope}, stream, "leaky_relu_backward");
}
void sigmoid_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, SigmoidForward{}, stream, "sigmoid_forward");
}
void sigmoid_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, y, d.count, SigmoidBackward{}, stream, "sigmoid_backward");
}
void tanh_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, TanhForward{}, stream, "tanh_forward");
}
void tanh_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, y, d.count, TanhBackward{}, stream, "tanh_backward");
}
void gelu_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, GeluForward{}, stream, "gelu_forward");
}
void gelu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, x, d.count, GeluBackward{}, stream, "gelu_backward");
}
void gelu_tanh_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, GeluTanhForward{}, stream, "gelu_tanh_forward");
}
void gelu_tanh_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, x, d.count, GeluTanhBackward{}, stream, "gelu_tanh_backward");
}
void silu_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, SiluForward{}, stream, "silu_forward");
}
void silu_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, x, d.count, SiluBackward{}, stream, "silu_backward");
}
void relu6_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, Relu6Forward{}, stream, "relu6_forward");
}
void relu6_backward(float* dx, const float* dy, const float* y, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, y, d.count, Relu6Backward{}, stream, "relu6_backward");
}
void hardswish_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, HardswishForward{}, stream, "hardswish_forward");
}
void hardswish_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, x, d.count, HardswishBackward{}, stream, "hardswish_backward");
}
void hardsigmoid_forward(float* y, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_unary(y, x, d.count, HardsigmoidForward{}, stream, "hardsigmoid_forward");
}
void hardsigmoid_backward(float* dx, const float* dy, const float* x, const ActivationDesc& d, cudaStream_t stream) {
  launch_binary(dx, dy, x, d.count, HardsigmoidBackward{}, stream, "hardsigmoid_backward");
}

void dropout_forward(float* y, uint8_t* mask, const float* x, const DropoutDesc& d, cudaStream_t stream) {
  const int64_t total = d.count * d.plane, work = total > d.count ? total : d.count;
  if (work == 0) return;
  dropout_forward_kernel<<<grid_for(work, kThreads), kThreads, 0, stream>>>(
      y, mask, x, d.count, d.plane, dropout_key(d.seed), drop_threshold(d.p), keep_scale_of(d));
  check_launch("dropout_forward");
}

void dropout_backward(float* dx, const float* dy, const uint8_t* mask, const DropoutDesc& d, cudaStream_t stream) {
  const int64_t total = d.count * d.plane;
  if (total == 0) return;
  dropout_backward_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(dx, dy, mask, total, d.plane,
                                                                            keep_scale_of(d));
  check_launch("dropout_backward");
}

}  // namespace pcn::cuda
