"""Activations and dropout: relu, leaky_relu, sigmoid, tanh, gelu, silu, relu6, hardswish,
hardsigmoid, dropout, dropout2d (and in-place forms).

In-place variants write into the input tensor's array and return a Tensor that shares it. As in
PyTorch, overwriting a value that another op saved for its backward gives wrong gradients, and
pyconvnet has no version counters to detect it. relu's own backward only needs its output, so
``conv -> batch_norm -> relu(inplace=True)`` is safe (batch_norm saves its input, not its output).
"""

import numbers
import warnings

from .. import kernels
from ..autograd import Function, check_inplace
from ..random import next_seed

__all__ = [
    "relu",
    "relu_",
    "leaky_relu",
    "leaky_relu_",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "relu6",
    "hardswish",
    "hardsigmoid",
    "dropout",
    "dropout2d",
]


def _elementwise_function(name, forward_kernel, backward_kernel, gradient_from):
    """A Function class for y = f(x) with an ``inplace`` flag whose gradient is
    backward_kernel(grad_output, v), v the output or the input (``gradient_from``). From the
    output, in place is free (the saved output is what overwrote the input); from the input, in
    place copies the input before the kernel overwrites it."""

    def forward(ctx, input, inplace):
        out = input if inplace else None
        if gradient_from == "output":
            output = forward_kernel(input, out=out)
            ctx.save_for_backward(output)
            return output
        ctx.save_for_backward(input.copy() if inplace else input)
        return forward_kernel(input, out=out)

    def backward(ctx, grad_output):
        (saved,) = ctx.saved_tensors
        return backward_kernel(grad_output, saved), None

    return type(name, (Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


ReluFunction = _elementwise_function("ReluFunction", kernels.relu_forward, kernels.relu_backward, "output")
SigmoidFunction = _elementwise_function("SigmoidFunction", kernels.sigmoid_forward, kernels.sigmoid_backward, "output")
TanhFunction = _elementwise_function("TanhFunction", kernels.tanh_forward, kernels.tanh_backward, "output")
Relu6Function = _elementwise_function("Relu6Function", kernels.relu6_forward, kernels.relu6_backward, "output")
GeluFunction = _elementwise_function("GeluFunction", kernels.gelu_forward, kernels.gelu_backward, "input")
GeluTanhFunction = _elementwise_function("GeluTanhFunction", kernels.gelu_tanh_forward, kernels.gelu_tanh_backward,
                                         "input")
SiluFunction = _elementwise_function("SiluFunction", kernels.silu_forward, kernels.silu_backward, "input")
HardswishFunction = _elementwise_function("HardswishFunction", kernels.hardswish_forward, kernels.hardswish_backward,
                                          "input")
HardsigmoidFunction = _elementwise_function("HardsigmoidFunction", kernels.hardsigmoid_forward,
                                            kernels.hardsigmoid_backward,
                                            "input")


def _elementwise(function, input, inplace, op):
    if inplace:
        check_inplace(input, op=op, recorded=True)
    return function.apply(input, bool(inplace))


def relu(input, inplace=False):
    """``max(input, 0)`` element-wise (NaN propagates), as ``torch.nn.functional.relu``.
    ``inplace=True`` overwrites ``input``'s array (see the module notes)."""
    return _elementwise(ReluFunction, input, inplace, "relu")


def relu_(input):
    """In-place ``relu``."""
    return relu(input, inplace=True)


class LeakyReluFunction(Function):
    @staticmethod
    def forward(ctx, input, negative_slope, inplace):
        output = kernels.leaky_relu_forward(input, negative_slope, out=input if inplace else None)
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
        return kernels.leaky_relu_backward(grad_output, saved, ctx.negative_slope), None, None


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


def sigmoid(input):
    """``1 / (1 + exp(-input))`` element-wise, as ``torch.sigmoid``; saturates to exactly 0 or 1
    for large ``|input|`` without overflow."""
    return SigmoidFunction.apply(input, False)


def tanh(input):
    """Hyperbolic tangent element-wise, as ``torch.tanh``."""
    return TanhFunction.apply(input, False)


_GELU_FUNCTIONS = {"none": GeluFunction, "tanh": GeluTanhFunction}


def gelu(input, approximate="none"):
    """``input * Phi(input)`` with Phi the standard normal CDF, or with ``approximate='tanh'``
    torch's tanh approximation, as ``torch.nn.functional.gelu``."""
    if approximate not in _GELU_FUNCTIONS:
        raise ValueError(f"gelu: approximate argument must be either none or tanh, got {approximate!r}")
    return _GELU_FUNCTIONS[approximate].apply(input, False)


def silu(input, inplace=False):
    """``input * sigmoid(input)`` element-wise, as ``torch.nn.functional.silu``."""
    return _elementwise(SiluFunction, input, inplace, "silu")


def hardswish(input, inplace=False):
    """``input * relu6(input + 3) / 6`` element-wise, as ``torch.nn.functional.hardswish``."""
    return _elementwise(HardswishFunction, input, inplace, "hardswish")


def hardsigmoid(input, inplace=False):
    """``relu6(input + 3) / 6`` element-wise, as ``torch.nn.functional.hardsigmoid``."""
    return _elementwise(HardsigmoidFunction, input, inplace, "hardsigmoid")


def relu6(input, inplace=False):
    """``min(max(input, 0), 6)`` element-wise (NaN propagates), as ``torch.nn.functional.relu6``;
    the gradient is 0 at 0 and 6, as torch's (0 < output < 6 exactly where 0 < input < 6)."""
    return _elementwise(Relu6Function, input, inplace, "relu6")


class DropoutFunction(Function):
    """Dropout with one mask entry per element (mask_ndim = -1) or per leading-dims block."""

    @staticmethod
    def forward(ctx, input, p, seed, inplace, mask_ndim):
        output, mask = kernels.dropout_forward(input, p, seed, out=input if inplace else None, mask_ndim=mask_ndim)
        ctx.mask, ctx.p = mask, p
        return output

    @staticmethod
    def backward(ctx, grad_output):
        return kernels.dropout_backward(grad_output, ctx.mask, ctx.p), None, None, None, None


def _check_dropout_p(p, op):
    if not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"{op}: p must be a float, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _seed_for(input):
    """A dropout seed from the generator of ``input``'s device."""
    if input.is_cuda:
        from ..cuda import next_seed as gpu_seed

        return gpu_seed()
    return int(next_seed())


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the others by ``1 / (1 - p)``, as
    ``torch.nn.functional.dropout``. ``training=False`` returns ``input`` itself.

    The mask is a hash of a seed drawn from ``pyconvnet.random.next_seed()`` (on a GPU:
    ``pyconvnet.cuda``'s generator) and the element index, so ``pyconvnet.manual_seed`` makes it
    reproducible whatever the thread count (the masks differ from torch's generator). A dropped NaN
    or inf stays NaN, as torch's multiply.
    """
    _check_dropout_p(p, "dropout")
    if not training:
        return input
    if inplace:
        check_inplace(input, op="dropout", recorded=True)
    return DropoutFunction.apply(input, float(p), _seed_for(input), bool(inplace), -1)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels: each (sample, channel) plane of an (N, C, H, W) input is dropped with
    probability ``p`` and the kept ones scaled by ``1 / (1 - p)``, as
    ``torch.nn.functional.dropout2d``. A 3-D input is taken as (N, C, L) and other ranks as
    (N, C, ...), each with torch's warning.
    The mask comes from the same counter-based hash as ``dropout``'s, one entry per plane."""
    _check_dropout_p(p, "dropout2d")
    if input.ndim < 2:
        raise ValueError(f"dropout2d: input must have a channel dimension (N, C, ...), got shape {list(input.shape)}")
    if input.ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated (as in torch); "
            "each (dim 0, dim 1) entry is dropped as a whole. Use dropout for element-wise dropout.",
            stacklevel=2,
        )
    if input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior is "
            "desired - input is interpreted as shape (N, C, L), where C is the channel dim (as in torch).",
            stacklevel=2,
        )
    if not training:
        return input
    if inplace:
        check_inplace(input, op="dropout2d", recorded=True)
    return DropoutFunction.apply(input, float(p), _seed_for(input), bool(inplace), 2)
