// The descriptor builders shared by the CPU and GPU bindings; see descriptors.h.
#include "bindings/descriptors.h"

#include "core/checks.h"

namespace pcn {
namespace {

// A descriptor with its op and input extents from an (N, C, H, W) shape.
template <class Desc>
Desc desc_for_input(const char* op, const std::vector<int64_t>& input_shape) {
  Desc d;
  d.op = op;
  d.batch = input_shape[0];
  d.channels = input_shape[1];
  d.in_h = input_shape[2];
  d.in_w = input_shape[3];
  return d;
}

// (batch, channels, spatial) of an (N, C, *) shape with at least `min_ndim` dimensions.
std::array<int64_t, 3> ncs_shape(const std::vector<int64_t>& shape, int min_ndim, const char* op, const char* name) {
  if (static_cast<int64_t>(shape.size()) < min_ndim)
    fail(std::string(op) + ": " + name + " must have at least " + std::to_string(min_ndim) +
         " dimensions (N, C, ...), got shape " + shape_str(shape));
  int64_t spatial = 1;
  for (size_t i = 2; i < shape.size(); ++i) spatial = checked_mul(spatial, shape[i], op);
  return {shape[0], shape[1], spatial};
}

// Normalises `dim` for `ndim` dimensions (negative counts from the end).
int64_t concat_dim(int64_t dim, int64_t ndim, const char* op) {
  if (dim < -ndim || dim >= ndim)
    fail(std::string(op) + ": dim " + std::to_string(dim) + " is out of range for " + std::to_string(ndim) +
         "-D tensors");
  return dim < 0 ? dim + ndim : dim;
}

// outer = prod(shape[:dim]), inner = prod(shape[dim+1:]); validate() sums the extents into total.
ConcatLayout layout_along(const std::vector<int64_t>& shape, int64_t dim, std::vector<int64_t> extents) {
  ConcatLayout layout;
  layout.dim = dim;
  layout.extents = std::move(extents);
  ConcatDesc& d = layout.d;
  d.outer = d.inner = 1;
  for (int64_t i = 0; i < dim; ++i) d.outer = checked_mul(d.outer, shape[i], "cat");
  for (size_t i = dim + 1; i < shape.size(); ++i) d.inner = checked_mul(d.inner, shape[i], "cat");
  d.inputs = static_cast<int64_t>(layout.extents.size());
  validate(d, layout.extents.data());
  return layout;
}

}  // namespace

std::vector<int64_t> pool_input_shape_arg(const std::vector<int64_t>& shape, const char* op) {
  if (shape.size() != 4) fail(std::string(op) + " backward: input_shape must have 4 entries, got " + shape_str(shape));
  checked_numel(shape, op);
  return shape;
}

Conv2dDesc conv_desc(const std::vector<int64_t>& x_shape, const std::vector<int64_t>& w_shape,
                     std::array<int64_t, 2> stride, std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation,
                     int64_t groups) {
  Conv2dDesc d;
  d.batch = x_shape[0];
  d.in_channels = x_shape[1];
  d.in_h = x_shape[2];
  d.in_w = x_shape[3];
  d.out_channels = w_shape[0];
  d.kernel_h = w_shape[2];
  d.kernel_w = w_shape[3];
  d.stride_h = stride[0];
  d.stride_w = stride[1];
  d.pad_h = padding[0];
  d.pad_w = padding[1];
  d.dilation_h = dilation[0];
  d.dilation_w = dilation[1];
  d.groups = groups;
  if (groups > 0 && checked_mul(w_shape[1], groups, "conv2d: weight") != d.in_channels)
    fail("conv2d: weight of shape " + shape_str(w_shape) + " with groups=" + std::to_string(groups) + " expects " +
         std::to_string(w_shape[1] * groups) + " input channels, got input of shape " + shape_str(x_shape));
  validate(d);
  return d;
}

Pool2dDesc pool_desc(const char* op, const std::vector<int64_t>& input_shape, std::array<int64_t, 2> kernel,
                     std::array<int64_t, 2> stride, std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation,
                     bool ceil_mode) {
  Pool2dDesc d = desc_for_input<Pool2dDesc>(op, input_shape);
  d.kernel_h = kernel[0];
  d.kernel_w = kernel[1];
  d.stride_h = stride[0];
  d.stride_w = stride[1];
  d.pad_h = padding[0];
  d.pad_w = padding[1];
  d.dilation_h = dilation[0];
  d.dilation_w = dilation[1];
  d.ceil_mode = ceil_mode;
  validate(d);
  return d;
}

AdaptivePool2dDesc adaptive_desc(const char* op, const std::vector<int64_t>& input_shape,
                                 std::array<int64_t, 2> output_size) {
  AdaptivePool2dDesc d = desc_for_input<AdaptivePool2dDesc>(op, input_shape);
  d.out_h = output_size[0];
  d.out_w = output_size[1];
  validate(d);
  return d;
}

ResampleDesc resample_desc(const char* op, const std::vector<int64_t>& input_shape, std::array<int64_t, 2> output_size,
                           std::array<double, 2> scales, bool align_corners) {
  ResampleDesc d = desc_for_input<ResampleDesc>(op, input_shape);
  d.out_h = output_size[0];
  d.out_w = output_size[1];
  d.align_corners = align_corners;
  const auto scale = [align_corners](int64_t in, int64_t out, double factor) {
    if (align_corners) return out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f;
    return factor > 0.0 ? static_cast<float>(1.0 / factor) : static_cast<float>(in) / static_cast<float>(out);
  };
  if (d.out_h > 0 && d.out_w > 0) {
    d.scale_h = scale(d.in_h, d.out_h, scales[0]);
    d.scale_w = scale(d.in_w, d.out_w, scales[1]);
  }
  validate(d);
  return d;
}

bool resample_bilinear(const std::string& mode) {
  if (mode != "nearest" && mode != "bilinear")
    fail("interpolate: mode must be 'nearest' or 'bilinear', got '" + mode + "'");
  return mode == "bilinear";
}

BatchNormDesc bn_desc(const std::vector<int64_t>& shape, double eps, double momentum, bool training) {
  const auto [batch, channels, spatial] = ncs_shape(shape, 2, "batch_norm", "input");
  BatchNormDesc d;
  d.batch = batch;
  d.channels = channels;
  d.spatial = spatial;
  d.eps = static_cast<float>(eps);
  d.momentum = static_cast<float>(momentum);
  d.training = training;
  validate(d);
  return d;
}

LrnDesc lrn_desc(const std::vector<int64_t>& shape, int64_t size, double alpha, double beta, double k) {
  const auto [batch, channels, spatial] = ncs_shape(shape, 3, "local_response_norm", "input");
  LrnDesc d;
  d.batch = batch;
  d.channels = channels;
  d.spatial = spatial;
  d.size = size;
  d.alpha = static_cast<float>(alpha);
  d.beta = static_cast<float>(beta);
  d.k = static_cast<float>(k);
  validate(d);
  return d;
}

GroupNormTask group_norm_task(const std::vector<int64_t>& shape, bool layer, int64_t groups_or_ndim, double eps,
                              const char* suffix) {
  GroupNormTask task;
  task.op = std::string(layer ? "layer_norm" : "group_norm") + suffix;
  GroupNormDesc& d = task.d;
  d.eps = static_cast<float>(eps);
  if (layer) {
    const int64_t ndim = groups_or_ndim;
    if (ndim < 1 || ndim > static_cast<int64_t>(shape.size()))
      fail(task.op + ": normalized_shape has " + std::to_string(ndim) + " dims, more than the input of shape " +
           shape_str(shape) + " (or none)");
    task.param_shape.assign(shape.end() - ndim, shape.end());
    d.batch = checked_numel(std::vector<int64_t>(shape.begin(), shape.end() - ndim), task.op.c_str());
    d.channels = checked_numel(task.param_shape, task.op.c_str());
  } else {
    const auto [batch, channels, spatial] = ncs_shape(shape, 2, task.op.c_str(), "input");
    d.batch = batch;
    d.channels = channels;
    d.spatial = spatial;
    d.groups = groups_or_ndim;
    task.param_shape = {channels};
  }
  validate(d, task.op.c_str());
  return task;
}

EltwiseDesc binary_desc(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const char* op) {
  if (a != b)
    fail(std::string(op) + ": input and other must have the same shape, got " + shape_str(a) + " and " + shape_str(b));
  return reduction_desc(checked_numel(a, op), 2.0);
}

EltwiseDesc reduction_desc(int64_t count, double p) {
  EltwiseDesc d;
  d.count = count;
  d.p = p;
  validate(d);
  return d;
}

ConcatLayout concat_layout(const std::vector<std::vector<int64_t>>& shapes, int64_t dim) {
  if (shapes.empty()) fail("cat: expected a non-empty list of tensors");
  const std::vector<int64_t>& first = shapes[0];
  if (first.empty()) fail("cat: zero-dimensional tensors cannot be concatenated");
  dim = concat_dim(dim, static_cast<int64_t>(first.size()), "cat");
  std::vector<int64_t> extents(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    const std::vector<int64_t>& shape = shapes[i];
    bool match = shape.size() == first.size();
    for (size_t k = 0; match && k < shape.size(); ++k) match = static_cast<int64_t>(k) == dim || shape[k] == first[k];
    if (!match)
      fail("cat: sizes of tensors must match except in dimension " + std::to_string(dim) + ": tensors[0] has shape " +
           shape_str(first) + " but tensors[" + std::to_string(i) + "] has shape " + shape_str(shape));
    extents[i] = shape[dim];
  }
  return layout_along(first, dim, std::move(extents));
}

ConcatLayout split_layout(const std::vector<int64_t>& shape, std::vector<int64_t> extents, int64_t dim) {
  if (shape.empty()) fail("split: input must have at least one dimension");
  dim = concat_dim(dim, static_cast<int64_t>(shape.size()), "split");
  if (extents.empty()) fail("split: sizes must not be empty");
  ConcatLayout layout = layout_along(shape, dim, std::move(extents));
  if (layout.d.total != shape[dim])
    fail("split: sizes " + shape_str(layout.extents) + " must add up to dimension " + std::to_string(dim) +
         " of input shape " + shape_str(shape));
  return layout;
}

ChannelPadDesc channel_pad_desc(const std::vector<int64_t>& input_shape, int64_t stride, int64_t before,
                                int64_t after) {
  if (input_shape.size() != 4)
    fail("subsample_pad_channels: expected a 4-D (N, C, H, W) input, got shape " + shape_str(input_shape));
  ChannelPadDesc d;
  d.batch = input_shape[0], d.channels = input_shape[1], d.in_h = input_shape[2], d.in_w = input_shape[3];
  d.stride = stride, d.before = before, d.after = after;
  validate(d);
  return d;
}

std::vector<int64_t> channel_pad_output_shape(const ChannelPadDesc& d) {
  return {d.batch, d.before + d.channels + d.after, d.out_h, d.out_w};
}

std::vector<int64_t> with_extent(std::vector<int64_t> shape, int64_t dim, int64_t extent) {
  shape[dim] = extent;
  return shape;
}

SgdDesc sgd_desc(int64_t count, double lr, double momentum, double dampening, double weight_decay, bool nesterov,
                 bool maximize, bool first_step) {
  SgdDesc d;
  d.count = count;
  d.lr = lr;
  d.momentum = momentum;
  d.dampening = dampening;
  d.weight_decay = weight_decay;
  d.nesterov = nesterov;
  d.maximize = maximize;
  d.first_step = first_step;
  validate(d);
  return d;
}

AdamDesc adam_desc(int64_t count, int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                   bool amsgrad, bool maximize, bool decoupled_weight_decay) {
  AdamDesc d;
  d.count = count;
  d.lr = lr;
  d.beta1 = beta1;
  d.beta2 = beta2;
  d.eps = eps;
  d.weight_decay = weight_decay;
  d.step = step;
  d.amsgrad = amsgrad;
  d.maximize = maximize;
  d.decoupled_weight_decay = decoupled_weight_decay;
  validate(d);
  return d;
}

RmspropDesc rmsprop_desc(int64_t count, double lr, double alpha, double eps, double weight_decay, double momentum,
                         bool centered, bool maximize) {
  RmspropDesc d;
  d.count = count;
  d.lr = lr;
  d.alpha = alpha;
  d.eps = eps;
  d.weight_decay = weight_decay;
  d.momentum = momentum;
  d.centered = centered;
  d.maximize = maximize;
  validate(d);
  return d;
}

AdagradDesc adagrad_desc(int64_t count, int64_t step, double lr, double lr_decay, double eps, double weight_decay,
                         bool maximize) {
  AdagradDesc d;
  d.count = count;
  d.lr = lr;
  d.lr_decay = lr_decay;
  d.eps = eps;
  d.weight_decay = weight_decay;
  d.step = step;
  d.maximize = maximize;
  validate(d);
  return d;
}

AdadeltaDesc adadelta_desc(int64_t count, double lr, double rho, double eps, double weight_decay, bool maximize) {
  AdadeltaDesc d;
  d.count = count;
  d.lr = lr;
  d.rho = rho;
  d.eps = eps;
  d.weight_decay = weight_decay;
  d.maximize = maximize;
  validate(d);
  return d;
}

bool state_needed(bool given, bool needed, const char* op, const char* name, const char* condition) {
  if (needed && !given) fail(std::string(op) + ": " + name + " is required when " + condition);
  return needed;
}

ActivationDesc activation_desc(const std::vector<int64_t>& shape, double negative_slope) {
  ActivationDesc d;
  d.count = checked_numel(shape, "activation: input");
  d.negative_slope = static_cast<float>(negative_slope);
  validate(d);
  return d;
}

int64_t dropout_mask_ndim(const std::vector<int64_t>& shape, int64_t mask_ndim) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  if (mask_ndim < 0) return ndim;
  if (mask_ndim > ndim)
    fail("dropout: mask_ndim " + std::to_string(mask_ndim) + " exceeds the dims of input of shape " + shape_str(shape));
  return mask_ndim;
}

void expect_dropout_mask(const std::vector<int64_t>& mask_shape, const std::vector<int64_t>& grad_shape) {
  if (mask_shape.size() > grad_shape.size() ||
      mask_shape != std::vector<int64_t>(grad_shape.begin(), grad_shape.begin() + mask_shape.size()))
    fail("dropout backward: mask shape " + shape_str(mask_shape) + " does not match grad_output shape " +
         shape_str(grad_shape));
}

DropoutDesc dropout_desc(const std::vector<int64_t>& shape, int64_t mask_ndim, double p, uint64_t seed) {
  DropoutDesc d;
  d.count = checked_numel(std::vector<int64_t>(shape.begin(), shape.begin() + mask_ndim), "dropout: mask");
  d.plane = checked_numel(std::vector<int64_t>(shape.begin() + mask_ndim, shape.end()), "dropout: input");
  d.p = static_cast<float>(p);
  d.seed = seed;
  if (!(p >= 0.0 && p <= 1.0)) d.p = -1.0f;  // let validate() report it, whatever float rounding does
  validate(d);
  return d;
}

SoftmaxDesc softmax_desc(const std::vector<int64_t>& shape, int64_t dim, const char* op) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  if (ndim == 0 ? (dim != 0 && dim != -1) : (dim < -ndim || dim >= ndim))
    fail(std::string(op) + ": dim " + std::to_string(dim) + " is out of range for input of shape " + shape_str(shape));
  if (dim < 0) dim += ndim;
  SoftmaxDesc d;
  d.outer = 1;
  d.classes = ndim == 0 ? 1 : shape[dim];
  d.inner = 1;
  for (int64_t i = 0; i < dim; ++i) d.outer *= shape[i];
  for (int64_t i = dim + 1; i < ndim; ++i) d.inner *= shape[i];
  validate(d);
  return d;
}

LossDesc class_loss_desc(const std::vector<int64_t>& input_shape, const std::vector<int64_t>& target_shape,
                         int64_t ignore_index, int reduction, float label_smoothing, const char* op) {
  if (input_shape.size() < 2)
    fail(std::string(op) + ": input must be (N, C) or (N, C, d1, ...), got shape " + shape_str(input_shape));
  std::vector<int64_t> expected = input_shape;
  expected.erase(expected.begin() + 1);
  if (target_shape != expected)
    fail(std::string(op) + ": target must have shape " + shape_str(expected) + " for input of shape " +
         shape_str(input_shape) + ", got " + shape_str(target_shape));
  LossDesc d;
  d.batch = input_shape[0];
  d.classes = input_shape[1];
  d.inner = 1;
  for (size_t i = 2; i < input_shape.size(); ++i) d.inner = checked_mul(d.inner, input_shape[i], op);
  d.ignore_index = ignore_index;
  d.reduction = reduction;
  d.label_smoothing = label_smoothing;
  validate(d, op);
  return d;
}

LossDesc flat_loss_desc(int64_t count, int reduction, float beta, bool huber, const char* op) {
  LossDesc d;
  d.batch = count;
  d.classes = d.inner = 1;
  d.reduction = reduction;
  d.beta = beta;
  d.huber = huber;
  validate(d, op);
  return d;
}

std::string binary_loss_op(bool logits, const char* suffix) {
  return std::string(logits ? "binary_cross_entropy_with_logits" : "binary_cross_entropy") + suffix;
}

void expect_pos_weight_allowed(bool logits, bool has_pos_weight, const std::string& op) {
  if (!logits && has_pos_weight) fail(op + ": pos_weight needs logits");
}

std::vector<int64_t> loss_shape(const LossDesc& d, const std::vector<int64_t>& per_element) {
  return d.reduction == kReductionNone ? per_element : std::vector<int64_t>{};
}

}  // namespace pcn
