"""Samplers: the order in which a DataLoader visits a dataset's indices (torch.utils.data's samplers).

Random samplers take an optional ``generator`` (a ``numpy.random.Generator``; torch takes a
``torch.Generator``). Without one, each pass draws a fresh seed from pyconvnet's global
generator when iteration starts, as torch draws one from its global generator, so
``pyconvnet.manual_seed`` fixes every epoch. Indices come out as Python ints.
"""


import math

import numpy as np

from .. import distributed as _distributed
from .. import random as _random
from ..ops._args import check_int

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler", "DistributedSampler"]


def check_generator(generator, owner):
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"{owner}: generator must be a pyconvnet.Generator (or numpy.random.Generator) or None, got {type(generator).__name__}")
    return generator


def pass_generator(generator):
    """``generator``, or one seeded from the global generator for this pass."""
    if generator is not None:
        return generator
    return np.random.Generator(np.random.PCG64(_random.next_seed()))


class Sampler:
    """Base class: subclasses define ``__iter__`` (yielding indices) and usually ``__len__``.

    ``data_source`` is accepted and ignored, as in torch."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the indices (``replacement=False``) repeated until ``num_samples``
    are drawn, or ``num_samples`` independent uniform draws (``replacement=True``)."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement must be a bool, got {replacement!r}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = None if num_samples is None else check_int(num_samples, "num_samples", "RandomSampler")
        self.generator = check_generator(generator, "RandomSampler")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        count, wanted = len(self.data_source), self.num_samples
        generator = pass_generator(self.generator)
        if self.replacement:
            yield from generator.integers(0, count, size=wanted).tolist()
            return
        for _ in range(wanted // count):
            yield from generator.permutation(count).tolist()
        yield from generator.permutation(count)[: wanted % count].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order, a new one every pass."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = check_generator(generator, "SubsetRandomSampler")

    def __iter__(self):
        for position in pass_generator(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[position]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability proportional to ``weights``."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1:
            raise ValueError(f"WeightedRandomSampler: weights must be a sequence of numbers, got shape {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and not all zero")
        if not isinstance(replacement, bool):
            raise TypeError(f"WeightedRandomSampler: replacement must be a bool, got {replacement!r}")
        self.weights = weights
        self.num_samples = check_int(num_samples, "num_samples", "WeightedRandomSampler")
        if not replacement and self.num_samples > np.count_nonzero(weights):
            raise ValueError(f"WeightedRandomSampler: cannot draw {self.num_samples} samples without replacement "
                             f"from {np.count_nonzero(weights)} non-zero weights")
        self.replacement = replacement
        self.generator = check_generator(generator, "WeightedRandomSampler")

    def __iter__(self):
        generator = pass_generator(self.generator)
        chosen = generator.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                                  p=self.weights / self.weights.sum())
        return iter(chosen.tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler``; the last one shorter unless ``drop_last``."""

    def __init__(self, sampler, batch_size, drop_last):
        self.sampler = sampler
        self.batch_size = check_int(batch_size, "batch_size", "BatchSampler")
        if not isinstance(drop_last, bool):
            raise TypeError(f"BatchSampler: drop_last must be a bool, got {drop_last!r}")
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return -(-len(self.sampler) // self.batch_size)


class DistributedSampler(Sampler):
    """Rank ``rank``'s share of the dataset when ``num_replicas`` ranks train together: the ranks'
    shares are disjoint and, together, cover every index. Each rank yields ``len(self)`` indices;
    unless ``drop_last``, the (shuffled) index list is padded by repeating its start until it
    divides evenly, else its tail is dropped, as torch. The order is a permutation seeded by
    ``seed + epoch`` (the same on every rank): call ``set_epoch(epoch)`` before each epoch.
    ``num_replicas``/``rank`` default to the process group's."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        caller = "DistributedSampler"
        num_replicas = _distributed.get_world_size() if num_replicas is None else num_replicas
        rank = _distributed.get_rank() if rank is None else rank
        self.num_replicas = check_int(num_replicas, "num_replicas", caller)
        self.rank = check_int(rank, "rank", caller, minimum=0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"{caller}: invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, bool):
                raise TypeError(f"{caller}: {name} must be a bool, got {flag!r}")
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = check_int(seed, "seed", caller, minimum=0)
        self.drop_last = drop_last
        self.epoch = 0
        count = len(dataset)
        if drop_last and count % self.num_replicas:
            self.num_samples = math.ceil((count - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(count / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self):
        count = len(self.dataset)
        if self.shuffle:
            indices = _random.Generator().manual_seed(self.seed + self.epoch).permutation(count)
        else:
            indices = np.arange(count)
        if self.drop_last:
            indices = indices[:self.total_size]
        elif self.total_size > count:
            indices = np.resize(indices, self.total_size)  # repeats from the start
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Make the next pass use the permutation of ``seed + epoch``."""
        self.epoch = check_int(epoch, "epoch", "DistributedSampler.set_epoch", minimum=0)
