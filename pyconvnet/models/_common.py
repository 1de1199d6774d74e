"""What every model in ``pyconvnet.models`` shares: the input check, the error that names
the layer a too-small or wrongly shaped input fails in, the zero-padding of small images and the
fused run of a ``Sequential``'s conv -> ReLU -> max-pool, batch norm -> ReLU and linear -> ReLU
layers."""

import functools
import os

from .. import nn
from ..nn import functional as F
from ..nn.modules.module import _name_failing_layer, _prefix_message


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


def run_fused(sequential, x, padding=None, start_dim=None):
    """``sequential(F.pad(x, padding).flatten(start_dim))`` (``padding``: F.pad's amounts, or None
    for none; ``start_dim`` None: no flatten), where each Conv2d -> ReLU -> MaxPool2d and
    Linear -> ReLU run of the container's layers is one fused op (pyconvnet.ops.fused), each
    BatchNorm2d -> ReLU one kernel each way (``BatchNorm2d.forward_relu``), an even
    padding on all sides goes into the first convolution's own and the flatten into a first
    linear run. A hook on the container, or on a layer of a run (``onnx.export`` hooks every
    module), runs that part layer by layer, so that hooks see what they would in torch."""
    if sequential._has_forward_hooks():
        return sequential(_padded_and_flattened(x, padding, start_dim))
    layers = list(sequential)
    index = 0
    try:
        while index < len(layers):
            layer = layers[index]
            if start_dim is None and _fusable(layers, index, _CONV_RELU_POOL) and isinstance(layer.padding, tuple) \
                    and not layers[index + 2].return_indices and x.ndim == 4 \
                    and (padding is None or len(set(padding)) == 1):
                extra = 0 if padding is None else padding[0]
                pool = layers[index + 2]
                weight, bias = _weight_and_bias(layer)
                try:
                    x = F.conv2d_relu_max_pool2d(
                        x, weight, bias, layer.stride, (layer.padding[0] + extra, layer.padding[1] + extra),
                        layer.dilation, layer.groups, kernel_size=pool.kernel_size, pool_stride=pool.stride,
                        pool_padding=pool.padding, pool_dilation=pool.dilation, ceil_mode=pool.ceil_mode)
                except ValueError:
                    # Which of the three layers the input does not fit, the fused op cannot say: run one
                    # by one, they raise as unfused layers do, naming the layer and the shape it got.
                    x = _padded_and_flattened(x, padding, None)
                    for unfused in layers[index:index + 3]:
                        x = unfused(x)
                    raise
                index, padding = index + 3, None
                continue
            if _fusable(layers, index, _BATCH_NORM_RELU):
                x = layer.forward_relu(_padded_and_flattened(x, padding, start_dim), layers[index + 1])
                index += 2
            elif _fusable(layers, index, _LINEAR_RELU):
                x = F.linear_relu(_padded_and_flattened(x, padding, None), *_weight_and_bias(layer),
                                  start_dim=start_dim)
                index += 2
            else:
                x = layer(_padded_and_flattened(x, padding, start_dim))
                index += 1
            padding = start_dim = None
    except ValueError as error:  # named like Module.__call__ names a layer's error
        if not hasattr(error, "module"):
            _name_failing_layer(layers[index], error, (x,))
        raise
    return _padded_and_flattened(x, padding, start_dim)  # an empty container


def _padded_and_flattened(x, padding, start_dim):
    if padding is not None:
        x = F.pad(x, padding)
    return x if start_dim is None else x.flatten(start_dim)


_CONV_RELU_POOL = (nn.Conv2d, nn.ReLU, nn.MaxPool2d)
_LINEAR_RELU = (nn.Linear, nn.ReLU)
_BATCH_NORM_RELU = (nn.BatchNorm2d, nn.ReLU)


def _fusable(layers, start, types):
    """Whether the layers from ``start`` on are exactly ``types`` (a subclass may compute something
    else), with their weight and bias registered, and no hook watches them. Asked of every layer of
    a model on every call: a plain loop (a generator costs more than the checks)."""
    if start + len(types) > len(layers):
        return False
    for offset, kind in enumerate(types):
        layer = layers[start + offset]
        if type(layer) is not kind or layer._has_forward_hooks():
            return False
    parameters = layers[start]._parameters
    return "weight" in parameters and "bias" in parameters


def _weight_and_bias(layer):
    """``layer.weight`` and ``layer.bias`` (None without one) from its registry: a Module's
    ``__getattr__``, reached only after the instance look-up fails, costs ~0.8 us."""
    parameters = layer._parameters
    return parameters["weight"], parameters["bias"]


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
