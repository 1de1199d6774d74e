"""Concatenation and the fused residual add + ReLU (cat, add_relu). Tensor ``+``/``*``/``sum``
call the element-wise kernels (``kernels.add``, ``kernels.mul``, ``kernels.sum``) directly, in tensor.py."""

import numpy as np

from .. import kernels
from ..autograd import Function

__all__ = ["cat", "add_relu"]

_FLOAT32 = np.dtype(np.float32)


class AddReluFunction(Function):
    @staticmethod
    def forward(ctx, a, b):
        output = kernels.add_relu(a, b)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        grad = kernels.relu_backward(grad_output, output)
        return grad, grad


def add_relu(input, other):
    """``relu(input + other)`` in one pass (a residual block's shortcut add), same shapes."""
    return AddReluFunction.apply(input, other)


class CatFunction(Function):
    @staticmethod
    def forward(ctx, dim, *tensors):
        ctx.extents = [t.shape[dim] for t in tensors]
        ctx.dim = dim
        if all(t.dtype == _FLOAT32 for t in tensors):
            return kernels.concat(list(tensors), dim)
        return np.concatenate(tensors, axis=dim)  # int64 or mixed dtypes: numpy, promoted as torch

    @staticmethod
    def backward(ctx, grad_output):
        return (None, *kernels.split(grad_output, ctx.extents, ctx.dim))


def cat(tensors, dim=0):
    """Concatenates tensors along ``dim`` (negative allowed), as ``torch.cat``: every other
    dimension must match. float32 runs the parallel kernel (differentiable); other dtypes go
    through numpy."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("cat: zero-dimensional tensor (at position 0) cannot be concatenated")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"cat: dim must be an int, got {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"cat: dim {dim} is out of range for {ndim}-D tensors of shape {tuple(tensors[0].shape)}")
    dim = int(dim) % ndim
    first = tuple(tensors[0].shape)
    for i, t in enumerate(tensors):
        shape = tuple(t.shape)
        if len(shape) != ndim or any(a != b for k, (a, b) in enumerate(zip(shape, first)) if k != dim):
            raise ValueError(
                f"cat: sizes of tensors must match except in dimension {dim}: tensors[0] has shape {first} "
                f"but tensors[{i}] has shape {shape}"
            )
    return CatFunction.apply(dim, *tensors)
