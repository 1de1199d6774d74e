"""pyconvnet: fast CPU training of classic convolutional networks behind a PyTorch-like API.

``import pyconvnet as torch`` is meant to run ported PyTorch CNN scripts unchanged; the
public names below mirror torch's.
"""

from . import backend
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .random import manual_seed
from .tensor import (
    Size,
    Tensor,
    bool_,
    empty,
    float32,
    from_numpy,
    int64,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from . import nn  # noqa: E402  (after Tensor: nn's ops build on it)
from . import models
from .summary import summary

# torch's dtype aliases (they shadow the builtins only inside this namespace, as in torch).
float = float32
long = int64
bool = bool_

__version__ = "0.1.0"
