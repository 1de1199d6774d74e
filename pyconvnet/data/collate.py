"""``default_collate`` and ``default_convert``: samples -> batches of pyconvnet Tensors, as in torch.

``default_collate`` stacks a list of samples field by field: Tensors and numpy arrays are
stacked along a new first dimension, Python ints and bools become an int64 / bool Tensor,
Python floats and numpy scalars a Tensor, strings stay a sequence, and tuples, lists,
named tuples and dicts are collated recursively (a batch of tuples comes back as a list, as
in torch). Differences from torch, from pyconvnet's dtypes (float32, int64, bool): Python
floats and float64 arrays collate to float32, not float64, and other integer dtypes to
int64; a collated batch is outside the autograd graph.
"""

import collections.abc
import numbers

import numpy as np

from ..creation import from_numpy
from ..tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _is_numeric_array(value):
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf"


def _array(value):
    return value.detach().numpy() if isinstance(value, Tensor) else value


def _stack(batch):
    arrays = [_array(value) for value in batch]
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, got shapes {sorted(shapes)}")
    return from_numpy(np.stack(arrays))


def _rebuild(sample, values):
    """``values`` (a dict for a mapping, else a list) in ``sample``'s container type, as torch
    rebuilds it: named tuples keep their type, plain tuples become lists, and a type that
    cannot be built from the values gives the dict or list itself."""
    if isinstance(sample, tuple):
        return type(sample)(*values) if hasattr(sample, "_fields") else values
    try:
        return type(sample)(values)
    except TypeError:
        return values


def default_collate(batch):
    """One batch from a list of samples (see the module docstring)."""
    first = batch[0]
    if isinstance(first, Tensor) or _is_numeric_array(first):
        return _stack(batch)
    if isinstance(first, (bool, np.bool_)):
        return from_numpy(np.array(batch, dtype=np.bool_))
    if isinstance(first, (numbers.Number, np.number)) and not isinstance(first, complex):
        return from_numpy(np.array(batch))
    if isinstance(first, (str, bytes)):
        return batch
    if isinstance(first, collections.abc.Mapping):
        return _rebuild(first, {key: default_collate([sample[key] for sample in batch]) for key in first})
    if isinstance(first, collections.abc.Sequence):
        if any(len(sample) != len(first) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return _rebuild(first, [default_collate(list(field)) for field in zip(*batch)])
    raise TypeError(_ERROR.format(type(first)))


def default_convert(data):
    """One sample with numpy arrays turned into Tensors, recursively (used when batch_size=None)."""
    if _is_numeric_array(data) or isinstance(data, np.number):
        return from_numpy(np.asarray(data))
    if isinstance(data, (str, bytes, Tensor)):
        return data
    if isinstance(data, collections.abc.Mapping):
        return _rebuild(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, collections.abc.Sequence):
        return _rebuild(data, [default_convert(value) for value in data])
    return data
