"""Selection ops on whole tensors: gather, repeat and where (torch.gather, Tensor.repeat,
torch.where), whose arguments arrive checked by the Tensor methods and which work on storage
arrays, and ``one_hot`` (torch.nn.functional.one_hot)."""

import numpy as np

from .. import _array
from ..autograd import Function

__all__ = ["Gather", "Repeat", "Where", "one_hot"]

_FLOAT32 = np.dtype(np.float32)


class Gather(Function):
    """``out[i][j][k] = a[i][index[i][j][k]][k]`` (dim 1): the gradient scatters back, summing
    where an index repeats."""

    @staticmethod
    def forward(ctx, a, dim, index):
        ctx.input_shape, ctx.dim = a.shape, dim
        ctx.save_for_backward(index)
        # index may be smaller than a in the other dims: select a's leading block first.
        block = a[tuple(slice(0, n) if axis != dim else slice(None) for axis, n in enumerate(index.shape))]
        return np.take_along_axis(block, index, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        grad_input = _array.zeros(ctx.input_shape, _FLOAT32, grad)
        _array.add_along_axis(grad_input, index, grad, ctx.dim)
        return grad_input, None, None


class Repeat(Function):
    """``np.tile`` with torch's rule: ``repeats`` may have more entries than ``a`` has dims."""

    @staticmethod
    def forward(ctx, a, repeats):
        shape = (1,) * (len(repeats) - a.ndim) + a.shape
        ctx.input_shape, ctx.shape, ctx.repeats = a.shape, shape, repeats
        return np.tile(a.reshape(shape), repeats)

    @staticmethod
    def backward(ctx, grad):
        # Split each axis into (repeat, size) and sum the repeats away.
        split = [n for pair in zip(ctx.repeats, ctx.shape) for n in pair]
        summed = grad.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return summed.reshape(ctx.input_shape), None


class Where(Function):
    """``condition ? a : b`` with broadcasting; each side's gradient is masked by the condition
    (the engine sums it back to that side's shape)."""

    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad[1:]
        zero = np.float32(0)
        return (None,
                np.where(condition, grad, zero) if needs_a else None,
                np.where(condition, zero, grad) if needs_b else None)


def one_hot(tensor, num_classes=-1):
    """int64 one-hot rows with a new last dimension of ``num_classes`` (-1: the largest class + 1),
    as ``torch.nn.functional.one_hot``."""
    array = getattr(tensor, "_array", None)
    if array is None or array.dtype != np.int64:
        raise TypeError(f"one_hot: tensor must be an int64 Tensor, got "
                        f"{array.dtype if array is not None else type(tensor).__name__}")
    if array.size and array.min() < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got {int(array.min())}")
    largest = int(array.max()) if array.size else -1
    if num_classes == -1:
        if not array.size:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor")
        num_classes = largest + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be a positive int or -1, got {num_classes!r}")
    if largest >= num_classes:
        raise ValueError(f"one_hot: class value {largest} is not smaller than num_classes={num_classes}")
    if _array.on_gpu(array):
        classes = _array.arange(num_classes, np.int64, array)
        return type(tensor)._wrap((np.expand_dims(array, -1) == classes).astype(np.int64))
    return type(tensor)._wrap(np.eye(num_classes, dtype=np.int64)[array])
