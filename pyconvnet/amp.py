"""``torch.amp``: mixed precision. On the CPU, ``autocast("cpu", dtype=bfloat16)`` (bfloat16 is also
the CPU default, as in torch) makes convolution and linear layers round their inputs and weights to
bfloat16 (round to nearest even) and accumulate the products in float32; tensors, weights,
gradients and optimiser state stay float32 (the master copies), and the backward passes of those
layers round their operands (the incoming gradient, the saved input and weight) the same way. The
kernels (csrc/kernels/conv.h, gemm.h) pick their algorithm as in float32; GEMM passes multiply
bfloat16 panels with vdpbf16ps where the CPU has AVX512-BF16.
Any other dtype, and autocast on other devices, run in float32 and say so once, as torch does where
a device cannot honour the request; a ``GradScaler`` has nothing to scale (bfloat16 keeps
float32's exponent range) and disables itself."""

import functools
import threading
import warnings

import numpy as np

from . import _C, _array, devices

__all__ = ["autocast", "GradScaler", "bfloat16", "is_autocast_enabled", "get_autocast_dtype"]


class _BFloat16:
    """``pyconvnet.bfloat16``: a dtype name autocast accepts. Tensors cannot store it (storage is
    float32); inside an autocast region it names the precision the products are computed in."""

    itemsize = 2
    is_floating_point = True

    def __repr__(self):
        return "pyconvnet.bfloat16"

    def __reduce__(self):
        return "bfloat16"


bfloat16 = _BFloat16()

class _AutocastState(threading.local):
    """Per thread, as torch's autocast state: whether the CPU region rounds to bfloat16. A class
    default, read by every convolution and linear layer: a ``getattr`` default would raise and
    catch an AttributeError each time outside a region."""

    cpu = False


_state = _AutocastState()


def is_autocast_enabled(device_type="cuda"):
    """Whether an enabled autocast region for ``device_type`` is active in this thread (only the CPU's
    is ever enabled here)."""
    return devices.device(device_type).type == "cpu" and _state.cpu


def get_autocast_dtype(device_type):
    """The dtype autocast uses on ``device_type``: bfloat16 on the CPU (the only one honoured)."""
    return bfloat16 if devices.device(device_type).type == "cpu" else np.dtype(np.float32)


def bf16_active(array):
    """Whether an op on ``array`` runs in bfloat16 here: an enabled CPU region and CPU storage."""
    return _state.cpu and not _array.on_gpu(array)


def round_bf16(array):
    """A float32 CPU array's values rounded to bfloat16 (round to nearest, ties to even), as float32:
    the upper 16 bits of each float kept. NaN stays NaN; values past bfloat16's largest become inf."""
    return _C.round_bf16(array)


def _is_dtype(dtype):
    if dtype is bfloat16:
        return True
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return dtype is not None


class autocast:
    """``autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``: a context manager and
    decorator. On the CPU with dtype bfloat16 (or None) convolution and linear layers compute in
    bfloat16 with float32 accumulation; regions nest, and ``enabled=False`` turns a region off
    inside an enabled one. Elsewhere the region runs in float32."""

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise TypeError(f"autocast: device_type must be a str, got {type(device_type).__name__}")
        on_cpu = devices.device(device_type).type == "cpu"  # a valid device name, as torch checks
        if dtype is None:
            dtype = bfloat16 if on_cpu else np.dtype(np.float16)
        elif not _is_dtype(dtype):
            raise TypeError(f"autocast: dtype must be a dtype such as pyconvnet.bfloat16, got {dtype!r}")
        self.device_type, self.fast_dtype, self.enabled = device_type, dtype, bool(enabled)
        if self.enabled and not (on_cpu and dtype is bfloat16):
            what = "bfloat16 on the CPU only" if on_cpu else "the CPU only (dtype bfloat16)"
            warnings.warn(f"autocast({device_type!r}, dtype={dtype!r}): pyconvnet's autocast supports {what}; "
                          "the region runs in float32", UserWarning, stacklevel=2)
            self.enabled = False
        self._on_cpu = on_cpu
        self._saved = []

    def __enter__(self):
        if self._on_cpu:
            self._saved.append(_state.cpu)
            _state.cpu = self.enabled
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if self._on_cpu:
            _state.cpu = self._saved.pop()
        return False

    def __call__(self, function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            with self:
                return function(*args, **kwargs)

        return run


class GradScaler:
    """``GradScaler(device='cuda', init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
    growth_interval=2000, enabled=True)`` in its disabled form: ``scale`` returns its argument,
    ``step`` calls ``optimizer.step()``, ``update`` and ``unscale_`` do nothing."""

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        devices.device(device)
        if enabled:
            warnings.warn("GradScaler is enabled, but pyconvnet computes in float32 (no gradient underflows "
                          "to guard against): disabling", UserWarning, stacklevel=2)

    def scale(self, outputs):
        return outputs

    def unscale_(self, optimizer):
        pass

    def step(self, optimizer, *args, **kwargs):
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        pass

    def get_scale(self):
        return 1.0

    def is_enabled(self):
        return False

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict):
        pass
