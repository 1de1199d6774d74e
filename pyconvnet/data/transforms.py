"""Image transforms with torchvision.transforms' names, arguments and meaning.

Each transform takes one sample, a PIL image or a pyconvnet Tensor (..., C, H, W), and
returns the same kind, as torchvision's do: a pipeline reads like
``Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)])``.
The operations themselves are in ``pyconvnet.data.functional``.

The batch path: transforms with ``batched = True`` also offer ``batch(images)`` for a whole
batch of numpy images (N, C, H, W), uint8 while they stand for PIL images and float32 after
``ToTensor``, drawing a fresh random choice for every sample, so one call gives what calling
the transform on each sample would (same distribution; the exact draws differ). The
in-memory datasets (MNIST, CIFAR10, ...) use it when their whole transform is batched;
``Compose`` is batched when every part is.

Randomness comes from the generator that the DataLoader installs while it prepares a batch
(seeded from the loader's seed: see ``pyconvnet.data.loader``), or ``use_generator``'s, and
otherwise from pyconvnet's global generator (``pyconvnet.manual_seed``), where torchvision
draws from torch's global generator.
"""

import contextlib
import math
import numbers
import threading

import numpy as np

from .. import random as _random
from . import functional as F
from .functional import InterpolationMode

__all__ = ["CenterCrop", "ColorJitter", "Compose", "Grayscale", "InterpolationMode", "Lambda", "Normalize", "Pad",
           "PILToTensor", "RandomApply", "RandomCrop", "RandomGrayscale", "RandomHorizontalFlip", "RandomResizedCrop",
           "RandomRotation", "RandomVerticalFlip", "Resize", "ToPILImage", "ToTensor", "Transform", "use_generator"]

_scope = threading.local()


@contextlib.contextmanager
def use_generator(generator):
    """Make random transforms draw from ``generator`` (a numpy Generator) in this thread."""
    previous = getattr(_scope, "generator", None)
    _scope.generator = generator
    try:
        yield generator
    finally:
        _scope.generator = previous


def _rng():
    scoped = getattr(_scope, "generator", None)
    return scoped if scoped is not None else _random.default_generator()


def _probability(p, name):
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


def _images(images, name):
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(f"{name}.batch expects a numpy array (N, C, H, W), got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    return images


class Transform:
    """Base class: ``__call__(img)`` on one sample; batched subclasses also define ``batch``."""

    batched = False

    def __call__(self, img):
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items() if not key.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")
        self.transforms = transforms

    @property
    def batched(self):
        return all(getattr(t, "batched", False) for t in self.transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def batch(self, images):
        for t in self.transforms:
            images = t.batch(images)
        return images

    def __repr__(self):
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({inner}\n)"


class Lambda(Transform):
    """Apply ``lambd``, a function of one image."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)


class RandomApply(Transform):
    """Apply the list of ``transforms`` (in order) with probability ``p``, else none of them."""

    def __init__(self, transforms, p=0.5):
        self.transforms = list(transforms)
        self.p = _probability(p, "RandomApply")

    def __call__(self, img):
        if _rng().random() < self.p:
            for t in self.transforms:
                img = t(img)
        return img


class ToTensor(Transform):
    """PIL image or (H, W[, C]) numpy array -> float32 (C, H, W) Tensor, 8-bit values / 255."""

    batched = True

    def __call__(self, pic):
        return F.to_tensor(pic)

    def batch(self, images):
        if _images(images, "ToTensor").dtype != np.uint8:
            raise TypeError(f"ToTensor.batch: expected uint8 images, got {images.dtype}")
        return F.to_tensor_array(images)


class PILToTensor(Transform):
    """PIL image -> int64 (C, H, W) Tensor of the pixel values (torch gives uint8)."""

    batched = True

    def __call__(self, pic):
        return F.pil_to_tensor(pic)

    def batch(self, images):
        if _images(images, "PILToTensor").dtype != np.uint8:
            raise TypeError(f"PILToTensor.batch: expected uint8 images, got {images.dtype}")
        return images.astype(np.int64)


class ToPILImage(Transform):
    """Tensor (C, H, W) or numpy (H, W[, C]) -> PIL image (float values scaled by 255)."""

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel of a float Tensor, in float32."""

    batched = True

    def __init__(self, mean, std, inplace=False):
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if mean.ndim != 1 or std.ndim != 1:
            raise ValueError(f"Normalize: mean and std must be sequences, got shapes {mean.shape} and {std.shape}")
        if np.any(std == 0):
            raise ValueError(f"Normalize: std evaluated to zero in {std.tolist()}, leading to division by zero")
        self.mean = mean.tolist()
        self.std = std.tolist()
        self.inplace = bool(inplace)

    def __call__(self, tensor):
        if F.is_pil(tensor):
            raise TypeError("Normalize: img should be a Tensor, got a PIL Image (put ToTensor() before Normalize)")
        return F.normalize(tensor, self.mean, self.std, self.inplace)

    def batch(self, images):
        if _images(images, "Normalize").dtype.kind != "f":
            raise TypeError("Normalize: expects float images, got uint8 ones (put ToTensor() before Normalize)")
        return F.normalize_array(images, self.mean, self.std, out=None)


class Pad(Transform):
    """Pad the borders: ``padding`` is an int, (left/right, top/bottom) or (left, top, right, bottom);
    ``padding_mode`` is constant (with ``fill``), edge, reflect or symmetric."""

    batched = True

    def __init__(self, padding, fill=0, padding_mode="constant"):
        self._edges = F.padding_edges(padding, "Pad")
        F.check_padding_mode(padding_mode, fill, "Pad")
        self.padding = padding
        self.fill = fill
        self.padding_mode = padding_mode

    def __call__(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)

    def batch(self, images):
        return F.pad_array(_images(images, "Pad"), self._edges, self.fill, self.padding_mode)


class RandomCrop(Transform):
    """Crop a random ``size`` (int or (h, w)) window, uniform over every position, after an
    optional ``padding`` as in ``Pad``; ``pad_if_needed`` pads a smaller image up to ``size``."""

    batched = True

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = F.size_pair(size, "RandomCrop")
        self._edges = (0, 0, 0, 0) if padding is None else F.padding_edges(padding, "RandomCrop")
        F.check_padding_mode(padding_mode, fill, "RandomCrop")
        self.padding = padding
        self.pad_if_needed = bool(pad_if_needed)
        self.fill = fill
        self.padding_mode = padding_mode

    @staticmethod
    def get_params(img, output_size):
        """(top, left, height, width) of a random ``output_size`` window of ``img``."""
        _, height, width = F.get_dimensions(img)
        crop_height, crop_width = output_size
        top, left = RandomCrop._offsets(height, width, crop_height, crop_width, None)
        return top, left, crop_height, crop_width

    @staticmethod
    def _offsets(height, width, crop_height, crop_width, count):
        if height < crop_height or width < crop_width:
            raise ValueError(f"RandomCrop: required crop size {(crop_height, crop_width)} is larger than the "
                             f"(padded) input image size {(height, width)}")
        rng = _rng()
        return (int(rng.integers(0, height - crop_height + 1)), int(rng.integers(0, width - crop_width + 1))) \
            if count is None else (rng.integers(0, height - crop_height + 1, size=count),
                                   rng.integers(0, width - crop_width + 1, size=count))

    def _missing(self, height, width):
        """torchvision's pad_if_needed: the shortfall on each side, (left, top, right, bottom)."""
        extra_width = max(self.size[1] - width, 0) if self.pad_if_needed else 0
        extra_height = max(self.size[0] - height, 0) if self.pad_if_needed else 0
        return (extra_width, extra_height, extra_width, extra_height)

    def __call__(self, img):
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, height, width = F.get_dimensions(img)
        missing = self._missing(height, width)
        if any(missing):
            img = F.pad(img, list(missing), self.fill, self.padding_mode)
        return F.crop(img, *self.get_params(img, self.size))

    def batch(self, images):
        images = F.pad_array(_images(images, "RandomCrop"), self._edges, self.fill, self.padding_mode)
        images = F.pad_array(images, self._missing(*images.shape[2:]), self.fill, self.padding_mode)
        crop_height, crop_width = self.size
        count = images.shape[0]
        tops, lefts = self._offsets(*images.shape[2:], crop_height, crop_width, count)
        windows = np.lib.stride_tricks.sliding_window_view(images, (crop_height, crop_width), axis=(2, 3))
        # windows is (N, C, H-h+1, W-w+1, h, w); one gather picks each sample's window.
        return windows[np.arange(count), :, tops, lefts]


class CenterCrop(Transform):
    """The centred ``size`` window (zero-padded where the image is smaller)."""

    batched = True

    def __init__(self, size):
        self.size = F.size_pair(size, "CenterCrop")

    def __call__(self, img):
        return F.center_crop(img, self.size)

    def batch(self, images):
        edges, (top, left) = F.center_crop_plan(*_images(images, "CenterCrop").shape[2:], *self.size)
        return F.crop_array(F.pad_array(images, edges), top, left, *self.size)


class _RandomFlip(Transform):
    batched = True
    _flip = None  # the functional op
    _axis = None  # the array axis it reverses

    def __init__(self, p=0.5):
        self.p = _probability(p, type(self).__name__)

    def __call__(self, img):
        return self._flip(img) if _rng().random() < self.p else img

    def batch(self, images):
        flip = _rng().random(_images(images, type(self).__name__).shape[0]) < self.p
        out = images.copy()
        out[flip] = np.flip(images[flip], axis=self._axis)
        return out


class RandomHorizontalFlip(_RandomFlip):
    """Mirror left-right with probability ``p``."""

    _flip = staticmethod(F.hflip)
    _axis = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror top-bottom with probability ``p``."""

    _flip = staticmethod(F.vflip)
    _axis = -2


class Resize(Transform):
    """Resize to ``size``: an int sets the shorter edge (keeping the aspect ratio), (h, w) both."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
        F.size_pair(size, "Resize")
        if max_size is not None and isinstance(size, (tuple, list)) and len(size) == 2:
            raise ValueError("Resize: max_size is only allowed when size is an int")
        F.check_interpolation(interpolation)
        self.size = size
        self.interpolation = interpolation
        self.max_size = max_size
        self.antialias = antialias

    def __call__(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)


def _range(value, name, low, high):
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(isinstance(v, numbers.Real) for v in value):
        raise TypeError(f"{name} should be a sequence of two numbers, got {value!r}")
    if not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} values should be ordered and within [{low}, {high}], got {value!r}")
    return (float(value[0]), float(value[1]))


class RandomResizedCrop(Transform):
    """A random window covering a ``scale`` share of the area with aspect ratio in ``ratio``
    (drawn as torchvision draws it), resized to ``size``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
        self.size = F.size_pair(size, "RandomResizedCrop")
        self.scale = _range(scale, "RandomResizedCrop: scale", 0.0, math.inf)
        self.ratio = _range(ratio, "RandomResizedCrop: ratio", 1e-12, math.inf)
        F.check_interpolation(interpolation)
        self.interpolation = interpolation
        self.antialias = antialias

    @staticmethod
    def get_params(img, scale, ratio):
        """(top, left, height, width): ten tries at a random window, then the centred one
        with the nearest allowed aspect ratio."""
        _, height, width = F.get_dimensions(img)
        area = height * width
        rng = _rng()
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(scale[0], scale[1])
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            w, h = int(round(height * max(ratio))), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        top, left, h, w = self.get_params(img, self.scale, self.ratio)
        return F.resized_crop(img, top, left, h, w, self.size, self.interpolation, self.antialias)


class RandomRotation(Transform):
    """Rotate by an angle drawn uniformly from ``degrees`` ((min, max), or a number d for (-d, d)),
    counter-clockwise; see ``functional.rotate`` for ``expand``, ``center`` and ``fill``."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=0):
        if isinstance(degrees, numbers.Real) and not isinstance(degrees, bool):
            if degrees < 0:
                raise ValueError(f"RandomRotation: if degrees is a single number, it must be positive, got {degrees}")
            degrees = (-degrees, degrees)
        self.degrees = _range(degrees, "RandomRotation: degrees", -math.inf, math.inf)
        F.check_interpolation(interpolation)
        if center is not None and (not isinstance(center, (tuple, list)) or len(center) != 2):
            raise ValueError(f"RandomRotation: center should be a sequence of two numbers, got {center!r}")
        self.interpolation = interpolation
        self.expand = bool(expand)
        self.center = center
        self.fill = fill

    @staticmethod
    def get_params(degrees):
        return float(_rng().uniform(degrees[0], degrees[1]))

    def __call__(self, img):
        angle = self.get_params(self.degrees)
        return F.rotate(img, angle, self.interpolation, self.expand, self.center, self.fill)


def _jitter_range(value, name, centre, bound, clip_at_zero):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"ColorJitter: if {name} is a single number, it must be non negative, got {value}")
        value = (centre - value, centre + value)
        if clip_at_zero:
            value = (max(value[0], 0.0), value[1])
    value = _range(value, f"ColorJitter: {name}", *bound)
    return None if value[0] == value[1] == centre else value


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue changes, applied in a random order.

    A number ``b`` draws the factor from [max(0, 1 - b), 1 + b] (hue: [-h, h], h <= 0.5); a
    pair (min, max) gives the range itself."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = _jitter_range(brightness, "brightness", 1.0, (0.0, math.inf), True)
        self.contrast = _jitter_range(contrast, "contrast", 1.0, (0.0, math.inf), True)
        self.saturation = _jitter_range(saturation, "saturation", 1.0, (0.0, math.inf), True)
        self.hue = _jitter_range(hue, "hue", 0.0, (-0.5, 0.5), False)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue):
        """(order of the four adjustments, then each factor or None)."""
        rng = _rng()
        order = rng.permutation(4).tolist()
        factors = [None if r is None else float(rng.uniform(r[0], r[1]))
                   for r in (brightness, contrast, saturation, hue)]
        return (order, *factors)

    def __call__(self, img):
        order, *factors = self.get_params(self.brightness, self.contrast, self.saturation, self.hue)
        adjust = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        for index in order:
            if factors[index] is not None:
                img = adjust[index](img, factors[index])
        return img


class Grayscale(Transform):
    """Convert to grayscale with ``num_output_channels`` (1, or 3 equal ones)."""

    def __init__(self, num_output_channels=1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale: num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        return F.rgb_to_grayscale(img, self.num_output_channels)


class RandomGrayscale(Transform):
    """Convert to grayscale (keeping the channel count) with probability ``p``."""

    def __init__(self, p=0.1):
        self.p = _probability(p, "RandomGrayscale")

    def __call__(self, img):
        if _rng().random() >= self.p:
            return img
        return F.rgb_to_grayscale(img, F.get_dimensions(img)[0])
