"""torchvision's module paths: ``pyconvnet.vision.datasets``, ``.transforms`` and ``.utils``
are ``torchvision.datasets``, ``torchvision.transforms`` and ``torchvision.utils``.

Each submodule names objects implemented elsewhere in pyconvnet (datasets and transforms in
``pyconvnet.data``); nothing here is a second implementation.
"""

from . import datasets, transforms

__all__ = ["datasets", "transforms"]
