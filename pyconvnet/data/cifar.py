"""CIFAR-10 from the python-pickle batches (``cifar-10-batches-py``) or the binary version
(``cifar-10-batches-bin``).

The pickle batches are dicts with ``b'data'`` (a 10000x3072 uint8 numpy array, each row the
red, green and blue 32x32 planes) and ``b'labels'`` (a list of ints). Unpickling runs whatever
the file names, so ``_BatchUnpickler`` resolves only the three numpy names an array needs and
maps them to inert stand-ins; the array is then rebuilt from its raw bytes with
``np.frombuffer``. The binary batches are 3073-byte records: one label byte, then the pixels.
"""

import pickle
from pathlib import Path

import numpy as np

from . import download as _download
from .dataset import ArrayImageDataset

__all__ = ["CIFAR10"]

_PIXELS = 3 * 32 * 32
_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_TEST = ["test_batch"]
_ARCHIVE = "cifar-10-python.tar.gz"
_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
_PY_FOLDER = "cifar-10-batches-py"
_BIN_FOLDER = "cifar-10-batches-bin"


class _PickledArray:
    """Stands in for ``numpy.ndarray`` while unpickling: keeps the state pickle hands it."""

    def __init__(self, *args):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _PickledDtype:
    """Stands in for ``numpy.dtype``: keeps the type code (b'u1' / 'u1')."""

    def __init__(self, code, align=False, copy=False):
        self.code = code.decode("latin1") if isinstance(code, bytes) else code

    def __setstate__(self, state):
        pass


def _reconstruct(cls, shape, typecode):
    return _PickledArray()


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _PickledArray,
    ("numpy", "dtype"): _PickledDtype,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _array_from(pickled, path):
    """Rebuild the uint8 (N, 3072) array from the state numpy pickled."""
    try:
        _version, shape, dtype, _fortran, raw = pickled.state
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: b'data' is not a pickled numpy array") from error
    if not isinstance(dtype, _PickledDtype) or dtype.code != "u1":
        raise ValueError(f"{path}: b'data' must be a uint8 array")
    if isinstance(raw, str):  # a Python 2 byte string read with the latin-1 codec
        raw = raw.encode("latin1")
    if len(shape) != 2 or shape[1] != _PIXELS:
        raise ValueError(f"{path}: wrong dimensions {shape} for b'data', expected (N, {_PIXELS})")
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != shape[0] * _PIXELS:
        raise ValueError(f"{path}: size mismatch: b'data' of shape {shape} holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def _read_pickle_batch(path):
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise ValueError(f"{path}: not a CIFAR-10 pickle batch ({type(error).__name__}: {error})") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    data = batch[b"data"]
    if not isinstance(data, _PickledArray):
        raise ValueError(f"{path}: b'data' is not a pickled numpy array")
    images = _array_from(data, path)
    try:
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{path}: b'labels' is not a list of ints") from error
    return images, labels


def _read_binary_batch(path):
    raw = Path(path).read_bytes()
    if len(raw) % (_PIXELS + 1):
        raise ValueError(f"{path}: size mismatch: {len(raw)} bytes is not a whole number of {_PIXELS + 1}-byte records")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _PIXELS + 1)
    return records[:, 1:], records[:, 0].astype(np.int64)


class CIFAR10(ArrayImageDataset):
    """CIFAR-10: 50000 train / 10000 test colour images, 3x32x32, 10 classes.

    torchvision's constructor and items: ``(image, target)``, an RGB PIL image (32x32) through
    ``transform`` and an int through ``target_transform``. ``.data`` is uint8 (N, 32, 32, 3)
    (torchvision's channels-last layout), ``.targets`` int64 (a numpy array; torchvision's is a list). Looked up as described in ``pyconvnet.data.download`` under the name ``cifar-10``,
    in either format's folder or with the batch files directly in the folder.
    ``download=True`` fetches and checks the official python archive and extracts its batches.
    """

    name = "cifar-10"
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        self.root = root
        self.train = bool(train)
        names = _TRAIN if self.train else _TEST
        found = self._locate(names)
        if found is None and download:
            found = (self._download(), "")
        if found is None:
            places = self._places()
            raise _download.not_found(
                f"CIFAR10 ({'train' if self.train else 'test'} split)",
                places,
                f"{', '.join(names)} (python batches, or the same names + .bin)",
                self._download_dir() / _PY_FOLDER,
            )
        self.folder, suffix = found
        read = _read_pickle_batch if suffix == "" else _read_binary_batch
        parts = []
        for name in names:
            path = self.folder / (name + suffix)
            rows, labels = read(path)
            if len(labels) != len(rows):
                raise ValueError(f"{path}: {len(labels)} labels for {len(rows)} images")
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
                bad = labels.min() if labels.min() < 0 else labels.max()
                raise ValueError(f"{path}: label {bad} out of range for {len(self.classes)} classes")
            parts.append((rows, labels))
        images = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.concatenate([p[1] for p in parts])
        super().__init__(np.ascontiguousarray(images), labels, transform, target_transform)

    def _places(self):
        places = []
        for folder in _download.search_dirs(self.name, self.root, ("cifar10",)):
            if folder.name != "raw":
                places += [folder, folder / _PY_FOLDER, folder / _BIN_FOLDER]
        return places

    def _locate(self, names):
        for folder in self._places():
            for suffix in ("", ".bin"):
                if all((folder / (name + suffix)).is_file() for name in names):
                    return folder, suffix
        return None

    def _download_dir(self):
        return _download.download_dir(self.name, self.root, "")

    def _download(self):
        destination = self._download_dir()
        archive = _download.download_file(_ARCHIVE, _download.MIRRORS[self.name], _ARCHIVE_MD5, destination)
        _extract_batches(archive, destination / _PY_FOLDER)
        archive.unlink()
        return destination / _PY_FOLDER

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"CIFAR10(split={split}, n={len(self)}, folder={str(self.folder)!r})"


def _extract_batches(archive, folder):
    """Copy the batch files out of the archive by name: nothing else in it is written."""
    import tarfile  # only for downloads: slow to import

    wanted = {f"{_PY_FOLDER}/{name}" for name in _TRAIN + _TEST + ["batches.meta"]}
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name in wanted:
                target = folder / Path(member.name).name
                part = target.with_name(f".{target.name}.part")
                with tar.extractfile(member) as source, open(part, "wb") as out:
                    out.write(source.read())
                part.replace(target)
                wanted.discard(member.name)
    if wanted:
        raise ValueError(f"{archive}: missing {sorted(wanted)}")
