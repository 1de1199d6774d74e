"""The ``torch.X`` functions that scripts call on tensors: ``torch.max(output, 1)``,
``torch.stack``, ``torch.where``, ``torch.sigmoid``, ... Each is the Tensor method of the same name
(or a composition of them), so both spellings share one implementation."""

import numpy as np

from .ops import indexing as _indexing
from .ops.elementwise import cat
from .tensor import Tensor, _operand, _wrap_dim

__all__ = [
    "abs", "all", "allclose", "any", "argmax", "argmin", "argsort", "chunk", "clamp", "clip", "eq", "equal",
    "exp", "flatten", "gather", "ge", "gt", "index_select", "is_tensor", "le", "log", "log_softmax", "lt",
    "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mm", "ne", "numel", "permute", "relu",
    "reshape", "sigmoid", "softmax", "sort", "split", "sqrt", "squeeze", "stack", "std", "sum", "tanh",
    "topk", "transpose", "unbind", "unsqueeze", "var", "where",
]


def _method(name):
    def function(input, *args, **kwargs):
        return getattr(input, name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"``torch.{name}(input, ...)``: the same as ``input.{name}(...)``."
    return function


# Every name in __all__ that is a Tensor method. Some shadow builtins (abs, all, any, max, min,
# sum): code below must not call those builtins.
globals().update({name: _method(name) for name in __all__ if hasattr(Tensor, name)})
mm = _method("matmul")


def stack(tensors, dim=0):
    """Joins same-shaped tensors along a new dimension ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: every tensor must have the same shape, got {sorted(shapes)}")
    dim = _wrap_dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def where(condition, input=None, other=None):
    """``where(condition, input, other)``: ``input`` where ``condition`` is true, else ``other``
    (either may be a number); ``where(condition)``: the indices of the true entries, per dim."""
    if not isinstance(condition, Tensor):
        raise TypeError(f"where: condition must be a Tensor, got {type(condition).__name__}")
    mask = condition._array.astype(bool, copy=False)
    if input is None and other is None:
        return tuple(Tensor._wrap(axis.astype(np.int64)) for axis in np.nonzero(mask))
    if input is None or other is None:
        raise TypeError("where: give both input and other, or neither")
    return _indexing.Where.apply(mask, _operand(input), _operand(other))


def is_tensor(obj):
    return isinstance(obj, Tensor)


def equal(input, other):
    """True when both have the same shape and the same elements."""
    return input.shape == other.shape and bool(np.array_equal(input._array, other._array))


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False):
    return bool(np.allclose(input._array, other._array, rtol=rtol, atol=atol, equal_nan=equal_nan))
