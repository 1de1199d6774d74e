"""Optimisers and learning-rate schedulers (torch.optim): ``SGD``, ``Adam``, ``AdamW`` on the
fused C++ update kernels, and ``lr_scheduler``."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
