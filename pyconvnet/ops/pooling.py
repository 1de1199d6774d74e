"""Pooling and resampling: max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d and
interpolate (nearest and bilinear, 4-D input).

Each takes a 4-D (N, C, H, W) input or, like torch, an unbatched 3-D (C, H, W) one (run as a
batch of one and reshaped back). Max-pool indices are int64 flat positions ``h * W + w`` within
each input plane, as torch's ``return_indices``. One difference from torch: a dilated max window
that covers no input element at all (only possible with tiny inputs) gives -inf and index -1,
where torch gives an index outside the plane.
"""

import math
import numbers

from .. import kernels
from ..autograd import Function
from ._args import int64, pair

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "interpolate"]


def _batched(array):
    """``array`` as (N, C, H, W): an unbatched (C, H, W) array becomes a batch of one."""
    return array.reshape(1, *array.shape) if array.ndim == 3 else array


def _unbatched_like(array, input_ndim):
    return array.reshape(array.shape[1:]) if input_ndim == 3 else array


def _check_ndim(input, op):
    ndim = len(input.shape)
    if ndim not in (3, 4):
        raise ValueError(f"{op}: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape {tuple(input.shape)}")


def _argmax_outputs(ctx, input, output, indices):
    """Keeps the (batched) argmax for backward; returns both outputs shaped like ``input``."""
    ctx.save_for_backward(indices)
    ctx.input_ndim, ctx.batched_shape = input.ndim, list(_batched(input).shape)
    output, indices = _unbatched_like(output, input.ndim), _unbatched_like(indices, input.ndim)
    ctx.mark_non_differentiable(indices)
    return output, indices


def _window_args(op, kernel_size, stride, padding):
    kernel = pair(kernel_size, "kernel_size", op)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    return kernel, pair(stride, "stride", op), pair(padding, "padding", op)


class MaxPool2dFunction(Function):
    @staticmethod
    def forward(ctx, input, kernel_size, stride, padding, dilation, ceil_mode):
        ctx.geometry = (kernel_size, stride, padding, dilation, ceil_mode)
        return _argmax_outputs(ctx, input, *kernels.max_pool2d_forward(_batched(input), *ctx.geometry))

    @staticmethod
    def backward(ctx, grad_output, grad_indices):
        (indices,) = ctx.saved_tensors
        grad_input = kernels.max_pool2d_backward(_batched(grad_output), indices, ctx.batched_shape, *ctx.geometry)
        return _unbatched_like(grad_input, ctx.input_ndim), None, None, None, None, None


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) pads with -inf.
    With ``return_indices`` also returns the int64 argmax Tensor (not differentiable).
    """
    op = "max_pool2d"
    _check_ndim(input, op)
    kernel, stride, padding = _window_args(op, kernel_size, stride, padding)
    dilation = pair(dilation, "dilation", op)
    output, indices = MaxPool2dFunction.apply(input, kernel, stride, padding, dilation, bool(ceil_mode))
    return (output, indices) if return_indices else output


class AvgPool2dFunction(Function):
    @staticmethod
    def forward(ctx, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        ctx.geometry = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        ctx.input_ndim, ctx.batched_shape = input.ndim, list(_batched(input).shape)
        return _unbatched_like(kernels.avg_pool2d_forward(_batched(input), *ctx.geometry), input.ndim)

    @staticmethod
    def backward(ctx, grad_output):
        grad_input = kernels.avg_pool2d_backward(_batched(grad_output), ctx.batched_shape, *ctx.geometry)
        return (_unbatched_like(grad_input, ctx.input_ndim),) + (None,) * 6


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    The divisor is the window size clipped to the padded input (``count_include_pad=True``), the
    number of input elements in the window (``False``), or ``divisor_override`` when given.
    """
    op = "avg_pool2d"
    _check_ndim(input, op)
    kernel, stride, padding = _window_args(op, kernel_size, stride, padding)
    if divisor_override is None:
        divisor = 0
    elif isinstance(divisor_override, numbers.Integral) and not isinstance(divisor_override, bool):
        divisor = int64(divisor_override, "divisor_override", "avg_pool2d")
        if divisor == 0:
            raise ValueError("avg_pool2d: divisor_override must be non-zero, got 0")
    else:
        raise TypeError(f"avg_pool2d: divisor_override must be an int or None, got {type(divisor_override).__name__}")
    return AvgPool2dFunction.apply(input, kernel, stride, padding, bool(ceil_mode), bool(count_include_pad), divisor)


def _output_size(output_size, input_shape, op):
    """(out_h, out_w) from an int, a pair, or a pair with None entries (= the input's size)."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        sizes = [input_shape[-2 + i] if v is None else v for i, v in enumerate(output_size)]
        return pair(tuple(sizes), "output_size", op)
    if output_size is None:
        raise TypeError(f"{op}: output_size must be an int or a pair of ints/None, got None")
    return pair(output_size, "output_size", op)


class AdaptiveAvgPool2dFunction(Function):
    @staticmethod
    def forward(ctx, input, output_size):
        ctx.input_ndim, ctx.batched_shape = input.ndim, list(_batched(input).shape)
        return _unbatched_like(kernels.adaptive_avg_pool2d_forward(_batched(input), output_size), input.ndim)

    @staticmethod
    def backward(ctx, grad_output):
        grad_input = kernels.adaptive_avg_pool2d_backward(_batched(grad_output), ctx.batched_shape)
        return _unbatched_like(grad_input, ctx.input_ndim), None


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size, as ``torch.nn.functional.adaptive_avg_pool2d``:
    output cell i averages input rows/columns [floor(i*in/out), ceil((i+1)*in/out))."""
    op = "adaptive_avg_pool2d"
    _check_ndim(input, op)
    return AdaptiveAvgPool2dFunction.apply(input, _output_size(output_size, input.shape, op))


class AdaptiveMaxPool2dFunction(Function):
    @staticmethod
    def forward(ctx, input, output_size):
        return _argmax_outputs(ctx, input, *kernels.adaptive_max_pool2d_forward(_batched(input), output_size))

    @staticmethod
    def backward(ctx, grad_output, grad_indices):
        (indices,) = ctx.saved_tensors
        grad_input = kernels.adaptive_max_pool2d_backward(_batched(grad_output), indices, ctx.batched_shape)
        return _unbatched_like(grad_input, ctx.input_ndim), None


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed output size, as ``torch.nn.functional.adaptive_max_pool2d``
    (windows as in ``adaptive_avg_pool2d``; optional int64 argmax indices)."""
    op = "adaptive_max_pool2d"
    _check_ndim(input, op)
    output, indices = AdaptiveMaxPool2dFunction.apply(input, _output_size(output_size, input.shape, op))
    return (output, indices) if return_indices else output


class InterpolateFunction(Function):
    @staticmethod
    def forward(ctx, input, output_size, scales, mode, align_corners):
        ctx.options, ctx.input_shape = (scales, mode, align_corners), list(input.shape)
        return kernels.interpolate_forward(input, output_size, scales, mode, align_corners)

    @staticmethod
    def backward(ctx, grad_output):
        return kernels.interpolate_backward(grad_output, ctx.input_shape, *ctx.options), None, None, None, None


def _scale_factors(scale_factor, op):
    factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor, scale_factor)
    if len(factors) != 2:
        raise ValueError(f"{op}: scale_factor must be a number or a pair for 4-D input, got {scale_factor!r}")
    for factor in factors:
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
            raise TypeError(f"{op}: scale_factor must be a number or a pair of numbers, got {scale_factor!r}")
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"{op}: scale_factor must be positive and finite, got {scale_factor!r}")
    return tuple(float(f) for f in factors)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """Resample an (N, C, H, W) input to ``size`` or by ``scale_factor``, as
    ``torch.nn.functional.interpolate`` with ``mode`` 'nearest' or 'bilinear' (``align_corners``
    for bilinear only; ``recompute_scale_factor=True`` maps pixels by the sizes instead of the
    factor). The output size from a factor is ``floor(in * factor)``. No ``antialias``."""
    op = "interpolate"
    if mode not in ("nearest", "bilinear"):
        raise NotImplementedError(f"{op}: mode {mode!r} is not supported (only 'nearest' and 'bilinear')")
    if input.ndim != 4:
        raise ValueError(f"{op}: only 4-D (N, C, H, W) input is supported, got shape {list(input.shape)}")
    if align_corners is not None and mode == "nearest":
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    if antialias:
        raise NotImplementedError(f"{op}: antialias=True is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        output_size, scales = pair(size, "size", op), (0.0, 0.0)
    else:
        scales = _scale_factors(scale_factor, op)
        output_size = tuple(int(math.floor(extent * factor)) for extent, factor in zip(input.shape[2:], scales))
        if recompute_scale_factor:
            scales = (0.0, 0.0)
    return InterpolateFunction.apply(input, output_size, scales, mode, bool(align_corners))

