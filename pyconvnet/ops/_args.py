"""Argument normalisation shared by the op modules (PyTorch's int-or-pair conventions) and by
the data loader and command line (counts that must be ints of at least one), and the
output-size check of the ops whose outputs numpy allocates."""

import math
import numbers
import os

import numpy as np

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_ELEMENTS = 2**46  # csrc/core/checks.h: kMaxElements


def check_int(value, name, caller, minimum=1):
    """``value`` as an int of at least ``minimum``: TypeError unless it is an integer (a bool is
    not), ValueError when smaller; both name ``caller`` and ``name``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{caller}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{caller}: {name} must be >= {minimum}, got {value}")
    return int(value)


def int64(value, name, op):
    """A Python int that the kernels' 64-bit descriptors can hold (their checks do the rest)."""
    value = int(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{op}: {name} value {value} does not fit in a 64-bit integer")
    return value


def pair(value, name, op):
    """``value`` as a (height, width) tuple of ints; TypeError/ValueError name ``op`` and ``name``."""
    # Every layer's call passes its own pair or int: the checks below (numbers.Integral is an ABC)
    # cost several microseconds a call.
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and _INT64_MIN <= value[0] <= _INT64_MAX and _INT64_MIN <= value[1] <= _INT64_MAX:
        return value
    if type(value) is int:
        return (int64(value, name, op),) * 2
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int64(value, name, op),) * 2
    if isinstance(value, (tuple, list)) and len(value) == 2:
        if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            return (int64(value[0], name, op), int64(value[1], name, op))
    if isinstance(value, (tuple, list)) and len(value) == 1:
        return pair(value[0], name, op)
    if isinstance(value, (tuple, list)):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {type(value).__name__}")


def _physical_memory_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or it does not tell
        return 0


def _human_bytes(count):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def check_output_fits(shape, dtype, op):
    """The kernels' output rules (Note [outputs larger than memory] in csrc/bindings/common.cpp)
    for an output numpy allocates: ValueError past 2^46 elements, MemoryError naming the shape
    and bytes when larger than the machine's physical memory."""
    count = math.prod(shape)
    if count > _MAX_ELEMENTS:
        raise ValueError(f"{op}: output of shape {list(shape)} is too large (limit {_MAX_ELEMENTS} elements)")
    size, physical = count * np.dtype(dtype).itemsize, _physical_memory_bytes()
    if physical and size > physical:
        raise MemoryError(f"{op}: output of shape {list(shape)} ({np.dtype(dtype).name}) needs {_human_bytes(size)} "
                          f"({size} bytes), more than this machine's {_human_bytes(physical)} of physical memory")
