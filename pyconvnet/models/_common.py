"""What every model in ``pyconvnet.models`` shares: the input check, the error that names
the layer a too-small or wrongly shaped input fails in, and the zero-padding of small images."""

import functools
import os

from .. import nn
from ..nn import functional as F
from ..nn.modules.module import _prefix_message


class ImageClassifier(nn.Module):
    """Base class of the models: ``forward`` checks that the input is (N, in_channels, H, W),
    runs ``_forward``, and prefixes a shape error raised deep inside with the model, the failing
    layer's ``state_dict`` prefix and the model's input shape (``Module.__call__`` has already
    named the layer and the input shape it got)."""

    def __init__(self, num_classes, in_channels):
        super().__init__()
        check_arguments(num_classes, in_channels)
        self.in_channels = in_channels

    def forward(self, x):
        shape = tuple(x.shape)
        if len(shape) != 4 or shape[1] != self.in_channels:
            error = ValueError(f"{type(self).__name__}: expected input of shape (N, {self.in_channels}, H, W), got {shape}")
            error.module = self  # named already: Module.__call__ leaves it alone
            raise error
        try:
            return self._forward(x)
        except ValueError as error:
            name = next((name for name, module in self.named_modules()
                         if module is getattr(error, "module", None) and module is not self), None)
            if name is not None:
                _prefix_message(error, f"{type(self).__name__}: layer '{name}' (model input {shape}): ")
            raise


def check_arguments(num_classes, in_channels):
    """TypeError/ValueError unless both are positive ints."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")


def padding_to_size(shape, size):
    """``F.pad``'s (left, right, top, bottom) amounts that zero-pad an (N, C, H, W) ``shape`` to
    at least ``size`` x ``size``, centred (an odd remainder goes to the bottom and right); None
    when it is already that large."""
    height, width = shape[2:]
    extra_h, extra_w = max(0, size - height), max(0, size - width)
    if not extra_h and not extra_w:
        return None
    return (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)


def pad_to_size(x, size):
    """``x`` zero-padded as ``padding_to_size`` says; ``x`` itself when no padding is needed."""
    amounts = padding_to_size(x.shape, size)
    return x if amounts is None else F.pad(x, amounts)


def torchvision_builder(builder):
    """Gives a builder torchvision's keywords: ``weights=None`` (random initialisation) or a
    path (str or os.PathLike) to a weight file that ``load_state_dict_file`` reads (such as
    torchvision's ``resnet18-f37072fd.pth``), loaded strictly; ``progress`` and the old
    ``pretrained=False``. Named weights (``"IMAGENET1K_V1"``) cannot be downloaded here and raise."""

    @functools.wraps(builder)
    def build(*args, weights=None, progress=True, pretrained=False, **kwargs):
        if pretrained or (weights is not None and not _is_path(weights)):
            requested = f"weights={weights!r}" if weights is not None else "pretrained=True"
            raise ValueError(f"{builder.__name__}: {requested}: pretrained weights are not bundled with pyconvnet "
                             "nor downloadable here; pass weights= the path of a weight file you have "
                             "(.pth, .pt or .safetensors)")
        model = builder(*args, **kwargs)
        if weights is not None:
            from ..checkpoint import load_state_dict_file
            model.load_state_dict(load_state_dict_file(weights))
        return model

    return build


def _is_path(weights):
    """Whether ``weights`` names a file rather than a torchvision weight enum name."""
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        os.path.isfile(weights) or os.sep in weights or weights.endswith((".pth", ".pt", ".safetensors")))
