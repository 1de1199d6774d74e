"""download=True against a local HTTP server: checksum success and failure, atomic rename."""

import gzip
import hashlib
import http.server
import shutil
import tarfile
import threading

import numpy as np
import pytest

from data_support import isolated  # noqa: F401 (fixture)
from data_support import cifar_pickle_bytes, idx_bytes
from pyconvnet.data import CIFAR10, MNIST, DownloadError, FashionMNIST, download


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, folder)."""
    folder = tmp_path / "www"
    folder.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _md5(data):
    return hashlib.md5(data).hexdigest()


def _serve_mnist(folder, count, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    checksums = {}
    for name, array in [("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz", labels)]:
        data = gzip.compress(idx_bytes(array))
        (folder / name).write_bytes(data)
        checksums[name] = _md5(data)
    return images, labels, checksums


def test_download_into_the_cache_with_checksums(isolated, server, monkeypatch, capsys):
    cache, _ = isolated
    url, folder = server
    images, labels, checksums = _serve_mnist(folder, 5, seed=0)
    monkeypatch.setitem(download.MIRRORS, "fashion-mnist", [url])
    monkeypatch.setattr(FashionMNIST, "md5", checksums)
    dataset = FashionMNIST(train=False, download=True)
    np.testing.assert_array_equal(dataset.data, images)
    np.testing.assert_array_equal(dataset.targets, labels)
    assert sorted(p.name for p in (cache / "fashion-mnist").iterdir()) == sorted(checksums)
    assert url in capsys.readouterr().err
    # Found in the cache now: no server needed.
    monkeypatch.setitem(download.MIRRORS, "fashion-mnist", [])
    assert len(FashionMNIST(train=False, download=True)) == 5


@pytest.mark.parametrize("cls,name", [(MNIST, "mnist"), (FashionMNIST, "fashion-mnist")])
def test_download_into_root_uses_torchvisions_layout(isolated, server, monkeypatch, tmp_path, cls, name):
    url, folder = server
    _, _, checksums = _serve_mnist(folder, 2, seed=1)
    monkeypatch.setitem(download.MIRRORS, name, [url])
    monkeypatch.setattr(cls, "md5", checksums)
    cls(root=tmp_path / "data", train=False, download=True)
    assert (tmp_path / "data" / cls.__name__ / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()
    monkeypatch.setitem(download.MIRRORS, name, [])
    assert len(cls(root=tmp_path / "data", train=False)) == 2


def test_checksum_mismatch_leaves_no_file(isolated, server, monkeypatch):
    cache, _ = isolated
    url, folder = server
    _, _, checksums = _serve_mnist(folder, 2, seed=2)
    checksums["t10k-images-idx3-ubyte.gz"] = "0" * 32
    monkeypatch.setitem(download.MIRRORS, "mnist", [url])
    monkeypatch.setattr(MNIST, "md5", checksums)
    with pytest.raises(DownloadError) as caught:
        MNIST(train=False, download=True)
    assert "t10k-images-idx3-ubyte.gz" in str(caught.value) and "MD5" in str(caught.value)
    assert list((cache / "mnist").iterdir()) == []


def test_falls_back_to_the_next_mirror(isolated, server, monkeypatch):
    url, folder = server
    _, labels, checksums = _serve_mnist(folder, 3, seed=3)
    monkeypatch.setitem(download.MIRRORS, "mnist", [url + "missing/", url])
    monkeypatch.setattr(MNIST, "md5", checksums)
    np.testing.assert_array_equal(MNIST(train=False, download=True).targets, labels)


def test_all_mirrors_failing_lists_each_failure(isolated, server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError) as caught:
        download.download_file("absent.gz", [url, url + "sub/"], "0" * 32, tmp_path / "out")
    message = str(caught.value)
    assert f"{url}absent.gz" in message and f"{url}sub/absent.gz" in message and "404" in message
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_file_with_matching_checksum_is_kept(tmp_path):
    (tmp_path / "f.gz").write_bytes(b"payload")
    assert download.download_file("f.gz", [], _md5(b"payload"), tmp_path) == tmp_path / "f.gz"


def test_cifar_download_extracts_only_the_batches(isolated, server, monkeypatch, tmp_path):
    cache, _ = isolated
    url, folder = server
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
    build = folder / "build"
    (build / "cifar-10-batches-py").mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (build / "cifar-10-batches-py" / name).write_bytes(cifar_pickle_bytes(rows, [3, 7]))
    (build / "evil").write_text("outside the batch folder")
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(build / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        tar.add(build / "evil", arcname="../evil")
    monkeypatch.setitem(download.MIRRORS, "cifar-10", [url])
    monkeypatch.setattr("pyconvnet.data.cifar._ARCHIVE_MD5", _md5(archive.read_bytes()))
    dataset = CIFAR10(train=False, download=True)
    assert dataset.targets.tolist() == [3, 7]
    assert sorted(p.name for p in (cache / "cifar-10").iterdir()) == ["cifar-10-batches-py"]
    assert not (cache / "evil").exists()
    # With a root (and nothing in the cache): torchvision's root/cifar-10-batches-py.
    shutil.rmtree(cache / "cifar-10")
    assert len(CIFAR10(root=tmp_path / "data", download=True)) == 10
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-10-batches-py"]
    assert not (tmp_path / "evil").exists()
