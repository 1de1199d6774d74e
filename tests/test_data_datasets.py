"""MNIST / Fashion-MNIST / CIFAR-10 / ImageFolder: decoding, lookup order, error messages."""

import gzip
import os
import pickle

import numpy as np
import pytest

from data_support import isolated  # noqa: F401 (fixture)
from data_support import cifar_pickle_bytes, idx_bytes, make_cifar, make_mnist_split, write_idx
from pyconvnet.data import CIFAR10, MNIST, DatasetNotFoundError, FashionMNIST, ImageFolder, Subset
from pyconvnet.data import transforms as T

Image = pytest.importorskip("PIL.Image")  # items are PIL images, as torchvision's


# ----------------------------------------------------------------------------- IDX datasets
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_idx_dataset_decodes_both_splits(isolated, tmp_path, cls, compress):
    root = tmp_path / "root"
    train_images, train_labels = make_mnist_split(root, "train", 7, seed=1, compress=compress)
    test_images, test_labels = make_mnist_split(root, "t10k", 3, seed=2, compress=compress)
    train, test = cls(root=root), cls(root=root, train=False)
    assert len(train) == 7 and len(test) == 3
    np.testing.assert_array_equal(train.data, train_images)
    np.testing.assert_array_equal(test.targets, test_labels)
    assert train.data.dtype == np.uint8 and train.targets.dtype == np.int64
    assert len(train.classes) == 10 and train.class_to_idx[train.classes[3]] == 3
    image, label = train[5]
    assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (28, 28)
    np.testing.assert_array_equal(np.asarray(image), train_images[5])
    assert label == int(train_labels[5]) and type(label) is int
    assert train[-1][1] == int(train_labels[-1])


def test_idx_batch_path_equals_collated_items(isolated, tmp_path):
    make_mnist_split(tmp_path, "train", 6, seed=3)
    dataset = FashionMNIST(root=tmp_path, transform=T.ToTensor())
    images, labels = dataset.get_batch(np.array([4, 0, 4]))
    assert images.shape == (3, 1, 28, 28) and images.dtype == np.float32 and labels.dtype == np.int64
    for row, index in enumerate([4, 0, 4]):
        image, label = dataset[index]
        np.testing.assert_array_equal(images.numpy()[row], image.numpy())
        assert labels.numpy()[row] == label
    dataset.transform = lambda x: x  # not batched: the loader collates items instead
    assert dataset.get_batch(np.array([0])) is None
    dataset.transform, dataset.target_transform = T.ToTensor(), lambda y: y + 100
    assert dataset.get_batch(np.array([0])) is None and dataset[4][1] == labels.numpy()[0] + 100


def test_index_errors(isolated, tmp_path):
    make_mnist_split(tmp_path, "train", 2, seed=0)
    dataset = MNIST(root=tmp_path)
    with pytest.raises(IndexError, match="index 2 is out of range"):
        dataset[2]
    with pytest.raises(TypeError, match="integers"):
        dataset[0.5]


@pytest.mark.parametrize("layout", ["", "raw", "fashion-mnist", "fashion-mnist/raw", "FashionMNIST/raw"])
def test_root_sub_layouts(isolated, tmp_path, layout):
    make_mnist_split(tmp_path / "root" / layout, "t10k", 2, seed=0)
    assert len(FashionMNIST(root=tmp_path / "root", train=False)) == 2


def test_lookup_order(isolated, tmp_path, monkeypatch):
    cache, system = isolated
    places = {
        "root": tmp_path / "root",
        "env": tmp_path / "env" / "mnist",
        "cache": cache / "mnist",
        "system": system / "mnist" / "raw",
    }
    for count, folder in enumerate(places.values(), start=1):
        make_mnist_split(folder, "t10k", count, seed=count)
    monkeypatch.setenv("PYCONVNET_DATA", str(tmp_path / "env"))
    assert len(MNIST(root=places["root"], train=False)) == 1
    assert len(MNIST(train=False)) == 2
    monkeypatch.delenv("PYCONVNET_DATA")
    assert len(MNIST(train=False)) == 3
    for path in places["cache"].iterdir():
        path.unlink()
    assert len(MNIST(train=False)) == 4


def test_raw_file_preferred_over_gzip_in_one_folder(isolated, tmp_path):
    make_mnist_split(tmp_path, "t10k", 2, seed=0, compress=True)
    images, _ = make_mnist_split(tmp_path, "t10k", 2, seed=1, compress=False)
    np.testing.assert_array_equal(MNIST(root=tmp_path, train=False).data, images)


def test_missing_dataset_message_lists_places_and_remedies(isolated, tmp_path):
    cache, system = isolated
    with pytest.raises(FileNotFoundError) as caught:
        FashionMNIST(root=tmp_path / "nowhere")
    assert isinstance(caught.value, DatasetNotFoundError)
    message = str(caught.value)
    for place in (tmp_path / "nowhere", tmp_path / "nowhere" / "raw", cache / "fashion-mnist",
                  system / "fashion-mnist", system / "fashion-mnist" / "raw"):
        assert f"  {place}\n" in message
    assert "download=True" in message and "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message and "train-images-idx3-ubyte" in message


def test_only_one_of_the_two_files_is_not_enough(isolated, tmp_path):
    write_idx(tmp_path, "train-images-idx3-ubyte", np.zeros((1, 28, 28)), compress=True)
    with pytest.raises(DatasetNotFoundError):
        MNIST(root=tmp_path)


def _corrupt(folder, what):
    """Write a train split with one defect; return the file name the error must mention."""
    images = np.zeros((4, 28, 28), np.uint8)
    labels = np.zeros(4, np.uint8)
    write_idx(folder, "train-labels-idx1-ubyte", labels, compress=False)
    write_idx(folder, "train-images-idx3-ubyte", images, compress=False)
    image_path = folder / "train-images-idx3-ubyte"
    label_path = folder / "train-labels-idx1-ubyte"
    if what == "magic":
        data = bytearray(image_path.read_bytes())
        data[2] = 0x0D
        image_path.write_bytes(bytes(data))
    elif what == "dimensions":
        image_path.write_bytes(idx_bytes(np.zeros((4, 28, 27), np.uint8)))
    elif what == "truncated":
        image_path.write_bytes(image_path.read_bytes()[:-5])
    elif what == "header":
        image_path.write_bytes(image_path.read_bytes()[:9])
    elif what == "gzip":
        image_path.unlink()
        image_path = folder / "train-images-idx3-ubyte.gz"
        image_path.write_bytes(gzip.compress(idx_bytes(images))[:-20])
    elif what == "count":
        label_path.write_bytes(idx_bytes(np.zeros(3, np.uint8)))
        return label_path, "3 labels for the 4 images"
    elif what == "range":
        label_path.write_bytes(idx_bytes(np.array([0, 1, 10, 2], np.uint8)))
        return label_path, "label 10 out of range"
    return image_path, {"magic": "bad magic number", "dimensions": "wrong dimensions",
                        "truncated": "size mismatch", "header": "truncated IDX header",
                        "gzip": "bad gzip"}[what]


@pytest.mark.parametrize("what", ["magic", "dimensions", "truncated", "header", "gzip", "count", "range"])
def test_corrupt_idx_files_name_the_file_and_the_defect(isolated, tmp_path, what):
    path, reason = _corrupt(tmp_path, what)
    with pytest.raises(ValueError) as caught:
        MNIST(root=tmp_path)
    assert str(path) in str(caught.value) and reason in str(caught.value)


def test_real_fashion_mnist(real_fashion_mnist):
    train, test = real_fashion_mnist
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    # Fashion-MNIST is balanced: 6000 train and 1000 test images per class.
    np.testing.assert_array_equal(np.bincount(train.targets), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(test.targets), np.full(10, 1000))
    assert train.classes[9] == "Ankle boot"


# ----------------------------------------------------------------------------- CIFAR-10
def _expected_images(rows):
    return rows.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)


@pytest.mark.parametrize("binary", [False, True])
def test_cifar_decodes_pickle_and_binary_batches(isolated, tmp_path, binary):
    folder = tmp_path / ("cifar-10-batches-bin" if binary else "cifar-10-batches-py")
    (train_rows, train_labels), (test_rows, test_labels) = make_cifar(folder, 4, seed=5, binary=binary)
    train, test = CIFAR10(root=tmp_path), CIFAR10(root=tmp_path, train=False, transform=T.ToTensor())
    assert len(train) == 20 and len(test) == 4
    assert train.data.shape == (20, 32, 32, 3) and train.data.dtype == np.uint8
    np.testing.assert_array_equal(train.targets, train_labels)
    np.testing.assert_array_equal(test.targets, test_labels)
    image, label = train[13]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == int(train_labels[13])
    np.testing.assert_array_equal(np.asarray(image), train_rows[13].reshape(3, 32, 32).transpose(1, 2, 0))
    np.testing.assert_array_equal(test[2][0].numpy(), _expected_images(test_rows[2:3])[0])
    images, labels = test.get_batch(np.array([3, 1]))
    np.testing.assert_array_equal(images.numpy(), _expected_images(test_rows[[3, 1]]))
    assert labels.numpy().tolist() == test_labels[[3, 1]].tolist()


def test_cifar_files_directly_in_the_cache(isolated):
    cache, _ = isolated
    make_cifar(cache / "cifar-10", 2, seed=0)
    assert len(CIFAR10(train=False)) == 2


def test_cifar_unpickler_refuses_code(isolated, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar(folder, 2, seed=0)

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(ValueError, match=r"test_batch.*refusing to load"):
        CIFAR10(root=tmp_path, train=False)


@pytest.mark.parametrize("defect", ["truncated", "not-a-dict", "wrong-dtype", "short-data", "count", "range"])
def test_cifar_corrupt_pickle_batches(isolated, tmp_path, defect):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar(folder, 3, seed=0)
    rows = np.zeros((3, 3072), np.uint8)
    path = folder / "test_batch"
    content = {
        "truncated": cifar_pickle_bytes(rows, [0, 1, 2])[:-40],
        "not-a-dict": pickle.dumps([1, 2, 3]),
        "wrong-dtype": cifar_pickle_bytes(rows.astype(np.int16), [0, 1, 2]),
        "short-data": cifar_pickle_bytes(np.zeros((3, 3000), np.uint8), [0, 1, 2]),
        "count": cifar_pickle_bytes(rows, [0, 1]),
        "range": cifar_pickle_bytes(rows, [0, 1, 12]),
    }[defect]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="test_batch"):
        CIFAR10(root=tmp_path, train=False)


def test_cifar_truncated_binary_batch(isolated, tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    make_cifar(folder, 2, seed=0, binary=True)
    path = folder / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="test_batch.bin: size mismatch"):
        CIFAR10(root=tmp_path, train=False)


def test_cifar_missing_message(isolated, tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        CIFAR10(root=tmp_path)
    message = str(caught.value)
    assert f"  {tmp_path / 'cifar-10-batches-py'}\n" in message and "download=True" in message


# ----------------------------------------------------------------------------- Subset
def test_subset_keeps_the_batch_path(isolated, tmp_path):
    make_mnist_split(tmp_path, "train", 5, seed=0)
    dataset = MNIST(root=tmp_path, transform=T.ToTensor())
    subset = Subset(dataset, [4, 2])
    assert len(subset) == 2 and subset[1][1] == dataset[2][1]
    images, labels = subset.get_batch(np.array([1, 0]))
    np.testing.assert_array_equal(labels.numpy(), dataset.targets[[2, 4]])
    assert not hasattr(Subset([(np.zeros(1), 0)], [0]), "get_batch")


# ----------------------------------------------------------------------------- ImageFolder
def test_image_folder_reads_classes_in_sorted_order(tmp_path):
    rng = np.random.default_rng(0)
    pictures = {}
    for name, ext in [("dog", "png"), ("cat", "png"), ("cat", "PNG"), ("dog", "jpg")]:
        (tmp_path / name).mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
        path = tmp_path / name / f"{len(pictures)}.{ext}"
        Image.fromarray(pixels).save(path)
        pictures[str(path)] = pixels
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    gray = tmp_path / "cat" / "gray.png"
    Image.fromarray(np.full((5, 6), 77, np.uint8)).save(gray)
    (tmp_path / "cat" / "deeper").mkdir()
    deep = tmp_path / "cat" / "deeper" / "0.png"
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(deep)

    dataset = ImageFolder(tmp_path)
    assert dataset.classes == ["cat", "dog"] and dataset.class_to_idx == {"cat": 0, "dog": 1}
    # torchvision's order: a class folder's own files (sorted), then its sub-folders'
    cats = sorted(p for p in pictures if "/cat/" in p) + [str(gray)]
    assert [path for path, _ in dataset.samples] == sorted(cats) + [str(deep)] + sorted(p for p in pictures if "/dog/" in p)
    assert dataset.targets == [0, 0, 0, 0, 1, 1] and len(dataset) == 6 and dataset.imgs is dataset.samples
    for index, (path, label) in enumerate(dataset.samples):
        image, got_label = dataset[index]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (6, 5) and got_label == label
        if path == str(gray):
            np.testing.assert_array_equal(np.asarray(image), np.full((5, 6, 3), 77))
        elif path.endswith(("png", "PNG")) and path in pictures:  # lossless: exact pixels
            np.testing.assert_array_equal(np.asarray(image), pictures[path])
    only_png = ImageFolder(tmp_path, transform=T.ToTensor(), target_transform=lambda y: -y,
                           is_valid_file=lambda path: path.endswith(".png"), loader=lambda path: Image.open(path))
    assert len(only_png) == 4 and only_png[3][1] == -1 and only_png[0][0].shape == (3, 5, 6)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ImageFolder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no valid file"):
        ImageFolder(tmp_path)
    assert len(ImageFolder(tmp_path, allow_empty=True)) == 0
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        ImageFolder(tmp_path)[0]


def test_pillow_stays_optional(isolated, tmp_path):
    """Without Pillow the trainer's batch path works; a PIL item says what to install."""
    import subprocess
    import sys

    make_mnist_split(tmp_path, "train", 4, seed=0)
    code = (
        "import sys; sys.modules['PIL'] = None\n"
        "import pyconvnet.data as d\n"
        f"m = d.MNIST(root={str(tmp_path)!r}, transform=d.transforms.Compose([d.transforms.RandomCrop(28, padding=2),"
        " d.transforms.ToTensor()]))\n"
        "print(next(iter(d.DataLoader(m, batch_size=4)))[0].shape)\n"
        "try:\n    m[0]\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[4, 1, 28, 28]" in result.stdout and "pyconvnet[image]" in result.stdout
