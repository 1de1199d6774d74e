"""Loss layers: ``CrossEntropyLoss``, ``NLLLoss`` and ``MSELoss``.

Unlike torch, the deprecated ``size_average``/``reduce`` arguments are not accepted, and the
arguments after ``weight`` are keyword-only, so a positional call written for torch's order
fails loudly instead of binding the wrong argument.
"""

from .. import functional as F
from ...ops.loss import _reduction_code
from ...tensor import Tensor
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss"]


class _Loss(Module):
    def __init__(self, reduction):
        super().__init__()
        _reduction_code(reduction, None, None, type(self).__name__)  # ValueError unless a valid name
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with optional per-class ``weight``, kept as a buffer (so it is in state_dict)."""

    def __init__(self, weight, reduction):
        super().__init__(reduction)
        if weight is not None and not isinstance(weight, Tensor):
            raise TypeError(f"{type(self).__name__}: weight must be a Tensor or None, got {type(weight).__name__}")
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Log-softmax over dim 1 followed by NLL of class-index (or class-probability) targets
    (torch.nn.CrossEntropyLoss), with class ``weight``, ``ignore_index`` and
    ``label_smoothing``."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class-index targets under log-probabilities (torch.nn.NLLLoss)."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error between same-shaped input and target (torch.nn.MSELoss)."""

    def __init__(self, *, reduction="mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
