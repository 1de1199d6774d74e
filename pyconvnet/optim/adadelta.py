"""Adadelta (torch.optim.Adadelta), with weight decay and maximize."""

from ..ops.optimizer import adadelta_update_
from .optimizer import Optimizer, _zero_step, _zeros_like

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """torch.optim.Adadelta: per parameter, with ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta

    State per parameter, under torch's names: ``step`` (a float32 scalar Tensor), ``square_avg``
    (v) and ``acc_delta`` (u), both starting at zero. Each update is one fused kernel pass.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update_group(self, group):
        options = dict(
            lr=group["lr"], rho=group["rho"], eps=group["eps"], weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        for param, grad, state in self._params_with_grad(group):
            if not state:
                state["step"] = _zero_step()
                state["square_avg"] = _zeros_like(param)
                state["acc_delta"] = _zeros_like(param)
            state["step"]._array += 1
            adadelta_update_(param._array, grad._array, state["square_avg"]._array, state["acc_delta"]._array,
                             **options)
