"""Datasets (torch.utils.data): map-style ``Dataset``, ``TensorDataset``, ``StackDataset``,
``Subset``, ``ConcatDataset``, ``random_split``; stream-style ``IterableDataset`` and
``ChainDataset``; and the in-memory image dataset behind MNIST, Fashion-MNIST and CIFAR-10.

The batch protocol: a dataset may define ``get_batch(indices)`` returning exactly what
``default_collate([dataset[i] for i in indices])`` would (a list of Tensors), or None when
it cannot for its current settings; the DataLoader then uses it instead of fetching and
collating sample by sample.
"""

import bisect
import math
import numbers
import warnings

import numpy as np

from ..creation import from_numpy
from ..tensor import Tensor
from .functional import pillow
from .sampler import check_generator, pass_generator

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "StackDataset", "Subset", "ConcatDataset", "ChainDataset",
           "random_split", "ArrayImageDataset"]


class Dataset:
    """Base class for map-style datasets (``torch.utils.data.Dataset``): subclasses define
    ``__getitem__(index)`` and ``__len__()``; ``a + b`` concatenates two datasets."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class for datasets read as a stream (``torch.utils.data.IterableDataset``):
    subclasses define ``__iter__``; ``a + b`` chains two of them."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """The items of each of ``datasets`` (iterables) in turn."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for dataset in self.datasets:
            yield from dataset

    def __len__(self):
        return sum(len(dataset) for dataset in self.datasets)


class StackDataset(Dataset):
    """Item ``i`` gathers item ``i`` of each dataset: a tuple for ``StackDataset(*datasets)``,
    a dict for ``StackDataset(**datasets)``; the datasets must have one length."""

    def __init__(self, *args, **kwargs):
        if bool(args) == bool(kwargs):
            raise ValueError("StackDataset: give datasets either as positional or as keyword arguments, not both")
        self.datasets = args or kwargs
        lengths = {len(dataset) for dataset in (args or kwargs.values())}
        if len(lengths) != 1:
            raise ValueError(f"StackDataset: size mismatch between datasets: lengths {sorted(lengths)}")
        self._length = lengths.pop()

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {key: dataset[index] for key, dataset in self.datasets.items()}
        return tuple(dataset[index] for dataset in self.datasets)

    def __len__(self):
        return self._length


class TensorDataset(Dataset):
    """Sample ``i`` is ``tuple(t[i] for t in tensors)``; the tensors share their first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: expected Tensors, got {type(t).__name__}")
        sizes = [tuple(t.shape) for t in tensors]
        if any(not size or size[0] != sizes[0][0] for size in sizes):
            raise ValueError(f"TensorDataset: size mismatch between tensors: shapes {sizes} must share the first dimension")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]

    def get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        return [from_numpy(np.ascontiguousarray(t.detach().numpy()[indices])) for t in self.tensors]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order (``torch.utils.data.Subset``)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        self._positions = np.asarray(indices, dtype=np.int64).reshape(-1)  # for the batch path

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __len__(self):
        return len(self.indices)

    def __getattr__(self, name):
        # Offer the batch path only when the wrapped dataset has one.
        if name == "get_batch" and hasattr(self.dataset, "get_batch"):
            return lambda indices: self.dataset.get_batch(self._positions[np.asarray(indices)])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class ConcatDataset(Dataset):
    """The samples of ``datasets`` one after the other; ``cumulative_sizes[i]`` counts those of
    the first ``i + 1``."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        if any(isinstance(dataset, IterableDataset) for dataset in self.datasets):
            raise TypeError("ConcatDataset does not support IterableDataset (use ChainDataset)")
        self.cumulative_sizes = []
        total = 0
        for dataset in self.datasets:
            total += len(dataset)
            self.cumulative_sizes.append(total)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise ValueError(f"ConcatDataset: absolute value of index {index} exceeds the length {len(self)}")
            index += len(self)
        part = bisect.bisect_right(self.cumulative_sizes, index)
        if part == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {index} is out of range for length {len(self)}")
        start = self.cumulative_sizes[part - 1] if part else 0
        return self.datasets[part][index - start]


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given ``lengths``: ints
    summing to ``len(dataset)``, or fractions summing to 1 (remainders go one each to the first
    parts, as in torch). ``generator`` is a numpy Generator; None draws from the global one."""
    check_generator(generator, "random_split")
    lengths = list(lengths)
    total = len(dataset)
    if lengths and all(isinstance(n, numbers.Real) and 0 <= n <= 1 for n in lengths) \
            and math.isclose(sum(lengths), 1) and sum(lengths) != total:
        counts = [int(math.floor(total * fraction)) for fraction in lengths]
        for i in range(total - sum(counts)):
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this results in an empty dataset",
                              stacklevel=2)
        lengths = counts
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0 for n in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions summing to 1, got {lengths}")
    if sum(lengths) != total:
        raise ValueError(f"random_split: sum of input lengths {sum(lengths)} does not equal the length of the "
                         f"input dataset ({total})")
    order = pass_generator(generator).permutation(total).tolist()
    subsets, offset = [], 0
    for length in lengths:
        subsets.append(Subset(dataset, order[offset : offset + length]))
        offset += length
    return subsets


class ArrayImageDataset(Dataset):
    """Images and labels held in memory as numpy arrays, served as torchvision serves them.

    ``data`` is uint8, (N, H, W) for grayscale or (N, H, W, C) channels-last (torchvision's
    layouts); ``targets`` is int64 (N,). Item ``i`` is ``(image, target)``: ``image`` a PIL
    image (mode 'L' or 'RGB') passed through ``transform``, ``target`` an int passed through
    ``target_transform``. ``get_batch`` gives the DataLoader whole batches when ``transform``
    is batched (see ``pyconvnet.data.transforms``): one fancy index gathers the uint8 images
    (N, C, H, W) and the transform's ``batch`` runs once, without a PIL image per sample.
    """

    classes = ()

    def __init__(self, data, targets, transform=None, target_transform=None):
        self.data = data
        self.targets = targets
        self.transform = transform
        self.target_transform = target_transform

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError(f"{type(self).__name__} indices must be integers, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {type(self).__name__} of length {len(self)}")
        image = pillow().fromarray(self.data[index])
        target = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def get_batch(self, indices):
        """``[images (N, C, H, W), targets (N,) int64]`` as the DataLoader would collate the
        items, or None when it cannot do it at once: no batched ``transform``, a
        ``target_transform``, or a transform that leaves PIL images (which do not collate)."""
        if self.transform is None or not getattr(self.transform, "batched", False) or self.target_transform is not None:
            return None
        indices = np.asarray(indices, dtype=np.int64)
        images = self.data[indices]
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        images = self.transform.batch(images)
        if images.dtype == np.uint8:
            return None
        return [from_numpy(np.ascontiguousarray(images)), from_numpy(self.targets[indices])]
