"""pyconvnet.utils.data against torch.utils.data: module paths, collate, samplers, datasets, DataLoader."""

import threading
from collections import namedtuple

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.utils.data as data

torch = pytest.importorskip("torch")
tdata = torch.utils.data

Pair = namedtuple("Pair", "x y")


def _plain(value):
    """A pyconvnet or torch batch as nested Python/numpy values, for comparison."""
    if isinstance(value, (pcn.Tensor, torch.Tensor)):
        return np.asarray(value.numpy())
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value) if not hasattr(value, "_fields") else \
            type(value)(*(_plain(item) for item in value))
    return value


def _assert_same(ours, theirs, float_dtype=np.float32):
    """Equal structure and values; torch's float64 becomes float32 in pyconvnet."""
    ours, theirs = _plain(ours), _plain(theirs)
    if isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray), f"{type(ours)} is not an array"
        expected = theirs.astype(float_dtype) if theirs.dtype == np.float64 else theirs
        expected = expected.astype(np.int64) if expected.dtype.kind in "iu" else expected
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        np.testing.assert_array_equal(ours, expected)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and ours.keys() == theirs.keys()
        for key in theirs:
            _assert_same(ours[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_same(a, b)
    else:
        assert ours == theirs


def test_module_paths_name_the_same_objects():
    import pyconvnet.data
    from pyconvnet.utils.data import DataLoader
    from pyconvnet.vision import datasets, transforms

    assert DataLoader is data.DataLoader is pyconvnet.data.DataLoader
    assert pcn.utils.data is data and pcn.vision.datasets is datasets  # as torch.utils.data after `import torch`
    assert datasets.MNIST is pyconvnet.data.MNIST and datasets.CIFAR10 is pyconvnet.data.CIFAR10
    assert transforms.Normalize is pyconvnet.data.transforms.Normalize
    for name in ["Dataset", "DataLoader", "TensorDataset", "Subset", "random_split", "ConcatDataset", "Sampler",
                 "RandomSampler", "SequentialSampler", "BatchSampler", "SubsetRandomSampler", "WeightedRandomSampler",
                 "default_collate", "default_convert", "get_worker_info", "IterableDataset", "ChainDataset",
                 "StackDataset"]:
        assert name in tdata.__all__ and hasattr(data, name), name


# ----------------------------------------------------------------------------- collate
COLLATE_CASES = {
    "ints": [1, 2, 3],
    "floats": [0.5, 1.5],
    "bools": [True, False],
    "numpy scalars": [np.int32(3), np.int32(4)],
    "arrays": [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 3), np.float32)],
    "uint8 arrays": [np.array([1, 2], np.uint8), np.array([250, 3], np.uint8)],
    "tuples": [(np.zeros(2, np.float32), 1), (np.ones(2, np.float32), 2)],
    "lists": [[1, 2.5], [3, 4.5]],
    "dicts": [{"image": np.zeros((1, 2), np.float32), "label": 0, "name": "a"},
              {"image": np.ones((1, 2), np.float32), "label": 1, "name": "b"}],
    "named tuples": [Pair(1, 2.0), Pair(3, 4.0)],
    "strings": ["a", "b"],
}


@pytest.mark.parametrize("case", COLLATE_CASES)
def test_default_collate_matches_torch(case):
    batch = COLLATE_CASES[case]
    _assert_same(data.default_collate(batch), tdata.default_collate(batch))


def test_default_collate_stacks_tensors_and_reports_errors():
    samples = [pcn.tensor([1.0, 2.0]), pcn.tensor([3.0, 4.0])]
    np.testing.assert_array_equal(data.default_collate(samples).numpy(), [[1, 2], [3, 4]])
    with pytest.raises(RuntimeError, match="equal size"):
        data.default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match=r"equal size.*\(2,\)"):
        data.default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="found <class 'object'>"):
        data.default_collate([object()])
    for error in (RuntimeError, TypeError):  # torch agrees on both
        with pytest.raises(error):
            tdata.default_collate([[1, 2], [3]] if error is RuntimeError else [object()])


def test_default_convert_matches_torch():
    sample = {"x": np.arange(3), "y": (np.float32(2.0), "s"), "z": 5}
    _assert_same(data.default_convert(sample), tdata.default_convert(sample))


# ----------------------------------------------------------------------------- samplers
def test_sequential_and_batch_samplers_match_torch():
    source = range(10)
    assert list(data.SequentialSampler(source)) == list(tdata.SequentialSampler(source))
    for batch_size in (1, 3, 5, 11):
        for drop_last in (False, True):
            ours = data.BatchSampler(data.SequentialSampler(source), batch_size, drop_last)
            theirs = tdata.BatchSampler(tdata.SequentialSampler(source), batch_size, drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)
    with pytest.raises(ValueError):
        data.BatchSampler(source, 0, False)
    with pytest.raises(TypeError):
        data.BatchSampler(source, 2, 1)


@pytest.mark.parametrize("replacement,num_samples", [(False, None), (False, 25), (False, 4), (True, None), (True, 30)])
def test_random_sampler_draws_like_torch(replacement, num_samples):
    source = range(10)
    ours = data.RandomSampler(source, replacement=replacement, num_samples=num_samples,
                              generator=np.random.default_rng(0))
    theirs = tdata.RandomSampler(source, replacement=replacement, num_samples=num_samples)
    drawn = list(ours)
    assert len(ours) == len(theirs) == len(drawn) == len(list(theirs))
    assert all(type(i) is int and 0 <= i < 10 for i in drawn)
    if not replacement:  # whole permutations first, then a part of one
        for start in range(0, len(drawn) - len(drawn) % 10, 10):
            assert sorted(drawn[start : start + 10]) == list(range(10))
        assert len(set(drawn[len(drawn) - len(drawn) % 10 :])) == len(drawn) % 10
    assert drawn != list(ours)  # a new order each pass


def test_random_sampler_without_generator_follows_manual_seed():
    sampler = data.RandomSampler(range(20))
    pcn.manual_seed(5)
    first = [list(sampler), list(sampler)]
    pcn.manual_seed(5)
    assert [list(sampler), list(sampler)] == first and first[0] != first[1]


def test_subset_and_weighted_samplers():
    indices = [3, 7, 9, 11]
    order = list(data.SubsetRandomSampler(indices, generator=np.random.default_rng(1)))
    assert sorted(order) == indices and len(data.SubsetRandomSampler(indices)) == 4
    weights = [0.0, 1.0, 0.0, 3.0]
    drawn = list(data.WeightedRandomSampler(weights, 4000, generator=np.random.default_rng(2)))
    assert set(drawn) == {1, 3} and abs(drawn.count(3) / 4000 - 0.75) < 0.03
    assert sorted(data.WeightedRandomSampler(weights, 2, replacement=False)) == [1, 3]
    with pytest.raises(ValueError, match="without replacement"):
        data.WeightedRandomSampler(weights, 3, replacement=False)
    with pytest.raises(ValueError, match="non-negative"):
        data.WeightedRandomSampler([-1.0, 2.0], 3)


# ----------------------------------------------------------------------------- datasets
def test_tensor_dataset_matches_torch():
    x = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    y = np.arange(6)
    ours = data.TensorDataset(pcn.tensor(x), pcn.tensor(y))
    theirs = tdata.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(ours) == len(theirs) == 6
    _assert_same(ours[4], theirs[4])
    _assert_same(ours.get_batch([5, 0, 5]), tdata.default_collate([theirs[5], theirs[0], theirs[5]]))
    with pytest.raises(ValueError, match=r"size mismatch.*\(6, 2, 2\).*\(5,\)"):
        data.TensorDataset(pcn.tensor(x), pcn.tensor(y[:5]))
    with pytest.raises(TypeError, match="Tensors"):
        data.TensorDataset(x)


def test_concat_dataset_matches_torch():
    parts = [list(range(3)), list(range(10, 12)), [], list(range(20, 24))]
    ours, theirs = data.ConcatDataset(parts), tdata.ConcatDataset(parts)
    assert len(ours) == len(theirs) == 9 and ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-9, 9)] == [theirs[i] for i in range(-9, 9)]
    for index, error in ((-10, ValueError), (9, IndexError)):
        with pytest.raises(error):
            ours[index]
        with pytest.raises(error):
            theirs[index]
    assert list(data.TensorDataset(pcn.zeros(2)) + data.TensorDataset(pcn.ones(1))) is not None
    assert len(data.Subset(parts[0], [0, 1]) + data.Subset(parts[3], [2])) == 3
    with pytest.raises(ValueError, match="empty"):
        data.ConcatDataset([])


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.25, 0.25, 0.5], [1 / 3, 1 / 3, 1 / 3]])
def test_random_split_sizes_match_torch_and_partition(lengths):
    source = list(range(10))
    ours = data.random_split(source, lengths, generator=np.random.default_rng(0))
    theirs = tdata.random_split(source, lengths)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    items = sorted(x for subset in ours for x in subset)
    assert items == source and all(isinstance(s, data.Subset) for s in ours)
    with pytest.raises(ValueError, match="sum of input lengths"):
        data.random_split(source, [3, 3])


def test_random_split_follows_the_generator():
    split = [list(s) for s in data.random_split(range(8), [4, 4], generator=np.random.default_rng(3))]
    again = [list(s) for s in data.random_split(range(8), [4, 4], generator=np.random.default_rng(3))]
    assert split == again and split[0] != [0, 1, 2, 3]


# ----------------------------------------------------------------------------- DataLoader
class Records(data.Dataset):
    """Item i: a dict of an array, an int label and a float weight; works for torch and pyconvnet."""

    def __len__(self):
        return 11

    def __getitem__(self, i):
        return {"x": np.full((2, 3), i, np.float32), "label": i % 4, "weight": i / 2}


def _torch_loader(dataset, **kwargs):
    return list(tdata.DataLoader(dataset, **kwargs))


@pytest.mark.parametrize("kwargs", [
    {}, {"batch_size": 4}, {"batch_size": 4, "drop_last": True}, {"batch_size": None},
    {"batch_size": 3, "sampler": [10, 2, 5, 7]}, {"batch_sampler": [[1, 2], [9], [0, 4, 3]]},
    {"batch_size": 2, "collate_fn": lambda items: [item["label"] for item in items]},
])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_batches_match_torch(kwargs, num_workers):
    ours = list(data.DataLoader(Records(), num_workers=num_workers, **kwargs))
    theirs = _torch_loader(Records(), **kwargs)
    assert len(ours) == len(theirs) == len(data.DataLoader(Records(), **kwargs))
    for a, b in zip(ours, theirs, strict=True):
        _assert_same(a, b)


def test_loader_over_tensor_dataset_matches_torch_with_the_batch_path():
    x = np.random.default_rng(0).random((10, 3), dtype=np.float32)
    y = np.arange(10)
    ours = list(data.DataLoader(data.TensorDataset(pcn.tensor(x), pcn.tensor(y)), batch_size=4))
    theirs = _torch_loader(tdata.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=4)
    for a, b in zip(ours, theirs, strict=True):
        _assert_same(a, b)


def test_getitems_is_used_like_torch():
    class Batched(Records):
        def __getitems__(self, indices):
            return [{"x": np.zeros(1, np.float32), "label": -i, "weight": 0.0} for i in indices]

    ours = list(data.DataLoader(Batched(), batch_size=5))
    theirs = _torch_loader(Batched(), batch_size=5)
    for a, b in zip(ours, theirs, strict=True):
        _assert_same(a, b)


@pytest.mark.parametrize("kwargs", [
    {"batch_sampler": [[0]], "batch_size": 2}, {"batch_sampler": [[0]], "shuffle": True},
    {"batch_sampler": [[0]], "drop_last": True}, {"sampler": [0, 1], "shuffle": True},
    {"batch_size": None, "drop_last": True}, {"num_workers": -1}, {"prefetch_factor": 2},
    {"persistent_workers": True}, {"timeout": -1},
])
def test_argument_conflicts_raise_value_error_like_torch(kwargs):
    with pytest.raises(ValueError):
        data.DataLoader(Records(), **kwargs)
    with pytest.raises(ValueError):
        tdata.DataLoader(Records(), **kwargs)


def test_accepted_no_op_arguments_and_attributes():
    loader = data.DataLoader(Records(), batch_size=4, shuffle=True, num_workers=2, pin_memory=True,
                             persistent_workers=True, prefetch_factor=3, pin_memory_device="", in_order=True)
    assert loader.pin_memory and loader.prefetch_factor == 3 and loader.batch_size == 4
    assert isinstance(loader.sampler, data.RandomSampler) and isinstance(loader.batch_sampler, data.BatchSampler)
    assert sorted(np.concatenate([b["label"].numpy() for b in loader]).tolist()) == sorted(i % 4 for i in range(11))
    sequential = data.DataLoader(Records())
    assert isinstance(sequential.sampler, data.SequentialSampler) and sequential.prefetch_factor is None


class _Probe(data.Dataset):
    """Records which worker served each index and how often each worker was initialised."""

    def __init__(self):
        self.served = {}
        self.lock = threading.Lock()

    def __len__(self):
        return 12

    def __getitem__(self, i):
        info = data.get_worker_info()
        with self.lock:
            self.served[i] = None if info is None else (info.id, info.num_workers, info.dataset is self)
        return i


def test_worker_init_fn_and_get_worker_info():
    dataset = _Probe()
    started = []
    loader = data.DataLoader(dataset, batch_size=2, num_workers=3, worker_init_fn=started.append)
    assert [b.numpy().tolist() for b in loader] == [[2 * i, 2 * i + 1] for i in range(6)]
    assert sorted(started) == [0, 1, 2]
    # batch n is served by worker n % 3, as torch assigns them
    assert dataset.served == {i: ((i // 2) % 3, 3, True) for i in range(12)}
    list(loader)
    assert sorted(started) == [0, 0, 1, 1, 2, 2]  # new workers every epoch
    assert data.get_worker_info() is None
    list(data.DataLoader(dataset, batch_size=2))
    assert set(dataset.served.values()) == {None}


def _loader_threads_end():
    """Wait (up to 10 s) for the worker threads to finish; True when they all did."""
    for thread in threading.enumerate():
        if thread.name.startswith("pyconvnet-data"):
            thread.join(10)
    return not any(thread.name.startswith("pyconvnet-data") for thread in threading.enumerate())


def test_persistent_workers_start_once_and_end_with_the_loader():
    started = []
    loader = data.DataLoader(_Probe(), batch_size=3, num_workers=2, persistent_workers=True,
                             worker_init_fn=started.append)
    for _ in range(3):
        assert len(list(loader)) == 4
    next(iter(loader))  # an abandoned epoch, then a full one
    assert len(list(loader)) == 4
    assert sorted(started) == [0, 1]
    del loader
    assert _loader_threads_end()


def test_timeout_raises_and_does_not_wait_for_the_stuck_batch():
    release = threading.Event()

    class Stuck(data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            release.wait(10)
            return i

    loader = data.DataLoader(Stuck(), num_workers=1, timeout=0.05)
    try:
        with pytest.raises(RuntimeError, match="timed out after 0.05 seconds"):
            next(iter(loader))
    finally:
        release.set()
    assert _loader_threads_end()


def test_shuffle_with_generator_is_reproducible_and_leaves_the_global_generator():
    pcn.manual_seed(0)
    before = pcn.random.default_generator().bit_generator.state

    def epoch(seed):
        loader = data.DataLoader(Records(), batch_size=4, shuffle=True, generator=np.random.default_rng(seed))
        return np.concatenate([b["x"].numpy()[:, 0, 0] for b in loader]).tolist()

    assert epoch(1) == epoch(1) != epoch(2)
    assert sorted(epoch(1)) == list(range(11))
    assert pcn.random.default_generator().bit_generator.state == before


# ----------------------------------------------------------------------------- iterable datasets
class Stream(data.IterableDataset):
    """0..count-1 (as (value, value * 10)), each worker giving every num_workers-th item, as torch's
    documentation shards an IterableDataset; works under torch.utils.data too."""

    def __init__(self, count, base=data):
        self.count = count
        self.base = base

    def __len__(self):
        return self.count

    def __iter__(self):
        info = self.base.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for value in range(start, self.count, step):
            yield np.float32(value), value * 10


class TorchStream(Stream, tdata.IterableDataset):
    def __init__(self, count):
        super().__init__(count, tdata)


@pytest.mark.parametrize("kwargs", [{}, {"batch_size": 4}, {"batch_size": 4, "drop_last": True},
                                    {"batch_size": None}])
def test_iterable_dataset_matches_torch(kwargs):
    ours = list(data.DataLoader(Stream(10), **kwargs))
    theirs = list(tdata.DataLoader(TorchStream(10), **kwargs))
    assert len(ours) == len(theirs) == len(data.DataLoader(Stream(10), **kwargs)) == len(
        tdata.DataLoader(TorchStream(10), **kwargs))
    for a, b in zip(ours, theirs, strict=True):
        _assert_same(a, b)


def test_iterable_dataset_with_workers_takes_batches_in_turn():
    # worker 0 streams 0, 3, 6, 9, 12; worker 1 streams 1, 4, 7, 10; worker 2 streams 2, 5, 8, 11
    batches = [b[1].numpy().tolist() for b in data.DataLoader(Stream(13), batch_size=2, num_workers=3)]
    assert batches == [[0, 30], [10, 40], [20, 50], [60, 90], [70, 100], [80, 110], [120]]
    again = [b[1].numpy().tolist() for b in data.DataLoader(Stream(13), batch_size=2, num_workers=3,
                                                             prefetch_factor=1, drop_last=True)]
    assert again == batches[:-1]


def test_iterable_dataset_argument_checks_and_chaining():
    for kwargs in ({"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}):
        with pytest.raises(ValueError, match="IterableDataset"):
            data.DataLoader(Stream(3), **kwargs)
        with pytest.raises(ValueError):
            tdata.DataLoader(TorchStream(3), **kwargs)
    chained = Stream(2) + Stream(3)
    assert isinstance(chained, data.ChainDataset) and len(chained) == 5
    assert [int(x) for x, _ in chained] == [0, 1, 0, 1, 2]
    with pytest.raises(TypeError, match="ChainDataset"):
        data.ConcatDataset([Stream(2)])


def test_stack_dataset_matches_torch():
    images, labels = [np.full(2, i, np.float32) for i in range(4)], list(range(4))
    for args, kwargs in (((images, labels), {}), ((), {"image": images, "label": labels})):
        ours, theirs = data.StackDataset(*args, **kwargs), tdata.StackDataset(*args, **kwargs)
        assert len(ours) == len(theirs) == 4
        _assert_same(data.default_collate([ours[i] for i in range(4)]),
                     tdata.default_collate([theirs[i] for i in range(4)]))
    with pytest.raises(ValueError, match="size mismatch"):
        data.StackDataset(images, labels[:3])
