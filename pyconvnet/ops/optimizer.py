"""Fused in-place optimiser updates for ``pyconvnet.optim`` (internal, not part of nn.functional).

Each call updates one float32, C-contiguous numpy parameter and its state arrays in place with
torch.optim's single-tensor (``foreach=False``) arithmetic, in one pass of a C++ kernel.
"""

from .. import kernels

__all__ = []


def sgd_update_(
    param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
    maximize=False, first_step
):
    """One ``torch.optim.SGD`` step. ``momentum_buffer`` (param-shaped, may be None when
    ``momentum == 0``) is overwritten with the gradient when ``first_step``, otherwise updated
    as ``momentum * buf + (1 - dampening) * grad``."""
    kernels.sgd_update(param, grad, momentum_buffer, float(lr), float(momentum), float(dampening), float(weight_decay),
                       bool(nesterov), bool(maximize), bool(first_step))


def adam_update_(
    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps, weight_decay, amsgrad,
    maximize, decoupled_weight_decay
):
    """One ``torch.optim.Adam`` (or, with ``decoupled_weight_decay``, ``AdamW``) step; ``step``
    counts updates including this one (1 on the first). ``max_exp_avg_sq`` is needed only with
    ``amsgrad``."""
    kernels.adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, int(step), float(lr), float(beta1),
                        float(beta2), float(eps), float(weight_decay), bool(amsgrad), bool(maximize),
                        bool(decoupled_weight_decay))


def rmsprop_update_(
    param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps, weight_decay, momentum, centered, maximize
):
    """One ``torch.optim.RMSprop`` step. ``grad_avg`` is needed only when ``centered`` and
    ``momentum_buffer`` only when ``momentum > 0``; every buffer starts at zero."""
    kernels.rmsprop_update(param, grad, square_avg, grad_avg, momentum_buffer, float(lr), float(alpha), float(eps),
                           float(weight_decay), float(momentum), bool(centered), bool(maximize))


def adagrad_update_(param, grad, state_sum, *, step, lr, lr_decay, eps, weight_decay, maximize):
    """One ``torch.optim.Adagrad`` step at the rate ``lr / (1 + (step - 1) * lr_decay)``; ``step``
    counts updates including this one."""
    kernels.adagrad_update(param, grad, state_sum, int(step), float(lr), float(lr_decay), float(eps),
                           float(weight_decay), bool(maximize))


def adadelta_update_(param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize):
    """One ``torch.optim.Adadelta`` step."""
    kernels.adadelta_update(param, grad, square_avg, acc_delta, float(lr), float(rho), float(eps), float(weight_decay),
                            bool(maximize))
