"""VGG-11/13/16/19 (configurations A, B, D, E of Simonyan & Zisserman 2015), with and without
batch norm, in torchvision's layout (``features``, ``avgpool``, ``classifier``) and
initialisation, plus small-input (``cifar=True``) variants."""

from .. import nn
from ._common import ImageClassifier, check_arguments, pad_to_size, run_fused, torchvision_builder

__all__ = [
    "VGG", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
]

# The smallest input of the small-input variant: five 2x2 pools take 32 pixels down to 1.
CIFAR_INPUT_SIZE = 32
# Output channels of each 3x3 convolution; "M" is a 2x2 max-pool.
CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_features(config, in_channels, batch_norm):
    layers = []
    for entry in config:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, entry, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(entry))
        layers.append(nn.ReLU(inplace=True))
        in_channels = entry
    return nn.Sequential(*layers)


class VGG(ImageClassifier):
    """torchvision's VGG: ``features`` (3x3 convolutions, 2x2 max-pools), adaptive average pool
    to 7x7, ``classifier`` = Linear(25088, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU,
    Dropout, Linear(4096, num_classes). Convolutions are kaiming-normal (fan_out), linears
    normal(0, 0.01), biases zero, batch norm weight 1 and bias 0.

    ``cifar=True`` is the small-input variant for 28-32 pixel images: an input smaller than
    32x32 is zero-padded (centred) to 32x32 first, as LeNet-5 pads 28x28 digits, since the
    five pools would otherwise run out of pixels (28 -> 14 -> 7 -> 3 -> 1 -> none); they leave
    a 1x1x512 map, so ``avgpool`` is a global average pool (the identity at 32x32) and
    ``classifier`` a single Linear(512, num_classes) (state_dict keys
    ``classifier.weight``/``classifier.bias``); ``dropout`` is then unused."""

    def __init__(self, features, num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
        super().__init__(num_classes, in_channels)
        self.features = features
        self.cifar = cifar
        if cifar:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier = nn.Linear(512, num_classes)
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(p=dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(p=dropout),
                nn.Linear(4096, num_classes),
            )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def _forward(self, x):
        if self.cifar:
            x = pad_to_size(x, CIFAR_INPUT_SIZE)
        # Conv2d -> ReLU -> MaxPool2d, BatchNorm2d -> ReLU and Linear -> ReLU as fused ops (run_fused):
        # without batch norm each block's last convolution and its pool fuse (VGG-11, 32x32: 1.03x the step).
        features = self.avgpool(run_fused(self.features, x))
        if self.cifar:  # one linear layer
            return self.classifier(features.flatten(1))
        return run_fused(self.classifier, features, start_dim=1)


def _vgg(depth, batch_norm, num_classes, in_channels, dropout, cifar):
    check_arguments(num_classes, in_channels)
    features = make_features(CONFIGS[depth], in_channels, batch_norm)
    return VGG(features, num_classes, in_channels, dropout, cifar)


@torchvision_builder
def vgg11(num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
    """VGG-11 (configuration A; 132,863,336 parameters). ``cifar``: see ``VGG``."""
    return _vgg(11, False, num_classes, in_channels, dropout, cifar)


@torchvision_builder
def vgg13(num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
    """VGG-13 (configuration B; 133,047,848 parameters). ``cifar``: see ``VGG``."""
    return _vgg(13, False, num_classes, in_channels, dropout, cifar)


@torchvision_builder
def vgg16(num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
    """VGG-16 (configuration D; 138,357,544 parameters). ``cifar``: see ``VGG``."""
    return _vgg(16, False, num_classes, in_channels, dropout, cifar)


@torchvision_builder
def vgg19(num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
    """VGG-19 (configuration E; 143,667,240 parameters). ``cifar``: see ``VGG``."""
    return _vgg(19, False, num_classes, in_channels, dropout, cifar)


@torchvision_builder
def vgg11_bn(num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
    """VGG-11 with batch norm after each convolution (132,868,840 parameters)."""
    return _vgg(11, True, num_classes, in_channels, dropout, cifar)


@torchvision_builder
def vgg13_bn(num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
    """VGG-13 with batch norm after each convolution (133,053,736 parameters)."""
    return _vgg(13, True, num_classes, in_channels, dropout, cifar)


@torchvision_builder
def vgg16_bn(num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
    """VGG-16 with batch norm after each convolution (138,365,992 parameters)."""
    return _vgg(16, True, num_classes, in_channels, dropout, cifar)


@torchvision_builder
def vgg19_bn(num_classes=1000, in_channels=3, dropout=0.5, cifar=False):
    """VGG-19 with batch norm after each convolution (143,678,248 parameters)."""
    return _vgg(19, True, num_classes, in_channels, dropout, cifar)
