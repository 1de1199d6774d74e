"""The classic CNNs: LeNet-5, AlexNet, VGG, GoogLeNet and ResNet (and plain20..plain56, the
CIFAR ResNets without shortcuts).

The torchvision architectures keep torchvision's module names, parameter shapes, forward
semantics and default initialisation, so a torchvision state_dict (converted to arrays) loads
with ``load_state_dict`` and gives the same logits. Every builder takes ``num_classes`` and
``in_channels``; initialisation draws from pyconvnet's global generator, so
``pyconvnet.manual_seed`` makes a model reproducible. ``get_model(name, **kwargs)`` builds one
by name; ``list_models()`` lists the names. ``preprocess()`` is the transform that readies an
image for ImageNet-trained weights.
"""

from .alexnet import AlexNet, alexnet
from .googlenet import _IMAGENET_MEAN, _IMAGENET_STD, GoogLeNet, GoogLeNetOutputs, googlenet
from .lenet import ClassicLeNet5, LeNet5, lenet5
from .resnet import (
    BasicBlock, Bottleneck, CifarResNet, PlainBlock, ResNet,
    plain20, plain32, plain44, plain56,
    resnet18, resnet20, resnet32, resnet34, resnet44, resnet50, resnet56, resnet101, resnet110, resnet152,
)
from ..data.transforms import CenterCrop, Compose, Normalize, Resize, ToTensor
from ..data.functional import InterpolationMode
from .vgg import VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn

_BUILDERS = {
    builder.__name__: builder
    for builder in (
        lenet5, alexnet, googlenet,
        vgg11, vgg13, vgg16, vgg19, vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn,
        resnet18, resnet34, resnet50, resnet101, resnet152,
        resnet20, resnet32, resnet44, resnet56, resnet110,
        plain20, plain32, plain44, plain56,
    )
}

__all__ = [
    "get_model", "list_models", "preprocess",
    "AlexNet", "GoogLeNet", "GoogLeNetOutputs", "LeNet5", "ClassicLeNet5",
    "ResNet", "CifarResNet", "BasicBlock", "Bottleneck", "PlainBlock", "VGG",
    *_BUILDERS,
]


def list_models():
    """The names ``get_model`` accepts, sorted."""
    return sorted(_BUILDERS)


def get_model(name, **kwargs):
    """The model called ``name`` (e.g. ``'resnet18'``), built with ``kwargs`` (``num_classes``,
    ``in_channels``, ``cifar``, ...). ValueError for an unknown name."""
    if not isinstance(name, str):
        raise TypeError(f"get_model: name must be a str, got {type(name).__name__}")
    builder = _BUILDERS.get(name.lower())
    if builder is None:
        raise ValueError(f"get_model: unknown model {name!r}; valid names are: {', '.join(list_models())}")
    return builder(**kwargs)


def preprocess(resize_size=256, crop_size=224, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
               interpolation=InterpolationMode.BILINEAR, antialias=True):
    """The evaluation transform of torchvision's ImageNet weights (their ``weights.transforms()``):
    resize the shorter edge to ``resize_size``, take the centred ``crop_size`` square, convert to
    a float32 (C, H, W) Tensor in [0, 1] and normalise with ImageNet's per-channel ``mean`` and
    ``std``. Takes a PIL image or a uint8-like Tensor, as the transforms do."""
    return Compose([Resize(resize_size, interpolation, antialias=antialias), CenterCrop(crop_size), ToTensor(),
                    Normalize(mean, std)])
