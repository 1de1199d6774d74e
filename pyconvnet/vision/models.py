"""``torchvision.models``: the classic architectures of ``pyconvnet.models`` under torchvision's
module path, with its builder keywords (``weights=None``, ``num_classes=``)."""

from ..models import *  # noqa: F401,F403
from ..models import __all__  # noqa: F401
