"""Softmax, log-softmax and the losses: softmax, log_softmax, nll_loss, cross_entropy, mse_loss,
l1_loss, smooth_l1_loss, huber_loss, binary_cross_entropy, binary_cross_entropy_with_logits.

Class-index losses take (N, C) or (N, C, d1, ...) inputs (or an unbatched (C,) input) with int64
class-index targets; the reduction runs over dim 1 as in ``torch.nn.functional``.
"""

import math
import numbers
import warnings

import numpy as np

from .. import _array, kernels
from ..autograd import Function
from ._args import int64

__all__ = [
    "softmax",
    "log_softmax",
    "nll_loss",
    "cross_entropy",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _reduction_code(reduction, size_average, reduce, op):
    """torch's reduction string (or the legacy size_average/reduce pair) as the kernels' code."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else ("mean" if size_average else "sum")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction (choose 'none', 'mean' or 'sum')")
    return _REDUCTIONS[reduction]


def _softmax_dim(dim, ndim, op, stacklevel):
    """``dim``, or torch's legacy implicit choice (with its deprecation warning) when None."""
    if dim is None:
        warnings.warn(
            f"Implicit dimension choice for {op} has been deprecated. Change the call to include dim=X as an argument.",
            stacklevel=stacklevel,
        )
        return 0 if ndim in (0, 1, 3) else 1
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    return int64(dim, "dim", op)


def _check_dtype(dtype, op):
    if dtype is not None and np.dtype(dtype) != np.float32:
        raise ValueError(f"{op}: only dtype=float32 is supported, got {dtype}")


class SoftmaxFunction(Function):
    """softmax, or log_softmax when ``log`` is true; backward works from the saved output."""

    @staticmethod
    def forward(ctx, input, dim, log):
        output = (kernels.log_softmax_forward if log else kernels.softmax_forward)(input, dim)
        ctx.save_for_backward(output)
        ctx.dim, ctx.log = dim, log
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        backward = kernels.log_softmax_backward if ctx.log else kernels.softmax_backward
        return backward(grad_output, output, ctx.dim), None, None


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """Softmax along ``dim`` (any dim, negative allowed), max-subtracted, as
    ``torch.nn.functional.softmax``. ``dim=None`` uses torch's deprecated implicit choice."""
    _check_dtype(dtype, "softmax")
    return SoftmaxFunction.apply(input, _softmax_dim(dim, input.ndim, "softmax", _stacklevel), False)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """Log-softmax along ``dim`` (any dim, negative allowed), as ``torch.nn.functional.log_softmax``."""
    _check_dtype(dtype, "log_softmax")
    return SoftmaxFunction.apply(input, _softmax_dim(dim, input.ndim, "log_softmax", _stacklevel), True)


def _batched(input, target):
    """An unbatched (C,) input with a 0-d target as a batch of one; flag says to undo it."""
    if input.ndim == 1 and target.ndim == 0:
        return input.reshape(1, -1), target.reshape(1), True
    return input, target, False


class CrossEntropyFunction(Function):
    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction, label_smoothing):
        logits, target, unbatched = _batched(input, target)
        loss, log_probs = kernels.cross_entropy_forward(logits, target, weight, ignore_index, reduction,
                                                        label_smoothing)
        ctx.save_for_backward(log_probs, target, weight)
        ctx.options = (ignore_index, reduction, label_smoothing)
        ctx.input_shape = input.shape
        return loss.reshape(()) if unbatched else loss

    @staticmethod
    def backward(ctx, grad_output):
        log_probs, target, weight = ctx.saved_tensors
        grad = grad_output.reshape(target.shape if ctx.options[1] == 0 else ())
        grad_input = kernels.cross_entropy_backward(grad, log_probs, target, weight, *ctx.options)
        return grad_input.reshape(ctx.input_shape), None, None


class NllLossFunction(Function):
    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction):
        log_probs, target, unbatched = _batched(input, target)
        loss = kernels.nll_loss_forward(log_probs, target, weight, ignore_index, reduction)
        ctx.save_for_backward(target, weight)
        ctx.options = (ignore_index, reduction)
        ctx.shapes = (input.shape, log_probs.shape)
        return loss.reshape(()) if unbatched else loss

    @staticmethod
    def backward(ctx, grad_output):
        target, weight = ctx.saved_tensors
        ignore_index, reduction = ctx.options
        input_shape, batched_shape = ctx.shapes
        grad = grad_output.reshape(target.shape if reduction == 0 else ())
        grad_input = kernels.nll_loss_backward(grad, target, weight, list(batched_shape), ignore_index, reduction)
        return grad_input.reshape(input_shape), None, None


class SoftTargetCrossEntropyFunction(Function):
    """Cross-entropy against class probabilities (a float target shaped like the input), as torch:
    smoothing mixes the target with the uniform distribution; mean divides by the element count
    without the class axis (class weights do not enter the divisor)."""

    @staticmethod
    def forward(ctx, input, target, weight, reduction, label_smoothing):
        if target.shape != input.shape:
            raise ValueError(
                f"cross_entropy: a class-probability target must have the input's shape {tuple(input.shape)}, "
                f"got {tuple(target.shape)}"
            )
        log_probs = kernels.log_softmax_forward(input, 1)
        classes = input.shape[1]
        mixed = target * (1.0 - label_smoothing) + label_smoothing / classes if label_smoothing else target
        scale = mixed if weight is None else mixed * weight.reshape((1, classes) + (1,) * (input.ndim - 2))
        per_element = -(scale.astype(np.float64) * log_probs).sum(axis=1)
        ctx.save_for_backward(log_probs, scale)
        ctx.reduction, ctx.count = reduction, per_element.size
        if reduction == 0:
            return per_element.astype(np.float32)
        total = per_element.sum()
        result = total / per_element.size if reduction == 1 else total
        return result if _array.on_gpu(result) else np.float32(result)

    @staticmethod
    def backward(ctx, grad_output):
        log_probs, scale = ctx.saved_tensors
        if ctx.reduction == 0:
            grad = np.expand_dims(grad_output.reshape(log_probs.shape[:1] + log_probs.shape[2:]), 1)
        else:
            grad = grad_output.reshape(()) / (ctx.count if ctx.reduction == 1 else 1)
            grad = grad if _array.on_gpu(grad) else float(grad)
        grad_log_probs = _array.ascontiguous(-grad * scale, np.float32)
        return kernels.log_softmax_backward(grad_log_probs, log_probs, 1), None, None


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of ``target`` class indices under log-probabilities ``input``, as
    ``torch.nn.functional.nll_loss`` (weights, ignore_index, mean divides by the summed weights)."""
    code = _reduction_code(reduction, size_average, reduce, "nll_loss")
    return NllLossFunction.apply(input, target, weight, int64(ignore_index, "ignore_index", "nll_loss"), code)


def cross_entropy(
    input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean", label_smoothing=0.0
):
    """Fused log-softmax + NLL over dim 1, as ``torch.nn.functional.cross_entropy``, with class
    ``weight``, ``ignore_index`` and ``label_smoothing``. Targets are int64 class indices (the fused
    kernel) or float32 class probabilities shaped like the input (numpy; ignore_index unused, and
    no gradient flows to the target)."""
    code = _reduction_code(reduction, size_average, reduce, "cross_entropy")
    if np.dtype(target.dtype) == np.float32 and input.ndim >= 2:
        return SoftTargetCrossEntropyFunction.apply(input, target, weight, code, float(label_smoothing))
    ignore_index = int64(ignore_index, "ignore_index", "cross_entropy")
    return CrossEntropyFunction.apply(input, target, weight, ignore_index, code, float(label_smoothing))


class RegressionLossFunction(Function):
    """A loss of same-shaped input and target from a (forward, backward) kernel pair called as
    forward(input, target, reduction, *options) and backward(grad, input, target, reduction, *options);
    the target's gradient is minus the input's."""

    @staticmethod
    def forward(ctx, input, target, kernels, reduction, *options):
        ctx.save_for_backward(input, target)
        ctx.backward_kernel, ctx.reduction, ctx.options = kernels[1], reduction, options
        return kernels[0](input, target, reduction, *options)

    @staticmethod
    def backward(ctx, grad_output):
        input, target = ctx.saved_tensors
        grad = grad_output.reshape(input.shape if ctx.reduction == 0 else ())
        grad_input = ctx.backward_kernel(grad, input, target, ctx.reduction, *ctx.options)
        grad_target = -grad_input if ctx.needs_input_grad[1] else None
        return (grad_input, grad_target, None, None) + (None,) * len(ctx.options)


_MSE = (kernels.mse_loss_forward, kernels.mse_loss_backward)
_SMOOTH_L1 = (kernels.smooth_l1_loss_forward, kernels.smooth_l1_loss_backward)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error, as ``torch.nn.functional.mse_loss``. ``input`` and ``target`` must have
    the same shape (no broadcasting); element ``weight`` is not supported."""
    if weight is not None:
        raise NotImplementedError("mse_loss: weight is not supported")
    code = _reduction_code(reduction, size_average, reduce, "mse_loss")
    return RegressionLossFunction.apply(input, target, _MSE, code)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error, as ``torch.nn.functional.l1_loss`` (gradient sign(input - target), 0
    where they are equal). ``input`` and ``target`` must have the same shape (no broadcasting);
    element ``weight`` is not supported."""
    if weight is not None:
        raise NotImplementedError("l1_loss: weight is not supported")
    code = _reduction_code(reduction, size_average, reduce, "l1_loss")
    return RegressionLossFunction.apply(input, target, _SMOOTH_L1, code, 0.0, False)


def _positive_float(value, name, op, allow_zero):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a float, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "negative" if allow_zero else "non-positive"
        raise ValueError(f"{op} does not support {bound} values for {name} (got {value})")
    return float(value)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Squared error (halved, over ``beta``) where ``|input - target| < beta``, absolute error less
    ``beta / 2`` elsewhere, as ``torch.nn.functional.smooth_l1_loss``; ``beta=0`` is ``l1_loss``.
    ``input`` and ``target`` must have the same shape (no broadcasting)."""
    code = _reduction_code(reduction, size_average, reduce, "smooth_l1_loss")
    beta = _positive_float(beta, "beta", "smooth_l1_loss", allow_zero=True)
    return RegressionLossFunction.apply(input, target, _SMOOTH_L1, code, beta, False)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Halved squared error where ``|input - target| < delta``, ``delta * (|input - target| - delta / 2)``
    elsewhere, as ``torch.nn.functional.huber_loss`` (``delta * smooth_l1_loss(beta=delta)``).
    ``input`` and ``target`` must have the same shape; element ``weight`` is not supported."""
    if weight is not None:
        raise NotImplementedError("huber_loss: weight is not supported")
    code = _reduction_code(reduction, None, None, "huber_loss")
    delta = _positive_float(delta, "delta", "huber_loss", allow_zero=False)
    return RegressionLossFunction.apply(input, target, _SMOOTH_L1, code, delta, True)


class BinaryCrossEntropyFunction(Function):
    """binary_cross_entropy (``logits`` false) or its with-logits form; weight and pos_weight come
    broadcast to the input's shape and get no gradient, as in torch."""

    @staticmethod
    def forward(ctx, input, target, weight, pos_weight, reduction, logits):
        ctx.save_for_backward(input, target, weight, pos_weight)
        ctx.reduction, ctx.logits = reduction, logits
        return kernels.binary_cross_entropy_forward(input, target, weight, pos_weight, reduction, logits)

    @staticmethod
    def backward(ctx, grad_output):
        input, target, weight, pos_weight = ctx.saved_tensors
        grad = grad_output.reshape(input.shape if ctx.reduction == 0 else ())
        grads = kernels.binary_cross_entropy_backward(grad, input, target, weight, pos_weight, ctx.reduction,
                                                      ctx.logits, ctx.needs_input_grad[1])
        return grads[0], grads[1] if len(grads) > 1 else None, None, None, None, None


def _broadcast_to_input(value, input, name, op):
    """``value`` (a Tensor or None) broadcast to ``input``'s shape, as torch's weight rules."""
    if value is None:
        return None
    array = value.detach()._array if hasattr(value, "detach") else np.asarray(value)
    try:
        return np.broadcast_to(array, input.shape)
    except ValueError:
        raise ValueError(f"{op}: {name} of shape {list(array.shape)} does not broadcast to the input's shape "
                         f"{list(input.shape)}") from None


def _check_same_size(input, target, op):
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{op}: target size {list(target.shape)} must be the same as input size {list(input.shape)}")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Binary cross-entropy between probabilities ``input`` (each in [0, 1]) and ``target``, with an
    optional ``weight`` broadcast to the input, as ``torch.nn.functional.binary_cross_entropy``
    (each log clamped at -100)."""
    code = _reduction_code(reduction, size_average, reduce, "binary_cross_entropy")
    _check_same_size(input, target, "binary_cross_entropy")
    weight = _broadcast_to_input(weight, input, "weight", "binary_cross_entropy")
    return BinaryCrossEntropyFunction.apply(input, target, weight, None, code, False)


def binary_cross_entropy_with_logits(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
):
    """Sigmoid + binary cross-entropy in one numerically stable step, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``: ``weight`` and ``pos_weight`` (the
    positive class's weight, broadcast along the last dims) broadcast to the input."""
    op = "binary_cross_entropy_with_logits"
    code = _reduction_code(reduction, size_average, reduce, op)
    _check_same_size(input, target, op)
    weight = _broadcast_to_input(weight, input, "weight", op)
    pos_weight = _broadcast_to_input(pos_weight, input, "pos_weight", op)
    return BinaryCrossEntropyFunction.apply(input, target, weight, pos_weight, code, True)
