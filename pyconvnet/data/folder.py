"""``ImageFolder``: a class-per-folder image tree (``root/<class>/<image>``) decoded with Pillow.

Pillow is an optional extra (``pip install 'pyconvnet[image]'``); it is imported when an
``ImageFolder`` is created, so ``pyconvnet.data`` imports without it.
"""

import os
from pathlib import Path

import numpy as np

from .dataset import Dataset, _to_float

__all__ = ["ImageFolder", "IMG_EXTENSIONS"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _pillow():
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            "ImageFolder needs Pillow to decode images: pip install 'pyconvnet[image]' (or pip install pillow)"
        ) from error
    return Image


class ImageFolder(Dataset):
    """Images sorted into one folder per class, as torchvision's ``ImageFolder``.

    ``classes`` are the sub-folder names sorted, ``class_to_idx`` maps them to labels and
    ``samples`` (also ``imgs``) lists ``(path, label)``; ``targets`` holds the labels. Files
    whose extension is in ``IMG_EXTENSIONS`` are used, in sorted order. Each item is decoded
    on access and converted to RGB like torchvision's default loader, giving a float32
    (3, H, W) array in [0, 1], then ``transform`` / ``target_transform`` apply.
    """

    def __init__(self, root, transform=None, target_transform=None):
        self._image = _pillow()
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a directory")
        self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: no class folders in {self.root}")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = []
        for name in self.classes:
            files = sorted(
                path
                for path in (self.root / name).rglob("*")
                if path.suffix.lower() in IMG_EXTENSIONS and path.is_file()
            )
            if not files:
                raise FileNotFoundError(
                    f"ImageFolder: class folder {self.root / name} holds no image ({', '.join(IMG_EXTENSIONS)})"
                )
            self.samples += [(str(path), self.class_to_idx[name]) for path in files]
        self.imgs = self.samples
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        try:
            with self._image.open(path) as picture:
                pixels = np.asarray(picture.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"ImageFolder: cannot decode {path}: {error}") from error
        image = _to_float(pixels.transpose(2, 0, 1))
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label
