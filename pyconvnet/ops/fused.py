"""Fused layer sequences (pyconvnet extensions, like ``add_relu``): ``conv2d_relu_max_pool2d`` and
``linear_relu`` (optionally flattening its input first), each one autograd node whose results
equal the separate ops'.

On a small network every op costs more outside its kernel (``Function.apply``, the backward
engine, the module calls) than inside it; a fused node pays that once. The ReLU of
``conv2d_relu_max_pool2d`` runs after the pooling, on the pooled map: max commutes with ReLU
(both pick the same element, and a non-positive maximum gets no gradient either way), so it
reads and writes a quarter of the memory for a 2x2 pool, forward and backward. Its backward can
skip the dense output gradient altogether (Note [sparse pooled backward],
csrc/kernels/conv_pooled.cpp): the plan for each geometry says whether that or the dense passes
are faster (``plans.pooled_backward``).
"""

import math

import numpy as np

from .. import kernels, plans
from ..autograd import Function
from ..tensor import _wrap_dim
from .conv import Conv2dFunction, LinearFunction, check_linear_arguments, conv2d_arguments
from .pooling import _window_args
from ._args import pair

__all__ = ["conv2d_relu_max_pool2d", "linear_relu"]


class Conv2dReluMaxPool2dFunction(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, groups, pool):
        conv_output = Conv2dFunction.forward(ctx, input, weight, bias, stride, padding, dilation, groups)
        ctx.conv_shape, ctx.pool = list(conv_output.shape), pool
        output, indices = kernels.max_pool2d_forward(conv_output, *pool)
        kernels.relu_forward(output, out=output)
        _, _, pool_padding, _, ceil_mode = pool
        if pool_padding != (0, 0) or ceil_mode:  # a window holding no input stays -inf, as max_pool2d's
            output[indices < 0] = -np.inf
        ctx.pooled = output, indices
        return output

    @staticmethod
    def backward(ctx, grad_output):
        output, indices = ctx.pooled
        stride, padding, dilation, groups = ctx.geometry
        needs_input, needs_weight, needs_bias = ctx.needs_input_grad[:3]

        def scattered():  # the convolution's output gradient: through ReLU, back to the argmax positions
            return kernels.max_pool2d_backward(kernels.relu_backward(grad_output, output), indices, ctx.conv_shape,
                                               *ctx.pool)

        if (not needs_weight or ctx.bf16 or dilation != (1, 1) or groups != 1
                or not isinstance(grad_output, np.ndarray)):  # autocast's rounding, GPU arrays: the dense route
            return Conv2dFunction.backward(ctx, scattered())
        input, weight = ctx.saved_tensors

        def dense():
            grad = scattered()
            grad_input = (plans.conv2d("backward_data", grad, weight, list(input.shape), *ctx.geometry)
                          if needs_input else None)
            grad_weight = plans.conv2d("backward_weight", grad, input, list(weight.shape), *ctx.geometry)
            return grad_input, grad_weight, kernels.conv2d_backward_bias(grad) if needs_bias else None

        return plans.pooled_backward(grad_output, output, indices, input, weight, stride, padding, needs_input,
                                     needs_bias, dense)


def conv2d_relu_max_pool2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, kernel_size,
                           pool_stride=None, pool_padding=0, pool_dilation=1, ceil_mode=False):
    """``max_pool2d(relu(conv2d(input, weight, bias, stride, padding, dilation, groups)), kernel_size,
    pool_stride, pool_padding, pool_dilation, ceil_mode)`` over an (N, C, H, W) input, as one node."""
    op = "conv2d_relu_max_pool2d"
    if input.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {tuple(input.shape)}")
    input, stride, padding, dilation, groups = conv2d_arguments(input, weight, stride, padding, dilation, groups, op)
    kernel, pool_stride, pool_padding = _window_args(op, kernel_size, pool_stride, pool_padding)
    pool = (kernel, pool_stride, pool_padding, pair(pool_dilation, "pool_dilation", op), bool(ceil_mode))
    return Conv2dReluMaxPool2dFunction.apply(input, weight, bias, stride, padding, dilation, groups, pool)


class LinearReluFunction(Function):
    @staticmethod
    def forward(ctx, input, weight, bias, flat_shape):
        output = LinearFunction.forward(ctx, input if flat_shape is None else input.reshape(flat_shape), weight, bias)
        ctx.input_shape = input.shape  # the input gradient takes the unflattened input's shape
        kernels.relu_forward(output, out=output)
        ctx.output = output
        return output

    @staticmethod
    def backward(ctx, grad_output):
        return LinearFunction.backward(ctx, kernels.relu_backward(grad_output, ctx.output))


def linear_relu(input, weight, bias=None, *, start_dim=None):
    """``relu(linear(input, weight, bias))`` as one node; with ``start_dim``,
    ``relu(linear(input.flatten(start_dim), weight, bias))``, the flatten inside the node (a
    classifier head after convolutions: one node fewer)."""
    shape = tuple(input.shape)
    if start_dim is not None:
        start = _wrap_dim(start_dim, len(shape))
        shape = shape[:start] + (math.prod(shape[start:]),)
    check_linear_arguments(shape, weight, bias, "linear_relu")
    return LinearReluFunction.apply(input, weight, bias, None if start_dim is None else shape)
