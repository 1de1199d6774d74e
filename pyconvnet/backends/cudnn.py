"""``torch.backends.cudnn``: the flags scripts assign. pyconvnet never uses cuDNN: its own kernels are
deterministic for a given thread count (CPU) or launch (GPU) whatever ``deterministic`` and
``benchmark`` say. ``allow_tf32`` (on by default, as in torch) lets pyconvnet's GPU convolutions use
TF32 tensor cores; set it to False for exact fp32 convolutions."""

import sys
import types

from . import cuda as _cuda

enabled = True
benchmark = False
deterministic = False


def is_available():
    return False


def version():
    return None


class _CudnnModule(types.ModuleType):
    """Makes ``allow_tf32`` a switch that reaches the GPU module when assigned."""

    @property
    def allow_tf32(self):
        return _cuda.TF32["conv"]

    @allow_tf32.setter
    def allow_tf32(self, value):
        _cuda.set_tf32("conv", value)


sys.modules[__name__].__class__ = _CudnnModule
