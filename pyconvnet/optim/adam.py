"""Adam and AdamW (torch.optim.Adam / torch.optim.AdamW), with amsgrad and maximize."""

from ..ops.optimizer import adam_update_
from .optimizer import Optimizer, _zero_step, _zeros_like

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """torch.optim.Adam: per parameter, with ``g`` the gradient (negated when ``maximize``)
    and ``t`` the step count::

        g = g + weight_decay * p            (or, decoupled: p = p * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v) with amsgrad, else v
        p = p - lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)

    State per parameter, under torch's names: ``step`` (a float32 scalar Tensor), ``exp_avg``,
    ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``. Each update is one fused kernel pass.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {index}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _update_group(self, group):
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        options = dict(
            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
            amsgrad=amsgrad, maximize=group["maximize"], decoupled_weight_decay=group["decoupled_weight_decay"],
        )
        for param, grad, state in self._params_with_grad(group):
            if not state:
                state["step"] = _zero_step()
                state["exp_avg"] = _zeros_like(param)
                state["exp_avg_sq"] = _zeros_like(param)
            max_exp_avg_sq = None
            if amsgrad:
                if "max_exp_avg_sq" not in state:
                    state["max_exp_avg_sq"] = _zeros_like(param)
                max_exp_avg_sq = state["max_exp_avg_sq"]._array
            step = state["step"]._array
            step += 1  # counted in float32, as torch does
            adam_update_(param._array, grad._array, state["exp_avg"]._array, state["exp_avg_sq"]._array,
                         max_exp_avg_sq, step=int(step), **options)


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (default 1e-2)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
