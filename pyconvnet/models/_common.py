"""What every model in ``pyconvnet.models`` shares: the input check, the error that names
the layer a too-small or wrongly shaped input fails in, and the zero-padding of small images."""

from .. import nn
from ..autograd import no_grad
from ..nn import functional as F


class ImageClassifier(nn.Module):
    """Base class of the models: ``forward`` checks that the input is (N, in_channels, H, W),
    runs ``_forward``, and turns a shape error raised deep inside into a ValueError that names
    the layer (its ``state_dict`` prefix) and the input shape that layer got."""

    def __init__(self, num_classes, in_channels):
        super().__init__()
        check_arguments(num_classes, in_channels)
        self.in_channels = in_channels

    def forward(self, x):
        shape = tuple(x.shape)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise _named(self, f"{type(self).__name__}: expected input of shape (N, {self.in_channels}, H, W), got {shape}")
        try:
            return self._forward(x)
        except ValueError as error:
            message = _describe_failure(self, x, error)
            if message is None:
                raise
            raise _named(self, message) from error


def _named(model, message):
    """A ValueError marked (``module``) as already naming its layer, so the enclosing
    ``Module.__call__`` does not prefix it again."""
    error = ValueError(message)
    error.module = model
    return error


def _describe_failure(model, x, error):
    """Rerun ``model._forward`` on ``x`` in eval mode under no_grad with pre/post hooks on every
    submodule; the innermost module entered but not left is where ``error`` comes from."""
    stack = []

    def leave(module, args, output):
        stack.pop()

    handles = []
    for name, module in model.named_modules():
        if module is model:
            continue
        handles.append(module.register_forward_pre_hook(
            lambda m, args, name=name: stack.append((name, m, tuple(args[0].shape)))))
        handles.append(module.register_forward_hook(leave))
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad():
            model._forward(x)
    except ValueError:
        pass
    else:
        return None  # the failure depends on training mode (e.g. batch norm on one value per channel)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    if not stack:
        return None
    name, module, shape = stack[-1]
    return (
        f"{type(model).__name__}: layer '{name}' ({type(module).__name__}) got input of shape {shape} "
        f"(model input {tuple(x.shape)}): {error}"
    )


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
