"""``torch.cuda``'s runtime queries over the optional GPU module ``pyconvnet._C_cuda``.

The module is imported on first use, never by ``import pyconvnet``: a build without it, or a
machine without a driver or a GPU, answers every query as torch does without CUDA
(``is_available()`` False, ``device_count()`` 0, seeding a no-op) and ``unavailable_reason()``
says why. Anything that needs a GPU then raises through ``pcn.device`` resolution.
"""

import importlib

from . import amp

__all__ = [
    "amp", "is_available", "device_count", "current_device", "set_device", "get_device_name",
    "get_device_capability", "synchronize", "manual_seed", "manual_seed_all", "initial_seed", "memory_allocated",
    "max_memory_allocated", "memory_reserved", "max_memory_reserved", "reset_peak_memory_stats", "empty_cache",
    "unavailable_reason",
]

_state = {"loaded": False, "module": None, "reason": "", "device": 0, "seed": None}


def _module():
    """``pyconvnet._C_cuda`` when it is built and a GPU can be used, else None (see
    ``unavailable_reason()``)."""
    if not _state["loaded"]:
        _state["loaded"] = True
        try:
            module = importlib.import_module("pyconvnet._C_cuda")
        except ImportError as error:
            _state["reason"] = f"pyconvnet was built without the CUDA backend ({error})"
        else:
            reason = module.unavailable_reason()
            if reason:
                _state["reason"] = reason
            else:
                _state["module"] = module
                from ..backends import cuda as switches

                switches.push_tf32()  # the TF32 switches reach the module as soon as it is loaded
    return _state["module"]


def _required():
    module = _module()
    if module is None:
        raise RuntimeError(f"CUDA is not available: {_state['reason']}")
    return module


def unavailable_reason():
    """Why no GPU can be used ("" when one can)."""
    _module()
    return _state["reason"]


def is_available():
    return _module() is not None


def device_count():
    module = _module()
    return 0 if module is None else module.device_count()


def _index(device):
    """The ordinal a device argument names (None: the current device), checked against the count."""
    from .. import devices

    if device is None:
        index = _state["device"]
    elif isinstance(device, int) and not isinstance(device, bool):
        index = device
    else:
        resolved = devices.device(device)
        if resolved.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {resolved}")
        index = _state["device"] if resolved.index is None else resolved.index
    count = _required().device_count()
    if not 0 <= index < count:
        raise RuntimeError(f"CUDA error: invalid device ordinal {index} ({count} device(s) present)")
    return index


def current_device():
    _required()
    return _state["device"]


def set_device(device):
    """Make ``device`` the one ``'cuda'`` (no index) means."""
    _state["device"] = _index(device)


def get_device_name(device=None):
    return _required().device_name(_index(device))


def get_device_capability(device=None):
    return tuple(_required().device_capability(_index(device)))


def synchronize(device=None):
    """Wait until every kernel queued on ``device`` has finished."""
    _required().synchronize(_index(device))


def manual_seed(seed):
    """Seed the generator that ``rand``/``randn``/dropout draw from on the GPU (a no-op without
    one, as in torch)."""
    _state["seed"] = int(seed)


manual_seed_all = manual_seed


def next_seed():
    """A fresh 64-bit seed for one counter-based GPU draw: from ``manual_seed`` when set (each
    call advances it), else from the CPU generator, so ``pcn.manual_seed`` also fixes GPU draws."""
    if _state["seed"] is None:
        from ..random import next_seed as host_seed

        return host_seed()
    seed = _state["seed"]
    _state["seed"] = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return seed % (1 << 63)


def initial_seed():
    return _state["seed"]


def memory_allocated(device=None):
    """Bytes held by live tensors on ``device``."""
    module = _module()
    return 0 if module is None else module.memory_allocated(_index(device))


def max_memory_allocated(device=None):
    module = _module()
    return 0 if module is None else module.max_memory_allocated(_index(device))


def memory_reserved(device=None):
    """Bytes the caching allocator holds on ``device`` (in use or cached)."""
    module = _module()
    return 0 if module is None else module.memory_reserved(_index(device))


def max_memory_reserved(device=None):
    module = _module()
    return 0 if module is None else module.max_memory_reserved(_index(device))


def reset_peak_memory_stats(device=None):
    module = _module()
    if module is not None:
        module.reset_peak_memory_stats(_index(device))


def empty_cache():
    """Return the allocator's cached, unused blocks to the driver."""
    module = _module()
    if module is not None:
        module.empty_cache()
