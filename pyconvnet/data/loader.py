"""``DataLoader``: batches of a dataset as pyconvnet Tensors (``torch.utils.data.DataLoader``).

Same arguments, defaults and meaning as torch's. A batch is the indices the batch sampler
gives, fetched with ``dataset[i]`` (or ``dataset.__getitems__``) and joined by ``collate_fn``;
with the default collate, a dataset that offers ``get_batch(indices)`` (pyconvnet's
in-memory datasets, ``TensorDataset``) gathers the whole batch in one step instead.

Workers are threads, not processes: the built-in datasets live in memory, numpy releases the
GIL while it copies and converts, and threads cannot deadlock an OpenMP runtime the way
forked processes can. ``num_workers=0`` loads each batch in the calling thread when it is
asked for; ``num_workers=k`` starts ``k`` threads that take batches in turn (batch ``n`` goes
to worker ``n % k``, as in torch) and keep ``prefetch_factor`` batches each ready. Every
worker sees the same dataset object (no copy per worker). ``worker_init_fn(worker_id)``
runs in each worker before its first batch, where ``get_worker_info()`` describes it.
``pin_memory``, ``pin_memory_device`` and ``multiprocessing_context`` are accepted and do
nothing (there is no GPU memory to pin for, and no process to start); batches always come
in order, whatever ``in_order`` says.

Reproducibility: every epoch (``iter(loader)``) draws a base seed from ``generator`` (a
``numpy.random.Generator``; torch takes a ``torch.Generator``) or, without one, from
pyconvnet's global generator, as torch does. Batch ``n`` is prepared while
``pyconvnet.data.transforms`` draws from a generator seeded from (base seed, ``n``), so the
random transforms give the same batches whatever ``num_workers`` and ``prefetch_factor``
are, and ``pyconvnet.manual_seed`` fixes every epoch. Threads share Python's ``random`` and
numpy's global state, which pyconvnet does not reseed per worker: code of one's own that
draws from them inside ``__getitem__`` is reproducible only with ``num_workers=0``.
"""

import collections
import concurrent.futures
import threading
from dataclasses import dataclass

import numpy as np

from .. import random as _random
from .collate import default_collate, default_convert
from .sampler import BatchSampler, RandomSampler, SequentialSampler, check_generator, positive_int
from .transforms import use_generator

__all__ = ["DataLoader", "WorkerInfo", "get_worker_info"]

_worker = threading.local()


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker thread."""

    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info():
    """The ``WorkerInfo`` of the worker thread calling it, or None outside a worker."""
    return getattr(_worker, "info", None)


class DataLoader:
    """Iterate over ``dataset`` in batches, like ``torch.utils.data.DataLoader``.

    ``batch_size=None`` turns batching off (each item is converted alone with
    ``default_convert``); ``sampler`` / ``batch_sampler`` replace the order that ``shuffle``
    and ``batch_size`` / ``drop_last`` would make; ``timeout`` (seconds, workers only) bounds the
    wait for one batch. See the module docstring for workers and seeding.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__, got {type(dataset).__name__}")
        self.num_workers = positive_int(num_workers, "DataLoader: num_workers", 0)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
            raise ValueError(f"DataLoader: timeout must be a non-negative number, got {timeout!r}")
        if self.num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor can only be given with num_workers > 0 (workers prefetch; "
                             "num_workers=0 loads in the calling thread)")
        if persistent_workers and self.num_workers == 0:
            raise ValueError("DataLoader: persistent_workers needs num_workers > 0")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got {type(worker_init_fn).__name__}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {type(collate_fn).__name__}")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                                 "exclusive with drop_last")
        else:
            batch_size = positive_int(batch_size, "DataLoader: batch_size")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.dataset = dataset
        self.generator = check_generator(generator, "DataLoader")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if batch_sampler is not None else default_convert)
        self.prefetch_factor = None if self.num_workers == 0 else (
            2 if prefetch_factor is None else positive_int(prefetch_factor, "DataLoader: prefetch_factor"))
        self.pin_memory = bool(pin_memory)
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.persistent_workers = bool(persistent_workers)
        self.in_order = in_order
        self._workers = None  # kept between epochs with persistent_workers
        self._iterator = None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def __len__(self):
        return len(self._index_sampler)

    def __iter__(self):
        if self._iterator is not None:
            self._iterator.close()  # one epoch at a time for persistent workers
        iterator = _BatchIterator(self)
        if self.persistent_workers:
            self._iterator = iterator
        return iterator

    def _fetch(self, indices):
        """One batch: through ``get_batch`` when the dataset offers it for the default collate."""
        dataset = self.dataset
        if self.batch_sampler is None:
            return self.collate_fn(dataset[indices])
        if self.collate_fn is default_collate and hasattr(dataset, "get_batch"):
            batch = dataset.get_batch(indices)
            if batch is not None:
                return batch
        if hasattr(dataset, "__getitems__"):
            return self.collate_fn(dataset.__getitems__(indices))
        return self.collate_fn([dataset[i] for i in indices])


class _Worker:
    """One worker thread: an executor of one thread, so its batches run in submission order."""

    def __init__(self, info, init_fn):
        self.info = info
        self._init_fn = init_fn
        self._started = False
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyconvnet-data")

    def submit(self, function, *args):
        return self._executor.submit(self._run, function, args)

    def _run(self, function, args):
        _worker.info = self.info
        if not self._started:
            self._started = True
            if self._init_fn is not None:
                self._init_fn(self.info.id)
        return function(*args)

    def shutdown(self, wait):
        self._executor.shutdown(wait=wait, cancel_futures=True)


def _load(loader, indices, seed):
    """One batch; random transforms draw from a generator seeded by ``seed``."""
    with use_generator(np.random.Generator(np.random.PCG64(seed))):
        return loader._fetch(indices)


class _BatchIterator:
    """One epoch over a DataLoader; ``close()`` (also on garbage collection) stops its work."""

    def __init__(self, loader):
        self._loader = loader
        self._workers = None
        self._pending = collections.deque()
        generator = loader.generator if loader.generator is not None else _random.default_generator()
        self._base_seed = int(generator.integers(0, 1 << 64, dtype=np.uint64))
        self._indices = iter(loader._index_sampler)
        self._length = len(loader)
        self._submitted = 0
        self._exhausted = False
        if loader.num_workers:
            self._workers = loader._workers or [
                _Worker(WorkerInfo(i, loader.num_workers, (self._base_seed + i) % (1 << 64), loader.dataset),
                        loader.worker_init_fn)
                for i in range(loader.num_workers)]
            if loader.persistent_workers:
                loader._workers = self._workers
            self._depth = loader.num_workers * loader.prefetch_factor

    def __len__(self):
        return self._length

    def __iter__(self):
        return self

    def _next_task(self):
        """(indices, seed) of the next batch, or None at the end of the sampler."""
        if self._exhausted:
            return None
        try:
            indices = next(self._indices)
        except StopIteration:
            self._exhausted = True
            return None
        number = self._submitted
        self._submitted += 1
        return indices, np.random.SeedSequence(self._base_seed, spawn_key=(number,))

    def __next__(self):
        if self._workers is None:
            task = self._next_task()
            if task is None:
                raise StopIteration
            return _load(self._loader, *task)
        while len(self._pending) < self._depth:
            number = self._submitted
            task = self._next_task()
            if task is None:
                break
            worker = self._workers[number % len(self._workers)]
            self._pending.append(worker.submit(_load, self._loader, *task))
        if not self._pending:
            self.close()
            raise StopIteration
        timeout = self._loader.timeout or None
        try:
            return self._pending.popleft().result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            self.close(wait=False)
            raise RuntimeError(f"DataLoader timed out after {self._loader.timeout} seconds") from None
        except BaseException:
            self.close()
            raise

    def close(self, wait=True):
        """Cancel the batches not started and (with ``wait``) wait for the running ones; idempotent."""
        workers, self._workers = self._workers, None
        self._exhausted = True
        if workers is None:
            return
        for future in self._pending:
            future.cancel()
        if self._loader.persistent_workers:
            if wait:
                concurrent.futures.wait(self._pending)
        else:
            for worker in workers:
                worker.shutdown(wait)
        self._pending.clear()

    def __del__(self):
        self.close()
