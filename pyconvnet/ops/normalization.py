"""Normalisation layers' functional forms: batch_norm (and batch_norm_relu, it and a ReLU fused),
layer_norm, group_norm and local_response_norm."""

import math
import numbers

import numpy as np

from .. import _C
from ..autograd import Function
from ._args import int64

__all__ = ["batch_norm", "batch_norm_relu", "layer_norm", "group_norm", "local_response_norm"]


def _array_or_none(value):
    """The numpy array behind a Tensor (shared, so in-place updates reach it), an array, or None."""
    if value is None or isinstance(value, np.ndarray):
        return value
    return value.detach().numpy()


class BatchNormFunction(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, training, momentum, eps, relu):
        if training:
            output, mean, invstd = _C.batch_norm_forward_train(input, running_mean, running_var, weight, bias, momentum,
                                                               eps, relu=relu)
        else:
            output = _C.batch_norm_forward_eval(input, running_mean, running_var, weight, bias, eps, relu=relu)
            # Snapshot the statistics used, so a later update of the buffers cannot change the gradient.
            mean = np.array(running_mean, dtype=np.float32)
            invstd = (1.0 / np.sqrt(running_var.astype(np.float64) + eps)).astype(np.float32)
        # A fused relu's gradient reads the output (as relu's own backward does).
        ctx.save_for_backward(input, weight, mean, invstd, output if relu else None)
        ctx.training = training
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, mean, invstd, relu_output = ctx.saved_tensors
        needs = ctx.needs_input_grad
        mask = (needs[0], needs[1] and weight is not None, needs[2])
        grad_input, grad_weight, grad_bias = _C.batch_norm_backward(grad_output, input, mean, invstd, weight, ctx.training,
                                                                    mask, relu_output)
        return grad_input, grad_weight, grad_bias, None, None, None, None, None, None


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu):
    if training and input.ndim >= 2:
        values_per_channel = math.prod(input.shape) // max(input.shape[1], 1)
        if values_per_channel == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(input.shape)}")
    if momentum is None or not isinstance(momentum, numbers.Real):
        raise TypeError(f"batch_norm: momentum must be a float, got {type(momentum).__name__}")
    return BatchNormFunction.apply(
        input, weight, bias, _array_or_none(running_mean), _array_or_none(running_var), bool(training), float(momentum),
        float(eps), relu
    )


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-05):
    """Batch normalisation over an (N, C, *) input, as ``torch.nn.functional.batch_norm``.

    ``training=True`` normalises with the batch statistics (biased variance) and, when the
    running statistics are given, updates them in place with
    ``running = (1 - momentum) * running + momentum * batch_stat`` (unbiased variance for
    ``running_var``). ``training=False`` normalises with ``running_mean``/``running_var``.
    ``weight``/``bias`` may be None (no affine transform).
    """
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu=False)


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-05):
    """``relu(batch_norm(...))`` with ``batch_norm``'s arguments, as one kernel each way: the
    ReLU is applied as the normalised values are written, and its gradient as batch norm's
    backward reads them, which saves a pass over the activation in both directions (a pyconvnet
    extension, like ``add_relu``; the results equal the two ops'). The models' batch norm + ReLU
    pairs run through it (``nn.BatchNorm2d.forward_relu``)."""
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu=True)


class GroupNormFunction(Function):
    """group_norm (``layer`` false; ``size`` is num_groups) or layer_norm (``size`` is the number
    of normalised trailing dims): one kernel each way, the statistics saved for backward."""

    @staticmethod
    def forward(ctx, input, weight, bias, layer, size, eps):
        forward = _C.layer_norm_forward if layer else _C.group_norm_forward
        output, mean, rstd = forward(input, size, weight, bias, eps)
        ctx.save_for_backward(input, weight, mean, rstd)
        ctx.layer, ctx.size = layer, size
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, mean, rstd = ctx.saved_tensors
        needs = ctx.needs_input_grad
        mask = (needs[0], needs[1] and weight is not None, needs[2])
        backward = _C.layer_norm_backward if ctx.layer else _C.group_norm_backward
        grad_input, grad_weight, grad_bias = backward(grad_output, input, mean, rstd, weight, ctx.size, mask)
        return grad_input, grad_weight, grad_bias, None, None, None


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05):
    """Normalise over the last ``len(normalized_shape)`` dims (mean and biased variance of each
    row), then scale by ``weight`` and shift by ``bias`` (both ``normalized_shape``-shaped, or
    None), as ``torch.nn.functional.layer_norm``."""
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    trailing = tuple(input.shape[input.ndim - len(shape):]) if len(shape) <= input.ndim else None
    if not shape or trailing != shape:
        raise ValueError(f"layer_norm: Given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size {list(input.shape)}")
    return GroupNormFunction.apply(input, weight, bias, True, len(shape), float(eps))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-05):
    """Normalise each of ``num_groups`` groups of channels of an (N, C, *) input per sample, then
    scale and shift per channel by ``weight`` and ``bias`` (C each, or None), as
    ``torch.nn.functional.group_norm``."""
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral):
        raise TypeError(f"group_norm: num_groups must be an int, got {type(num_groups).__name__}")
    if input.ndim < 2:
        raise ValueError(f"group_norm: Expected at least 2 dimensions for input tensor but received {input.ndim}")
    num_groups = int64(num_groups, "num_groups", "group_norm")
    if num_groups > 0 and input.shape[1] % num_groups == 0:
        values_per_group = input.shape[0] * input.shape[1] // num_groups * math.prod(input.shape[2:])
        if values_per_group == 1:  # torch's rule: a group of one value cannot be normalised
            size = [input.shape[0] * input.shape[1] // num_groups, num_groups, *input.shape[2:]]
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {size}")
    return GroupNormFunction.apply(input, weight, bias, False, num_groups, float(eps))


class LocalResponseNormFunction(Function):
    @staticmethod
    def forward(ctx, input, size, alpha, beta, k):
        output, scale = _C.lrn_forward(input, size, alpha, beta, k)
        ctx.save_for_backward(input, output, scale)
        ctx.params = (size, alpha, beta, k)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, output, scale = ctx.saved_tensors
        return _C.lrn_backward(grad_output, input, output, scale, *ctx.params), None, None, None, None


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalisation across channels of an (N, C, *) input, as
    ``torch.nn.functional.local_response_norm``:
    ``output = input / (k + alpha / size * sum of input^2 over the channel window) ** beta``,
    the window running from ``c - size // 2`` to ``c + (size - 1) // 2`` (zero outside).
    """
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"local_response_norm: size must be an int, got {type(size).__name__}")
    return LocalResponseNormFunction.apply(input, int64(size, "size", "local_response_norm"), float(alpha), float(beta),
                                           float(k))
