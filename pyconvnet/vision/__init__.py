"""torchvision's module paths: ``pyconvnet.vision.datasets``, ``.transforms``, ``.models`` and
``.utils`` are ``torchvision.datasets``, ``torchvision.transforms``, ``torchvision.models`` and
``torchvision.utils``.

The datasets and transforms are implemented in ``pyconvnet.data`` and only named here;
``utils`` (make_grid, save_image) lives here.
"""

from . import datasets, models, transforms, utils

__all__ = ["datasets", "models", "transforms", "utils"]
