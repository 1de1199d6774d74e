"""Activation layers: ``ReLU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``GELU``, ``SiLU``, ``ReLU6``,
``Hardswish``, ``Hardsigmoid``, ``Softmax``, ``LogSoftmax``."""

from .. import functional as F
from .module import Module

__all__ = [
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "GELU",
    "SiLU",
    "ReLU6",
    "Hardswish",
    "Hardsigmoid",
    "Softmax",
    "LogSoftmax",
]


class ReLU(Module):
    """max(0, x) element-wise; ``inplace=True`` overwrites the input (torch.nn.ReLU)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x >= 0 else negative_slope * x (torch.nn.LeakyReLU)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """1 / (1 + exp(-x)) element-wise."""

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x) element-wise."""

    def forward(self, input):
        return F.tanh(input)


class GELU(Module):
    """x * Phi(x), or torch's tanh approximation with ``approximate='tanh'`` (torch.nn.GELU)."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class _InplaceActivation(Module):
    """An element-wise activation with torch's ``inplace`` flag; subclasses name the functional."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class SiLU(_InplaceActivation):
    """x * sigmoid(x) element-wise (torch.nn.SiLU)."""

    def forward(self, input):
        return F.silu(input, inplace=self.inplace)


class ReLU6(_InplaceActivation):
    """min(max(x, 0), 6) element-wise (torch.nn.ReLU6)."""

    def forward(self, input):
        return F.relu6(input, inplace=self.inplace)


class Hardswish(_InplaceActivation):
    """x * relu6(x + 3) / 6 element-wise (torch.nn.Hardswish)."""

    def forward(self, input):
        return F.hardswish(input, inplace=self.inplace)


class Hardsigmoid(_InplaceActivation):
    """relu6(x + 3) / 6 element-wise (torch.nn.Hardsigmoid)."""

    def forward(self, input):
        return F.hardsigmoid(input, inplace=self.inplace)


class _SoftmaxNd(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_SoftmaxNd):
    """Softmax along ``dim`` (torch.nn.Softmax); ``dim=None`` takes torch's deprecated implicit choice."""

    def forward(self, input):
        return F.softmax(input, self.dim, _stacklevel=5)


class LogSoftmax(_SoftmaxNd):
    """Log-softmax along ``dim`` (torch.nn.LogSoftmax); ``dim=None`` as ``Softmax``."""

    def forward(self, input):
        return F.log_softmax(input, self.dim, _stacklevel=5)
