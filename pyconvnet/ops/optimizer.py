"""Fused in-place optimiser updates for ``pyconvnet.optim`` (internal, not part of nn.functional).

Each call updates one float32, C-contiguous numpy parameter and its state arrays in place with
torch.optim's single-tensor (``foreach=False``) arithmetic, in one pass of a C++ kernel.
"""

from .. import _C

__all__ = []


def sgd_update_(
    param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
    maximize=False, first_step
):
    """One ``torch.optim.SGD`` step. ``momentum_buffer`` (param-shaped, may be None when
    ``momentum == 0``) is overwritten with the gradient when ``first_step``, otherwise updated
    as ``momentum * buf + (1 - dampening) * grad``."""
    _C.sgd_update(param, grad, momentum_buffer, float(lr), float(momentum), float(dampening), float(weight_decay),
                  bool(nesterov), bool(maximize), bool(first_step))


def adam_update_(
    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps, weight_decay, amsgrad,
    maximize, decoupled_weight_decay
):
    """One ``torch.optim.Adam`` (or, with ``decoupled_weight_decay``, ``AdamW``) step; ``step``
    counts updates including this one (1 on the first). ``max_exp_avg_sq`` is needed only with
    ``amsgrad``."""
    _C.adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, int(step), float(lr), float(beta1), float(beta2),
                   float(eps), float(weight_decay), bool(amsgrad), bool(maximize), bool(decoupled_weight_decay))
