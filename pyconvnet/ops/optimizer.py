"""Fused in-place optimiser updates for ``pyconvnet.optim`` (internal, not part of nn.functional).

Each call updates one float32, C-contiguous numpy parameter and its state arrays in place with
torch.optim's single-tensor (``foreach=False``) arithmetic, in one pass of a C++ kernel
(``sgd_update_many_``: a list of them in one call).
"""

from .. import _C, _array, kernels

__all__ = []


def sgd_update_(
    param, grad, momentum_buffer, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
    maximize=False, first_step
):
    """One ``torch.optim.SGD`` step. ``momentum_buffer`` (param-shaped, may be None when
    ``momentum == 0``) is overwritten with the gradient when ``first_step``, otherwise updated
    as ``momentum * buf + (1 - dampening) * grad``."""
    kernels.sgd_update(param, grad, momentum_buffer, *_sgd_options(lr=lr, momentum=momentum, dampening=dampening,
                                                                  weight_decay=weight_decay, nesterov=nesterov,
                                                                  maximize=maximize), bool(first_step))


def sgd_update_many_(params, grads, momentum_buffers, *, first_steps, **options):
    """``sgd_update_`` of every (param, grad, momentum_buffer, first_step) of the lists with the
    same ``options``: one call of the CPU kernels for all of them (GPU arrays: one call each)."""
    if kernels.gpu_array_type is not None and any(_array.on_gpu(param) for param in params):
        for update in zip(params, grads, momentum_buffers, first_steps):
            sgd_update_(*update[:3], first_step=update[3], **options)
        return
    _C.sgd_update_many(params, grads, momentum_buffers, first_steps, *_sgd_options(**options))


def _sgd_options(*, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    return float(lr), float(momentum), float(dampening), float(weight_decay), bool(nesterov), bool(maximize)


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
