"""``torchvision.transforms.functional`` under its module path: pyconvnet.data.functional's operations."""

from ...data.functional import *  # noqa: F403 (the module's __all__)
from ...data.functional import __all__  # noqa: F401
