"""Creation functions (torch.tensor, zeros, arange, randn, ...): new leaf Tensors on the CPU or,
with ``device='cuda'``, on a GPU: zeros/ones/full/empty/arange and rand/randn (from the GPU
generator, ``pyconvnet.cuda.manual_seed``) are made there; the rest are made on the host and
copied over once.

Random draws come from the library's global generator (``pyconvnet.manual_seed``) unless a numpy
``generator`` is passed; the values differ from torch's for the same seed.
"""

import math

import numpy as np

from . import devices
from . import random as _random
from .tensor import (
    _STORAGE_DTYPES,
    Tensor,
    _convert,
    _to_device,
    _resolve_dtype,
    _size_args,
    bool_,
    float32,
    int64,
)

__all__ = [
    "tensor", "from_numpy", "zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm",
    "arange", "linspace", "eye", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like",
    "randn_like",
]


def _new_leaf(array, requires_grad):
    result = Tensor._wrap(array)
    if requires_grad:
        result.requires_grad_()
    return result


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf Tensor holding a copy of ``data`` (a number, nested list, array or Tensor).

    Without ``dtype``: floats become float32, integers int64, bools bool. The copy is always
    C-contiguous and native-endian, whatever the layout or byte order of ``data``.
    """
    array = _convert(data, dtype)
    if device is not None:
        array = _to_device(array, devices.resolve(device))
    return _new_leaf(array, requires_grad)


def from_numpy(ndarray):
    """A Tensor sharing ``ndarray``'s memory when it already is C-contiguous, native float32,
    int64 or bool.

    Unlike torch, other numeric dtypes (float64, int32, ...) and other layouts are copied
    into float32/int64/bool storage, since pyconvnet computes in float32; so
    ``from_numpy(x).float()`` ports unchanged. Non-numeric dtypes raise TypeError.
    """
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    if ndarray.dtype in _STORAGE_DTYPES and ndarray.flags.c_contiguous:
        # A subclass (np.memmap, np.matrix) is shared through a plain-ndarray view.
        return Tensor._wrap(ndarray if type(ndarray) is np.ndarray else ndarray.view(np.ndarray))
    return Tensor._wrap(_convert(ndarray))


def _cuda_array():
    from .cuda import array

    return array


def _filled(size, name, dtype, device, requires_grad, fill, gpu_fill=None):
    """A new leaf of ``size`` made by ``fill(shape, dtype)`` on the host, or on a GPU by
    ``gpu_fill(cuda_array_module, shape, dtype, ordinal)`` (by copying ``fill``'s result over without one)."""
    target = devices.resolve(device)
    shape = _size_args(size, name)
    dtype = float32 if dtype is None else _resolve_dtype(dtype)
    if target.type == "cpu":
        return _new_leaf(fill(shape, dtype), requires_grad)
    if gpu_fill is None:
        return _new_leaf(_to_device(fill(shape, dtype), target), requires_grad)
    return _new_leaf(gpu_fill(_cuda_array(), shape, dtype, target.index), requires_grad)


def _gpu_seed():
    from .cuda import next_seed

    return next_seed()


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, "zeros", dtype, device, requires_grad, np.zeros,
                   lambda gpu, shape, dt, index: gpu.full(shape, 0, dt, index))


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, "ones", dtype, device, requires_grad, np.ones,
                   lambda gpu, shape, dt, index: gpu.full(shape, 1, dt, index))


def empty(*size, dtype=None, device=None, requires_grad=False):
    """Uninitialised storage."""
    return _filled(size, "empty", dtype, device, requires_grad, np.empty, lambda gpu, *args: gpu.empty(*args))


def _random_float32(size, name, generator, dtype, device, requires_grad, method, gpu_draw):
    """Draws from ``generator`` (default: the global one); on a GPU without an explicit generator,
    ``gpu_draw(cuda_array_module, shape, seed, ordinal)`` from the GPU generator."""
    if dtype is not None and _resolve_dtype(dtype) != float32:
        raise TypeError(f"{name}: random floats need dtype float32, got {np.dtype(dtype)}")
    gpu_fill = None if generator is not None else \
        lambda gpu, shape, dt, index: gpu_draw(gpu, shape, _gpu_seed(), index)
    draw = getattr(_random.default_generator() if generator is None else generator, method)
    return _filled(size, name, None, device, requires_grad, lambda shape, dt: draw(shape, dtype=dt), gpu_fill)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from the global generator (or a numpy ``generator``)."""
    return _random_float32(size, "rand", generator, dtype, device, requires_grad, "random",
                           lambda gpu, shape, seed, index: gpu.uniform(shape, 0.0, 1.0, seed, index))


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the global generator (or a numpy ``generator``)."""
    return _random_float32(size, "randn", generator, dtype, device, requires_grad, "standard_normal",
                           lambda gpu, shape, seed, index: gpu.normal(shape, 0.0, 1.0, seed, index))


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    dtype = input.dtype if dtype is None else dtype
    device = input.device if device is None else device
    return zeros(input._array.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    dtype = input.dtype if dtype is None else dtype
    device = input.device if device is None else device
    return ones(input._array.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    dtype = input.dtype if dtype is None else dtype
    device = input.device if device is None else device
    return empty(input._array.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def _fill_dtype(fill_value):
    """torch's dtype for a fill value given without ``dtype``: bool, int64 or float32."""
    if isinstance(fill_value, (bool, np.bool_)):
        return bool_
    if isinstance(fill_value, (int, np.integer)):
        return int64
    return float32


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    dtype = _fill_dtype(fill_value) if dtype is None else dtype
    return _filled((size,) if isinstance(size, (int, np.integer)) else tuple(size), "full", dtype, device,
                   requires_grad, lambda shape, dt: np.full(shape, fill_value, dtype=dt),
                   lambda gpu, shape, dt, index: gpu.full(shape, fill_value, dt, index))


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    dtype = input.dtype if dtype is None else dtype
    device = input.device if device is None else device
    return full(input._array.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad=False):
    device = input.device if device is None else device
    return rand(input._array.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(input, *, dtype=None, device=None, requires_grad=False):
    device = input.device if device is None else device
    return randn(input._array.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Integers uniform in [low, high) (``randint(high, size)`` means low = 0), int64 by default."""
    if size is None:  # randint(high, size): the size came second
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint() missing the required argument 'size'")
    if high is None or high <= low:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    generator = _random.default_generator() if generator is None else generator
    dtype = int64 if dtype is None else dtype
    return _filled(tuple(size), "randint", dtype, device, requires_grad,
                   lambda shape, dt: generator.integers(low, high, shape).astype(dt))


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of 0 .. n-1, int64 by default."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"randperm: n must be a non-negative int, got {n!r}")
    generator = _random.default_generator() if generator is None else generator
    dtype = int64 if dtype is None else dtype
    return _filled((int(n),), "randperm", dtype, device, requires_grad,
                   lambda shape, dt: generator.permutation(shape[0]).astype(dt))


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """``arange(end)`` or ``arange(start, end, step)``: int64 when every bound is an int, else
    float32, as torch; the count is ceil((end - start) / step)."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    count = max(math.ceil((end - start) / step), 0)
    integral = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, end, step))
    dtype = (int64 if integral else float32) if dtype is None else dtype
    # start + i * step, in int64 or (as torch computes it) float64, then stored as dtype.
    positions = np.arange(count, dtype=np.int64 if integral else np.float64)
    return _filled((count,), "arange", dtype, device, requires_grad,
                   lambda shape, dt: (start + positions * step).astype(dt),
                   lambda gpu, shape, dt, index: gpu.arange(count, start, step, dt, index))


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    return _filled((int(steps),), "linspace", dtype, device, requires_grad,
                   lambda shape, dt: np.linspace(start, end, shape[0]).astype(dt))


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    return _filled((n, m), "eye", dtype, device, requires_grad, lambda shape, dt: np.eye(*shape, dtype=dt))
