"""Storage-array helpers for either device: a Tensor's storage is a numpy array on the CPU and a
``CudaArray`` on a GPU. numpy's constructors (``np.zeros``, ``np.asarray``, ...) cannot follow an
argument's device, so code that builds arrays next to existing storage calls these instead; on the
CPU they are the numpy call itself."""

import numpy as np

from . import kernels


def on_gpu(array):
    """Whether ``array`` is GPU storage (a CudaArray)."""
    return type(array) is not np.ndarray and kernels.gpu_array_type is not None and \
        isinstance(array, kernels.gpu_array_type)


def asarray(value, dtype=None):
    """``np.asarray(value, dtype)``; a GPU array stays on its device (cast when ``dtype`` differs)."""
    if on_gpu(value):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    return np.asarray(value, dtype=dtype)


def ascontiguous(value, dtype=None):
    """``np.ascontiguousarray(value, dtype)``; GPU storage is always contiguous."""
    if on_gpu(value):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    return np.ascontiguousarray(value, dtype=dtype)


def zeros(shape, dtype, like):
    """Zeros of ``shape`` on ``like``'s device."""
    return np.zeros_like(like, dtype=dtype, shape=shape) if on_gpu(like) else np.zeros(shape, dtype)


def ones(shape, dtype, like):
    return np.ones_like(like, dtype=dtype, shape=shape) if on_gpu(like) else np.ones(shape, dtype)


def empty(shape, dtype, like):
    return np.empty_like(like, dtype=dtype, shape=shape) if on_gpu(like) else np.empty(shape, dtype)


def full(shape, value, dtype, like):
    return np.full_like(like, value, dtype=dtype, shape=shape) if on_gpu(like) else np.full(shape, value, dtype)


def arange(count, dtype, like):
    """0 .. count-1 on ``like``'s device."""
    if on_gpu(like):
        from .cuda.array import arange as gpu_arange

        return gpu_arange(count, 0, 1, dtype, like.device)
    return np.arange(count, dtype=dtype)


def broadcast_copy(array, shape):
    """A fresh C-contiguous copy of ``array`` broadcast to ``shape``."""
    if on_gpu(array):
        result = np.broadcast_to(array, shape)  # a strided copy unless the shape already matches
        return result.copy() if result is array else result
    return np.array(np.broadcast_to(array, shape))


def add_along_axis(target, index, values, axis):
    """``target[..., index[i], ...] += values[i]`` along ``axis`` (np.add.at: repeated indices sum);
    ``index`` may be smaller than ``target`` in the other dimensions (gather's backward)."""
    if not on_gpu(target):
        coordinates = list(np.indices(index.shape, sparse=True))
        coordinates[axis] = index
        np.add.at(target, tuple(coordinates), values)
        return
    from .cuda import _required

    region = tuple(slice(0, n) if dim != axis else slice(None) for dim, n in enumerate(index.shape))
    block = target[region]  # a view when the region is contiguous, else a copy written back below
    _required().put_along_axis(block.device_array, index.device_array, values.device_array, axis, True)
    if not block.device_array.shares_storage(target.device_array):
        target[region] = block
