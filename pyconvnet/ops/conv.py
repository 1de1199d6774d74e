"""Convolution and fully connected layers: conv2d, conv_transpose2d, linear, and zero padding (pad).

Inside a CPU ``autocast`` region (pyconvnet.amp) the three layers compute in bfloat16: their kernels
(``bf16=True``) read the input, the weight and the incoming gradient rounded to bfloat16 and sum the
products in float32 (the layers make and save no rounded arrays). Bias, outputs and
gradients stay float32 (torch rounds the bias and the output too); the bias gradient sums the rounded
incoming gradient, as torch's does."""

import math

import numpy as np

from .. import _array, amp, kernels, plans
from ..autograd import Function
from ._args import check_output_fits, int64, pair

__all__ = ["conv2d", "conv_transpose2d", "linear", "pad"]


def _record_precision(ctx, input):
    """Records on ctx whether the layer computes in bfloat16 (inside a CPU autocast region):
    ``ctx.bf16``, and ``ctx.precision``, the kernels' keyword arguments for every pass (the GPU
    kernels never get bf16)."""
    ctx.bf16 = amp.bf16_active(input)
    ctx.precision = {"bf16": True} if ctx.bf16 else {}


class Conv2dFunction(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, groups):
        _record_precision(ctx, input)
        ctx.save_for_backward(input, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        return plans.conv2d("forward", input, weight, bias, stride, padding, dilation, groups, **ctx.precision)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        geometry = ctx.geometry
        needs_input, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_input = grad_weight = grad_bias = None
        if needs_input:
            grad_input = plans.conv2d("backward_data", grad_output, weight, list(input.shape), *geometry,
                                      **ctx.precision)
        if needs_weight:
            grad_weight = plans.conv2d("backward_weight", grad_output, input, list(weight.shape), *geometry,
                                       **ctx.precision)
        if needs_bias:
            grad_bias = kernels.conv2d_backward_bias(grad_output, **ctx.precision)
        return grad_input, grad_weight, grad_bias


def _same_padding(weight_shape, stride, dilation):
    """Per-axis (before, after) zero padding that keeps the output size equal to the input's."""
    if stride != (1, 1):
        raise ValueError(f"conv2d: padding='same' is not supported for strided convolutions (stride={stride})")
    totals = [dilation[i] * (weight_shape[2 + i] - 1) for i in range(2)]
    return [(total // 2, total - total // 2) for total in totals]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution over an (N, C, H, W) input, as ``torch.nn.functional.conv2d``.

    ``padding`` is an int, a pair, ``'valid'`` (none) or ``'same'`` (output size = input size,
    stride 1 only; an odd total padding puts the extra row/column at the bottom/right, as PyTorch).
    """
    input, stride, padding, dilation, groups = conv2d_arguments(input, weight, stride, padding, dilation, groups)
    return Conv2dFunction.apply(input, weight, bias, stride, padding, dilation, groups)


def conv2d_arguments(input, weight, stride, padding, dilation, groups, op="conv2d"):
    """conv2d's (input, stride, padding, dilation, groups) as its Function takes them: pairs of
    ints, and for ``padding='same'`` with an odd total, the input padded by the extra row/column."""
    stride = pair(stride, "stride", op)
    dilation = pair(dilation, "dilation", op)
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"{op}: groups must be an int, got {type(groups).__name__}")
    groups = int64(groups, "groups", op)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            (top, bottom), (left, right) = _same_padding(tuple(weight.shape), stride, dilation)
            if (top, left) != (bottom, right):
                input = pad(input, (0, right - left, 0, bottom - top))  # the extra row/column only
            padding = (top, left)
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    else:
        padding = pair(padding, "padding", op)
    return input, stride, padding, dilation, groups


class ConvTranspose2dFunction(Function):
    """The transpose of conv2d on the same kernels: with torch's (in, out / groups, kH, kW) weight
    read as a conv2d weight from the output's channels to the input's, the forward is conv2d's
    backward-data, the input gradient conv2d's forward, and the weight gradient conv2d's weight
    gradient with input and output exchanged."""

    @staticmethod
    def forward(ctx, input, weight, bias, output_shape, stride, padding, dilation, groups):
        _record_precision(ctx, input)
        ctx.save_for_backward(input, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        output = plans.conv2d("backward_data", input, weight, list(output_shape), *ctx.geometry, **ctx.precision)
        if bias is not None:
            output += bias.reshape(1, -1, 1, 1)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        needs_input, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_input = grad_weight = grad_bias = None
        if needs_input:
            grad_input = plans.conv2d("forward", grad_output, weight, None, *ctx.geometry, **ctx.precision)
        if needs_weight:
            grad_weight = plans.conv2d("backward_weight", input, grad_output, list(weight.shape), *ctx.geometry,
                                       **ctx.precision)
        if needs_bias:
            grad_bias = kernels.conv2d_backward_bias(grad_output, **ctx.precision)
        return grad_input, grad_weight, grad_bias, None, None, None, None, None


def conv_transpose_output_size(input_size, kernel, stride, padding, output_padding, dilation):
    """torch's ConvTranspose2d output extent along one axis."""
    return (input_size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution ("deconvolution") of an (N, C_in, H, W) or unbatched (C_in, H, W)
    input, as ``torch.nn.functional.conv_transpose2d``: ``weight`` is (C_in, C_out / groups, kH, kW);
    the output is ``(H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1`` high
    (likewise wide)."""
    op = "conv_transpose2d"
    if input.ndim == 3:
        return conv_transpose2d(input.unsqueeze(0), weight, bias, stride, padding, output_padding, groups,
                                dilation).squeeze(0)
    stride, padding = pair(stride, "stride", op), pair(padding, "padding", op)
    output_padding, dilation = pair(output_padding, "output_padding", op), pair(dilation, "dilation", op)
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"{op}: groups must be an int, got {type(groups).__name__}")
    groups = int64(groups, "groups", op)
    if input.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C_in, H, W) and a 4-D weight (C_in, C_out / groups, kH, kW), "
                         f"got input {list(input.shape)} and weight {list(weight.shape)}")
    if weight.shape[0] != input.shape[1]:
        raise ValueError(f"{op}: weight of shape {list(weight.shape)} expects {weight.shape[0]} input channels, "
                         f"got input of shape {list(input.shape)}")
    if groups <= 0 or weight.shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must be positive and divide the {weight.shape[0]} input channels")
    for axis in range(2):
        if not 0 <= output_padding[axis] < max(stride[axis], dilation[axis]):
            raise ValueError(f"{op}: output_padding {output_padding} must be non-negative and smaller than either "
                             f"stride {stride} or dilation {dilation}")
    out_channels = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(f"{op}: bias must have shape ({out_channels},), got {tuple(bias.shape)}")
    extents = [conv_transpose_output_size(input.shape[2 + a], weight.shape[2 + a], stride[a], padding[a],
                                          output_padding[a], dilation[a]) for a in range(2)]
    if min(extents) <= 0:
        raise ValueError(f"{op}: output size {extents} is too small for input {list(input.shape)} with weight "
                         f"{list(weight.shape)}, stride {stride}, padding {padding} and dilation {dilation}")
    output_shape = (input.shape[0], out_channels, *extents)
    check_output_fits(output_shape, np.float32, op)
    return ConvTranspose2dFunction.apply(input, weight, bias, output_shape, stride, padding, dilation, groups)


class LinearFunction(Function):
    @staticmethod
    def forward(ctx, input, weight, bias):
        _record_precision(ctx, input)
        rows = input.reshape(math.prod(input.shape[:-1]), input.shape[-1])  # -1 is ambiguous for 0 features
        ctx.save_for_backward(rows, weight)
        ctx.input_shape = input.shape
        if bias is None:
            out = plans.sgemm(rows, weight, trans_b=True, **ctx.precision)
        else:
            out = _array.empty((rows.shape[0], weight.shape[0]), np.float32, rows)
            out[...] = bias
            plans.sgemm(rows, weight, trans_b=True, beta=1.0, out=out, **ctx.precision)
        return out.reshape(*input.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_output):
        rows, weight = ctx.saved_tensors
        grad_rows = _array.ascontiguous(grad_output, np.float32).reshape(rows.shape[0], weight.shape[0])
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = plans.sgemm(grad_rows, weight, **ctx.precision).reshape(ctx.input_shape)
        if ctx.needs_input_grad[1]:
            grad_weight = plans.sgemm(grad_rows, rows, trans_a=True, **ctx.precision)
        if ctx.needs_input_grad[2]:
            rounded = amp.round_bf16(grad_rows) if ctx.bf16 else grad_rows  # as the products read it
            grad_bias = rounded.sum(axis=0, dtype=np.float64).astype(np.float32)
        return grad_input, grad_weight, grad_bias


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` over the last dimension, as ``torch.nn.functional.linear``.

    Runs on the library's packed SGEMM (``pyconvnet.backend.sgemm``); in bfloat16 inside a CPU
    ``autocast`` region.
    """
    check_linear_arguments(tuple(input.shape), weight, bias)
    return LinearFunction.apply(input, weight, bias)


def check_linear_arguments(input_shape, weight, bias, op="linear"):
    """ValueError unless ``weight`` is 2-D, matches the input's last dimension and ``bias`` its rows."""
    if weight.ndim != 2:
        raise ValueError(f"{op}: weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if len(input_shape) < 1 or input_shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{op}: input shape {input_shape} does not match weight shape {tuple(weight.shape)} "
            f"(the last dimension of input must be in_features={weight.shape[1]})"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")


class ConstantPadFunction(Function):
    @staticmethod
    def forward(ctx, input, widths, value):
        ctx.region = tuple(slice(before, before + size) for (before, _), size in zip(widths, input.shape))
        shape = tuple(size + before + after for size, (before, after) in zip(input.shape, widths))
        # A fill and one strided copy: about 5x faster than np.pad, whose generic path costs more
        # than the copy on a batch of small images (LeNet-5's 28x28 -> 32x32).
        if value == 0.0 and not np.signbit(value):
            output = _array.zeros(shape, input.dtype, input)
        else:
            output = _array.full(shape, value, input.dtype, input)
        output[ctx.region] = input
        return output

    @staticmethod
    def backward(ctx, grad_output):
        return _array.ascontiguous(grad_output[ctx.region]), None, None


def pad(input, pad, mode="constant", value=0.0):
    """Constant padding, as ``torch.nn.functional.pad``: ``pad`` lists (before, after) amounts
    starting from the last dimension, e.g. ``(left, right, top, bottom)``. Only non-negative
    amounts and ``mode='constant'`` are supported."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: pad must hold (before, after) pairs for at most {input.ndim} dimensions, got {pad!r}")
    if any(int(p) != p or p < 0 for p in pad):
        raise ValueError(f"pad: amounts must be non-negative ints, got {pad!r}")
    amounts = [int64(p, "pad", "pad") for p in pad]
    widths = [(0, 0)] * input.ndim
    for i in range(len(amounts) // 2):
        widths[input.ndim - 1 - i] = (amounts[2 * i], amounts[2 * i + 1])
    check_output_fits([size + before + after for size, (before, after) in zip(input.shape, widths)], input.dtype, "pad")
    return ConstantPadFunction.apply(input, tuple(widths), float(value))
