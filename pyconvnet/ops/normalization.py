"""Normalisation layers' functional forms: batch_norm (and batch_norm_relu, it and a ReLU fused),
layer_norm, group_norm and local_response_norm; sync_batch_norm, batch norm with its statistics
over all ranks of the process group (``nn.SyncBatchNorm``)."""

import math
import numbers

import numpy as np

from .. import _array, kernels
from ..autograd import Function
from ._args import int64

# sync_batch_norm is not in torch.nn.functional, so it is not exported there: nn.SyncBatchNorm imports it.
__all__ = ["batch_norm", "batch_norm_relu", "layer_norm", "group_norm", "local_response_norm"]


def _array_or_none(value):
    """The numpy array behind a Tensor (shared, so in-place updates reach it), an array, or None."""
    if value is None or isinstance(value, np.ndarray):
        return value
    return value._array


class BatchNormFunction(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, training, momentum, eps, relu):
        if training:
            output, mean, invstd = kernels.batch_norm_forward_train(input, running_mean, running_var, weight, bias,
                                                                    momentum, eps, relu=relu)
        else:
            output = kernels.batch_norm_forward_eval(input, running_mean, running_var, weight, bias, eps, relu=relu)
            # Snapshot the statistics used, so a later update of the buffers cannot change the gradient.
            mean = running_mean.astype(np.float32)
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
        grad_input, grad_weight, grad_bias = kernels.batch_norm_backward(grad_output, input, mean, invstd, weight,
                                                                         ctx.training, mask, relu_output)
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


def _channels_last(array):
    """An (N, C, *) array as (C, N * prod(*)) float64 rows, one per channel."""
    return np.moveaxis(array.reshape(array.shape[0], array.shape[1], -1), 1, 0).reshape(array.shape[1], -1).astype(
        np.float64)


class SyncBatchNormFunction(Function):
    """Training-mode batch norm whose statistics cover the whole global batch. Forward: each rank's
    per-channel mean and sum of squared deviations (float64) and its count are all-gathered and
    combined (Chan et al.'s pairwise rule, no cancellation), the input is normalised by the eval
    kernel with the global mean and biased variance, and the running statistics get the global
    unbiased variance. Backward: the per-channel sums of dy and dy * (x - mean) are all-reduced for
    the input's gradient; the weight's and bias's gradients stay this rank's own (as torch; DDP
    averages them)."""

    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, momentum, eps, relu):
        from .. import distributed as dist
        from ..tensor import Tensor

        rows = _channels_last(input)
        local_count = rows.shape[1]
        local_mean = rows.mean(axis=1) if local_count else np.zeros(rows.shape[0])
        local_m2 = np.square(rows - local_mean[:, None]).sum(axis=1)
        mine = np.concatenate([[local_count], local_mean, local_m2]).astype(np.float32)
        gathered = [Tensor._wrap(np.empty_like(mine)) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, Tensor._wrap(mine))
        stats = np.stack([g._array for g in gathered]).astype(np.float64)
        counts, means, m2s = stats[:, 0], stats[:, 1:1 + rows.shape[0]], stats[:, 1 + rows.shape[0]:]
        count = counts.sum()
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got {int(count)} over all ranks")
        mean = (counts[:, None] * means).sum(axis=0) / count
        var = (m2s + counts[:, None] * np.square(means - mean)).sum(axis=0) / count
        mean32, var32 = mean.astype(np.float32), var.astype(np.float32)
        output = kernels.batch_norm_forward_eval(input, mean32, var32, weight, bias, eps, relu=relu)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            running_var[...] = (1 - momentum) * running_var + momentum * var * count / (count - 1)
        invstd = (1.0 / np.sqrt(var + eps)).astype(np.float32)
        ctx.save_for_backward(input, weight, mean32, invstd, output if relu else None)
        ctx.count = count
        return output

    @staticmethod
    def backward(ctx, grad_output):
        from .. import distributed as dist
        from ..tensor import Tensor

        input, weight, mean, invstd, relu_output = ctx.saved_tensors
        needs = ctx.needs_input_grad
        dy = grad_output if relu_output is None else np.where(relu_output > 0, grad_output, np.float32(0))
        dy_rows, centred = _channels_last(dy), _channels_last(input) - mean[:, None].astype(np.float64)
        sums = np.stack([dy_rows.sum(axis=1), (dy_rows * centred).sum(axis=1)])  # this rank's
        grad_input = None
        if needs[0]:
            totals = sums.astype(np.float32)
            dist.all_reduce(Tensor._wrap(totals))
            mean_dy, mean_dy_centred = totals.astype(np.float64) / ctx.count
            istd = invstd.astype(np.float64)
            scale = istd if weight is None else istd * weight
            rows = scale[:, None] * (dy_rows - mean_dy[:, None] - centred * (istd ** 2 * mean_dy_centred)[:, None])
            shape = (input.shape[1], input.shape[0], -1)
            grad_input = _array.ascontiguous(np.moveaxis(rows.reshape(shape), 0, 1), np.float32).reshape(
                input.shape)
        grad_weight = (sums[1] * invstd).astype(np.float32) if needs[1] and weight is not None else None
        grad_bias = sums[0].astype(np.float32) if needs[2] else None
        return grad_input, grad_weight, grad_bias, None, None, None, None, None


def sync_batch_norm(input, running_mean, running_var, weight=None, bias=None, training=True, momentum=0.1, eps=1e-05,
                    relu=False):
    """Training-mode batch norm over the global batch of every rank (``nn.SyncBatchNorm``'s
    functional form, with ``batch_norm``'s arguments; ``relu=True`` applies a ReLU after it). Every
    rank must call it, in the same order, with the same channels; the process group must be
    initialised. ``training`` must be True (evaluation is plain ``batch_norm``)."""
    if not training:
        raise ValueError("sync_batch_norm: training must be True; evaluation uses batch_norm with the running statistics")
    if input.ndim < 2:
        raise ValueError(f"sync_batch_norm: expected at least 2D input (got {input.ndim}D input)")
    if momentum is None or not isinstance(momentum, numbers.Real):
        raise TypeError(f"sync_batch_norm: momentum must be a float, got {type(momentum).__name__}")
    return SyncBatchNormFunction.apply(input, weight, bias, _array_or_none(running_mean), _array_or_none(running_var),
                                       float(momentum), float(eps), bool(relu))


class GroupNormFunction(Function):
    """group_norm (``layer`` false; ``size`` is num_groups) or layer_norm (``size`` is the number
    of normalised trailing dims): one kernel each way, the statistics saved for backward."""

    @staticmethod
    def forward(ctx, input, weight, bias, layer, size, eps):
        forward = kernels.layer_norm_forward if layer else kernels.group_norm_forward
        output, mean, rstd = forward(input, size, weight, bias, eps)
        ctx.save_for_backward(input, weight, mean, rstd)
        ctx.layer, ctx.size = layer, size
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, mean, rstd = ctx.saved_tensors
        needs = ctx.needs_input_grad
        mask = (needs[0], needs[1] and weight is not None, needs[2])
        backward = kernels.layer_norm_backward if ctx.layer else kernels.group_norm_backward
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
        output, scale = kernels.lrn_forward(input, size, alpha, beta, k)
        ctx.save_for_backward(input, output, scale)
        ctx.params = (size, alpha, beta, k)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, output, scale = ctx.saved_tensors
        return kernels.lrn_backward(grad_output, input, output, scale, *ctx.params), None, None, None, None


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
