"""RMSprop (torch.optim.RMSprop), with momentum, centering, weight decay and maximize."""

from ..ops.optimizer import rmsprop_update_
from .optimizer import Optimizer, _zero_step, _zeros_like

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """torch.optim.RMSprop: per parameter, with ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        m = alpha * m + (1 - alpha) * g;  v_c = v - m * m     (centered, else v_c = v)
        buf = momentum * buf + g / (sqrt(v_c) + eps);  p = p - lr * buf   (momentum > 0)
        p = p - lr * g / (sqrt(v_c) + eps)                                 (otherwise)

    State per parameter, under torch's names: ``step`` (a float32 scalar Tensor), ``square_avg``,
    ``momentum_buffer`` when ``momentum > 0`` and ``grad_avg`` when ``centered``, all starting at
    zero. Each update is one fused kernel pass. ``maximize`` is keyword-only here (torch takes
    ``capturable`` and ``foreach`` before it, which pyconvnet does not have).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(
            lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered, weight_decay=weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _update_group(self, group):
        momentum, centered = group["momentum"], group["centered"]
        options = dict(
            lr=group["lr"], alpha=group["alpha"], eps=group["eps"], weight_decay=group["weight_decay"],
            momentum=momentum, centered=centered, maximize=group["maximize"],
        )
        for param, grad, state in self._params_with_grad(group):
            if not state:
                state["step"] = _zero_step()
                state["square_avg"] = _zeros_like(param)
                if momentum > 0:
                    state["momentum_buffer"] = _zeros_like(param)
                if centered:
                    state["grad_avg"] = _zeros_like(param)
            state["step"]._array += 1
            grad_avg = state["grad_avg"]._array if centered else None
            buffer = state["momentum_buffer"]._array if momentum > 0 else None
            rmsprop_update_(param._array, grad._array, state["square_avg"]._array, grad_avg, buffer, **options)
