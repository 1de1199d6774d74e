"""``torchvision.datasets`` under its module path: pyconvnet.data's datasets."""

from ..data import CIFAR10, MNIST, FashionMNIST, ImageFolder

__all__ = ["CIFAR10", "FashionMNIST", "ImageFolder", "MNIST"]
