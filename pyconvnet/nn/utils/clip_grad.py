"""Gradient clipping with ``torch.nn.utils``'s names: ``clip_grad_norm_`` (the total norm from one
norm kernel call per gradient, then one over those norms: deterministic for any thread count),
``clip_grad_value_``, ``get_total_norm`` and ``clip_grads_with_norm_``.

``foreach`` is accepted for compatibility and has no effect (there is one CPU path).
"""

import math
import numbers
import warnings

import numpy as np

from ... import kernels
from ...creation import tensor
from ...tensor import Tensor

__all__ = ["clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]


def _as_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _gradients(parameters):
    return [p.grad for p in _as_list(parameters) if p.grad is not None]


def _real(value, name, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    return float(value)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The ``norm_type``-norm of all of ``tensors`` together (as if concatenated), as a 0-d Tensor,
    like ``torch.nn.utils.get_total_norm``. ``norm_type`` may be ``inf``; an empty list gives 0."""
    norm_type = _real(norm_type, "norm_type", "get_total_norm")
    if not norm_type >= 0:
        raise ValueError(f"get_total_norm: norm_type must be non-negative (or inf), got {norm_type}")
    arrays = [t.detach()._array for t in _as_list(tensors)]
    if not arrays:
        return tensor(0.0)
    norms = np.stack([kernels.norm(array, norm_type) for array in arrays])  # 0-d float32 arrays, on their device
    total = kernels.norm(norms, norm_type)
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    return Tensor._wrap(total)


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of ``parameters`` in place by ``min(1, max_norm / (total_norm + 1e-6))``,
    as ``torch.nn.utils.clip_grads_with_norm_``."""
    max_norm = _real(max_norm, "max_norm", "clip_grads_with_norm_")
    total = float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
    coefficient = np.float32(min(np.float32(max_norm) / np.float32(total + 1e-6), 1.0))
    with np.errstate(invalid="ignore"):  # an infinite gradient times 0 is NaN, as in torch
        for grad in _gradients(parameters):
            grad.mul_(coefficient)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Rescale the gradients of ``parameters`` (a Tensor or an iterable of them) so that their total
    ``norm_type``-norm is at most ``max_norm``, in place, as ``torch.nn.utils.clip_grad_norm_``.
    Returns the total norm before clipping as a 0-d Tensor; ``error_if_nonfinite=True`` raises
    RuntimeError when it is NaN or infinite."""
    parameters = _as_list(parameters)
    max_norm = _real(max_norm, "max_norm", "clip_grad_norm_")
    grads = _gradients(parameters)
    if not grads:
        return tensor(0.0)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Deprecated alias of ``clip_grad_norm_`` (with torch's warning)."""
    warnings.warn(
        "`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
        FutureWarning,
        stacklevel=2,
    )
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of ``parameters`` into ``[-clip_value, clip_value]`` in place, as
    ``torch.nn.utils.clip_grad_value_`` (NaN stays NaN)."""
    clip_value = _real(clip_value, "clip_value", "clip_grad_value_")
    for grad in _gradients(parameters):
        array = grad._array
        np.clip(array, -clip_value, clip_value, out=array)
