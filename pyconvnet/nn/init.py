"""Weight initialisers with torch.nn.init's names, fan and gain rules.

Each fills a Tensor in place, outside autograd (like torch's ``no_grad`` initialisers), and
returns it. Random ones draw from pyconvnet's global generator, so ``pyconvnet.manual_seed``
makes them reproducible, or from a numpy ``Generator`` passed as ``generator``. The numbers
differ from torch's for the same seed (another random stream); the distributions are the same.
A GPU tensor gets the same values as a CPU one: it is filled on the host and copied over once.
The names without the trailing underscore (``kaiming_normal``, ``constant``, ...) are torch's
deprecated aliases: they warn with a FutureWarning, as torch does, and do the same.
"""

import functools
import math
import numbers
import warnings

import numpy as np

from .. import devices
from .. import random as _random
from ..tensor import Tensor, _to_device

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "eye_",
    "dirac_",
    "orthogonal_",
    "sparse_",
    "uniform",
    "normal",
    "constant",
    "eye",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
]

_UNIT_GAIN = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid"}

# trunc_normal_ samples by rejection; below this share of the normal's mass inside [a, b]
# that would take too many draws, so it refuses.
_MIN_TRUNCATED_MASS = 1e-4


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for ``nonlinearity`` (torch's table: tanh 5/3, relu sqrt(2),
    leaky_relu sqrt(2 / (1 + slope**2)) with slope ``param`` (default 0.01), selu 3/4, 1 for
    linear, conv and sigmoid)."""
    if nonlinearity in _UNIT_GAIN:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _storage(tensor, name):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype != np.float32:
        raise TypeError(f"{name}: expected a float32 Tensor, got dtype {tensor.dtype}")
    return tensor._array


def _filled_on_host(init):
    """A GPU tensor is filled on the host (from the same generators, so with the same values) and
    copied over once."""

    @functools.wraps(init)
    def fill(tensor, *args, **kwargs):
        if not (isinstance(tensor, Tensor) and tensor.is_cuda):
            return init(tensor, *args, **kwargs)
        host = Tensor._wrap(_to_device(tensor._array, devices.CPU))
        init(host, *args, **kwargs)
        np.copyto(tensor._array, _to_device(host._array, tensor.device))
        return tensor

    return fill


def _generator(generator):
    return _random.default_generator() if generator is None else generator


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel): in/out times the kernel size."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill_uniform(array, low, high, generator):
    _generator(generator).random(out=array, dtype=np.float32)
    array *= np.float32(high - low)
    array += np.float32(low)


def _fill_normal(array, mean, std, generator):
    _generator(generator).standard_normal(out=array, dtype=np.float32)
    array *= np.float32(std)
    array += np.float32(mean)


@_filled_on_host
def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    _fill_uniform(_storage(tensor, "uniform_"), a, b, generator)
    return tensor


@_filled_on_host
def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std**2)."""
    _fill_normal(_storage(tensor, "normal_"), mean, std, generator)
    return tensor


def _normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@_filled_on_host
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std**2) truncated to [a, b] (``a``, ``b`` are absolute bounds).

    Samples by rejection, which is exact; it refuses (ValueError) when [a, b] holds less
    than 1e-4 of the normal's mass, where torch's inverse-CDF method also loses accuracy.
    """
    array = _storage(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values may be "
            "incorrect.",
            stacklevel=2,
        )
    mass = _normal_cdf((b - mean) / std) - _normal_cdf((a - mean) / std)
    if mass < _MIN_TRUNCATED_MASS:
        raise ValueError(
            f"trunc_normal_: [a, b] = [{a}, {b}] holds only {mass:.3g} of the probability mass of N({mean}, {std}**2); "
            f"rejection sampling needs at least {_MIN_TRUNCATED_MASS}"
        )
    rng = _generator(generator)
    flat = array.reshape(-1)
    filled = 0
    while filled < flat.size:
        wanted = flat.size - filled
        draws = rng.standard_normal(int(wanted / mass * 1.1) + 16, dtype=np.float32) * np.float32(std) + np.float32(mean)
        kept = draws[(draws >= a) & (draws <= b)][:wanted]
        flat[filled : filled + kept.size] = kept
        filled += kept.size
    return tensor


@_filled_on_host
def constant_(tensor, val):
    """Fill with ``val``."""
    _storage(tensor, "constant_").fill(val)
    return tensor


@_filled_on_host
def ones_(tensor):
    return constant_(tensor, 1.0)


@_filled_on_host
def zeros_(tensor):
    return constant_(tensor, 0.0)


@_filled_on_host
def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    _fill_uniform(_storage(tensor, "xavier_uniform_"), -bound, bound, generator)
    return tensor


@_filled_on_host
def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    _fill_normal(_storage(tensor, "xavier_normal_"), 0.0, std, generator)
    return tensor


def _kaiming_std(tensor, a, mode, nonlinearity):
    """std = gain / sqrt(fan), or None (with torch's warning) for a zero-element tensor."""
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


@_filled_on_host
def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan); ``a`` is the leaky_relu
    slope used by the gain, ``mode`` picks fan_in or fan_out."""
    array = _storage(tensor, "kaiming_uniform_")
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is not None:
        bound = math.sqrt(3.0) * std
        _fill_uniform(array, -bound, bound, generator)
    return tensor


@_filled_on_host
def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std**2), std = gain / sqrt(fan)."""
    array = _storage(tensor, "kaiming_normal_")
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is not None:
        _fill_normal(array, 0.0, std, generator)
    return tensor


@_filled_on_host
def eye_(tensor):
    """Fill a 2-D tensor with the identity (ones on the main diagonal, zeros elsewhere)."""
    array = _storage(tensor, "eye_")
    if array.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got shape {list(array.shape)}")
    array[...] = np.eye(*array.shape, dtype=np.float32)
    return tensor


@_filled_on_host
def dirac_(tensor, groups=1):
    """Fill a 3-, 4- or 5-D convolution weight with the Dirac delta, so that the convolution
    passes its input through: in each of ``groups``, output channel ``d`` gets a one at the
    kernel's centre of input channel ``d`` (for the first min(out per group, in) channels)."""
    array = _storage(tensor, "dirac_")
    if array.ndim not in (3, 4, 5):
        raise ValueError(
            f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, got shape {list(array.shape)}"
        )
    if array.shape[0] % groups != 0:
        raise ValueError(f"dirac_: dim 0 ({array.shape[0]}) must be divisible by groups ({groups})")
    out_per_group = array.shape[0] // groups
    centre = tuple(size // 2 for size in array.shape[2:])
    array.fill(0.0)
    for group in range(groups):
        for channel in range(min(out_per_group, array.shape[1])):
            array[(group * out_per_group + channel, channel, *centre)] = 1.0
    return tensor


@_filled_on_host
def orthogonal_(tensor, gain=1, generator=None):
    """Fill with a (semi-)orthogonal matrix scaled by ``gain``, uniformly distributed (Haar):
    the tensor viewed as (rows, everything else) has orthonormal rows or columns, whichever
    are fewer. Drawn as the QR decomposition of a Gaussian matrix with R's diagonal signs
    folded into Q."""
    array = _storage(tensor, "orthogonal_")
    if array.ndim < 2:
        raise ValueError(
            f"orthogonal_: only tensors with 2 or more dimensions are supported, got shape {list(array.shape)}"
        )
    if array.size == 0:
        return tensor
    rows = array.shape[0]
    cols = array.size // rows
    flattened = _generator(generator).standard_normal((rows, cols))
    if rows < cols:
        flattened = flattened.T
    q, r = np.linalg.qr(flattened)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    array[...] = (q * gain).reshape(array.shape)
    return tensor


@_filled_on_host
def sparse_(tensor, sparsity, std=0.01, generator=None):
    """Fill a 2-D tensor with N(0, std**2) values, then zero ceil(sparsity * rows) randomly
    chosen entries in every column."""
    array = _storage(tensor, "sparse_")
    if array.ndim != 2:
        raise ValueError(f"sparse_: only tensors with 2 dimensions are supported, got shape {list(array.shape)}")
    rows, cols = array.shape
    zeros_per_column = math.ceil(sparsity * rows)
    rng = _generator(generator)
    _fill_normal(array, 0.0, std, rng)
    zero_rows = np.argsort(rng.random((rows, cols)), axis=0)[:zeros_per_column]
    array[zero_rows, np.arange(cols)] = 0.0
    return tensor


def _deprecated_alias(function):
    """torch's old name for ``function`` (its name without the underscore), which warns."""
    new_name = function.__name__
    old_name = new_name[:-1]

    def alias(*args, **kwargs):
        warnings.warn(
            f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.", FutureWarning, stacklevel=2
        )
        return function(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name
    alias.__doc__ = f"Deprecated alias of :func:`{new_name}` (warns with a FutureWarning, as torch does)."
    return alias


uniform = _deprecated_alias(uniform_)
normal = _deprecated_alias(normal_)
constant = _deprecated_alias(constant_)
eye = _deprecated_alias(eye_)
dirac = _deprecated_alias(dirac_)
xavier_uniform = _deprecated_alias(xavier_uniform_)
xavier_normal = _deprecated_alias(xavier_normal_)
kaiming_uniform = _deprecated_alias(kaiming_uniform_)
kaiming_normal = _deprecated_alias(kaiming_normal_)
orthogonal = _deprecated_alias(orthogonal_)
sparse = _deprecated_alias(sparse_)
