"""Argument normalisation shared by the op modules (PyTorch's int-or-pair conventions)."""

import numbers

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def int64(value, name, op):
    """A Python int that the kernels' 64-bit descriptors can hold (their checks do the rest)."""
    value = int(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{op}: {name} value {value} does not fit in a 64-bit integer")
    return value


def pair(value, name, op):
    """``value`` as a (height, width) tuple of ints; TypeError/ValueError name ``op`` and ``name``."""
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
