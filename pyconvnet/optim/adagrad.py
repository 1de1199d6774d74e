"""Adagrad (torch.optim.Adagrad), with learning-rate decay, weight decay and maximize."""

import numpy as np

from ..ops.optimizer import adagrad_update_
from ..tensor import Tensor
from .optimizer import Optimizer, _zero_step

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """torch.optim.Adagrad: per parameter, with ``g`` the gradient (negated when ``maximize``)
    and ``t`` the step count::

        g = g + weight_decay * p
        sum = sum + g * g
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)

    State per parameter, under torch's names: ``step`` (a float32 scalar Tensor) and ``sum``.
    As in torch, the constructor creates every parameter's state, and ``sum`` starts at the
    constructor's ``initial_accumulator_value`` for every group (also for groups added later,
    whatever value they carry). Each update is one fused kernel pass.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = dict(
            lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, maximize=maximize,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for param in group["params"]:
                self._init_state(param)

    def _init_state(self, param):
        state = self.state[param]
        state["step"] = _zero_step()
        state["sum"] = Tensor._wrap(np.full_like(param._array, self.defaults["initial_accumulator_value"]))
        return state

    def _update_group(self, group):
        options = dict(
            lr=group["lr"], lr_decay=group["lr_decay"], eps=group["eps"], weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
        for param, grad, state in self._params_with_grad(group):
            state = state or self._init_state(param)
            step = state["step"]._array
            step += 1  # counted in float32, as torch does
            adagrad_update_(param._array, grad._array, state["sum"]._array, step=int(step), **options)
