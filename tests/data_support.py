"""Helpers for the data tests: small IDX and CIFAR files written on the fly, and an isolated lookup."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from pyconvnet.data import download


def idx_bytes(array):
    """The IDX encoding of a uint8 array."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(folder, stem, array, compress):
    folder.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path = folder / (stem + (".gz" if compress else ""))
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_mnist_split(folder, prefix, count, seed, compress=True):
    """Random images and labels written as ``prefix`` (train/t10k) IDX files; returns them."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    write_idx(folder, f"{prefix}-images-idx3-ubyte", images, compress)
    write_idx(folder, f"{prefix}-labels-idx1-ubyte", labels, compress)
    return images, labels


def cifar_pickle_bytes(rows, labels):
    """A batch in the format of the official python batches (a dict of bytes keys)."""
    batch = {b"batch_label": b"testing batch", b"labels": [int(v) for v in labels], b"data": rows,
             b"filenames": [b"x.png"] * len(labels)}
    return pickle.dumps(batch, protocol=4)


def make_cifar(folder, per_batch, seed, binary=False):
    """All six batches in ``folder``; returns ((train rows, labels), (test rows, labels))."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch, dtype=np.uint8)
        if binary:
            (folder / f"{name}.bin").write_bytes(np.concatenate([labels[:, None], rows], axis=1).tobytes())
        else:
            (folder / name).write_bytes(cifar_pickle_bytes(rows, labels))
        splits[name] = (rows, labels)
    train = [splits[f"data_batch_{i}"] for i in range(1, 6)]
    return (np.concatenate([r for r, _ in train]), np.concatenate([l for _, l in train])), splits["test_batch"]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $PYCONVNET_DATA, a private cache and system folder: returns (cache root, system root)."""
    monkeypatch.delenv("PYCONVNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "SYSTEM_DATA_DIRS", [str(tmp_path / "system")])
    return tmp_path / "cache" / "pyconvnet", tmp_path / "system"
