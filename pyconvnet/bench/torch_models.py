"""PyTorch mirrors of pyconvnet.models' architectures, built with torch.nn (torchvision is not
available here): the same layers under the same state_dict keys, so that a pyconvnet model's
weights load into its mirror unchanged. The benchmark times them; tests/test_models.py checks
pyconvnet's outputs and gradients against them.

This module imports torch: import it only where torch is wanted (``import pyconvnet`` never does).
"""

import torch
from torch import nn as tnn
from torch.nn import functional as TF

# The argmax of each pyconvnet max-pool call, in call order, for the mirrors to replay (the
# parity tests fill it; the benchmark leaves it empty, so max-pool is torch's own): window values
# that tie to within float32 rounding would otherwise route gradients to different (equally
# valid) elements in the two libraries.
REPLAYED_ARGMAX = []


def reference_max_pool(x, kernel_size, stride, padding=0, ceil_mode=False):
    if not REPLAYED_ARGMAX:
        return TF.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode)
    indices = torch.from_numpy(REPLAYED_ARGMAX.pop(0))
    assert tuple(indices.shape) == tuple(TF.max_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode).shape)
    return x.flatten(2).gather(2, indices.flatten(2)).view(indices.shape)


class TorchMaxPool2d(tnn.Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.geometry = (kernel_size, stride or kernel_size, padding, ceil_mode)

    def forward(self, x):
        return reference_max_pool(x, *self.geometry)


class TorchBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = TF.relu(self.bn1(self.conv1(x)))
        return TF.relu(self.bn2(self.conv2(out)) + identity)


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = TF.relu(self.bn1(self.conv1(x)))
        out = TF.relu(self.bn2(self.conv2(out)))
        return TF.relu(self.bn3(self.conv3(out)) + identity)


class TorchResNet(tnn.Module):
    def __init__(self, block, layers, num_classes, in_channels=3, cifar=False):
        super().__init__()
        self.inplanes = 64
        if cifar:
            self.conv1 = tnn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        else:
            self.conv1 = tnn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.maxpool = tnn.Identity() if cifar else TorchMaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.fc = tnn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(
                tnn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                tnn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(TF.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(TF.adaptive_avg_pool2d(x, 1).flatten(1))


class TorchShortcutA(tnn.Module):
    def __init__(self, stride, extra):
        super().__init__()
        self.stride, self.extra = stride, extra

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return TF.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class TorchCifarResNet(tnn.Module):
    def __init__(self, n, num_classes=10):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        stages, inplanes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for index in range(n):
                s = stride if index == 0 else 1
                shortcut = TorchShortcutA(s, planes - inplanes) if (s != 1 or inplanes != planes) else None
                blocks.append(TorchBasicBlock(inplanes, planes, s, shortcut))
                inplanes = planes
            stages.append(tnn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = tnn.Linear(64, num_classes)

    def forward(self, x):
        x = TF.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(TF.adaptive_avg_pool2d(x, 1).flatten(1))


class TorchVGG(tnn.Module):
    def __init__(self, config, batch_norm, num_classes, dropout, cifar):
        super().__init__()
        layers, channels = [], 3
        for entry in config:
            if entry == "M":
                layers.append(TorchMaxPool2d(2, 2))
                continue
            layers.append(tnn.Conv2d(channels, entry, 3, padding=1))
            if batch_norm:
                layers.append(tnn.BatchNorm2d(entry))
            layers.append(tnn.ReLU())
            channels = entry
        self.features = tnn.Sequential(*layers)
        self.pooled = 1 if cifar else 7
        if cifar:
            self.classifier = tnn.Linear(512, num_classes)
        else:
            self.classifier = tnn.Sequential(
                tnn.Linear(512 * 49, 4096), tnn.ReLU(), tnn.Dropout(dropout),
                tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(dropout), tnn.Linear(4096, num_classes),
            )

    def forward(self, x):
        return self.classifier(TF.adaptive_avg_pool2d(self.features(x), self.pooled).flatten(1))


class TorchAlexNet(tnn.Module):
    def __init__(self, num_classes, dropout, lrn=False, cifar=False):
        super().__init__()
        norm = [tnn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)] if lrn else []
        if cifar:
            stem, conv2, pool, self.pooled = tnn.Conv2d(3, 64, 3, 1, 1), tnn.Conv2d(64, 192, 3, padding=1), (2, 2), 4
        else:
            stem, conv2, pool, self.pooled = tnn.Conv2d(3, 64, 11, 4, 2), tnn.Conv2d(64, 192, 5, padding=2), (3, 2), 6
        self.features = tnn.Sequential(
            stem, tnn.ReLU(), *norm, TorchMaxPool2d(*pool), conv2, tnn.ReLU(), *norm, TorchMaxPool2d(*pool),
            tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(), tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(),
            tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), TorchMaxPool2d(*pool),
        )
        self.classifier = tnn.Sequential(
            tnn.Dropout(dropout), tnn.Linear(256 * self.pooled**2, 4096), tnn.ReLU(), tnn.Dropout(dropout),
            tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(TF.adaptive_avg_pool2d(self.features(x), self.pooled).flatten(1))


class TorchBasicConv2d(tnn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = tnn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = tnn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return TF.relu(self.bn(self.conv(x)))


class TorchInception(tnn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pool_proj):
        super().__init__()
        self.branch1 = TorchBasicConv2d(cin, c1, kernel_size=1)
        self.branch2 = tnn.Sequential(TorchBasicConv2d(cin, c3r, kernel_size=1), TorchBasicConv2d(c3r, c3, kernel_size=3, padding=1))
        self.branch3 = tnn.Sequential(TorchBasicConv2d(cin, c5r, kernel_size=1), TorchBasicConv2d(c5r, c5, kernel_size=3, padding=1))
        self.branch4 = tnn.Sequential(TorchMaxPool2d(3, 1, 1, ceil_mode=True), TorchBasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class TorchInceptionAux(tnn.Module):
    def __init__(self, cin, num_classes, dropout):
        super().__init__()
        self.conv = TorchBasicConv2d(cin, 128, kernel_size=1)
        self.fc1 = tnn.Linear(2048, 1024)
        self.fc2 = tnn.Linear(1024, num_classes)
        self.dropout = tnn.Dropout(dropout)

    def forward(self, x):
        x = self.conv(TF.adaptive_avg_pool2d(x, (4, 4))).flatten(1)
        return self.fc2(self.dropout(TF.relu(self.fc1(x))))


class TorchGoogLeNet(tnn.Module):
    def __init__(self, num_classes, aux_logits, transform_input, dropout, cifar=False):
        super().__init__()
        self.transform_input = transform_input
        if cifar:
            self.conv1 = TorchBasicConv2d(3, 64, kernel_size=3, stride=1, padding=1)
        else:
            self.conv1 = TorchBasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.cifar = cifar
        self.conv2 = TorchBasicConv2d(64, 64, kernel_size=1)
        self.conv3 = TorchBasicConv2d(64, 192, kernel_size=3, padding=1)
        specs = {
            "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
            "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
            "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
            "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
            "5b": (832, 384, 192, 384, 48, 128, 128),
        }
        for key, spec in specs.items():
            setattr(self, "inception" + key, TorchInception(*spec))
        self.aux1 = TorchInceptionAux(512, num_classes, dropout) if aux_logits else None
        self.aux2 = TorchInceptionAux(528, num_classes, dropout) if aux_logits else None
        self.dropout = tnn.Dropout(dropout)
        self.fc = tnn.Linear(1024, num_classes)

    def forward(self, x):
        if self.transform_input:
            x = torch.cat([
                x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5,
            ], 1)
        pool = (lambda t: t) if self.cifar else (lambda t: reference_max_pool(t, 3, 2, ceil_mode=True))
        x = pool(self.conv1(x))
        x = pool(self.conv3(self.conv2(x)))
        x = reference_max_pool(self.inception3b(self.inception3a(x)), 3, 2, ceil_mode=True)
        x = self.inception4a(x)
        heads = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if heads else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if heads else None
        x = reference_max_pool(self.inception4e(x), 2, 2, ceil_mode=True)
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(TF.adaptive_avg_pool2d(x, 1).flatten(1)))
        return (x, aux2, aux1) if heads else x


class TorchLeNet5(tnn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(1, 6, 5), tnn.ReLU(), TorchMaxPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(), TorchMaxPool2d(2))
        self.classifier = tnn.Sequential(
            tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, num_classes))

    def forward(self, x):
        if x.shape[-1] == 28:
            x = TF.pad(x, (2, 2, 2, 2))
        return self.classifier(self.features(x).flatten(1))


class TorchSubsampling(tnn.Module):
    def __init__(self, channels):
        super().__init__()
        self.weight = tnn.Parameter(torch.ones(channels))
        self.bias = tnn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return TF.avg_pool2d(x, 2) * 4 * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class TorchPartialConv(tnn.Module):
    def __init__(self, connections):
        super().__init__()
        pairs = [(o, i) for o, inputs in enumerate(connections) for i in inputs]
        self.weight = tnn.Parameter(torch.zeros(len(pairs), 5, 5))
        self.bias = tnn.Parameter(torch.zeros(len(connections)))
        self.pairs = pairs

    def forward(self, x):
        dense = torch.zeros(len(self.bias), 6, 5, 5)
        rows, cols = zip(*self.pairs)
        dense = dense.index_put((torch.tensor(rows), torch.tensor(cols)), self.weight)
        return TF.conv2d(x, dense, self.bias)


class TorchClassicLeNet5(tnn.Module):
    def __init__(self, num_classes):
        super().__init__()
        from pyconvnet.models.lenet import C3_CONNECTIONS

        self.c1 = tnn.Conv2d(1, 6, 5)
        self.s2 = TorchSubsampling(6)
        self.c3 = TorchPartialConv(C3_CONNECTIONS)
        self.s4 = TorchSubsampling(16)
        self.c5 = tnn.Conv2d(16, 120, 5)
        self.f6 = tnn.Linear(120, 84)
        self.output = tnn.Module()
        self.output.register_buffer("centers", torch.zeros(num_classes, 84))

    def forward(self, x):
        squash = lambda t: 1.7159 * torch.tanh(t * (2.0 / 3.0))  # noqa: E731
        x = squash(self.s2(squash(self.c1(x))))
        x = squash(self.s4(squash(self.c3(x))))
        x = squash(self.f6(squash(self.c5(x)).flatten(1)))
        return -((x[:, None, :] - self.output.centers[None]) ** 2).sum(-1)
