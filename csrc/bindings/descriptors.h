// The descriptor builders of the CPU bindings (bindings/*.cpp) and the GPU bindings
// (cuda/bindings/*.cpp): each fills one family's descriptor from argument shapes and scalars and
// validate()s it, so both modules check arguments in one place with the same messages. Plain C++
// without pybind11 (compiled into _C and _C_cuda): failures throw std::invalid_argument (pcn::fail),
// which both modules raise as ValueError. What depends on the array type (dtype checks, which are
// TypeErrors, and checks of an array against a shape) stays in each binding.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/eltwise.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/optim.h"
#include "kernels/pool.h"

namespace pcn {

// ---- conv2d: (N, C, H, W) input, (out_channels, in_channels / groups, kH, kW) weight ----------------

Conv2dDesc conv_desc(const std::vector<int64_t>& x_shape, const std::vector<int64_t>& w_shape,
                     std::array<int64_t, 2> stride, std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation,
                     int64_t groups);

// ---- pooling and resampling: (N, C, H, W) inputs -------------------------------------------------

// The input_shape argument of a backward pass: 4 entries with a representable element count.
std::vector<int64_t> pool_input_shape_arg(const std::vector<int64_t>& shape, const char* op);

Pool2dDesc pool_desc(const char* op, const std::vector<int64_t>& input_shape, std::array<int64_t, 2> kernel,
                     std::array<int64_t, 2> stride, std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation,
                     bool ceil_mode);
AdaptivePool2dDesc adaptive_desc(const char* op, const std::vector<int64_t>& input_shape,
                                 std::array<int64_t, 2> output_size);
// scales: torch's per-axis scale_factor, or <= 0 where none was given (then in / out is used).
ResampleDesc resample_desc(const char* op, const std::vector<int64_t>& input_shape, std::array<int64_t, 2> output_size,
                           std::array<double, 2> scales, bool align_corners);
// interpolate's mode: true for "bilinear", false for "nearest", anything else fails.
bool resample_bilinear(const std::string& mode);

template <class Desc>
std::vector<int64_t> pool_output_shape(const Desc& d) {
  return {d.batch, d.channels, d.out_h, d.out_w};
}

template <class Desc>
std::vector<int64_t> pool_input_shape(const Desc& d) {
  return {d.batch, d.channels, d.in_h, d.in_w};
}

// ---- normalisation: (N, C, *) inputs ---------------------------------------------------------------

BatchNormDesc bn_desc(const std::vector<int64_t>& shape, double eps, double momentum, bool training);
LrnDesc lrn_desc(const std::vector<int64_t>& shape, int64_t size, double alpha, double beta, double k);

// Group norm of an (N, C, *) input, or layer norm over its last `normalized_ndim` dims (one group,
// the trailing dims as channels); param_shape is what weight and bias must look like.
struct GroupNormTask {
  GroupNormDesc d;
  std::vector<int64_t> param_shape;
  std::string op;
};

// op: "group_norm" or "layer_norm" followed by `suffix`.
GroupNormTask group_norm_task(const std::vector<int64_t>& shape, bool layer, int64_t groups_or_ndim, double eps,
                              const char* suffix);

// ---- element-wise, reductions, concat / split ----------------------------------------------------

// add / mul / add_relu: input and other must have the same shape.
EltwiseDesc binary_desc(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const char* op);
// sum / norm over `count` elements (p: norm's order).
EltwiseDesc reduction_desc(int64_t count, double p);

// A concat or split along `dim` (normalised): extents are each part's size along it.
struct ConcatLayout {
  ConcatDesc d;
  int64_t dim = 0;
  std::vector<int64_t> extents;
};

// cat of arrays of these shapes (at least one).
ConcatLayout concat_layout(const std::vector<std::vector<int64_t>>& shapes, int64_t dim);
// split of an array of `shape` into parts of `extents` along dim.
ConcatLayout split_layout(const std::vector<int64_t>& shape, std::vector<int64_t> extents, int64_t dim);
// `shape` with its `dim` entry replaced by `extent` (a part's or the result's shape).
std::vector<int64_t> with_extent(std::vector<int64_t> shape, int64_t dim, int64_t extent);
// subsample_pad_channels of an (N, C, H, W) input, and the shape of its output.
ChannelPadDesc channel_pad_desc(const std::vector<int64_t>& input_shape, int64_t stride, int64_t before,
                                int64_t after);
std::vector<int64_t> channel_pad_output_shape(const ChannelPadDesc& d);

// ---- optimisers: `count` parameter elements ------------------------------------------------------

SgdDesc sgd_desc(int64_t count, double lr, double momentum, double dampening, double weight_decay, bool nesterov,
                 bool maximize, bool first_step);
AdamDesc adam_desc(int64_t count, int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                   bool amsgrad, bool maximize, bool decoupled_weight_decay);
RmspropDesc rmsprop_desc(int64_t count, double lr, double alpha, double eps, double weight_decay, double momentum,
                         bool centered, bool maximize);
AdagradDesc adagrad_desc(int64_t count, int64_t step, double lr, double lr_decay, double eps, double weight_decay,
                         bool maximize);
AdadeltaDesc adadelta_desc(int64_t count, double lr, double rho, double eps, double weight_decay, bool maximize);
// Whether an update uses an optional state buffer: `needed`; it fails, naming `condition`, when
// the buffer is needed but was not given.
bool state_needed(bool given, bool needed, const char* op, const char* name, const char* condition);

// ---- activations and dropout ---------------------------------------------------------------------

ActivationDesc activation_desc(const std::vector<int64_t>& shape, double negative_slope);
// dropout's mask_ndim for an input of `shape`: negative means all dims; more than it has fails.
int64_t dropout_mask_ndim(const std::vector<int64_t>& shape, int64_t mask_ndim);
// dropout backward: the mask's shape must be the leading dims of grad_output's.
void expect_dropout_mask(const std::vector<int64_t>& mask_shape, const std::vector<int64_t>& grad_shape);
// The mask covers the leading mask_ndim dims of the input; each entry scales the block of trailing dims.
DropoutDesc dropout_desc(const std::vector<int64_t>& shape, int64_t mask_ndim, double p, uint64_t seed);

// ---- softmax and losses --------------------------------------------------------------------------

SoftmaxDesc softmax_desc(const std::vector<int64_t>& shape, int64_t dim, const char* op);
// cross_entropy / nll_loss: input (N, C, d1, ...) and target (N, d1, ...). The target's values and
// the class weights are the binding's to check.
LossDesc class_loss_desc(const std::vector<int64_t>& input_shape, const std::vector<int64_t>& target_shape,
                         int64_t ignore_index, int reduction, float label_smoothing, const char* op);
// The element-wise losses over `count` elements (input and target of one shape).
LossDesc flat_loss_desc(int64_t count, int reduction, float beta, bool huber, const char* op);
// binary_cross_entropy[_with_logits] followed by `suffix`.
std::string binary_loss_op(bool logits, const char* suffix);
// pos_weight is for the logits form only.
void expect_pos_weight_allowed(bool logits, bool has_pos_weight, const std::string& op);
// The loss's shape: per_element for reduction none, else 0-d.
std::vector<int64_t> loss_shape(const LossDesc& d, const std::vector<int64_t>& per_element);

}  // namespace pcn
