"""``torchvision.transforms`` under its module path: the transforms of pyconvnet.data.transforms."""

from ..data.transforms import *  # noqa: F403 (the module's __all__)
from ..data.transforms import __all__  # noqa: F401
