"""GoogLeNet (Inception v1, Szegedy et al. 2015) in torchvision's layout: BasicConv2d
(bias-free convolution, batch norm with eps 0.001, ReLU) everywhere, ceil-mode max-pools,
optional auxiliary heads, plus a small-input (``cifar=True``) variant."""

from collections import namedtuple

from .. import nn
from ..nn import functional as F
from ._common import ImageClassifier, torchvision_builder

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "BasicConv2d", "Inception", "InceptionAux", "googlenet"]

# What a training-mode forward returns when the auxiliary heads are on (as torchvision's).
GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps=0.001), ReLU (the last two fused)."""

    def __init__(self, in_channels, out_channels, **conv_args):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_args)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return self.bn.forward_relu(self.conv(x))


class Inception(nn.Module):
    """Four parallel branches concatenated along channels: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 (the
    paper's 5x5, which torchvision implements as 3x3 and we follow); 3x3 max-pool -> 1x1."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x):
        return F.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: adaptive average pool to 4x4, 1x1 BasicConv2d to 128 maps,
    Linear(2048, 1024), ReLU, Dropout, Linear(1024, num_classes)."""

    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4))).flatten(1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


# ImageNet mean and std per RGB channel: ``transform_input`` maps inputs normalised with
# (0.5, 0.5) onto torchvision's ImageNet normalisation, channel by channel.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class GoogLeNet(ImageClassifier):
    """torchvision's GoogLeNet. With ``aux_logits`` the heads ``aux1`` (after inception4a) and
    ``aux2`` (after inception4d) run only in training mode, where ``forward`` then returns
    ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``; otherwise it returns the logits.
    ``init_weights``: truncated normal (std 0.01, cut at +-2) for convolutions and linears,
    batch norm weight 1 and bias 0; ``init_weights=False`` keeps the layer defaults.

    ``cifar=True`` is the small-input variant for 28-32 pixel images: the stem is a 3x3
    stride-1 BasicConv2d and ``maxpool1``/``maxpool2`` are Identity, so the inception stages
    see 32, 16 and 8 pixel maps; the classifier is unchanged (global pooling)."""

    def __init__(self, num_classes=1000, in_channels=3, aux_logits=False, transform_input=False,
                 init_weights=True, dropout=0.2, dropout_aux=0.7, cifar=False):
        super().__init__(num_classes, in_channels)
        if transform_input and in_channels != 3:
            raise ValueError(f"googlenet: transform_input needs in_channels=3 (RGB), got {in_channels}")
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        if cifar:
            self.conv1 = BasicConv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
            self.maxpool1 = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.Identity() if cifar else nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        if init_weights:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)

    def _transform_input(self, x):
        channels = [
            x[:, c : c + 1] * (std / 0.5) + (mean - 0.5) / 0.5
            for c, (mean, std) in enumerate(zip(_IMAGENET_MEAN, _IMAGENET_STD))
        ]
        return F.cat(channels, 1)

    def _forward(self, x):
        if self.transform_input:
            x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        heads = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if heads else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if heads else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        return GoogLeNetOutputs(x, aux2, aux1) if heads else x


@torchvision_builder
def googlenet(num_classes=1000, aux_logits=False, transform_input=False, init_weights=True,
              in_channels=3, dropout=0.2, dropout_aux=0.7, cifar=False):
    """GoogLeNet (6,624,904 parameters for 1000 classes without the auxiliary heads,
    13,004,888 with them); arguments: see ``GoogLeNet``."""
    return GoogLeNet(num_classes, in_channels, aux_logits, transform_input, init_weights,
                     dropout, dropout_aux, cifar)
