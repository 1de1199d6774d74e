"""``Linear`` (y = x W^T + b) and ``Identity``."""

import math

from .. import functional as F
from .. import init
from ..parameter import Parameter
from ...creation import empty
from .module import Module

__all__ = ["Linear", "Identity"]


def reset_weight_and_bias(weight, bias):
    """torch's default for Linear and Conv: kaiming_uniform_(a=sqrt(5)) for the weight, which
    amounts to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        if fan_in != 0:
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(bias, -bound, bound)


class Linear(Module):
    """Fully connected layer over the last dimension (torch.nn.Linear).

    ``weight`` is (out_features, in_features), initialised as torch's: kaiming_uniform_(a=sqrt(5))
    for the weight and U(-1/sqrt(in_features), 1/sqrt(in_features)) for the bias.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty(out_features, in_features))
        if bias:
            self.bias = Parameter(empty(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        reset_weight_and_bias(self.weight, self.bias)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (torch.nn.Identity)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input
