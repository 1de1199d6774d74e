"""Image transforms on float32 numpy arrays, for one sample (C, H, W) or a whole batch (N, C, H, W).

The names and arguments follow torchvision.transforms; the input is the float32 array that
pyconvnet's datasets produce (torchvision would hand a PIL image through ``ToTensor``, which
pyconvnet skips). Every transform here has ``batched = True``: a dataset whose ``transform``
is batched applies it once to each gathered batch instead of once per sample. Random
transforms draw a fresh choice for every sample of a batch, so both ways give the same
distribution of outputs.

Randomness comes from, in order: the transform's own ``generator=`` (a ``numpy.random.Generator``),
the generator the DataLoader installs while it prepares a batch (derived from the loader's
seed, so the output does not depend on prefetching or worker threads), and otherwise
pyconvnet's global generator (``pyconvnet.manual_seed``).
"""

import contextlib
import numbers
import threading

import numpy as np

from .. import random as _random

__all__ = ["Transform", "Compose", "Normalize", "Pad", "RandomCrop", "RandomHorizontalFlip"]

_scope = threading.local()


@contextlib.contextmanager
def use_generator(generator):
    """Make random transforms without their own generator draw from ``generator`` in this thread."""
    previous = getattr(_scope, "generator", None)
    _scope.generator = generator
    try:
        yield generator
    finally:
        _scope.generator = previous


def _check_generator(generator):
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator or None, got {type(generator).__name__}")
    return generator


class Transform:
    """Base class: ``__call__`` accepts (C, H, W) or (N, C, H, W); subclasses implement ``_batch``."""

    batched = True
    generator = None

    def __call__(self, image):
        if not isinstance(image, np.ndarray):
            raise TypeError(f"{type(self).__name__} expects a numpy array, got {type(image).__name__}")
        if image.ndim == 4:
            return self._batch(image)
        if image.ndim == 3:
            return self._batch(image[None])[0]
        raise ValueError(
            f"{type(self).__name__} expects an image (C, H, W) or a batch (N, C, H, W), got shape {image.shape}"
        )

    def _batch(self, images):
        raise NotImplementedError

    def _rng(self):
        if self.generator is not None:
            return self.generator
        scoped = getattr(_scope, "generator", None)
        return scoped if scoped is not None else _random.default_generator()


class Compose:
    """Apply ``transforms`` in order; batched when every one of them is."""

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")
        self.transforms = transforms
        self.batched = all(getattr(t, "batched", False) for t in transforms)

    def __call__(self, image):
        for t in self.transforms:
            image = t(image)
        return image

    def __repr__(self):
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose({inner}\n)"


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel, in float32 like torchvision's ``Normalize``."""

    def __init__(self, mean, std):
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if mean.ndim != 1 or std.ndim != 1:
            raise ValueError(f"Normalize: mean and std must be sequences, got shapes {mean.shape} and {std.shape}")
        if np.any(std == 0):
            raise ValueError(f"Normalize: std evaluated to zero in {std.tolist()}, leading to division by zero")
        self.mean = mean
        self.std = std

    def _batch(self, images):
        channels = images.shape[1]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, channels):
                raise ValueError(
                    f"Normalize: {name} has {values.size} values but the input has {channels} channels "
                    f"(shape {images.shape})"
                )
        out = np.subtract(images, self.mean.reshape(-1, 1, 1), dtype=np.float32)
        np.divide(out, self.std.reshape(-1, 1, 1), out=out)
        return out

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


_PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _padding_edges(padding, name):
    """torchvision's padding forms -> (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        edges = (int(padding),) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) in (1, 2, 4):
        if not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding):
            raise TypeError(f"{name}: padding values must be ints, got {padding!r}")
        values = tuple(int(p) for p in padding)
        edges = values * 4 if len(values) == 1 else values * 2 if len(values) == 2 else values
    else:
        raise TypeError(f"{name}: padding must be an int or a sequence of 1, 2 or 4 ints, got {padding!r}")
    if min(edges) < 0:
        raise ValueError(f"{name}: padding must be non-negative, got {padding!r}")
    return edges


def _pad(images, edges, fill, padding_mode):
    left, top, right, bottom = edges
    if not any(edges):
        return images
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    if padding_mode == "constant":
        return np.pad(images, widths, mode="constant", constant_values=fill)
    return np.pad(images, widths, mode=padding_mode)


def _check_padding_mode(padding_mode, fill, name):
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    if not isinstance(fill, numbers.Real) or isinstance(fill, bool):
        raise TypeError(f"{name}: fill must be a number, got {fill!r}")


class Pad(Transform):
    """Pad the last two dimensions: ``padding`` is an int, (left/right, top/bottom) or
    (left, top, right, bottom); ``padding_mode`` is constant (with ``fill``), edge, reflect or symmetric."""

    def __init__(self, padding, fill=0, padding_mode="constant"):
        self.edges = _padding_edges(padding, "Pad")
        _check_padding_mode(padding_mode, fill, "Pad")
        self.padding = padding
        self.fill = fill
        self.padding_mode = padding_mode

    def _batch(self, images):
        return _pad(images, self.edges, self.fill, self.padding_mode)

    def __repr__(self):
        return f"Pad(padding={self.padding!r}, fill={self.fill!r}, padding_mode={self.padding_mode!r})"


def _size_pair(size, name):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) in (1, 2) and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size
    ):
        size = (int(size[0]), int(size[-1]))
    else:
        raise TypeError(f"{name}: size must be an int or a sequence of 1 or 2 ints, got {size!r}")
    if min(size) <= 0:
        raise ValueError(f"{name}: size must be positive, got {size!r}")
    return size


class RandomCrop(Transform):
    """Crop a random ``size`` (int or (h, w)) window, after optional ``padding`` as in ``Pad``.

    Each sample gets its own offset, uniform over every window position, like torchvision.
    ``pad_if_needed`` pads an image smaller than ``size`` up to it first.
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant", generator=None):
        self.size = _size_pair(size, "RandomCrop")
        self.edges = (0, 0, 0, 0) if padding is None else _padding_edges(padding, "RandomCrop")
        _check_padding_mode(padding_mode, fill, "RandomCrop")
        self.padding = padding
        self.pad_if_needed = bool(pad_if_needed)
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = _check_generator(generator)

    def _batch(self, images):
        images = _pad(images, self.edges, self.fill, self.padding_mode)
        crop_h, crop_w = self.size
        if self.pad_if_needed:
            extra_w = max(crop_w - images.shape[3], 0)
            extra_h = max(crop_h - images.shape[2], 0)
            images = _pad(images, (extra_w, extra_h, extra_w, extra_h), self.fill, self.padding_mode)
        n, _, height, width = images.shape
        if height < crop_h or width < crop_w:
            raise ValueError(
                f"RandomCrop: crop size {self.size} is larger than the (padded) image size {(height, width)}"
            )
        rng = self._rng()
        tops = rng.integers(0, height - crop_h + 1, size=n)
        lefts = rng.integers(0, width - crop_w + 1, size=n)
        windows = np.lib.stride_tricks.sliding_window_view(images, (crop_h, crop_w), axis=(2, 3))
        # windows is (N, C, H-h+1, W-w+1, h, w); one gather picks each sample's window.
        return windows[np.arange(n), :, tops, lefts]

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding!r})"


class RandomHorizontalFlip(Transform):
    """Mirror each sample left-right with probability ``p``."""

    def __init__(self, p=0.5, generator=None):
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.generator = _check_generator(generator)

    def _batch(self, images):
        flip = self._rng().random(images.shape[0]) < self.p
        out = images.copy()
        out[flip] = images[flip, :, :, ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"
