"""Optimisers and learning-rate schedulers (torch.optim): ``SGD``, ``Adam``, ``AdamW``,
``RMSprop``, ``Adagrad`` and ``Adadelta`` on the fused C++ update kernels, and ``lr_scheduler``."""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "lr_scheduler"]
