"""``torch.utils``'s module paths: ``pyconvnet.utils.data`` is ``torch.utils.data``."""

from . import data

__all__ = ["data"]
