"""Shape and indexing ops on storage arrays: reshape/view, permute/transpose, expand, indexing and
clone. Storage is always C-contiguous, so permute and advanced indexing copy (see tensor.py)."""

import numpy as np

from .. import _array
from ..autograd import Function

__all__ = ["Reshape", "Permute", "Expand", "Index", "Clone"]

float32 = np.dtype(np.float32)


def _is_basic_key(key):
    """True if ``key`` uses only basic indexing (no entry selects an element twice)."""
    entries = key if isinstance(key, tuple) else (key,)
    return all(
        entry is None or entry is Ellipsis or isinstance(entry, (slice, int, np.integer))
        for entry in entries
    )


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.input_shape), None


class Permute(Function):
    @staticmethod
    def forward(ctx, a, axes):
        ctx.axes = axes
        return _array.ascontiguous(a.transpose(axes))

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(np.argsort(ctx.axes)), None


class Expand(Function):
    @staticmethod
    def forward(ctx, a, shape):
        return _array.broadcast_copy(a, shape)

    @staticmethod
    def backward(ctx, grad):
        return grad, None  # the engine sums it back to the input's shape


class Index(Function):
    @staticmethod
    def forward(ctx, a, key):
        ctx.key = key
        ctx.input_shape = a.shape
        return a[key]

    @staticmethod
    def backward(ctx, grad):
        grad_input = _array.zeros(ctx.input_shape, float32, grad)
        if _is_basic_key(ctx.key):
            grad_input[ctx.key] = grad
        else:
            np.add.at(grad_input, ctx.key, grad)  # advanced keys may repeat an element
        return grad_input, None


class Clone(Function):
    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad
