"""Reductions on storage arrays: sum, mean, and max/min over everything or along a dim.
Whole-tensor float32 sums run on the threaded, deterministic kernel."""

import math

import numpy as np

from .. import _array, kernels
from ..autograd import Function

__all__ = ["Sum", "Mean", "Extremum", "ExtremumAlongDim"]

float32 = np.dtype(np.float32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)


def _expand_reduced(grad, ctx):
    """Broadcast the gradient of a reduction back over the reduced axes."""
    if ctx.axes is None:
        return np.broadcast_to(grad, ctx.input_shape)
    if not ctx.keepdim:
        grad = np.expand_dims(grad, ctx.axes)
    return np.broadcast_to(grad, ctx.input_shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        ctx.input_shape, ctx.axes, ctx.keepdim = a.shape, axes, keepdim
        if a.dtype == bool_:
            return np.sum(a, axis=axes, keepdims=keepdim, dtype=int64)  # torch sums bools to int64
        if axes is None and not keepdim and a.dtype == float32:
            return kernels.sum(a)  # double accumulation, threaded, deterministic
        return np.sum(a, axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        return _expand_reduced(grad, ctx), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        ctx.input_shape, ctx.axes, ctx.keepdim = a.shape, axes, keepdim
        reduced = a.shape if axes is None else [a.shape[i] for i in axes]
        ctx.count = np.float32(math.prod(reduced))
        with np.errstate(invalid="ignore"):  # the mean of nothing is NaN, silently as in torch
            if axes is None and not keepdim and a.dtype == float32:
                return kernels.sum(a) / ctx.count  # the same threaded, deterministic kernel as sum()
            return np.sum(a, axis=axes, keepdims=keepdim) / ctx.count

    @staticmethod
    def backward(ctx, grad):
        with np.errstate(divide="ignore", invalid="ignore"):
            return _expand_reduced(grad / ctx.count, ctx), None, None


class Extremum(Function):
    """max() / min() over all elements; ties share the gradient equally, as in torch."""

    @staticmethod
    def forward(ctx, a, largest):
        if a.size == 0:
            raise ValueError(
                "max()/min() of an empty tensor: specify the reduction dim with the 'dim' argument"
            )
        out = _array.asarray(a.max() if largest else a.min())
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, out = ctx.saved_tensors
        hits = a == out  # all False when the extremum is NaN: no gradient flows
        if _array.on_gpu(hits):  # the tie count stays on the device
            return hits * (grad / np.maximum(hits.sum(), 1)), None
        return hits * (grad / np.float32(max(np.count_nonzero(hits), 1))), None


class ExtremumAlongDim(Function):
    """max(dim) / min(dim): (values, int64 indices); the gradient goes to the index taken."""

    @staticmethod
    def forward(ctx, a, dim, keepdim, largest):
        if a.shape[dim] == 0:
            raise ValueError(f"max()/min(): expected reduction dim {dim} to have non-zero size")
        arg_function = np.argmax if largest else np.argmin
        indices = arg_function(a, axis=dim, keepdims=True).astype(int64, copy=False)
        values = np.take_along_axis(a, indices, axis=dim)
        ctx.save_for_backward(indices)
        ctx.input_shape, ctx.dim, ctx.keepdim = a.shape, dim, keepdim
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad_values, grad_indices):
        (indices,) = ctx.saved_tensors
        if not ctx.keepdim:
            grad_values = np.expand_dims(grad_values, ctx.dim)
        grad_input = _array.zeros(ctx.input_shape, float32, grad_values)
        np.put_along_axis(grad_input, indices, grad_values, axis=ctx.dim)
        return grad_input, None, None, None
