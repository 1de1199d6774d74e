"""``DataLoader``: batches of a dataset as pyconvnet Tensors, prepared ahead in background threads.

Each batch is gathered with the dataset's ``get_batch(indices)`` when it has one (one fancy
index over in-memory arrays), otherwise by calling ``dataset[i]`` per sample and stacking.

Prefetching uses threads, not processes: the built-in datasets live in memory and numpy
releases the GIL while it copies and converts, and threads cannot deadlock an OpenMP runtime
the way forked processes can. ``num_workers=0`` gives one background thread, ``num_workers=k``
gives ``k``; each keeps up to ``prefetch_factor`` batches ready. ``prefetch_factor=0`` (with
``num_workers=0``) prepares every batch in the calling thread when it is asked for.

Reproducibility: every epoch (``iter(loader)``) draws one seed from ``generator`` (a
``numpy.random.Generator``) or, without one, from pyconvnet's global generator, as torch
draws its base seed; the shuffle order and a per-batch generator for the random transforms
are derived from that seed. So ``pyconvnet.manual_seed`` fixes every epoch, and the batches
do not depend on ``num_workers`` or ``prefetch_factor``.
"""

import collections
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import random as _random
from ..ops._args import check_int
from ..tensor import Tensor, from_numpy
from .transforms import use_generator

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size``, like ``torch.utils.data.DataLoader``.

    Yields ``(images, labels)`` (float32 and int64 Tensors) for the built-in datasets; for a
    generic dataset whose items are tuples, one Tensor per tuple field. ``shuffle`` reorders
    every epoch; ``drop_last`` drops a final short batch. See the module docstring for
    threading and seeding.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, *, num_workers=0, drop_last=False,
                 generator=None, prefetch_factor=2):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__, got {type(dataset).__name__}")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"DataLoader: generator must be a numpy.random.Generator, got {type(generator).__name__}")
        self.dataset = dataset
        self.batch_size = check_int(batch_size, "batch_size", "DataLoader")
        self.shuffle = bool(shuffle)
        self.num_workers = check_int(num_workers, "num_workers", "DataLoader", 0)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self.prefetch_factor = check_int(prefetch_factor, "prefetch_factor", "DataLoader", 0)
        if self.num_workers > 0 and self.prefetch_factor == 0:
            raise ValueError("DataLoader: prefetch_factor must be >= 1 when num_workers > 0")

    def __len__(self):
        count = len(self.dataset)
        if self.drop_last:
            return count // self.batch_size
        return -(-count // self.batch_size)

    def __iter__(self):
        return _BatchIterator(self)


def _collate(items):
    """Stack a list of (field, field, ...) samples into one array per field."""
    first = items[0]
    if not isinstance(first, (tuple, list)):
        return (_stack(items),)
    if any(len(item) != len(first) for item in items):
        raise ValueError("DataLoader: samples of one batch have different numbers of fields")
    return tuple(_stack(field) for field in zip(*items))


def _stack(values):
    arrays = [value.numpy() if isinstance(value, Tensor) else np.asarray(value) for value in values]
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise ValueError(f"DataLoader: cannot stack samples of different shapes {sorted(shapes)}")
    return np.stack(arrays)


def _load_batch(dataset, indices, seed):
    """One batch as Tensors; random transforms draw from a generator seeded by ``seed``."""
    with use_generator(np.random.Generator(np.random.PCG64(seed))):
        if hasattr(dataset, "get_batch"):
            arrays = dataset.get_batch(indices)
        else:
            arrays = _collate([dataset[int(i)] for i in indices])
    return tuple(from_numpy(np.ascontiguousarray(array)) for array in arrays)


class _BatchIterator:
    """One epoch over a DataLoader; ``close()`` (also on garbage collection) stops its threads."""

    def __init__(self, loader):
        self._executor = None
        self._dataset = loader.dataset
        generator = loader.generator if loader.generator is not None else _random.default_generator()
        epoch_seed = np.random.SeedSequence(int(generator.integers(0, 1 << 64, dtype=np.uint64)))
        order_seed, batches_seed = epoch_seed.spawn(2)
        count = len(loader.dataset)
        if loader.shuffle:
            order = np.random.Generator(np.random.PCG64(order_seed)).permutation(count)
        else:
            order = np.arange(count)
        self._length = len(loader)
        self._order = order
        self._batch_size = loader.batch_size
        self._batches_seed = batches_seed
        self._next_submit = 0
        self._pending = collections.deque()
        if loader.prefetch_factor > 0:
            workers = max(loader.num_workers, 1)
            self._depth = workers * loader.prefetch_factor
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pyconvnet-data")

    def __len__(self):
        return self._length

    def __iter__(self):
        return self

    def _task(self, number):
        start = number * self._batch_size
        seed = np.random.SeedSequence(self._batches_seed.entropy, spawn_key=(*self._batches_seed.spawn_key, number))
        return self._dataset, self._order[start : start + self._batch_size], seed

    def __next__(self):
        if self._executor is None:
            if self._next_submit >= self._length:
                raise StopIteration
            self._next_submit += 1
            return _load_batch(*self._task(self._next_submit - 1))
        while self._next_submit < self._length and len(self._pending) < self._depth:
            self._pending.append(self._executor.submit(_load_batch, *self._task(self._next_submit)))
            self._next_submit += 1
        if not self._pending:
            self.close()
            raise StopIteration
        try:
            return self._pending.popleft().result()
        except BaseException:
            self.close()
            raise

    def close(self):
        """Cancel the batches not started and wait for the running ones; idempotent."""
        executor, self._executor = self._executor, None
        self._next_submit = self._length
        if executor is not None:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
            executor.shutdown(wait=True)

    def __del__(self):
        self.close()
