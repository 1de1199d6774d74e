"""``torch.amp``: mixed precision, as scripts written for GPUs ask for it. pyconvnet computes in
float32, so an ``autocast`` region runs in float32 and a ``GradScaler`` has nothing to scale: both are
accepted and say so once when asked to be enabled, as torch does where the device cannot honour them
(a GradScaler without CUDA disables itself)."""

import functools
import warnings

from . import devices

__all__ = ["autocast", "GradScaler"]


class autocast:
    """``autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``: a context manager and
    decorator whose region runs unchanged, in float32."""

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        devices.device(device_type)  # a valid device name, as torch checks
        self.device_type, self.fast_dtype, self.enabled = device_type, dtype, bool(enabled)
        if self.enabled:
            warnings.warn(f"autocast({device_type!r}): pyconvnet computes in float32; the region runs in float32",
                          UserWarning, stacklevel=2)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
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
