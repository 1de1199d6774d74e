"""Argument normalisation shared by the op modules (PyTorch's int-or-pair conventions)."""

import numbers


def pair(value, name, op):
    """``value`` as a (height, width) tuple of ints; TypeError/ValueError name ``op`` and ``name``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            return (int(value[0]), int(value[1]))
    if isinstance(value, (tuple, list)) and len(value) == 1:
        return pair(value[0], name, op)
    if isinstance(value, (tuple, list)):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {type(value).__name__}")
