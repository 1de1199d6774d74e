"""Datasets, the DataLoader and transforms (torch.utils.data and torchvision.datasets/transforms).

Images come out as float32 (C, H, W) arrays in [0, 1] and batches as pyconvnet Tensors.
``pyconvnet.data.transforms`` holds the augmentations; ``pyconvnet.data.download`` says where
datasets are looked up and how they are fetched.
"""

from . import transforms
from .cifar import CIFAR10
from .dataset import Dataset, Subset
from .download import DatasetNotFoundError, DownloadError
from .folder import ImageFolder
from .loader import DataLoader
from .mnist import MNIST, FashionMNIST

__all__ = [
    "CIFAR10",
    "DataLoader",
    "Dataset",
    "DatasetNotFoundError",
    "DownloadError",
    "FashionMNIST",
    "ImageFolder",
    "MNIST",
    "Subset",
    "transforms",
]
