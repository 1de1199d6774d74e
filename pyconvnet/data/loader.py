"""``DataLoader``: batches of a dataset as pyconvnet Tensors (``torch.utils.data.DataLoader``).

Same arguments, defaults and meaning as torch's. A batch is the indices the batch sampler
gives, fetched with ``dataset[i]`` (or ``dataset.__getitems__``) and joined by ``collate_fn``;
with the default collate, a dataset that offers ``get_batch(indices)`` (pyconvnet's
in-memory datasets, ``TensorDataset``) gathers the whole batch in one step instead. An
``IterableDataset`` is read in order, ``batch_size`` items a batch; with workers, each worker
iterates the dataset itself (``get_worker_info()`` tells it which share to give, as in
torch) and batches come from the workers in turn.

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
import itertools
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from .. import random as _random
from ..ops._args import check_int
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, check_generator
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
        self._iterable = isinstance(dataset, IterableDataset)
        if not self._iterable and (not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__ (or be an IterableDataset), "
                            f"got {type(dataset).__name__}")
        if self._iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, "
                                     f"but got {name}={value!r}")
        self.num_workers = check_int(num_workers, "num_workers", "DataLoader", 0)
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
            batch_size = check_int(batch_size, "batch_size", "DataLoader")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.dataset = dataset
        self.generator = check_generator(generator, "DataLoader")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))
        self._auto_collation = batch_sampler is not None or (self._iterable and batch_size is not None)
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else default_convert)
        self.prefetch_factor = None if self.num_workers == 0 else (
            2 if prefetch_factor is None else check_int(prefetch_factor, "prefetch_factor", "DataLoader"))
        self.pin_memory = bool(pin_memory)
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.persistent_workers = bool(persistent_workers)
        self.in_order = in_order
        self._workers = None  # kept between epochs with persistent_workers
        self._iterator = lambda: None  # a weak reference to the epoch in progress

    @property
    def _index_sampler(self):
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def __len__(self):
        if not self._iterable:
            return len(self._index_sampler)
        count = len(self.dataset)  # a TypeError when the IterableDataset has no length, as in torch
        if self.batch_size is None:
            return count
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self):
        previous = self._iterator()
        if previous is not None:
            previous.close()  # one epoch at a time for persistent workers
        iterator = _BatchIterator(self)
        if self.persistent_workers:
            self._iterator = weakref.ref(iterator)
        return iterator

    def __del__(self):
        # Persistent workers end with their loader (without waiting: this may run in one of them).
        for worker in getattr(self, "_workers", None) or ():
            worker.shutdown(wait=False)

    def _fetch(self, indices):
        """One batch: through ``get_batch`` when the dataset offers it for the default collate."""
        dataset = self.dataset
        if not self._auto_collation:
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


_END = object()  # what a stream gives after its last batch


class _Stream:
    """One pass over an IterableDataset, started by the thread that reads it first."""

    def __init__(self, dataset):
        self._dataset = dataset
        self._items = None

    def next_batch(self, loader):
        if self._items is None:
            self._items = iter(self._dataset)
        if loader.batch_size is None:
            item = next(self._items, _END)
            return item if item is _END else loader.collate_fn(item)
        items = list(itertools.islice(self._items, loader.batch_size))
        if not items or (loader.drop_last and len(items) < loader.batch_size):
            return _END
        return loader.collate_fn(items)


def _load_streamed(loader, stream, seed):
    with use_generator(np.random.Generator(np.random.PCG64(seed))):
        return stream.next_batch(loader)


class _BatchIterator:
    """One epoch over a DataLoader; ``close()`` (also on garbage collection) stops its work."""

    def __init__(self, loader):
        self._loader = loader
        self._workers = None
        self._pending = collections.deque()
        generator = loader.generator if loader.generator is not None else _random.default_generator()
        self._base_seed = int(generator.integers(0, 1 << 64, dtype=np.uint64))
        self._indices = None if loader._iterable else iter(loader._index_sampler)
        self._streams = [_Stream(loader.dataset) for _ in range(max(loader.num_workers, 1))] if loader._iterable else None
        self._turns = collections.deque(range(len(self._streams))) if loader._iterable else None
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
        return len(self._loader)

    def __iter__(self):
        return self

    def _next_task(self):
        """(worker number, function, its arguments) for the next batch, or None at the end."""
        if self._exhausted:
            return None
        seed = np.random.SeedSequence(self._base_seed, spawn_key=(self._submitted,))
        if self._streams is not None:  # an IterableDataset: the workers take turns, while they have items
            if not self._turns:
                return None
            worker = self._turns[0]
            self._turns.rotate(-1)
            task = (worker, _load_streamed, (self._loader, self._streams[worker], seed))
        else:
            try:
                indices = next(self._indices)
            except StopIteration:
                self._exhausted = True
                return None
            task = (self._submitted % max(self._loader.num_workers, 1), _load, (self._loader, indices, seed))
        self._submitted += 1
        return task

    def _finished(self, worker):
        """Worker ``worker``'s stream ran out: no more turns for it."""
        if worker in self._turns:
            self._turns.remove(worker)

    def __next__(self):
        while True:
            worker, batch = self._next_batch()
            if batch is not _END:
                return batch
            self._finished(worker)

    def _next_batch(self):
        """(worker number, its batch or _END); StopIteration after the last."""
        if self._workers is None:
            task = self._next_task()
            if task is None:
                raise StopIteration
            worker, function, args = task
            return worker, function(*args)
        while len(self._pending) < self._depth:
            task = self._next_task()
            if task is None:
                break
            worker, function, args = task
            self._pending.append((worker, self._workers[worker].submit(function, *args)))
        if not self._pending:
            self.close()
            raise StopIteration
        timeout = self._loader.timeout or None
        worker, future = self._pending.popleft()
        try:
            return worker, future.result(timeout=timeout)
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
        futures = [future for _, future in self._pending]
        for future in futures:
            future.cancel()
        if self._loader.persistent_workers:
            if wait:
                concurrent.futures.wait(futures)
        else:
            for worker in workers:
                worker.shutdown(wait)
        self._pending.clear()

    def __del__(self):
        self.close()
