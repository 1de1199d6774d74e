"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition"): a modern variant and, with ``classic=True``, the paper's network.

Both take 32x32 images; a 28x28 input (MNIST, Fashion-MNIST) is zero-padded by 2 pixels on
each side inside the model, as the paper padded its 28x28 digits to 32x32.
"""

import numpy as np

from .. import nn
from ..nn import functional as F
from ..autograd import no_grad
from ..creation import from_numpy, ones, zeros
from ._common import ImageClassifier, padding_to_size, run_fused

__all__ = ["LeNet5", "ClassicLeNet5", "lenet5"]

# Table I of the paper: the S2 maps (0-5) each C3 map (0-15) reads.
C3_CONNECTIONS = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
# The squashing function of the paper's appendix A: f(a) = A tanh(S a).
SQUASH_AMPLITUDE = 1.7159
SQUASH_SLOPE = 2.0 / 3.0


def _padding_to_32x32(x, model):
    """F.pad's amounts taking a 28x28 ``x`` to 32x32 (None for 32x32); any other size is a ValueError."""
    if tuple(x.shape[2:]) not in ((28, 28), (32, 32)):
        raise ValueError(f"{model}: expected 32x32 or 28x28 images, got input of shape {tuple(x.shape)}")
    return padding_to_size(x.shape, 32)


def _to_32x32(x, model):
    """``x`` zero-padded from 28x28 to 32x32; 32x32 passes; any other size is a ValueError."""
    padding = _padding_to_32x32(x, model)
    return x if padding is None else F.pad(x, padding)


class LeNet5(ImageClassifier):
    """Modern LeNet-5: conv 6@5x5 -> ReLU -> 2x2 max-pool -> conv 16@5x5 -> ReLU -> 2x2 max-pool
    -> Linear(400, 120) -> ReLU -> Linear(120, 84) -> ReLU -> Linear(84, num_classes), with
    PyTorch's default layer initialisation (61,706 parameters for 1 input channel, 10 classes).
    Full C3 connectivity, ReLU and max-pooling replace the paper's choices."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__(num_classes, in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def _forward(self, x):
        features = run_fused(self.features, x, _padding_to_32x32(x, "lenet5"))
        return run_fused(self.classifier, features, start_dim=1)


class Squash(nn.Module):
    """The paper's sigmoid squashing ``1.7159 * tanh(2/3 * x)``."""

    def forward(self, x):
        return F.tanh(x * SQUASH_SLOPE) * SQUASH_AMPLITUDE


class Subsampling(nn.Module):
    """S2/S4: each map's 2x2 non-overlapping sums times a trainable coefficient plus a
    trainable bias (two parameters per map)."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(ones(channels))
        self.bias = nn.Parameter(zeros(channels))

    def forward(self, x):
        channels = self.weight.shape[0]
        sums = F.avg_pool2d(x, 2) * 4.0
        return sums * self.weight.reshape(1, channels, 1, 1) + self.bias.reshape(1, channels, 1, 1)


class PartialConv2d(nn.Module):
    """C3: a 5x5 convolution where output map ``o`` reads only the input maps listed in
    ``connections[o]``. ``weight`` holds one 5x5 kernel per connection (60 for Table I), so only
    connected kernels are parameters; ``forward`` scatters them into a dense (out, in, 5, 5)
    kernel through a gather index (unconnected slots read kernel 0 and are masked to zero)."""

    def __init__(self, in_channels, connections, kernel_size=5):
        super().__init__()
        out_channels = len(connections)
        pairs = [(o, i) for o, inputs in enumerate(connections) for i in inputs]
        gather = np.zeros((out_channels, in_channels), dtype=np.int64)
        mask = np.zeros((out_channels, in_channels, 1, 1), dtype=np.float32)
        for k, (o, i) in enumerate(pairs):
            gather[o, i] = k
            mask[o, i] = 1.0
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(zeros(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(zeros(out_channels))
        self.register_buffer("gather", from_numpy(gather), persistent=False)
        self.register_buffer("mask", from_numpy(mask), persistent=False)
        # Each kernel's fan-in (for the paper's initialisation): inputs read times kernel area.
        self.fan_in = np.array([len(connections[o]) * kernel_size * kernel_size for o, _ in pairs])

    def dense_weight(self):
        return self.weight[self.gather] * self.mask

    def forward(self, x):
        return F.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self):
        return f"in_channels={self.mask.shape[1]}, out_channels={self.mask.shape[0]}, connections={self.weight.shape[0]}"


class RBFOutput(nn.Module):
    """The paper's output layer: class ``j`` scores ``-sum_i (x_i - c_ji)^2`` (the negated
    Euclidean RBF penalty, so the highest score wins and cross-entropy applies) against fixed,
    untrained +-1 codes ``centers`` (a buffer). The paper drew its codes as 7x12 bitmaps of the
    characters; these are fixed pseudo-random +-1 codes (seed 0), independent of the global
    generator."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        codes = np.random.default_rng(0).choice(np.array([-1.0, 1.0], dtype=np.float32), (num_classes, in_features))
        self.register_buffer("centers", from_numpy(codes))

    def forward(self, x):
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, all differentiable in x.
        cross = F.linear(x, self.centers)
        return cross * 2.0 - (x * x).sum(1, keepdim=True) - (self.centers * self.centers).sum(1)


class ClassicLeNet5(ImageClassifier):
    """The paper's LeNet-5 (section II.B): C1 conv 6@5x5, S2 subsampling, C3 conv 16@5x5 on the
    partial connection table (Table I), S4 subsampling, C5 conv 120@5x5 (full), F6 Linear(120, 84),
    each followed by the squashing ``1.7159 tanh(2x/3)``, then the RBF output layer with fixed
    codes. Trainable parameters for one input channel: C1 156 + S2 12 + C3 1,516 + S4 32 +
    C5 48,120 + F6 10,164 = 60,000, the paper's count; the 84 * num_classes RBF codes are a
    buffer. Weights are uniform in +-2.4 / fan_in (appendix C), biases zero; the subsampling
    coefficients start at 1/4 (the 2x2 average)."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__(num_classes, in_channels)
        self.c1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.s2 = Subsampling(6)
        self.c3 = PartialConv2d(6, C3_CONNECTIONS)
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.f6 = nn.Linear(120, 84)
        self.output = RBFOutput(84, num_classes)
        self.squash = Squash()
        self._init_weights()

    def _init_weights(self):
        for layer in (self.c1, self.c5, self.f6):
            fan_in = layer.weight.numel() // layer.weight.shape[0]
            nn.init.uniform_(layer.weight, -2.4 / fan_in, 2.4 / fan_in)
            nn.init.zeros_(layer.bias)
        nn.init.uniform_(self.c3.weight, -1.0, 1.0)
        with no_grad():
            self.c3.weight.mul_(from_numpy((2.4 / self.c3.fan_in).astype(np.float32)).reshape(-1, 1, 1))
        nn.init.zeros_(self.c3.bias)
        for layer in (self.s2, self.s4):
            nn.init.constant_(layer.weight, 0.25)
            nn.init.zeros_(layer.bias)

    def _forward(self, x):
        x = _to_32x32(x, "lenet5(classic=True)")
        squash = self.squash
        x = squash(self.s2(squash(self.c1(x))))
        x = squash(self.s4(squash(self.c3(x))))
        x = squash(self.c5(x)).flatten(1)
        return self.output(squash(self.f6(x)))


def lenet5(num_classes=10, in_channels=1, classic=False):
    """LeNet-5 for 32x32 (or 28x28, padded inside) images: the modern variant (ReLU, max-pool,
    full connections; see ``LeNet5``) or, with ``classic=True``, the 1998 paper's network
    (squashing, trainable subsampling, partial C3 table, RBF output; see ``ClassicLeNet5``)."""
    return (ClassicLeNet5 if classic else LeNet5)(num_classes, in_channels)
