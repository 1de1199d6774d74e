"""Datasets, the DataLoader, samplers and transforms: what torch.utils.data and
torchvision.datasets / torchvision.transforms offer, in one package.

``pyconvnet.utils.data`` and ``pyconvnet.vision.datasets`` / ``.transforms`` name the same
objects under torch's and torchvision's module paths. ``pyconvnet.data.download`` says where
datasets are looked up and how they are fetched.
"""

from . import transforms
from .cifar import CIFAR10
from .collate import default_collate, default_convert
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset,
                      random_split)
from .download import DatasetNotFoundError, DownloadError
from .folder import ImageFolder
from .loader import DataLoader, WorkerInfo, get_worker_info
from .mnist import MNIST, FashionMNIST
from .sampler import (BatchSampler, DistributedSampler, RandomSampler, Sampler, SequentialSampler,
                      SubsetRandomSampler, WeightedRandomSampler)

__all__ = [
    "BatchSampler",
    "CIFAR10",
    "ChainDataset",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DatasetNotFoundError",
    "DistributedSampler",
    "DownloadError",
    "FashionMNIST",
    "ImageFolder",
    "IterableDataset",
    "MNIST",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "StackDataset",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "WorkerInfo",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
    "transforms",
]
