"""``summary(model, input_shape)``: a per-layer table of a model, as torchinfo and Keras print.

One forward pass of a zero batch of one sample, in eval mode under no_grad, with forward hooks
on every leaf module (and every module holding parameters of its own) records each call's
output shape, parameter count, multiply-adds and receptive field; the totals follow.

Multiply-adds count the products of weighted layers only: a layer whose ``weight`` has two or
more dimensions (convolution, linear) performs ``weight.numel()`` products per output position
(``output.numel() / output.shape[1]``). Normalisation, activation and pooling count zero.

The receptive field of a spatial (4-D) output is the size, in input pixels, of the input window
that one of its elements depends on, and its jump is the distance in input pixels between
neighbouring elements (the product of the strides so far): a layer with kernel ``k``, dilation
``d`` and stride ``s`` maps (size, jump) to (size + (k - 1) d jump, jump s). Layers without a
``kernel_size`` are treated as a pooling window of ``ceil(in / out)`` with stride
``in // out`` (identity when the size is unchanged). A tensor produced outside any module
(a functional ReLU, a residual addition, a concatenation) is given the largest field recorded so
far for a tensor of its shape, else at its spatial size: fields only grow along a feed-forward
network, so this is the field of the layer just before an element-wise op and the union of the
branches at an addition or concatenation.
"""

import math
from collections import namedtuple

from .autograd import no_grad
from .tensor import Tensor
from .creation import zeros

__all__ = ["summary", "ModelSummary", "LayerSummary"]

LayerSummary = namedtuple(
    "LayerSummary", ["name", "type", "output_shape", "params", "mult_adds", "receptive_field", "jump"]
)
LayerSummary.__doc__ = (
    "One module call: its state_dict prefix, class name, output shape, parameter count (its own "
    "parameters), multiply-adds, and receptive field and jump as (height, width) in input pixels "
    "(None for non-spatial outputs)."
)

_BYTES_PER_MB = 1024.0 * 1024.0


def _pair(value, default):
    if value is None:
        return default
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _first_tensor(value):
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


class _FieldTracker:
    """Receptive field and jump of the spatial tensors seen in one forward pass."""

    def __init__(self, input_tensor):
        self._by_tensor = {}  # id -> (tensor kept alive so ids stay unique, field, jump)
        self._by_shape = {}  # (N, C, H, W) -> largest (field, jump) seen for that shape
        self._by_size = {}  # (H, W) -> largest (field, jump) seen at that spatial size
        self.record(input_tensor, (1, 1), (1, 1))

    def record(self, tensor, field, jump):
        self._by_tensor[id(tensor)] = (tensor, field, jump)
        for table, key in ((self._by_shape, tuple(tensor.shape)), (self._by_size, tuple(tensor.shape[2:]))):
            best = table.get(key)
            if best is None or field[0] * field[1] > best[0][0] * best[0][1]:
                table[key] = (field, jump)

    def lookup(self, tensor):
        entry = self._by_tensor.get(id(tensor))
        if entry is not None:
            return entry[1], entry[2]
        entry = self._by_shape.get(tuple(tensor.shape)) or self._by_size.get(tuple(tensor.shape[2:]))
        return entry or ((1, 1), (1, 1))

    def layer(self, module, input_tensor, output_tensor):
        """Record ``output_tensor``'s field from ``input_tensor``'s and the module's window."""
        field, jump = self.lookup(input_tensor)
        sizes_in, sizes_out = input_tensor.shape[2:], output_tensor.shape[2:]
        kernel = getattr(module, "kernel_size", None)
        if kernel is None:
            kernel = tuple(-(-i // o) if o < i else 1 for i, o in zip(sizes_in, sizes_out))
            stride = tuple(i // o if o < i else 1 for i, o in zip(sizes_in, sizes_out))
        else:
            kernel = _pair(kernel, None)
            stride = _pair(getattr(module, "stride", None), (1, 1))
        dilation = _pair(getattr(module, "dilation", None), (1, 1))
        field = tuple(f + (k - 1) * d * j for f, k, d, j in zip(field, kernel, dilation, jump))
        jump = tuple(j * s for j, s in zip(jump, stride))
        self.record(output_tensor, field, jump)
        return field, jump


def _mult_adds(module, output):
    weight = getattr(module, "weight", None)
    if not isinstance(weight, Tensor) or weight.ndim < 2 or output.ndim < 2:
        return 0
    return weight.numel() * (output.numel() // output.shape[1])


class ModelSummary:
    """The result of ``summary``: ``layers`` (a list of ``LayerSummary``), the totals as
    attributes, and the formatted table as ``str(summary)``."""

    def __init__(self, model_name, input_shape, layers, total_params, trainable_params,
                 param_bytes, input_bytes, activation_bytes):
        self.model_name = model_name
        self.input_shape = input_shape
        self.layers = layers
        self.total_params = total_params
        self.trainable_params = trainable_params
        self.total_mult_adds = sum(layer.mult_adds for layer in layers)
        self.param_bytes = param_bytes
        self.input_bytes = input_bytes
        self.activation_bytes = activation_bytes

    def __str__(self):
        header = ("Layer (type)", "Output shape", "Param #", "Mult-adds", "RF", "Jump")
        rows = [
            (
                f"{layer.name or '(model)'} ({layer.type})",
                str(list(layer.output_shape)),
                f"{layer.params:,}",
                f"{layer.mult_adds:,}",
                _format_pair(layer.receptive_field),
                _format_pair(layer.jump),
            )
            for layer in self.layers
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        line = "  ".join

        def format_row(row):
            return line([row[0].ljust(widths[0]), row[1].ljust(widths[1])] +
                        [cell.rjust(width) for cell, width in zip(row[2:], widths[2:])])

        rule_width = sum(widths) + 2 * (len(widths) - 1)
        lines = [f"{self.model_name} on input {list(self.input_shape)}", "=" * rule_width, format_row(header),
                 "=" * rule_width, *(format_row(row) for row in rows), "=" * rule_width]
        lines += [
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"Total mult-adds: {_format_count(self.total_mult_adds)}",
            "-" * rule_width,
            f"Input size (MB): {self.input_bytes / _BYTES_PER_MB:.2f}",
            f"Forward pass activations (MB): {self.activation_bytes / _BYTES_PER_MB:.2f}",
            f"Params and buffers size (MB): {self.param_bytes / _BYTES_PER_MB:.2f}",
            f"Estimated total size (MB): "
            f"{(self.input_bytes + self.activation_bytes + self.param_bytes) / _BYTES_PER_MB:.2f}",
            "=" * rule_width,
        ]
        return "\n".join(lines)

    __repr__ = __str__


def _format_pair(pair):
    if pair is None:
        return ""
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _format_count(count):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit} ({count:,})"
    return f"{count:,}"


def summary(model, input_shape):
    """Summarise ``model`` on one sample of shape ``input_shape`` (without the batch dimension,
    e.g. ``(3, 224, 224)``); returns a ``ModelSummary`` whose ``str`` is the table.

    The model runs once on zeros of shape ``(1, *input_shape)`` in eval mode under no_grad;
    every module's training flag is restored afterwards. Activation memory is the sum of the
    recorded outputs' sizes for that one sample (float32)."""
    if not callable(getattr(model, "named_modules", None)):
        raise TypeError(f"summary: model must be a pyconvnet.nn.Module, got {type(model).__name__}")
    input_shape = tuple(input_shape)
    if not input_shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(f"summary: input_shape must be a non-empty tuple of positive ints, got {input_shape}")
    sample = zeros(1, *input_shape)
    tracker = _FieldTracker(sample)
    layers = []

    def hook(module, args, output, name):
        output_tensor = _first_tensor(output)
        if output_tensor is None:
            return
        input_tensor = _first_tensor(args)
        field = jump = None
        if output_tensor.ndim == 4 and input_tensor is not None and input_tensor.ndim == 4:
            field, jump = tracker.layer(module, input_tensor, output_tensor)
        params = sum(p.numel() for p in module.parameters(recurse=module in leaves))
        layers.append(LayerSummary(name, type(module).__name__, tuple(output_tensor.shape), params,
                                   _mult_adds(module, output_tensor), field, jump))

    handles = []
    leaves = set()
    for name, module in model.named_modules():
        if next(iter(module.children()), None) is None:
            leaves.add(module)
        if module in leaves or next(iter(module.parameters(recurse=False)), None) is not None:
            handles.append(module.register_forward_hook(
                lambda m, args, output, name=name: hook(m, args, output, name)))
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    parameters = list(model.parameters())
    return ModelSummary(
        model_name=type(model).__name__,
        input_shape=(1, *input_shape),
        layers=layers,
        total_params=sum(p.numel() for p in parameters),
        trainable_params=sum(p.numel() for p in parameters if p.requires_grad),
        param_bytes=sum(p.numel() * p.dtype.itemsize for p in (*parameters, *model.buffers())),
        input_bytes=sample.numel() * 4,
        activation_bytes=sum(math.prod(layer.output_shape) * 4 for layer in layers),
    )
