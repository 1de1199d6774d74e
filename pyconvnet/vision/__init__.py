"""torchvision's module paths: ``pyconvnet.vision.datasets``, ``.transforms`` and ``.utils``
are ``torchvision.datasets``, ``torchvision.transforms`` and ``torchvision.utils``.

The datasets and transforms are implemented in ``pyconvnet.data`` and only named here;
``utils`` (make_grid, save_image) lives here.
"""

from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]
