"""``torchvision.transforms`` under its module path: the transforms of pyconvnet.data.transforms,
and ``functional`` (``torchvision.transforms.functional``)."""

from ...data.transforms import *  # noqa: F403 (the module's __all__)
from ...data.transforms import __all__ as _names
from . import functional

__all__ = [*_names, "functional"]
