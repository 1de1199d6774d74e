// Softmax, log-softmax, cross-entropy, NLL and the element-wise losses (MSE, smooth L1 / Huber,
// binary cross-entropy with and without logits): see loss.h.
// Work is cut into items of one (sample, block of up to kColumns inner positions); each item
// handles its columns across all classes with the class loop outside and the column loop inside,
// so that the inner loop runs over contiguous memory. For (N, C) inputs (inner = 1) a row helper
// runs the class loop contiguously instead. Loss reductions write one double partial per item
// into scratch and sum those in item order: the result does not depend on the thread count.
#include "kernels/loss.h"

#include <math.h>

#include "core/simd.h"

PCN_ISA_BEGIN
namespace {

constexpr int64_t kColumns = 64;

struct Items {
  int64_t blocks;  // column blocks per sample
  int64_t count;   // samples * blocks
};

Items items_of(int64_t outer, int64_t inner) {
  const int64_t blocks = (inner + kColumns - 1) / kColumns;
  return {blocks, outer * blocks};
}

struct Columns {
  int64_t n, offset, first, width;  // sample, element offset of (n, class 0, first), first column, count
};

Columns columns_of(const Items& items, int64_t item, int64_t classes, int64_t inner) {
  const int64_t n = item / items.blocks, first = (item % items.blocks) * kColumns;
  return {n, n * classes * inner + first, first, min64(kColumns, inner - first)};
}

// log(sum_c exp(x[c])) of one contiguous row, max-subtracted.
float row_logsumexp(const float* x, int64_t classes) {
  float top = x[0];
#pragma omp simd reduction(max : top)
  for (int64_t c = 1; c < classes; ++c) top = x[c] > top ? x[c] : top;
  double sum = 0.0;
  for (int64_t c = 0; c < classes; ++c) sum += expf(x[c] - top);
  return top + static_cast<float>(log(sum));
}

// lse[j] = log(sum_c exp(x[c * inner + j])) for j < width, max-subtracted.
void columns_logsumexp(float* lse, const float* x, int64_t classes, int64_t inner, int64_t width) {
  if (inner == 1) {
    lse[0] = row_logsumexp(x, classes);
    return;
  }
  float top[kColumns];
  double sum[kColumns];
  for (int64_t j = 0; j < width; ++j) {
    top[j] = x[j];
    sum[j] = 0.0;
  }
  for (int64_t c = 1; c < classes; ++c) {
    const float* row = x + c * inner;
    for (int64_t j = 0; j < width; ++j) top[j] = row[j] > top[j] ? row[j] : top[j];
  }
  for (int64_t c = 0; c < classes; ++c) {
    const float* row = x + c * inner;
    for (int64_t j = 0; j < width; ++j) sum[j] += expf(row[j] - top[j]);
  }
  for (int64_t j = 0; j < width; ++j) lse[j] = top[j] + static_cast<float>(log(sum[j]));
}

// y[c, j] = x[c, j] - lse[j]: the log-probabilities of the item's columns.
void columns_log_softmax(float* y, const float* x, const float* lse, int64_t classes, int64_t inner, int64_t width) {
  for (int64_t c = 0; c < classes; ++c) {
    const float* src = x + c * inner;
    float* dst = y + c * inner;
    for (int64_t j = 0; j < width; ++j) dst[j] = src[j] - lse[j];
  }
}

// total[j] = sum_c a[c, j] (* b[c, j] when b is given), in double.
void columns_sum(double* total, const float* a, const float* b, int64_t classes, int64_t inner, int64_t width) {
  for (int64_t j = 0; j < width; ++j) total[j] = 0.0;
  for (int64_t c = 0; c < classes; ++c) {
    const float *ra = a + c * inner, *rb = b ? b + c * inner : nullptr;
    if (rb)
      for (int64_t j = 0; j < width; ++j) total[j] += static_cast<double>(ra[j]) * rb[j];
    else
      for (int64_t j = 0; j < width; ++j) total[j] += ra[j];
  }
}

// Scratch for one double per item (called outside parallel regions), summed in item order.
double* item_partials(int64_t items) {
  return reinterpret_cast<double*>(thread_scratch(Scratch::partial, 2 * max64(items, 1)));
}

double sum_partials(const double* partials, int64_t items) {
  double total = 0.0;
  for (int64_t i = 0; i < items; ++i) total += partials[i];
  return total;
}

float class_weight_at(const float* class_weight, int64_t c) { return class_weight ? class_weight[c] : 1.0f; }

// Sum of weight[target] over the non-ignored elements: the divisor of reduction='mean'.
double target_weight_total(const int64_t* target, const float* class_weight, const LossDesc& d) {
  double total = 0.0;
  const int64_t count = d.batch * d.inner;
  for (int64_t i = 0; i < count; ++i)
    if (target[i] != d.ignore_index) total += class_weight_at(class_weight, target[i]);
  return total;
}

// The gradient scale of element i of a loss: dloss[i] for none, dloss[0] / divisor for mean.
float loss_grad_scale(const float* dloss, int64_t i, double mean_divisor, int reduction) {
  if (reduction == kReductionNone) return dloss[i];
  if (reduction == kReductionMean) return static_cast<float>(dloss[0] / mean_divisor);
  return dloss[0];
}

// Softmax (log_output false) or log-softmax (true) forward over every item.
void softmax_family_forward(float* y, const float* x, const SoftmaxDesc& d, bool log_output) {
  if (d.classes == 0) return;  // empty output
  const Items items = items_of(d.outer, d.inner);
#pragma omp parallel for num_threads(threads_for(items.count, d.outer * d.classes * d.inner)) schedule(static)
  for (int64_t item = 0; item < items.count; ++item) {
    const Columns cols = columns_of(items, item, d.classes, d.inner);
    float lse[kColumns];
    columns_logsumexp(lse, x + cols.offset, d.classes, d.inner, cols.width);
    columns_log_softmax(y + cols.offset, x + cols.offset, lse, d.classes, d.inner, cols.width);
    if (log_output) continue;
    for (int64_t c = 0; c < d.classes; ++c) {
      float* row = y + cols.offset + c * d.inner;
      for (int64_t j = 0; j < cols.width; ++j) row[j] = expf(row[j]);
    }
  }
}

// Backward of either, from the output y:
//   softmax      dx = y * (dy - sum_c dy * y)
//   log-softmax  dx = dy - exp(y) * sum_c dy
void softmax_family_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d, bool log_output) {
  if (d.classes == 0) return;  // empty output
  const Items items = items_of(d.outer, d.inner);
#pragma omp parallel for num_threads(threads_for(items.count, d.outer * d.classes * d.inner)) schedule(static)
  for (int64_t item = 0; item < items.count; ++item) {
    const Columns cols = columns_of(items, item, d.classes, d.inner);
    double total[kColumns];
    columns_sum(total, dy + cols.offset, log_output ? nullptr : y + cols.offset, d.classes, d.inner, cols.width);
    float totalf[kColumns];
    for (int64_t j = 0; j < cols.width; ++j) totalf[j] = static_cast<float>(total[j]);
    for (int64_t c = 0; c < d.classes; ++c) {
      const int64_t base = cols.offset + c * d.inner;
      if (log_output)
        for (int64_t j = 0; j < cols.width; ++j) dx[base + j] = dy[base + j] - expf(y[base + j]) * totalf[j];
      else
        for (int64_t j = 0; j < cols.width; ++j) dx[base + j] = y[base + j] * (dy[base + j] - totalf[j]);
    }
  }
}

}  // namespace

void softmax_forward(float* y, const float* x, const SoftmaxDesc& d) { softmax_family_forward(y, x, d, false); }

void softmax_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d) {
  softmax_family_backward(dx, dy, y, d, false);
}

void log_softmax_forward(float* y, const float* x, const SoftmaxDesc& d) { softmax_family_forward(y, x, d, true); }

void log_softmax_backward(float* dx, const float* dy, const float* y, const SoftmaxDesc& d) {
  softmax_family_backward(dx, dy, y, d, true);
}

void cross_entropy_forward(float* loss, float* log_probs, const float* logits, const int64_t* target,
                           const float* class_weight, const LossDesc& d) {
  const Items items = items_of(d.batch, d.inner);
  const int reduction = d.reduction;
  const float smoothing = d.label_smoothing, nll_share = 1.0f - smoothing;
  const float smooth_share = d.classes > 0 ? smoothing / static_cast<float>(d.classes) : 0.0f;
  double* partials = reduction == kReductionNone ? nullptr : item_partials(items.count);
#pragma omp parallel for num_threads(threads_for(items.count, d.batch * d.classes * d.inner)) schedule(static)
  for (int64_t item = 0; item < items.count; ++item) {
    const Columns cols = columns_of(items, item, d.classes, d.inner);
    float lse[kColumns];
    columns_logsumexp(lse, logits + cols.offset, d.classes, d.inner, cols.width);
    float* lp = log_probs + cols.offset;
    columns_log_softmax(lp, logits + cols.offset, lse, d.classes, d.inner, cols.width);
    double smooth[kColumns];
    if (smoothing != 0.0f) {
      for (int64_t j = 0; j < cols.width; ++j) smooth[j] = 0.0;
      for (int64_t c = 0; c < d.classes; ++c) {
        const double w = class_weight_at(class_weight, c);
        for (int64_t j = 0; j < cols.width; ++j) smooth[j] -= w * lp[c * d.inner + j];
      }
    }
    double item_total = 0.0;
    for (int64_t j = 0; j < cols.width; ++j) {
      const int64_t element = cols.n * d.inner + cols.first + j, t = target[element];
      double value = 0.0;
      if (t != d.ignore_index) {
        value = -static_cast<double>(class_weight_at(class_weight, t)) * lp[t * d.inner + j] * nll_share;
        if (smoothing != 0.0f) value += smooth[j] * smooth_share;
      }
      if (reduction == kReductionNone)
        loss[element] = static_cast<float>(value);
      else
        item_total += value;
    }
    if (partials) partials[item] = item_total;
  }
  if (reduction == kReductionNone) return;
  const double total = sum_partials(partials, items.count);
  loss[0] = static_cast<float>(reduction == kReductionMean ? total / target_weight_total(target, class_weight, d) : total);
}

void cross_entropy_backward(float* dlogits, const float* dloss, const float* log_probs, const int64_t* target,
                            const float* class_weight, const LossDesc& d) {
  const Items items = items_of(d.batch, d.inner);
  const double divisor = d.reduction == kReductionMean ? target_weight_total(target, class_weight, d) : 1.0;
  const float smoothing = d.label_smoothing, nll_share = 1.0f - smoothing;
  const float smooth_share = d.classes > 0 ? smoothing / static_cast<float>(d.classes) : 0.0f;
  double weight_sum = 0.0;
  for (int64_t c = 0; c < d.classes; ++c) weight_sum += class_weight_at(class_weight, c);
#pragma omp parallel for num_threads(threads_for(items.count, d.batch * d.classes * d.inner)) schedule(static)
  for (int64_t item = 0; item < items.count; ++item) {
    const Columns cols = columns_of(items, item, d.classes, d.inner);
    // d(loss)/d(log_prob[c]) = -g * (smooth_share * w[c] + nll_share * w[t] * [c == t]); with the
    // sum of those over c, the softmax backward gives dlogits = dlp - exp(lp) * sum(dlp).
    float g[kColumns], total[kColumns];
    for (int64_t j = 0; j < cols.width; ++j) {
      const int64_t element = cols.n * d.inner + cols.first + j, t = target[element];
      const bool ignored = t == d.ignore_index;
      g[j] = ignored ? 0.0f : loss_grad_scale(dloss, element, divisor, d.reduction);
      const double target_part = ignored ? 0.0 : static_cast<double>(nll_share) * class_weight_at(class_weight, t);
      total[j] = static_cast<float>(-g[j] * (smooth_share * weight_sum + target_part));
    }
    const float* lp = log_probs + cols.offset;
    float* out = dlogits + cols.offset;
    for (int64_t c = 0; c < d.classes; ++c) {
      const float smooth_c = smooth_share * class_weight_at(class_weight, c);
      for (int64_t j = 0; j < cols.width; ++j)
        out[c * d.inner + j] = -g[j] * smooth_c - expf(lp[c * d.inner + j]) * total[j];
    }
    for (int64_t j = 0; j < cols.width; ++j) {
      const int64_t element = cols.n * d.inner + cols.first + j, t = target[element];
      if (t != d.ignore_index) out[t * d.inner + j] -= g[j] * nll_share * class_weight_at(class_weight, t);
    }
  }
}

void nll_loss_forward(float* loss, const float* log_probs, const int64_t* target, const float* class_weight,
                      const LossDesc& d) {
  const Items items = items_of(d.batch, d.inner);
  double* partials = d.reduction == kReductionNone ? nullptr : item_partials(items.count);
#pragma omp parallel for num_threads(threads_for(items.count, d.batch * d.inner)) schedule(static)
  for (int64_t item = 0; item < items.count; ++item) {
    const Columns cols = columns_of(items, item, d.classes, d.inner);
    double item_total = 0.0;
    for (int64_t j = 0; j < cols.width; ++j) {
      const int64_t element = cols.n * d.inner + cols.first + j, t = target[element];
      const double value = t == d.ignore_index ? 0.0
                                               : -static_cast<double>(class_weight_at(class_weight, t)) *
                                                     log_probs[cols.offset + t * d.inner + j];
      if (partials)
        item_total += value;
      else
        loss[element] = static_cast<float>(value);
    }
    if (partials) partials[item] = item_total;
  }
  if (!partials) return;
  const double total = sum_partials(partials, items.count);
  loss[0] = static_cast<float>(d.reduction == kReductionMean ? total / target_weight_total(target, class_weight, d) : total);
}

void nll_loss_backward(float* dlog_probs, const float* dloss, const int64_t* target, const float* class_weight,
                       const LossDesc& d) {
  const Items items = items_of(d.batch, d.inner);
  const double divisor = d.reduction == kReductionMean ? target_weight_total(target, class_weight, d) : 1.0;
#pragma omp parallel for num_threads(threads_for(items.count, d.batch * d.inner)) schedule(static)
  for (int64_t item = 0; item < items.count; ++item) {
    const Columns cols = columns_of(items, item, d.classes, d.inner);
    for (int64_t c = 0; c < d.classes; ++c) {
      float* out = dlog_probs + cols.offset + c * d.inner;
      for (int64_t j = 0; j < cols.width; ++j) out[j] = 0.0f;
    }
    for (int64_t j = 0; j < cols.width; ++j) {
      const int64_t element = cols.n * d.inner + cols.first + j, t = target[element];
      if (t == d.ignore_index) continue;
      dlog_probs[cols.offset + t * d.inner + j] =
          -loss_grad_scale(dloss, element, divisor, d.reduction) * class_weight_at(class_weight, t);
    }
  }
}

namespace {

// The element-wise losses work on flat arrays of d.batch elements, in blocks of kFlatBlock per
// item: value(i) is element i's loss (double); derivative(i) its derivative by the input, and the
// optional target_derivative(i) by the target, both per unit of incoming gradient.
constexpr int64_t kFlatBlock = 4096;

template <class Value>
void flat_loss_forward(float* loss, const LossDesc& d, Value value) {
  const int64_t count = d.batch, blocks = (count + kFlatBlock - 1) / kFlatBlock;
  double* partials = d.reduction == kReductionNone ? nullptr : item_partials(blocks);
#pragma omp parallel for num_threads(threads_for(blocks, count)) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * kFlatBlock, end = min64(count, begin + kFlatBlock);
    if (!partials) {
      for (int64_t i = begin; i < end; ++i) loss[i] = static_cast<float>(value(i));
      continue;
    }
    double total = 0.0;
    for (int64_t i = begin; i < end; ++i) total += value(i);
    partials[block] = total;
  }
  if (!partials) return;
  const double total = sum_partials(partials, blocks);
  loss[0] = static_cast<float>(d.reduction == kReductionMean ? total / static_cast<double>(count) : total);
}

template <class Derivative, class TargetDerivative>
void flat_loss_backward(float* dinput, float* dtarget, const float* dloss, const LossDesc& d, Derivative derivative,
                        TargetDerivative target_derivative) {
  const int64_t count = d.batch, blocks = (count + kFlatBlock - 1) / kFlatBlock;
  const double divisor = d.reduction == kReductionMean ? static_cast<double>(count) : 1.0;
#pragma omp parallel for num_threads(threads_for(blocks, count)) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * kFlatBlock, end = min64(count, begin + kFlatBlock);
    for (int64_t i = begin; i < end; ++i) {
      const double g = d.reduction == kReductionNone ? dloss[i] : dloss[0] / divisor;
      dinput[i] = static_cast<float>(g * derivative(i));
      if (dtarget) dtarget[i] = static_cast<float>(g * target_derivative(i));
    }
  }
}

template <class Derivative>
void flat_loss_backward(float* dinput, const float* dloss, const LossDesc& d, Derivative derivative) {
  flat_loss_backward(dinput, nullptr, dloss, d, derivative, [](int64_t) { return 0.0; });
}

double weight_at(const float* weight, int64_t i) { return weight ? weight[i] : 1.0; }

// max(log(v), -100): torch's clamp that keeps log(0) finite.
double clamped_log(double v) { return v > 0.0 ? fmax(log(v), -100.0) : -100.0; }

// log(1 + exp(v)) without overflow.
double softplus(double v) { return fmax(v, 0.0) + log1p(exp(-fabs(v))); }

}  // namespace

void mse_loss_forward(float* loss, const float* input, const float* target, const LossDesc& d) {
  flat_loss_forward(loss, d, [=](int64_t i) {
    const double diff = static_cast<double>(input[i]) - target[i];
    return diff * diff;
  });
}

void mse_loss_backward(float* dinput, const float* dloss, const float* input, const float* target, const LossDesc& d) {
  flat_loss_backward(dinput, dloss, d, [=](int64_t i) { return 2.0 * (static_cast<double>(input[i]) - target[i]); });
}

void smooth_l1_loss_forward(float* loss, const float* input, const float* target, const LossDesc& d) {
  const double beta = d.beta, scale = d.huber ? beta : 1.0;
  flat_loss_forward(loss, d, [=](int64_t i) {
    const double diff = fabs(static_cast<double>(input[i]) - target[i]);
    return scale * (diff < beta ? 0.5 * diff * diff / beta : diff - 0.5 * beta);
  });
}

void smooth_l1_loss_backward(float* dinput, const float* dloss, const float* input, const float* target,
                             const LossDesc& d) {
  const double beta = d.beta, scale = d.huber ? beta : 1.0;
  flat_loss_backward(dinput, dloss, d, [=](int64_t i) {
    const double diff = static_cast<double>(input[i]) - target[i];
    if (fabs(diff) < beta) return scale * diff / beta;
    return diff > 0.0 ? scale : (diff < 0.0 ? -scale : scale * diff);  // sign(0) = 0; NaN stays NaN
  });
}

void binary_cross_entropy_forward(float* loss, const float* input, const float* target, const float* weight,
                                  const LossDesc& d) {
  flat_loss_forward(loss, d, [=](int64_t i) {
    const double x = input[i], t = target[i];
    return -weight_at(weight, i) * (t * clamped_log(x) + (1.0 - t) * clamped_log(1.0 - x));
  });
}

void binary_cross_entropy_backward(float* dinput, float* dtarget, const float* dloss, const float* input,
                                   const float* target, const float* weight, const LossDesc& d) {
  flat_loss_backward(
      dinput, dtarget, dloss, d,
      [=](int64_t i) {
        const double x = input[i];
        return weight_at(weight, i) * (x - target[i]) / fmax(x * (1.0 - x), 1e-12);
      },
      [=](int64_t i) { return weight_at(weight, i) * (clamped_log(1.0 - input[i]) - clamped_log(input[i])); });
}

void bce_with_logits_forward(float* loss, const float* input, const float* target, const float* weight,
                             const float* pos_weight, const LossDesc& d) {
  flat_loss_forward(loss, d, [=](int64_t i) {
    const double x = input[i], t = target[i], log_weight = pos_weight ? 1.0 + (pos_weight[i] - 1.0) * t : 1.0;
    return weight_at(weight, i) * ((1.0 - t) * x + log_weight * softplus(-x));
  });
}

// d/dx = w (lw sigmoid(x) - p t) with lw = 1 + (p - 1) t; d/dt = w ((p - 1) softplus(-x) - x).
void bce_with_logits_backward(float* dinput, float* dtarget, const float* dloss, const float* input,
                              const float* target, const float* weight, const float* pos_weight, const LossDesc& d) {
  flat_loss_backward(
      dinput, dtarget, dloss, d,
      [=](int64_t i) {
        const double x = input[i], t = target[i], p = pos_weight ? pos_weight[i] : 1.0;
        const double sigmoid = 1.0 / (1.0 + exp(-x));
        return weight_at(weight, i) * ((1.0 + (p - 1.0) * t) * sigmoid - p * t);
      },
      [=](int64_t i) {
        const double x = input[i], p = pos_weight ? pos_weight[i] : 1.0;
        return weight_at(weight, i) * ((p - 1.0) * softplus(-x) - x);
      });
}

PCN_ISA_END
