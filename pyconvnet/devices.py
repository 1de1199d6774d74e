"""Devices, as ``torch.device``: where a Tensor's storage lives.

Storage lives on the CPU or, when the optional GPU module is built and a GPU is present, on a
``cuda`` device. A ``device`` naming another type ('mps', or 'cuda' without a usable GPU) can be
built and compared, as in torch on a machine without that backend, and asking for storage on
it raises a RuntimeError that says why. ``pyconvnet.cuda``, ``pyconvnet.accelerator`` and
``pyconvnet.backends`` answer the availability questions GPU scripts ask.
"""

import numpy as np

__all__ = ["device"]

# The types torch scripts name; "cpu" always has a backend, "cuda" when pyconvnet.cuda is available.
DEVICE_TYPES = ("cpu", "cuda", "mps")


class device:
    """``device('cpu')``, ``device('cuda:1')``, ``device('cuda', 1)``, ``device(0)`` (= cuda:0)."""

    __slots__ = ("_type", "_index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): an index cannot be given with a device object")
            self._type, self._index = type._type, type._index
            return
        if isinstance(type, int) and not isinstance(type, bool):  # torch: a bare ordinal is a cuda device
            type, index = "cuda", type
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string, int or device, got {type.__class__.__name__}")
        name, _, ordinal = type.partition(":")
        if name not in DEVICE_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(DEVICE_TYPES)} device type at start of device "
                               f"string: {type!r}")
        if ordinal:
            if index is not None:
                raise RuntimeError(f"device(): type {type!r} already has an index; got index={index} too")
            if not ordinal.isdigit():
                raise RuntimeError(f"Invalid device string: {type!r}")
            index = int(ordinal)
        if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
            raise RuntimeError(f"Device index must be a non-negative integer, got {index!r}")
        self._type, self._index = name, index

    @property
    def type(self):
        return self._type

    @property
    def index(self):
        return self._index

    def __str__(self):
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self):
        index = "" if self._index is None else f", index={self._index}"
        return f"device(type='{self._type}'{index})"

    def __eq__(self, other):
        if isinstance(other, str):  # a convenience torch lacks: x.device == "cpu"
            try:
                other = device(other)
            except RuntimeError:
                return False
        if not isinstance(other, device):
            return NotImplemented
        return (self._type, self._index) == (other._type, other._index)

    def __hash__(self):
        return hash((self._type, self._index))

    def __reduce__(self):
        return device, (self._type, self._index)


CPU = device("cpu")


def resolve(value):
    """The device ``value`` names (a string, int or device; None means the CPU), checked to be one
    this build can hold storage on; 'cuda' without an index means the current GPU."""
    if value is None:
        return CPU
    resolved = value if isinstance(value, device) else device(value)
    if resolved.type == "cpu":
        return CPU
    if resolved.type == "cuda":
        from . import cuda

        if cuda.is_available():
            index = cuda.current_device() if resolved.index is None else resolved.index
            if index >= cuda.device_count():
                raise RuntimeError(f"CUDA error: invalid device ordinal ({resolved} requested; "
                                   f"{cuda.device_count()} device(s) present)")
            return device("cuda", index)
        reason = f"pyconvnet.cuda.is_available() is False: {cuda.unavailable_reason()}"
    else:
        reason = "pyconvnet has no such backend"
    raise RuntimeError(f"pyconvnet has no {resolved.type!r} backend in this build ({resolved} requested; "
                       f"{reason}): use device 'cpu'")


def of_array(array):
    """The device an array (a Tensor's storage) lives on."""
    if type(array) is np.ndarray:
        return CPU
    return device("cuda", array.device)
