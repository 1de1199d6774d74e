"""DataLoader: batching, shuffle, drop_last, len, seeding, prefetch equivalence, shutdown."""

import threading

import numpy as np
import pytest

import pyconvnet as pcn
from data_support import isolated  # noqa: F401 (fixture)
from data_support import make_mnist_split
from pyconvnet.data import MNIST, DataLoader, Dataset
from pyconvnet.data import transforms as T


class Items(Dataset):
    """A generic dataset without get_batch: item i is (i, i*10) as arrays of shape (2,) and ()."""

    def __init__(self, count, fail_at=None):
        self.count = count
        self.fail_at = fail_at

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if index == self.fail_at:
            raise RuntimeError(f"broken sample {index}")
        return np.array([index, -index], dtype=np.float32), index * 10


@pytest.fixture
def mnist(isolated, tmp_path):
    make_mnist_split(tmp_path, "train", 23, seed=7)
    return MNIST(root=tmp_path, transform=T.ToTensor())


def _epoch(loader):
    return [tuple(t.numpy().copy() for t in batch) for batch in loader]


@pytest.mark.parametrize("count,batch,drop_last,expected", [(10, 3, False, 4), (10, 3, True, 3), (9, 3, False, 3),
                                                            (2, 5, True, 0), (2, 5, False, 1)])
def test_len_and_batch_sizes(count, batch, drop_last, expected):
    loader = DataLoader(Items(count), batch_size=batch, drop_last=drop_last)
    sizes = [len(labels) for _, labels in _epoch(loader)]
    assert len(loader) == expected == len(sizes)
    assert sum(sizes) == (count // batch * batch if drop_last else count)


def test_sequential_batches_from_the_batch_path(mnist):
    batches = list(DataLoader(mnist, batch_size=10))
    images, labels = batches[0]
    assert isinstance(images, pcn.Tensor) and images.dtype == pcn.float32 and labels.dtype == pcn.int64
    assert tuple(images.shape) == (10, 1, 28, 28) and tuple(batches[-1][0].shape) == (3, 1, 28, 28)
    np.testing.assert_array_equal(images.numpy(), mnist.data[:10, None] / np.float32(255))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), mnist.targets)


def test_batch_path_equals_collating_the_items(mnist):
    mnist.transform = T.Compose([T.Pad(2, fill=7), T.CenterCrop(30), T.ToTensor(), T.Normalize([0.25], [0.5])])
    images, labels = next(iter(DataLoader(mnist, batch_size=6)))
    items = [mnist[i] for i in range(6)]
    np.testing.assert_allclose(images.numpy(), np.stack([image.numpy() for image, _ in items]), rtol=0, atol=1e-6)
    assert labels.numpy().tolist() == [label for _, label in items]
    assert mnist.get_batch([0, 1]) is not None
    mnist.transform = T.Compose([T.Pad(2), T.Lambda(lambda image: image), T.ToTensor()])  # not batched
    assert mnist.get_batch([0, 1]) is None and len(list(DataLoader(mnist, batch_size=6))) == 4


def test_images_without_to_tensor_do_not_collate_as_in_torch(mnist):
    torch = pytest.importorskip("torch")
    for transform in (None, T.RandomHorizontalFlip()):
        mnist.transform = transform
        assert mnist.get_batch([0, 1]) is None
        with pytest.raises(TypeError, match="found <class 'PIL.Image.Image'>"):
            next(iter(DataLoader(mnist, batch_size=2)))
        with pytest.raises(TypeError, match="found <class 'PIL.Image.Image'>"):
            next(iter(torch.utils.data.DataLoader(mnist, batch_size=2)))


def test_generic_dataset_is_collated_per_item():
    (inputs, labels), = _epoch(DataLoader(Items(4), batch_size=4))
    np.testing.assert_array_equal(inputs, [[0, 0], [1, -1], [2, -2], [3, -3]])
    assert inputs.dtype == np.float32 and labels.dtype == np.int64 and labels.tolist() == [0, 10, 20, 30]


def test_shuffle_is_a_permutation_that_changes_per_epoch(mnist):
    loader = DataLoader(mnist, batch_size=5, shuffle=True)
    orders = []
    for _ in range(2):
        images = np.concatenate([b[0] for b in _epoch(loader)])
        index_of = {mnist.data[i].tobytes(): i for i in range(len(mnist))}
        orders.append([index_of[(np.rint(im[0] * 255)).astype(np.uint8).tobytes()] for im in images])
    assert sorted(orders[0]) == list(range(len(mnist)))
    assert orders[0] != orders[1] and orders[0] != list(range(len(mnist)))


def test_manual_seed_makes_epochs_reproducible(mnist):
    mnist.transform = T.Compose([T.RandomCrop(28, padding=3), T.RandomHorizontalFlip(), T.ToTensor()])
    loader = DataLoader(mnist, batch_size=8, shuffle=True)
    pcn.manual_seed(3)
    first = _epoch(loader) + _epoch(loader)
    pcn.manual_seed(3)
    second = _epoch(loader) + _epoch(loader)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    pcn.manual_seed(4)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, _epoch(loader)))


def test_explicit_generator_leaves_the_global_one_alone(mnist):
    pcn.manual_seed(0)
    before = pcn.random.default_generator().bit_generator.state
    a = _epoch(DataLoader(mnist, batch_size=4, shuffle=True, generator=np.random.default_rng(9)))
    assert pcn.random.default_generator().bit_generator.state == before
    b = _epoch(DataLoader(mnist, batch_size=4, shuffle=True, generator=np.random.default_rng(9)))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[1], y[1])


@pytest.mark.parametrize("num_workers,prefetch_factor", [(1, None), (1, 3), (2, 1), (3, 2)])
def test_prefetch_and_workers_give_the_same_batches(mnist, num_workers, prefetch_factor):
    mnist.transform = T.Compose([T.RandomCrop(24, padding=1), T.RandomHorizontalFlip(), T.ToTensor(),
                                 T.Normalize([0.5], [0.25])])

    def run(**kwargs):
        loader = DataLoader(mnist, batch_size=4, shuffle=True, generator=np.random.default_rng(1), **kwargs)
        return _epoch(loader)

    reference = run()  # in the calling thread
    other = run(num_workers=num_workers, prefetch_factor=prefetch_factor)
    for a, b in zip(reference, other, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_per_sample_random_transforms_do_not_depend_on_the_workers(mnist):
    """Items transformed one by one (a Lambda keeps the batch path off) draw from each batch's generator."""
    mnist.transform = T.Compose([T.RandomResizedCrop(20), T.RandomHorizontalFlip(), T.ToTensor(),
                                 T.Lambda(lambda image: image)])

    def run(**kwargs):
        return _epoch(DataLoader(mnist, batch_size=4, shuffle=True, generator=np.random.default_rng(2), **kwargs))

    reference = run()
    for other in (run(num_workers=1), run(num_workers=3, prefetch_factor=1)):
        for a, b in zip(reference, other, strict=True):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def _loader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pyconvnet-data")]


def test_early_break_stops_the_threads():
    loader = DataLoader(Items(100), batch_size=2, num_workers=2, prefetch_factor=4)
    for _ in loader:
        break
    assert _loader_threads() == []
    iterator = iter(loader)
    next(iterator)
    iterator.close()
    assert _loader_threads() == [] and list(iterator) == []


def test_exception_in_a_worker_reaches_the_caller_and_stops_the_threads():
    loader = DataLoader(Items(20, fail_at=7), batch_size=2, num_workers=2)
    seen = []
    with pytest.raises(RuntimeError, match="broken sample 7"):
        for _, labels in loader:
            seen.append(labels.numpy().tolist())
    assert seen == [[0, 10], [20, 30], [40, 50]]
    assert _loader_threads() == []


def test_abandoned_iterator_exits_cleanly_with_the_interpreter(tmp_path):
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from pyconvnet.data import DataLoader\n"
        "data = [(np.zeros(3, np.float32), 1)] * 1000\n"
        "class D:\n"
        "    def __len__(self): return len(data)\n"
        "    def __getitem__(self, i): return data[i]\n"
        "keep = iter(DataLoader(D(), batch_size=2, num_workers=2, prefetch_factor=8))\n"
        "next(keep)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("kwargs,error", [
    ({"batch_size": 0}, ValueError), ({"batch_size": 2.0}, TypeError), ({"num_workers": -1}, ValueError),
    ({"num_workers": 1, "prefetch_factor": 0}, ValueError), ({"prefetch_factor": 2}, ValueError),
    ({"generator": 5}, TypeError),
])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        DataLoader(Items(3), **kwargs)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(object())
