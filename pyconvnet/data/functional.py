"""Image operations behind the transforms (``torchvision.transforms.functional``).

Each public function takes a PIL image and returns one, or takes a pyconvnet Tensor of shape
(..., C, H, W) and returns a Tensor, with torchvision's names, arguments and results. The
Tensor path works on the numpy array underneath through the ``*_array`` helpers, which the
transforms' batch path (``Transform.batch``) calls too. Differences from torchvision, from
pyconvnet's dtypes: ``pil_to_tensor`` gives int64 where torch gives uint8 (and integer Tensors
are taken as 0..255 images wherever torchvision takes uint8 ones); Tensors resize and rotate
with nearest or bilinear interpolation only.

Pillow is an optional extra (``pip install 'pyconvnet[image]'``): it is imported when a
PIL image is made, never for Tensors.
"""

import enum
import math
import numbers
import sys

import numpy as np

from ..creation import from_numpy
from ..tensor import Tensor

__all__ = ["InterpolationMode", "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation",
           "center_crop", "crop", "get_dimensions", "get_image_size", "hflip", "normalize", "pad", "pil_to_tensor",
           "resize", "resized_crop", "rgb_to_grayscale", "rotate", "to_grayscale", "to_pil_image", "to_tensor", "vflip"]


class InterpolationMode(enum.Enum):
    """Interpolation for resizing, as torchvision names them (Tensors: NEAREST and BILINEAR)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def pillow():
    """The ``PIL.Image`` module, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("decoding and transforming images needs Pillow: pip install 'pyconvnet[image]' "
                          "(or pip install pillow)") from error
    return Image


def is_pil(img):
    image = sys.modules.get("PIL.Image")  # never import Pillow just to ask
    return image is not None and isinstance(img, image.Image)


def _array(img, name):
    """The (..., C, H, W) array under Tensor ``img``; TypeError for anything else."""
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"{name}: expected a Tensor image (..., C, H, W), got shape {tuple(img.shape)}")
        return img.detach().numpy()
    raise TypeError(f"{name}: img should be a PIL Image or a Tensor, got {type(img).__name__}")


def _tensor(array):
    return from_numpy(np.ascontiguousarray(array))


def _bound(array):
    return 1.0 if array.dtype.kind == "f" else 255


def get_dimensions(img):
    """[channels, height, width]."""
    if is_pil(img):
        return [len(img.getbands()), img.height, img.width]
    shape = _array(img, "get_dimensions").shape
    return [shape[-3] if len(shape) > 2 else 1, shape[-2], shape[-1]]


def get_image_size(img):
    """[width, height]."""
    _, height, width = get_dimensions(img)
    return [width, height]


# ----------------------------------------------------------------------------- conversions
def to_tensor(pic):
    """A PIL image or an (H, W[, C]) numpy array -> a float32 (C, H, W) Tensor; 8-bit pixels
    are divided by 255 (into [0, 1]), 32-bit integer and float images are converted as they are."""
    if is_pil(pic):
        array = np.asarray(pic)
        if pic.mode == "1":
            array = array.astype(np.uint8) * np.uint8(255)
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"to_tensor: pic should be 2 or 3 dimensional, got shape {pic.shape}")
        array = pic
    else:
        raise TypeError(f"to_tensor: pic should be a PIL Image or a numpy array, got {type(pic).__name__}")
    return _tensor(to_tensor_array(_hwc_to_chw(array)))


def _hwc_to_chw(array):
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, -3)


def to_tensor_array(array):
    """(..., C, H, W) uint8 -> float32 / 255; other dtypes -> float32 as they are."""
    out = np.empty(array.shape, dtype=np.float32)
    if array.dtype == np.uint8:
        return np.divide(array, np.float32(255), out=out)
    out[...] = array
    return out


def pil_to_tensor(pic):
    """A PIL image -> an int64 (C, H, W) Tensor of its pixel values (torch: uint8)."""
    if not is_pil(pic):
        raise TypeError(f"pil_to_tensor: pic should be a PIL Image, got {type(pic).__name__}")
    return _tensor(_hwc_to_chw(np.asarray(pic)).astype(np.int64))


_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def to_pil_image(pic, mode=None):
    """A (C, H, W) Tensor or an (H, W[, C]) numpy array -> a PIL image. Float values are taken
    as [0, 1] and scaled by 255 (truncating, as torchvision); integer values must be 0..255."""
    if isinstance(pic, Tensor):
        array = np.moveaxis(_array(pic, "to_pil_image"), -3, -1) if pic.ndim == 3 else _array(pic, "to_pil_image")
    elif isinstance(pic, np.ndarray):
        array = pic
    else:
        raise TypeError(f"to_pil_image: pic should be a Tensor or a numpy array, got {type(pic).__name__}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in _MODES):
        raise ValueError(f"to_pil_image: expected an image with 1 to 4 channels, got shape {tuple(pic.shape)}")
    if array.dtype.kind == "f" and mode != "F":
        array = (array * 255).astype(np.uint8)
    elif array.dtype.kind in "iu" and array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError("to_pil_image: integer pixel values must be in [0, 255]")
        array = array.astype(np.uint8)
    image = pillow().fromarray(np.ascontiguousarray(array))
    return image if mode is None or mode == image.mode else image.convert(mode)


def normalize(tensor, mean, std, inplace=False):
    """``(tensor - mean[c]) / std[c]`` per channel of a float (..., C, H, W) Tensor."""
    array = _array(tensor, "normalize")
    out = normalize_array(array, mean, std, out=array if inplace else None)
    return tensor if inplace else _tensor(out)


def normalize_array(array, mean, std, out=None):
    if array.dtype.kind != "f":
        raise TypeError(f"normalize: input should be a float tensor, got {array.dtype}")
    if array.ndim < 3:
        raise ValueError(f"normalize: expected a tensor image (..., C, H, W), got shape {array.shape}")
    mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    if np.any(std == 0):
        raise ValueError(f"normalize: std evaluated to zero in {std.ravel().tolist()}, leading to division by zero")
    channels = array.shape[-3]
    for name, values in (("mean", mean), ("std", std)):
        if values.size not in (1, channels):
            raise ValueError(f"normalize: {name} has {values.size} values but the input has {channels} channels "
                             f"(shape {array.shape})")
    out = np.subtract(array, mean, out=out, dtype=np.float32)
    return np.divide(out, std, out=out)


# ----------------------------------------------------------------------------- geometry
_PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def padding_edges(padding, name="pad"):
    """torchvision's padding forms (int, (lr, tb), (l, t, r, b)) -> (left, top, right, bottom)."""
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


def check_padding_mode(padding_mode, fill, name="pad"):
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    fills = fill if isinstance(fill, (tuple, list)) else [fill]
    if not all(isinstance(f, numbers.Real) and not isinstance(f, bool) for f in fills):
        raise TypeError(f"{name}: fill must be a number or a sequence of numbers, got {fill!r}")


def pad_array(array, edges, fill=0, padding_mode="constant", channels_last=False):
    """Pad the two spatial axes of (..., C, H, W) (or (H, W[, C]) with ``channels_last``);
    a sequence ``fill`` gives one value per channel."""
    left, top, right, bottom = edges
    if not any(edges):
        return array
    h_axis = 0 if channels_last else array.ndim - 2
    widths = [(0, 0)] * array.ndim
    widths[h_axis], widths[h_axis + 1] = (top, bottom), (left, right)
    if padding_mode != "constant":
        return np.pad(array, widths, mode=padding_mode)
    shape = list(array.shape)
    shape[h_axis] += top + bottom
    shape[h_axis + 1] += left + right
    out = np.empty(shape, dtype=array.dtype)
    fill = np.asarray(fill, dtype=array.dtype)
    if fill.ndim and not channels_last:
        fill = fill.reshape(-1, 1, 1)
    out[...] = fill
    inside = [slice(None)] * array.ndim
    inside[h_axis] = slice(top, top + array.shape[h_axis])
    inside[h_axis + 1] = slice(left, left + array.shape[h_axis + 1])
    out[tuple(inside)] = array
    return out


def pad(img, padding, fill=0, padding_mode="constant"):
    """Pad the borders: ``padding`` is an int, (left/right, top/bottom) or (left, top, right, bottom)."""
    edges = padding_edges(padding)
    check_padding_mode(padding_mode, fill)
    if is_pil(img):
        if padding_mode == "constant":
            from PIL import ImageOps

            return ImageOps.expand(img, border=edges, fill=tuple(fill) if isinstance(fill, (tuple, list)) else fill)
        return pillow().fromarray(pad_array(np.asarray(img), edges, fill, padding_mode, channels_last=True))
    return _tensor(pad_array(_array(img, "pad"), edges, fill, padding_mode))


def crop_array(array, top, left, height, width):
    """The (height, width) window at (top, left) of the last two axes; zeros where it leaves the image."""
    h, w = array.shape[-2:]
    edges = (max(-left, 0), max(-top, 0), max(left + width - w, 0), max(top + height - h, 0))
    array = pad_array(array, edges)
    top, left = top + edges[1], left + edges[0]
    return array[..., top : top + height, left : left + width]


def crop(img, top, left, height, width):
    if is_pil(img):
        return img.crop((left, top, left + width, top + height))
    return _tensor(crop_array(_array(img, "crop"), top, left, height, width))


def size_pair(size, name):
    """An int or a sequence of 1 or 2 ints -> (height, width)."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) in (1, 2) and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size):
        size = (int(size[0]), int(size[-1]))
    else:
        raise TypeError(f"{name}: size must be an int or a sequence of 1 or 2 ints, got {size!r}")
    if min(size) <= 0:
        raise ValueError(f"{name}: size must be positive, got {size!r}")
    return size


def center_crop_plan(height, width, crop_height, crop_width):
    """torchvision's centre crop of a (height, width) image: the zero padding (left, top, right,
    bottom) that makes it at least the crop's size, then the window's (top, left) in the padded
    image, rounded as torchvision rounds it."""
    extra_width, extra_height = max(crop_width - width, 0), max(crop_height - height, 0)
    edges = (extra_width // 2, extra_height // 2, (extra_width + 1) // 2, (extra_height + 1) // 2)
    height, width = height + extra_height, width + extra_width
    return edges, (int(round((height - crop_height) / 2.0)), int(round((width - crop_width) / 2.0)))


def center_crop(img, output_size):
    """The centred ``output_size`` window, zero-padded first where the image is smaller."""
    crop_height, crop_width = size_pair(output_size, "center_crop")
    _, height, width = get_dimensions(img)
    edges, (top, left) = center_crop_plan(height, width, crop_height, crop_width)
    if any(edges):
        img = pad(img, list(edges))
    return crop(img, top, left, crop_height, crop_width)


def hflip(img):
    if is_pil(img):
        return img.transpose(pillow().Transpose.FLIP_LEFT_RIGHT)
    return _tensor(_array(img, "hflip")[..., ::-1])


def vflip(img):
    if is_pil(img):
        return img.transpose(pillow().Transpose.FLIP_TOP_BOTTOM)
    return _tensor(_array(img, "vflip")[..., ::-1, :])


def resized_output_size(height, width, size, max_size=None):
    """torchvision's rule: an int (or 1-sequence) sets the shorter edge, keeping the aspect ratio
    (the longer edge truncated, then capped at ``max_size``); a pair is (height, width)."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        if max_size is not None:
            raise ValueError("resize: max_size is only allowed when size is an int")
        return size_pair(size, "resize")
    short = size_pair(size, "resize")[0]
    long = int(short * max(height, width) / min(height, width))
    if max_size is not None:
        if max_size <= short:
            raise ValueError(f"resize: max_size = {max_size} must be strictly greater than the requested size "
                             f"for the smaller edge size = {size}")
        if long > max_size:
            short, long = int(max_size * short / long), max_size
    return (short, long) if height <= width else (long, short)


def _resample_matrix(in_size, out_size, mode, antialias):
    """(out_size, in_size) weights: triangle (bilinear) filter widened by the scale when
    ``antialias`` shrinks, as torch's interpolate(antialias=True) and Pillow do; or nearest."""
    scale = in_size / out_size
    if mode is InterpolationMode.NEAREST:
        weights = np.zeros((out_size, in_size), np.float32)
        weights[np.arange(out_size), np.minimum((np.arange(out_size) * scale).astype(np.int64), in_size - 1)] = 1
        return weights
    support = max(scale, 1.0) if antialias else 1.0
    centres = (np.arange(out_size) + 0.5) * scale
    distance = (np.arange(in_size)[None, :] + 0.5 - centres[:, None]) / support
    weights = np.maximum(0.0, 1.0 - np.abs(distance))
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_array(array, size, interpolation=InterpolationMode.BILINEAR, antialias=True):
    """Resize the last two axes of ``array`` to ``size`` (height, width)."""
    if interpolation not in (InterpolationMode.NEAREST, InterpolationMode.BILINEAR):
        raise ValueError(f"resize: Tensors support InterpolationMode.NEAREST and BILINEAR, got {interpolation}")
    height, width = array.shape[-2:]
    if (height, width) == tuple(size):
        return array
    rows = _resample_matrix(height, size[0], interpolation, antialias)
    columns = _resample_matrix(width, size[1], interpolation, antialias)
    out = rows @ (array.astype(np.float32, copy=False) @ columns.T)
    if array.dtype.kind != "f":
        out = np.clip(np.round(out), 0, 255) if interpolation is InterpolationMode.BILINEAR else out
        return out.astype(array.dtype)
    return out


def check_interpolation(interpolation):
    if not isinstance(interpolation, InterpolationMode):
        raise TypeError(f"interpolation must be an InterpolationMode, got {interpolation!r}")


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resize to ``size`` (see ``resized_output_size``); PIL images resize with Pillow."""
    check_interpolation(interpolation)
    _, height, width = get_dimensions(img)
    out_height, out_width = resized_output_size(height, width, size, max_size)
    if is_pil(img):
        if (out_height, out_width) == (height, width):
            return img
        return img.resize((out_width, out_height), getattr(pillow().Resampling, interpolation.name.split("_")[0]))
    return _tensor(resize_array(_array(img, "resize"), (out_height, out_width), interpolation, antialias))


def resized_crop(img, top, left, height, width, size, interpolation=InterpolationMode.BILINEAR, antialias=True):
    return resize(crop(img, top, left, height, width), size, interpolation, antialias=antialias)


def _sample(array, source_x, source_y, interpolation):
    """``array`` (..., H, W) read at pixel-index coordinates (source_y, source_x) (each (H', W')),
    zero outside, as torch's grid_sample(align_corners=False, padding_mode='zeros')."""
    height, width = array.shape[-2:]

    def tap(y, x):
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        return np.where(inside, array[..., np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], 0)

    if interpolation is InterpolationMode.NEAREST:
        return tap(np.rint(source_y).astype(np.int64), np.rint(source_x).astype(np.int64))
    x0, y0 = np.floor(source_x).astype(np.int64), np.floor(source_y).astype(np.int64)
    fx, fy = source_x - x0, source_y - y0
    return ((1 - fy) * ((1 - fx) * tap(y0, x0) + fx * tap(y0, x0 + 1))
            + fy * ((1 - fx) * tap(y0 + 1, x0) + fx * tap(y0 + 1, x0 + 1)))


def rotate_array(array, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=None):
    """(..., C, H, W) rotated ``angle`` degrees counter-clockwise about ``center`` ((x, y) pixels
    from the top-left corner; default the image centre); ``expand`` grows the output to hold
    the whole rotated image; ``fill`` paints the area outside it (default 0)."""
    if interpolation not in (InterpolationMode.NEAREST, InterpolationMode.BILINEAR):
        raise ValueError(f"rotate: Tensors support InterpolationMode.NEAREST and BILINEAR, got {interpolation}")
    height, width = array.shape[-2:]
    radians = math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    if expand:  # about the centre, into the bounding box of the rotated corners
        out_width = math.ceil(abs(width * cos) + abs(height * sin) - 1e-4)
        out_height = math.ceil(abs(width * sin) + abs(height * cos) - 1e-4)
        centre_x, centre_y, out_centre_x, out_centre_y = width / 2, height / 2, out_width / 2, out_height / 2
    else:
        out_height, out_width = height, width
        centre_x, centre_y = (width / 2, height / 2) if center is None else (float(center[0]), float(center[1]))
        out_centre_x, out_centre_y = centre_x, centre_y
    # Each output pixel centre, relative to the output centre, rotated back into the input.
    y, x = np.mgrid[0:out_height, 0:out_width].astype(np.float64) + 0.5
    x, y = x - out_centre_x, y - out_centre_y
    source_x = cos * x - sin * y + centre_x - 0.5
    source_y = sin * x + cos * y + centre_y - 0.5
    values = array.astype(np.float32, copy=False)
    out = _sample(values, source_x, source_y, interpolation)
    if fill is not None:
        mask = _sample(np.ones((height, width), np.float32), source_x, source_y, interpolation)
        fill = np.asarray(fill, dtype=np.float32).reshape(-1, 1, 1)
        out = out * mask + (1 - mask) * fill if interpolation is InterpolationMode.BILINEAR \
            else np.where(mask < 0.5, fill, out)
    if array.dtype.kind != "f":
        return np.round(out).astype(array.dtype)
    return out.astype(np.float32)


def rotate(img, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=None):
    """Rotate ``angle`` degrees counter-clockwise (see ``rotate_array``); PIL images with Pillow."""
    check_interpolation(interpolation)
    if not isinstance(angle, numbers.Real):
        raise TypeError(f"rotate: angle should be a number, got {type(angle).__name__}")
    if is_pil(img):
        fillcolor = tuple(fill) if isinstance(fill, (tuple, list)) else fill
        return img.rotate(angle, getattr(pillow().Resampling, interpolation.name), expand, center, fillcolor=fillcolor)
    return _tensor(rotate_array(_array(img, "rotate"), angle, interpolation, expand, center, fill))


# ----------------------------------------------------------------------------- colour
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _grayscale_array(array):
    """(..., 3, H, W) -> (..., 1, H, W) luma in the input's dtype (integers truncated, as torchvision)."""
    red, green, blue = (array[..., c, :, :].astype(np.float32) for c in range(3))
    luma = _GRAY_WEIGHTS[0] * red + _GRAY_WEIGHTS[1] * green + _GRAY_WEIGHTS[2] * blue
    return luma.astype(array.dtype)[..., None, :, :]


def _channels(array, name):
    channels = array.shape[-3] if array.ndim >= 3 else 0
    if channels not in (1, 3):
        raise ValueError(f"{name}: expected 1 or 3 channels, got shape {array.shape}")
    return channels


def rgb_to_grayscale(img, num_output_channels=1):
    if num_output_channels not in (1, 3):
        raise ValueError(f"rgb_to_grayscale: num_output_channels must be 1 or 3, got {num_output_channels!r}")
    if is_pil(img):
        return to_grayscale(img, num_output_channels)
    array = _array(img, "rgb_to_grayscale")
    gray = array.copy() if _channels(array, "rgb_to_grayscale") == 1 else _grayscale_array(array)
    return _tensor(np.repeat(gray, num_output_channels, axis=-3) if num_output_channels == 3 else gray)


def to_grayscale(img, num_output_channels=1):
    """A PIL image in Pillow's luma ('L'), repeated into RGB for ``num_output_channels=3``."""
    if not is_pil(img):
        raise TypeError(f"to_grayscale: img should be a PIL Image, got {type(img).__name__}")
    gray = img.convert("L")
    return gray if num_output_channels == 1 else pillow().merge("RGB", (gray, gray, gray))


def _blend(array, other, ratio):
    out = ratio * array.astype(np.float32) + (1.0 - ratio) * other
    return np.clip(out, 0, _bound(array)).astype(array.dtype)


def _check_factor(factor, name):
    if not isinstance(factor, numbers.Real) or factor < 0:
        raise ValueError(f"{name}: factor must be a non-negative number, got {factor!r}")


def _enhance(img, kind, factor, name):
    _check_factor(factor, name)
    from PIL import ImageEnhance

    return getattr(ImageEnhance, kind)(img).enhance(factor)


def adjust_brightness(img, brightness_factor):
    """Multiply the pixels by ``brightness_factor`` (clamped to the image's range)."""
    if is_pil(img):
        return _enhance(img, "Brightness", brightness_factor, "adjust_brightness")
    _check_factor(brightness_factor, "adjust_brightness")
    array = _array(img, "adjust_brightness")
    _channels(array, "adjust_brightness")
    return _tensor(_blend(array, 0.0, brightness_factor))


def adjust_contrast(img, contrast_factor):
    """Blend each image with the mean of its grayscale version."""
    if is_pil(img):
        return _enhance(img, "Contrast", contrast_factor, "adjust_contrast")
    _check_factor(contrast_factor, "adjust_contrast")
    array = _array(img, "adjust_contrast")
    gray = array if _channels(array, "adjust_contrast") == 1 else _grayscale_array(array)
    mean = gray.astype(np.float32).mean(axis=(-3, -2, -1), keepdims=True)
    return _tensor(_blend(array, mean, contrast_factor))


def adjust_saturation(img, saturation_factor):
    """Blend each image with its grayscale version (1-channel images are returned as they are)."""
    if is_pil(img):
        return _enhance(img, "Color", saturation_factor, "adjust_saturation")
    _check_factor(saturation_factor, "adjust_saturation")
    array = _array(img, "adjust_saturation")
    if _channels(array, "adjust_saturation") == 1:
        return _tensor(array.copy())
    return _tensor(_blend(array, _grayscale_array(array).astype(np.float32), saturation_factor))


def _rgb_to_hsv(rgb):
    red, green, blue = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    value = rgb.max(axis=-3)
    spread = value - rgb.min(axis=-3)
    saturation = np.divide(spread, value, out=np.zeros_like(value), where=value > 0)
    safe = np.where(spread > 0, spread, 1)
    hue = np.where(value == red, (green - blue) / safe,
                   np.where(value == green, 2 + (blue - red) / safe, 4 + (red - green) / safe))
    hue = np.where(spread > 0, (hue / 6) % 1.0, 0)
    return hue, saturation, value


def _hsv_to_rgb(hue, saturation, value):
    sector = np.floor(hue * 6)
    fraction = hue * 6 - sector
    sector = sector.astype(np.int64) % 6
    p = value * (1 - saturation)
    q = value * (1 - saturation * fraction)
    t = value * (1 - saturation * (1 - fraction))
    choices = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)]
    return np.stack([np.choose(sector, [c[k] for c in choices]) for k in range(3)], axis=-3)


def adjust_hue(img, hue_factor):
    """Shift the hue by ``hue_factor`` in [-0.5, 0.5] turns of the colour wheel."""
    if not isinstance(hue_factor, numbers.Real) or not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"adjust_hue: hue_factor must be in [-0.5, 0.5], got {hue_factor!r}")
    if is_pil(img):
        if img.mode in ("L", "1", "I", "F"):
            return img
        image = pillow()
        hue, saturation, value = img.convert("HSV").split()
        shifted = np.asarray(hue, dtype=np.uint8) + np.uint8(int(hue_factor * 255) % 256)  # wraps around
        return image.merge("HSV", (image.fromarray(shifted), saturation, value)).convert(img.mode)
    array = _array(img, "adjust_hue")
    if _channels(array, "adjust_hue") == 1:
        return _tensor(array.copy())
    rgb = array.astype(np.float32) / (255 if array.dtype.kind != "f" else 1)
    hue, saturation, value = _rgb_to_hsv(rgb)
    out = _hsv_to_rgb((hue + hue_factor) % 1.0, saturation, value)
    if array.dtype.kind != "f":
        out = out * 255
    return _tensor(out.astype(array.dtype))
