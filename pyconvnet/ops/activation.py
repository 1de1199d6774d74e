"""Activations and dropout: relu, leaky_relu, sigmoid, tanh, dropout (and in-place forms).

In-place variants write into the input tensor's array and return a Tensor that shares it. As in
PyTorch, overwriting a value that another op saved for its backward gives wrong gradients, and
pyconvnet has no version counters to detect it. relu's own backward only needs its output, so
``conv -> batch_norm -> relu(inplace=True)`` is safe (batch_norm saves its input, not its output).
"""

import numbers

from .. import _C
from ..autograd import Function, check_inplace
from ..random import next_seed

__all__ = ["relu", "relu_", "leaky_relu", "leaky_relu_", "sigmoid", "tanh", "dropout"]


class ReluFunction(Function):
    @staticmethod
    def forward(ctx, input, inplace):
        output = _C.relu_forward(input, out=input if inplace else None)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        return _C.relu_backward(grad_output, output), None


def relu(input, inplace=False):
    """``max(input, 0)`` element-wise (NaN propagates), as ``torch.nn.functional.relu``.
    ``inplace=True`` overwrites ``input``'s array (see the module notes)."""
    if inplace:
        check_inplace(input, op="relu", recorded=True)
    return ReluFunction.apply(input, bool(inplace))


def relu_(input):
    """In-place ``relu``."""
    return relu(input, inplace=True)


class LeakyReluFunction(Function):
    @staticmethod
    def forward(ctx, input, negative_slope, inplace):
        output = _C.leaky_relu_forward(input, negative_slope, out=input if inplace else None)
        # Out of place the gradient reads the input; in place only the output is left, whose sign
        # equals the input's when negative_slope >= 0.
        ctx.save_for_backward(output if inplace else input)
        ctx.negative_slope, ctx.inplace = negative_slope, inplace
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (saved,) = ctx.saved_tensors
        if ctx.inplace and ctx.negative_slope < 0:
            raise RuntimeError(
                "leaky_relu: the in-place backward is not supported with a negative slope "
                f"({ctx.negative_slope}); call the out-of-place version instead"
            )
        return _C.leaky_relu_backward(grad_output, saved, ctx.negative_slope), None, None


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``input if input > 0 else input * negative_slope``, as ``torch.nn.functional.leaky_relu``.
    With ``inplace=True`` and a negative slope the backward raises, as in torch."""
    if not isinstance(negative_slope, numbers.Real) or isinstance(negative_slope, bool):
        raise TypeError(f"leaky_relu: negative_slope must be a float, got {type(negative_slope).__name__}")
    if inplace:
        check_inplace(input, op="leaky_relu", recorded=True)
    return LeakyReluFunction.apply(input, float(negative_slope), bool(inplace))


def leaky_relu_(input, negative_slope=0.01):
    """In-place ``leaky_relu``."""
    return leaky_relu(input, negative_slope, inplace=True)


def _output_gradient_function(name, forward_kernel, backward_kernel):
    """A Function for y = f(x) whose gradient needs only y: backward_kernel(grad_output, y)."""

    def forward(ctx, input):
        output = forward_kernel(input)
        ctx.save_for_backward(output)
        return output

    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        return backward_kernel(grad_output, output)

    return type(name, (Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


SigmoidFunction = _output_gradient_function("SigmoidFunction", _C.sigmoid_forward, _C.sigmoid_backward)
TanhFunction = _output_gradient_function("TanhFunction", _C.tanh_forward, _C.tanh_backward)


def sigmoid(input):
    """``1 / (1 + exp(-input))`` element-wise, as ``torch.sigmoid``; saturates to exactly 0 or 1
    for large ``|input|`` without overflow."""
    return SigmoidFunction.apply(input)


def tanh(input):
    """Hyperbolic tangent element-wise, as ``torch.tanh``."""
    return TanhFunction.apply(input)


class DropoutFunction(Function):
    @staticmethod
    def forward(ctx, input, p, seed, inplace):
        output, mask = _C.dropout_forward(input, p, seed, out=input if inplace else None)
        ctx.mask, ctx.p = mask, p
        return output

    @staticmethod
    def backward(ctx, grad_output):
        return _C.dropout_backward(grad_output, ctx.mask, ctx.p), None, None, None


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the others by ``1 / (1 - p)``, as
    ``torch.nn.functional.dropout``. ``training=False`` returns ``input`` itself.

    The mask is a hash of a seed drawn from ``pyconvnet.random.next_seed()`` and the element
    index, so ``pyconvnet.manual_seed`` makes it reproducible whatever the thread count (the
    masks differ from torch's generator). A dropped NaN or inf stays NaN, as torch's multiply.
    """
    if not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"dropout: p must be a float, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training:
        return input
    if inplace:
        check_inplace(input, op="dropout", recorded=True)
    return DropoutFunction.apply(input, float(p), int(next_seed()), bool(inplace))
