"""``ImageFolder``: a class-per-folder image tree (``root/<class>/.../<image>``), as torchvision's.

Pillow is an optional extra (``pip install 'pyconvnet[image]'``); it is imported when an
image is decoded, so ``pyconvnet.data`` imports without it.
"""

import os

from .dataset import Dataset
from .functional import pillow

__all__ = ["ImageFolder", "IMG_EXTENSIONS", "default_loader", "pil_loader"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def pil_loader(path):
    """The image at ``path`` as an RGB PIL image; ValueError naming the file if it does not decode."""
    image = pillow()
    try:
        with open(path, "rb") as f:
            return image.open(f).convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot decode {path} as an image: {error}") from error


default_loader = pil_loader


class ImageFolder(Dataset):
    """Images sorted into one folder per class, as torchvision's ``ImageFolder``.

    ``classes`` are the sub-folder names sorted, ``class_to_idx`` maps them to labels and
    ``samples`` (also ``imgs``) lists ``(path, label)`` in torchvision's order (each class's
    folders walked in sorted order, files sorted); ``targets`` holds the labels. A file is used
    when ``is_valid_file(path)`` says so, or without it when its extension is in
    ``IMG_EXTENSIONS``. Item ``i`` is ``(loader(path), label)`` passed through ``transform`` and
    ``target_transform``; the default loader gives RGB PIL images.
    """

    def __init__(self, root, transform=None, target_transform=None, loader=default_loader, is_valid_file=None,
                 allow_empty=False):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a directory")
        self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: no class folders in {self.root}")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        if is_valid_file is None:
            is_valid_file = lambda path: path.lower().endswith(IMG_EXTENSIONS)  # noqa: E731
        self.samples = []
        for name in self.classes:
            found = [os.path.join(folder, file)
                     for folder, _, files in sorted(os.walk(os.path.join(self.root, name), followlinks=True))
                     for file in sorted(files)]
            found = [path for path in found if is_valid_file(path)]
            if not found and not allow_empty:
                raise FileNotFoundError(f"ImageFolder: class folder {os.path.join(self.root, name)} holds no valid "
                                        f"file (extensions {', '.join(IMG_EXTENSIONS)})")
            self.samples += [(path, self.class_to_idx[name]) for path in found]
        self.imgs = self.samples
        self.targets = [label for _, label in self.samples]
        self.loader = loader
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, target = self.samples[index]
        sample = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target
