"""MNIST and Fashion-MNIST from their IDX files (gzip-compressed or raw).

The four files per dataset keep their official names (``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-...``). An IDX file is a big-endian header
(two zero bytes, a type code, the number of dimensions, one uint32 per dimension) and then
the uint8 values. Checksums are checked when downloading only: Debian's package ships the
same data recompressed, so the .gz files differ byte-wise from the official ones.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

from . import download as _download
from .dataset import ArrayImageDataset

__all__ = ["MNIST", "FashionMNIST", "read_idx"]

_UBYTE = 0x08


def _read_bytes(path):
    path = Path(path)
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: bad gzip data ({error})") from error


def read_idx(path, ndim, item_shape=()):
    """The uint8 array stored in IDX file ``path``, checked to have ``ndim`` dimensions
    whose trailing ones equal ``item_shape``. Raises ValueError naming the file on any defect."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or raw[3] != ndim:
        raise ValueError(
            f"{path}: bad magic number 0x{raw[:4].hex()} (expected 0x0000{_UBYTE:02x}{ndim:02x}: "
            f"unsigned bytes in {ndim} dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if shape[1:] != tuple(item_shape):
        raise ValueError(f"{path}: wrong dimensions {shape}, expected (N, {', '.join(map(str, item_shape))})")
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: size mismatch: the header promises {shape} = {expected} bytes of data, "
            f"the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


class _IDXDataset(ArrayImageDataset):
    name = ""
    torchvision_name = ""
    apt_package = None
    _image_shape = (28, 28)

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        self.root = root
        self.train = bool(train)
        prefix = "train" if self.train else "t10k"
        stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        folder = self._locate(stems)
        if folder is None and download:
            folder = self._download(stems)
        if folder is None:
            raise _download.not_found(
                f"{type(self).__name__} ({prefix} split)",
                _download.search_dirs(self.name, root, (self.torchvision_name,)),
                f"{stems[0]}[.gz] and {stems[1]}[.gz]",
                self._download_dir(),
                self.apt_package,
            )
        images_path, labels_path = (self._file(folder, stem) for stem in stems)
        images = read_idx(images_path, 3, self._image_shape)
        labels = read_idx(labels_path, 1)
        if len(labels) != len(images):
            raise ValueError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
        if labels.size and labels.max() >= len(self.classes):
            raise ValueError(f"{labels_path}: label {labels.max()} out of range for {len(self.classes)} classes")
        self.folder = folder
        super().__init__(images, labels.astype(np.int64), transform, target_transform)

    @staticmethod
    def _file(folder, stem):
        """The raw file if present (no decompression), else the .gz one, else None."""
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def _locate(self, stems):
        for folder in _download.search_dirs(self.name, self.root, (self.torchvision_name,)):
            if all(self._file(folder, stem) for stem in stems):
                return folder
        return None

    def _download_dir(self):
        return _download.download_dir(self.name, self.root, f"{self.torchvision_name}/raw")

    def _download(self, stems):
        folder = self._download_dir()
        for stem in stems:
            filename = f"{stem}.gz"
            _download.download_file(filename, _download.MIRRORS[self.name], self.md5[filename], folder)
        return folder

    def __repr__(self):
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(split={split}, n={len(self)}, folder={str(self.folder)!r})"


class MNIST(_IDXDataset):
    """The MNIST handwritten digits: 60000 train / 10000 test images, 1x28x28, 10 classes.

    torchvision's constructor and items: ``(image, target)``, a PIL image (mode 'L', 28x28)
    through ``transform`` and an int through ``target_transform``. ``.data`` is the uint8
    (N, 28, 28) array, ``.targets`` the int64 labels (numpy arrays; torchvision's are Tensors).
    ``root`` may be omitted; see ``pyconvnet.data.download`` for where the files are looked up
    (torchvision's ``root/MNIST/raw`` included) and downloaded to.
    """

    name = "mnist"
    torchvision_name = "MNIST"
    classes = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine")
    md5 = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }


class FashionMNIST(_IDXDataset):
    """Zalando's Fashion-MNIST: 60000 train / 10000 test images of clothes, 1x28x28, 10 classes.

    Same files, items and attributes as ``MNIST``. Offline on Debian/Ubuntu,
    ``apt-get install dataset-fashion-mnist`` puts the files in /usr/share/datasets/fashion-mnist.
    """

    name = "fashion-mnist"
    torchvision_name = "FashionMNIST"
    apt_package = "dataset-fashion-mnist"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    md5 = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
