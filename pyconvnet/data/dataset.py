"""Dataset base classes: ``Dataset``, ``Subset`` and the in-memory image dataset behind
MNIST, Fashion-MNIST and CIFAR-10.

The batch protocol: a dataset may define ``get_batch(indices)`` returning ``(images, labels)``
as numpy arrays for a whole batch at once; the DataLoader uses it instead of calling
``__getitem__`` once per sample.
"""

import numbers

import numpy as np

__all__ = ["Dataset", "Subset", "ArrayImageDataset"]


class Dataset:
    """Base class for map-style datasets (``torch.utils.data.Dataset``): subclasses define
    ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order (``torch.utils.data.Subset``)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __len__(self):
        return len(self.indices)

    def __getattr__(self, name):
        # Offer the batch path only when the wrapped dataset has one.
        if name == "get_batch" and hasattr(self.dataset, "get_batch"):
            return lambda indices: self.dataset.get_batch(self.indices[np.asarray(indices)])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _to_float(images):
    """uint8 -> C-contiguous float32 in [0, 1], dividing by 255 as torchvision's ToTensor does."""
    out = np.empty(images.shape, dtype=np.float32)
    return np.divide(images, np.float32(255), out=out)


class ArrayImageDataset(Dataset):
    """Images and labels held in memory as numpy arrays.

    ``data`` is uint8, (N, H, W) for grayscale or (N, H, W, C) channels-last (torchvision's
    layouts); ``targets`` is int64 (N,). Items are ``(image, label)`` with ``image`` a float32
    (C, H, W) array in [0, 1] after ``transform`` and ``label`` an int after ``target_transform``.
    ``get_batch`` gathers a batch with one fancy index and applies a batched transform (see
    ``pyconvnet.data.transforms``) once to the whole batch, any other transform per sample.
    """

    classes = ()

    def __init__(self, data, targets, transform=None, target_transform=None):
        self.data = data
        self.targets = targets
        self.transform = transform
        self.target_transform = target_transform

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self):
        return len(self.data)

    def _chw(self, images):
        """(N, H, W[, C]) uint8 -> (N, C, H, W) view."""
        return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)

    def __getitem__(self, index):
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError(f"{type(self).__name__} indices must be integers, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {type(self).__name__} of length {len(self)}")
        image = _to_float(self._chw(self.data[index : index + 1 or None])[0])
        label = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def get_batch(self, indices):
        """``(images (N, C, H, W) float32, labels (N,) int64)`` for ``indices`` (an int array)."""
        indices = np.asarray(indices, dtype=np.int64)
        images = _to_float(self._chw(self.data[indices]))
        labels = self.targets[indices]
        if self.transform is not None:
            if getattr(self.transform, "batched", False):
                images = self.transform(images)
            else:
                images = np.stack([self.transform(image) for image in images])
        if self.target_transform is not None:
            labels = np.asarray([self.target_transform(int(label)) for label in labels])
        return images, labels
