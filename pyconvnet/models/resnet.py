"""ResNets: torchvision's ImageNet ResNet-18/34/50/101/152 (v1.5: a bottleneck's stride sits on
its 3x3 convolution), the CIFAR ResNet-20/32/44/56/110 of He et al. 2016, and their "plain"
twins plain20/32/44/56: the same layers without the shortcuts (the paper's Figure 1 and 6
baselines, for the degradation experiment). As in the paper there is no plain-110: after two
steps of the ResNets' recipe on four images its evaluation loss was already not finite.

The ImageNet models have torchvision's module names, so its state_dicts load unchanged, and
its initialisation (kaiming-normal fan_out convolutions, batch norm weight 1 and bias 0,
optional ``zero_init_residual``). A block's shortcut addition and final ReLU run as one fused
``add_relu``, and every other batch norm with the ReLU after it as one ``batch_norm_relu``,
except while a hook watches the modules involved: then they run one by one, so that hooks fire
and see what they would in torchvision (``relu`` twice per basic block, three times per
bottleneck, the second or third time on the block's output).
"""

from .. import kernels, nn
from ..autograd import Function
from ..nn import functional as F
from ._common import ImageClassifier, torchvision_builder

__all__ = [
    "ResNet", "BasicBlock", "Bottleneck", "CifarResNet",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "PlainBlock", "plain20", "plain32", "plain44", "plain56",
]


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def _add_relu(out, identity, relu):
    """``relu(out + identity)``: one fused ``F.add_relu`` unless a hook watches ``relu``."""
    if relu._has_forward_hooks():
        return relu(out + identity)
    return F.add_relu(out, identity)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; the shortcut is ``downsample`` (or the identity)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1.forward_relu(self.conv1(x), self.relu)
        return _add_relu(self.bn2(self.conv2(out)), identity, self.relu)


class PlainBlock(BasicBlock):
    """BasicBlock without its shortcut: two 3x3 convolutions with batch norm, each followed by a
    ReLU. It has BasicBlock's modules, so a plain net's state_dict keys are its ResNet twin's
    (less the option-A shortcuts, which hold nothing)."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__(inplanes, planes, stride)

    def forward(self, x):
        out = self.bn1.forward_relu(self.conv1(x), self.relu)
        return self.bn2.forward_relu(self.conv2(out), self.relu)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, each with batch norm (torchvision v1.5)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1.forward_relu(self.conv1(x), self.relu)
        out = self.bn2.forward_relu(self.conv2(out), self.relu)
        return _add_relu(self.bn3(self.conv3(out)), identity, self.relu)


def _init_resnet(model, zero_init_residual):
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if zero_init_residual:  # each residual branch starts as zero, so each block as the identity
        for module in model.modules():
            if isinstance(module, Bottleneck):
                nn.init.zeros_(module.bn3.weight)
            elif isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)


class ResNet(ImageClassifier):
    """torchvision's ResNet: 7x7/2 stem, 3x3/2 max-pool, four stages (64..512 planes, the
    last three starting with stride 2), global average pool, ``fc``.

    ``cifar=True`` is the small-input variant for 28-32 pixel images: a 3x3 stride-1 stem and
    no max-pool (``maxpool`` is an Identity), so the stages see 32, 16, 8 and 4 pixel maps;
    the classifier is unchanged (global pooling makes it size-independent)."""

    def __init__(self, block, layers, num_classes=1000, in_channels=3, zero_init_residual=False, cifar=False):
        super().__init__(num_classes, in_channels)
        self.inplanes = 64
        if cifar:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_resnet(self, zero_init_residual)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _forward(self, x):
        x = self.maxpool(self.bn1.forward_relu(self.conv1(x), self.relu))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class _SubsamplePadChannels(Function):
    """x[:, :, ::stride, ::stride] with ``before`` zero channels in front and ``after`` behind, one
    kernel each way (``subsample_pad_channels``): as numpy zeros and strided copies ResNet-20's two
    shortcuts took 2.3 ms of a 106 ms step outside the kernels."""

    @staticmethod
    def forward(ctx, x, stride, before, after):
        ctx.input_shape, ctx.stride, ctx.before, ctx.after = list(x.shape), stride, before, after
        return kernels.subsample_pad_channels(x, stride, before, after)

    @staticmethod
    def backward(ctx, grad):
        return (kernels.subsample_pad_channels_backward(grad, ctx.input_shape, ctx.stride, ctx.before, ctx.after),
                None, None, None)


class ShortcutA(nn.Module):
    """He et al.'s option-A shortcut: subsample by ``stride`` and zero-pad the channels
    (half the extra channels before, half after); no parameters."""

    kernel_size = 1  # for summary's receptive field: it samples single pixels

    def __init__(self, stride, extra_channels):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x):
        before = self.extra_channels // 2
        return _SubsamplePadChannels.apply(x, self.stride, before, self.extra_channels - before)

    def extra_repr(self):
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class CifarResNet(ImageClassifier):
    """The CIFAR-10 ResNet of He et al. 2016 (section 4.2): a 3x3 convolution to 16 maps, three
    stages of ``n`` basic blocks on 16, 32 and 64 maps (32, 16, 8 pixels for a 32x32 input),
    global average pool, ``fc``: 6n + 2 weighted layers. Shortcuts that change shape use
    option A (parameter-free). Initialised as the ImageNet ResNets.

    ``shortcuts=False`` builds the plain network of the same depth (``PlainBlock`` stages):
    the same weighted layers and, option A adding none, the same parameter count."""

    def __init__(self, n, num_classes=10, in_channels=3, zero_init_residual=False, shortcuts=True):
        super().__init__(num_classes, in_channels)
        if zero_init_residual and not shortcuts:
            raise ValueError("CifarResNet: zero_init_residual needs shortcuts (a plain block whose last batch norm "
                             "is zero outputs zeros)")
        self.shortcuts = shortcuts
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = 16
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        _init_resnet(self, zero_init_residual)

    def _make_layer(self, planes, blocks, stride):
        layers = []
        for index in range(blocks):
            block_stride = stride if index == 0 else 1
            if not self.shortcuts:
                layers.append(PlainBlock(self.inplanes, planes, block_stride))
                self.inplanes = planes
                continue
            downsample = None
            if block_stride != 1 or self.inplanes != planes:
                downsample = ShortcutA(block_stride, planes - self.inplanes)
            layers.append(BasicBlock(self.inplanes, planes, block_stride, downsample))
            self.inplanes = planes
        return nn.Sequential(*layers)

    def _forward(self, x):
        x = self.bn1.forward_relu(self.conv1(x), self.relu)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


@torchvision_builder
def resnet18(num_classes=1000, in_channels=3, zero_init_residual=False, cifar=False):
    """ResNet-18 (11,689,512 parameters for 1000 classes); ``cifar=True``: see ``ResNet``."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, zero_init_residual, cifar)


@torchvision_builder
def resnet34(num_classes=1000, in_channels=3, zero_init_residual=False, cifar=False):
    """ResNet-34 (21,797,672 parameters); ``cifar=True``: see ``ResNet``."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, zero_init_residual, cifar)


@torchvision_builder
def resnet50(num_classes=1000, in_channels=3, zero_init_residual=False, cifar=False):
    """ResNet-50 (25,557,032 parameters); ``cifar=True``: see ``ResNet``."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, zero_init_residual, cifar)


@torchvision_builder
def resnet101(num_classes=1000, in_channels=3, zero_init_residual=False, cifar=False):
    """ResNet-101 (44,549,160 parameters); ``cifar=True``: see ``ResNet``."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, zero_init_residual, cifar)


@torchvision_builder
def resnet152(num_classes=1000, in_channels=3, zero_init_residual=False, cifar=False):
    """ResNet-152 (60,192,808 parameters); ``cifar=True``: see ``ResNet``."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_channels, zero_init_residual, cifar)


def resnet20(num_classes=10, in_channels=3, zero_init_residual=False):
    """CIFAR ResNet-20 (n=3; 269,722 parameters for 10 classes)."""
    return CifarResNet(3, num_classes, in_channels, zero_init_residual)


def resnet32(num_classes=10, in_channels=3, zero_init_residual=False):
    """CIFAR ResNet-32 (n=5; 464,154 parameters)."""
    return CifarResNet(5, num_classes, in_channels, zero_init_residual)


def resnet44(num_classes=10, in_channels=3, zero_init_residual=False):
    """CIFAR ResNet-44 (n=7; 658,586 parameters)."""
    return CifarResNet(7, num_classes, in_channels, zero_init_residual)


def resnet56(num_classes=10, in_channels=3, zero_init_residual=False):
    """CIFAR ResNet-56 (n=9; 853,018 parameters)."""
    return CifarResNet(9, num_classes, in_channels, zero_init_residual)


def resnet110(num_classes=10, in_channels=3, zero_init_residual=False):
    """CIFAR ResNet-110 (n=18; 1,727,962 parameters)."""
    return CifarResNet(18, num_classes, in_channels, zero_init_residual)


def plain20(num_classes=10, in_channels=3):
    """ResNet-20 without shortcuts (269,722 parameters, as resnet20)."""
    return CifarResNet(3, num_classes, in_channels, shortcuts=False)


def plain32(num_classes=10, in_channels=3):
    """ResNet-32 without shortcuts (464,154 parameters, as resnet32)."""
    return CifarResNet(5, num_classes, in_channels, shortcuts=False)


def plain44(num_classes=10, in_channels=3):
    """ResNet-44 without shortcuts (658,586 parameters, as resnet44)."""
    return CifarResNet(7, num_classes, in_channels, shortcuts=False)


def plain56(num_classes=10, in_channels=3):
    """ResNet-56 without shortcuts (853,018 parameters, as resnet56)."""
    return CifarResNet(9, num_classes, in_channels, shortcuts=False)
