"""``torchvision.utils``: ``make_grid`` tiles a batch of images into one, ``save_image`` writes it.

Both follow torchvision's rules: single-channel images become three equal channels, images are
placed row by row, ``nrow`` to a row, with ``padding`` pixels of ``pad_value`` around each, and
a batch of one image comes back as that image.
"""

import math
import numbers

import numpy as np

from ..data.functional import pillow
from ..creation import from_numpy
from ..tensor import Tensor

__all__ = ["make_grid", "save_image"]


def _images(tensor):
    """The (N, C, H, W) float32 array of a Tensor, a list of (C, H, W) Tensors, or one image."""
    if isinstance(tensor, (list, tuple)):
        if not tensor or not all(isinstance(t, Tensor) for t in tensor):
            raise TypeError("make_grid: a list must hold Tensors of one shape")
        shapes = {tuple(t.shape) for t in tensor}
        if len(shapes) > 1:
            raise ValueError(f"make_grid: the images have different shapes {sorted(shapes)}")
        array = np.stack([t.detach().numpy() for t in tensor])
    elif isinstance(tensor, Tensor):
        array = tensor.detach().numpy()
    else:
        raise TypeError(f"make_grid: tensor should be a Tensor or a list of Tensors, got {type(tensor).__name__}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"make_grid: expected (N, C, H, W), (C, H, W) or (H, W), got shape {array.shape}")
    if array.shape[1] == 1:
        array = np.repeat(array, 3, axis=1)
    return array.astype(np.float32)


def _rescale(array, value_range):
    """Clamp to ``value_range`` (default: the array's min and max) and map it onto [0, 1]."""
    low, high = value_range if value_range is not None else (float(array.min()), float(array.max()))
    return (np.clip(array, low, high) - low) / max(high - low, 1e-5)


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0):
    """One (C, H', W') Tensor showing the images of ``tensor`` (N, C, H, W) in a grid.

    ``normalize`` maps ``value_range`` (default: the batch's min and max; with ``scale_each``
    each image's own) onto [0, 1] after clamping to it."""
    for name, value in (("nrow", nrow), ("padding", padding)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < (1 if name == "nrow" else 0):
            raise ValueError(f"make_grid: {name} must be a {'positive' if name == 'nrow' else 'non-negative'} int, "
                             f"got {value!r}")
    if value_range is not None and not (isinstance(value_range, tuple) and len(value_range) == 2):
        raise TypeError("make_grid: value_range has to be a tuple (min, max) if specified")
    images = _images(tensor)
    if normalize:
        images = np.stack([_rescale(image, value_range) for image in images]) if scale_each \
            else _rescale(images, value_range)
    if images.shape[0] == 1:
        return from_numpy(np.ascontiguousarray(images[0]))
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    cell_height, cell_width = height + padding, width + padding
    grid = np.full((channels, rows * cell_height + padding, columns * cell_width + padding), pad_value, np.float32)
    for index, image in enumerate(images):
        top = (index // columns) * cell_height + padding
        left = (index % columns) * cell_width + padding
        grid[:, top : top + height, left : left + width] = image
    return from_numpy(grid)


def save_image(tensor, fp, format=None, **kwargs):
    """Write ``make_grid(tensor, **kwargs)`` as an 8-bit image (values in [0, 1] scaled by 255 and
    rounded) to the path or file ``fp``, in ``format`` or the one its name implies."""
    grid = make_grid(tensor, **kwargs).numpy()
    pixels = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    pillow().fromarray(np.ascontiguousarray(pixels)).save(fp, format=format)
