"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (torch.optim.SGD)."""

import numpy as np

from ..ops.optimizer import sgd_update_many_
from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """torch.optim.SGD: per parameter, with ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p
        buf = g on the first step, else momentum * buf + (1 - dampening) * g   (momentum != 0)
        g = g + momentum * buf if nesterov else buf                             (momentum != 0)
        p = p - lr * g

    The state ``momentum_buffer`` exists only when ``momentum != 0``. Each update is one fused
    kernel pass per parameter, all of a group's in one call.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _update_group(self, group):
        momentum = group["momentum"]
        options = dict(
            lr=group["lr"], momentum=momentum, dampening=group["dampening"], weight_decay=group["weight_decay"],
            nesterov=group["nesterov"], maximize=group["maximize"],
        )
        params, grads, buffers, first_steps = [], [], [], []
        for param in group["params"]:
            grad = param._grad
            if grad is None:
                continue
            buffer, first_step = None, False
            if momentum != 0:
                state = self.state[param]
                buffer = state.get("momentum_buffer")
                first_step = buffer is None
                if first_step:  # the kernel overwrites it with the gradient
                    buffer = state["momentum_buffer"] = Tensor._wrap(np.empty_like(param._array))
                buffer = buffer._array
            params.append(param._array)
            grads.append(grad._array)
            buffers.append(buffer)
            first_steps.append(first_step)
        sgd_update_many_(params, grads, buffers, first_steps=first_steps, **options)
