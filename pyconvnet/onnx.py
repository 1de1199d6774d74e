"""ONNX export: ``export(model, input_shape, path)`` writes a model as an ONNX file (opset 17)
that onnxruntime runs with the same logits.

The graph is built from the model's module structure: one converter per module class (in
``_CONVERTERS``) emits that module's ONNX nodes. Leaf layers map to one ONNX operator each;
the models' own classes and their blocks (residual blocks, inception modules, LeNet-5's
layers) have converters that mirror their ``forward``. While converting, every module also
runs on an example tensor, so each converter knows the shapes it works on (adaptive pooling
needs them). The export runs in eval mode: dropout is the identity, batch norm uses its
running statistics. Needs the ``onnx`` extra (``pip install pyconvnet[onnx]``); importing
pyconvnet does not import onnx.
"""

import os
from collections import namedtuple

import numpy as np

from . import nn
from .autograd import no_grad
from .models import lenet, resnet, vgg
from .models._common import padding_to_size
from .models.alexnet import AlexNet
from .models.googlenet import _IMAGENET_MEAN, _IMAGENET_STD, BasicConv2d, GoogLeNet, Inception
from .models.vgg import VGG
from .nn import functional as F
from .ops._args import pair
from .creation import zeros

__all__ = ["export", "OPSET", "IR_VERSION"]

OPSET = 17
IR_VERSION = 8  # what opset 17 needs; every onnxruntime since 1.13 reads it
_INT64_MAX = np.iinfo(np.int64).max

# An ONNX value: its name in the graph and the pyconvnet tensor it holds for the example input.
_Value = namedtuple("_Value", ["name", "tensor"])


def export(model, input_shape, path):
    """Write ``model`` (an ``nn.Module``) to ``path`` as an ONNX model for inputs of one sample's
    shape ``input_shape`` (e.g. ``(1, 28, 28)``). The graph's input is ``input`` of shape
    (batch, *input_shape) with a dynamic ``batch`` dimension; its output is ``logits``. The
    model is exported in eval mode and left in the mode it was in. TypeError for a module with
    no converter (naming it), ValueError for a layer setting ONNX cannot express."""
    onnx = _import_onnx()
    if not isinstance(model, nn.Module):
        raise TypeError(f"export: model must be a pyconvnet nn.Module, got {type(model).__name__}")
    if (not isinstance(input_shape, (tuple, list)) or not input_shape
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in input_shape)):
        raise ValueError(f"export: input_shape must be one sample's shape as positive ints, e.g. (3, 32, 32), "
                         f"got {input_shape!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"export: path must be a str or os.PathLike, got {type(path).__name__}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad():
            graph = _Graph(model)
            output = graph.convert(model, _Value("input", zeros(1, *input_shape)))
    finally:
        for module, training in modes:
            module.training = training
    onnx.save(graph.to_onnx(onnx, input_shape, output), os.fspath(path))


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError("pyconvnet.onnx.export needs the onnx package: pip install 'pyconvnet[onnx]'") from error
    return onnx


class _Graph:
    """The nodes and initialisers (weights, constants) of the graph being built."""

    def __init__(self, model):
        self.paths = {id(module): path or type(module).__name__ for path, module in model.named_modules()}
        self.nodes = []  # (op, inputs, output, attributes)
        self.initializers = {}  # name -> float32 or int64 array

    def convert(self, module, x):
        """The value ``module`` computes from ``x``, its nodes added to the graph."""
        converter = _CONVERTERS.get(type(module))
        if converter is None:
            raise TypeError(f"export: no ONNX converter for module '{self.path(module)}' of type "
                            f"{type(module).__module__}.{type(module).__qualname__}")
        return converter(self, module, x)

    def path(self, module):
        return self.paths.get(id(module), type(module).__name__)

    def node(self, op, inputs, tensor, module, **attributes):
        """Add ONNX operator ``op`` (scoped under ``module``'s path) reading ``inputs`` (names);
        its output holds ``tensor`` for the example input."""
        name = f"{self.path(module)}/{op}_{len(self.nodes)}"
        self.nodes.append((op, list(inputs), name, attributes))
        return _Value(name, tensor)

    def constant(self, module, name, array):
        """The name of an initialiser ``<module path>.<name>`` holding ``array`` (float32 unless int64)."""
        full_name = f"{self.path(module)}.{name}"
        array = np.asarray(array)
        self.initializers[full_name] = array if array.dtype == np.int64 else array.astype(np.float32)
        return full_name

    def parameter(self, module, name):
        """The initialiser of parameter or buffer ``name`` of ``module``."""
        return self.constant(module, name, getattr(module, name).detach().numpy())

    def to_onnx(self, onnx, input_shape, output):
        helper = onnx.helper
        nodes = [helper.make_node(op, inputs, ["logits" if name == output.name else name], name=name, **attributes)
                 for op, inputs, name, attributes in self.nodes]
        if output.name == "input":  # a model that computes nothing
            nodes.append(helper.make_node("Identity", ["input"], ["logits"], name="output"))
        graph = helper.make_graph(
            nodes, "pyconvnet",
            [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", *input_shape])],
            [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", *output.tensor.shape[1:]])],
            [onnx.numpy_helper.from_array(array, name) for name, array in self.initializers.items()],
        )
        return helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", OPSET)],
                                 producer_name="pyconvnet")


# ----------------------------------------------------------------------------- helpers


def _flatten(graph, x, module):
    """``x.flatten(1)``."""
    return graph.node("Flatten", [x.name], x.tensor.flatten(1), module, axis=1)


def _pad(graph, x, module, torch_pad):
    """Zero padding with ``F.pad``'s ``torch_pad`` ((before, after) pairs from the last dim)."""
    ndim = x.tensor.ndim
    before, after = [0] * ndim, [0] * ndim
    for i in range(len(torch_pad) // 2):
        before[ndim - 1 - i], after[ndim - 1 - i] = torch_pad[2 * i], torch_pad[2 * i + 1]
    pads = graph.constant(module, f"pads{len(graph.nodes)}", np.array(before + after, dtype=np.int64))
    return graph.node("Pad", [x.name, pads], F.pad(x.tensor, torch_pad), module)


def _add_relu(graph, a, b, module):
    total = graph.node("Add", [a.name, b.name], None, module)
    return graph.node("Relu", [total.name], F.add_relu(a.tensor, b.tensor), module)


def _chain(graph, x, *modules):
    for module in modules:
        x = graph.convert(module, x)
    return x


def _pool_attributes(pool):
    ph, pw = pair(pool.padding, "padding", type(pool).__name__)
    return {"kernel_shape": list(pair(pool.kernel_size, "kernel_size", type(pool).__name__)),
            "strides": list(pair(pool.stride, "stride", type(pool).__name__)),
            "pads": [ph, pw, ph, pw], "ceil_mode": int(pool.ceil_mode)}


# ----------------------------------------------------------------------------- layers


def _conv2d(graph, conv, x):
    if conv.padding == "valid":
        pads = [0, 0, 0, 0]
    elif conv.padding == "same":  # the extra pixel of an odd total goes after, as torch does
        totals = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        pads = [t // 2 for t in totals] + [t - t // 2 for t in totals]
    else:
        pads = list(conv.padding) * 2
    inputs = [x.name, graph.parameter(conv, "weight")] + ([graph.parameter(conv, "bias")] if conv.bias is not None else [])
    return graph.node("Conv", inputs, conv(x.tensor), conv, kernel_shape=list(conv.kernel_size),
                      strides=list(conv.stride), pads=pads, dilations=list(conv.dilation), group=conv.groups)


def _linear(graph, linear, x):
    bias = [graph.parameter(linear, "bias")] if linear.bias is not None else []
    if x.tensor.ndim == 2:
        return graph.node("Gemm", [x.name, graph.parameter(linear, "weight"), *bias], linear(x.tensor), linear,
                          transB=1)
    weight_t = graph.constant(linear, "weight_t", linear.weight.detach().numpy().T)
    product = graph.node("MatMul", [x.name, weight_t], None if bias else linear(x.tensor), linear)
    return graph.node("Add", [product.name, *bias], linear(x.tensor), linear) if bias else product


def _batch_norm(graph, norm, x):
    if norm.running_mean is None:
        raise ValueError(f"export: '{graph.path(norm)}' ({type(norm).__name__}) has track_running_stats=False: in "
                         f"eval mode it normalises with batch statistics, which ONNX BatchNormalization cannot")
    channels = norm.num_features
    scale = graph.parameter(norm, "weight") if norm.weight is not None else graph.constant(norm, "weight", np.ones(channels))
    shift = graph.parameter(norm, "bias") if norm.bias is not None else graph.constant(norm, "bias", np.zeros(channels))
    inputs = [x.name, scale, shift, graph.parameter(norm, "running_mean"), graph.parameter(norm, "running_var")]
    return graph.node("BatchNormalization", inputs, norm(x.tensor), norm, epsilon=float(norm.eps))


def _local_response_norm(graph, norm, x):
    if norm.size % 2 == 0:  # ONNX centres an even window one channel later than torch
        raise ValueError(f"export: '{graph.path(norm)}' (LocalResponseNorm) has an even size ({norm.size}); "
                         f"ONNX LRN matches torch's channel window only for odd sizes")
    return graph.node("LRN", [x.name], norm(x.tensor), norm, size=norm.size, alpha=float(norm.alpha),
                      beta=float(norm.beta), bias=float(norm.k))


def _max_pool2d(graph, pool, x):
    if pool.return_indices:
        raise ValueError(f"export: '{graph.path(pool)}' (MaxPool2d) has return_indices=True; export the logits only")
    return graph.node("MaxPool", [x.name], pool(x.tensor), pool, **_pool_attributes(pool),
                      dilations=list(pair(pool.dilation, "dilation", "MaxPool2d")))


def _avg_pool2d(graph, pool, x):
    if pool.divisor_override is not None:
        raise ValueError(f"export: '{graph.path(pool)}' (AvgPool2d) has divisor_override={pool.divisor_override}, "
                         f"which ONNX AveragePool cannot express")
    return graph.node("AveragePool", [x.name], pool(x.tensor), pool, **_pool_attributes(pool),
                      count_include_pad=int(pool.count_include_pad))


def _adaptive_avg_pool2d(graph, pool, x):
    size = tuple(x.tensor.shape[2:])
    wanted = pool.output_size if isinstance(pool.output_size, (tuple, list)) else (pool.output_size,) * 2
    wanted = tuple(n if o is None else o for n, o in zip(size, wanted))
    output = pool(x.tensor)
    if wanted == (1, 1):
        return graph.node("GlobalAveragePool", [x.name], output, pool)
    if not any(n % o for n, o in zip(size, wanted)):
        kernel = [n // o for n, o in zip(size, wanted)]
        return graph.node("AveragePool", [x.name], output, pool, kernel_shape=kernel, strides=kernel)
    # Uneven windows (e.g. 2x2 -> 7x7): average with a matrix per axis, x (N, C, H, W) ->
    # rows (oh, H) @ x @ columns (W, ow).
    suffix = len(graph.nodes)  # the matrices depend on the input size, which may differ between calls
    rows = graph.constant(pool, f"rows{suffix}", _averaging_matrix(size[0], wanted[0]))
    columns = graph.constant(pool, f"columns{suffix}", _averaging_matrix(size[1], wanted[1]).T)
    pooled_columns = graph.node("MatMul", [x.name, columns], None, pool)
    return graph.node("MatMul", [rows, pooled_columns.name], output, pool)


def _averaging_matrix(size, output_size):
    """(output_size, size): row i averages adaptive pooling's window i,
    [floor(i * size / output_size), ceil((i + 1) * size / output_size))."""
    matrix = np.zeros((output_size, size))
    for i in range(output_size):
        start, stop = (i * size) // output_size, -((-(i + 1) * size) // output_size)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def _flatten_module(graph, flatten, x):
    if (flatten.start_dim, flatten.end_dim) == (1, -1):
        return graph.node("Flatten", [x.name], flatten(x.tensor), flatten, axis=1)
    output = flatten(x.tensor)
    start = flatten.start_dim % x.tensor.ndim
    end = flatten.end_dim % x.tensor.ndim
    shape = [0] * start + [-1] + list(x.tensor.shape[end + 1:])  # 0 copies the (dynamic) size
    target = graph.constant(flatten, "shape", np.array(shape, dtype=np.int64))
    return graph.node("Reshape", [x.name, target], output, flatten)


def _elementwise(op, **attributes):
    def convert(graph, module, x):
        values = {name: float(getattr(module, field)) for name, field in attributes.items()}
        return graph.node(op, [x.name], module(x.tensor), module, **values)
    return convert


def _identity(graph, module, x):
    return x


def _sequential(graph, sequence, x):
    return _chain(graph, x, *sequence)


# ----------------------------------------------------------------------------- model blocks


def _lenet5(graph, model, x):
    x = _to_32x32(graph, model, x)
    x = _flatten(graph, graph.convert(model.features, x), model)
    return graph.convert(model.classifier, x)


def _classic_lenet5(graph, model, x):
    squash = model.squash
    x = _chain(graph, _to_32x32(graph, model, x), model.c1, squash, model.s2, squash, model.c3, squash, model.s4,
               squash, model.c5, squash)
    return _chain(graph, _flatten(graph, x, model), model.f6, squash, model.output)


def _to_32x32(graph, model, x):
    """LeNet-5's zero padding of 28x28 inputs to 32x32 (``lenet._to_32x32``, which also checks
    the size)."""
    lenet._to_32x32(x.tensor, type(model).__name__)
    return _pad_to_size(graph, x, model, 32)


def _pad_to_size(graph, x, model, size):
    """``models._common.pad_to_size``: centred zero padding up to ``size`` x ``size``."""
    amounts = padding_to_size(x.tensor.shape, size)
    return x if amounts is None else _pad(graph, x, model, amounts)


def _squash(graph, squash, x):
    slope = graph.constant(squash, "slope", np.float32(lenet.SQUASH_SLOPE))
    amplitude = graph.constant(squash, "amplitude", np.float32(lenet.SQUASH_AMPLITUDE))
    scaled = graph.node("Mul", [x.name, slope], None, squash)
    squashed = graph.node("Tanh", [scaled.name], None, squash)
    return graph.node("Mul", [squashed.name, amplitude], squash(x.tensor), squash)


def _subsampling(graph, layer, x):
    channels = layer.weight.shape[0]
    # 2x2 sums times the coefficient = 2x2 averages times 4 * coefficient.
    scale = graph.constant(layer, "scale", 4.0 * layer.weight.detach().numpy().reshape(1, channels, 1, 1))
    bias = graph.constant(layer, "bias", layer.bias.detach().numpy().reshape(1, channels, 1, 1))
    averages = graph.node("AveragePool", [x.name], None, layer, kernel_shape=[2, 2], strides=[2, 2])
    scaled = graph.node("Mul", [averages.name, scale], None, layer)
    return graph.node("Add", [scaled.name, bias], layer(x.tensor), layer)


def _partial_conv2d(graph, conv, x):
    weight = graph.constant(conv, "weight", conv.dense_weight().detach().numpy())
    return graph.node("Conv", [x.name, weight, graph.parameter(conv, "bias")], conv(x.tensor), conv,
                      kernel_shape=[conv.kernel_size] * 2)


def _rbf_output(graph, layer, x):
    # -||x - c||^2 = 2 x.c - ||c||^2 - ||x||^2
    centers = layer.centers.numpy()
    squared_centers = graph.constant(layer, "squared_centers", -(centers * centers).sum(1))
    cross = graph.node("Gemm", [x.name, graph.parameter(layer, "centers"), squared_centers], None, layer,
                       alpha=2.0, transB=1)
    squared_inputs = graph.node("ReduceSumSquare", [x.name], None, layer, axes=[1], keepdims=1)
    return graph.node("Sub", [cross.name, squared_inputs.name], layer(x.tensor), layer)


def _alexnet_or_vgg(graph, model, x):
    if isinstance(model, VGG) and model.cifar:
        x = _pad_to_size(graph, x, model, vgg.CIFAR_INPUT_SIZE)
    x = graph.convert(model.avgpool, graph.convert(model.features, x))
    return graph.convert(model.classifier, _flatten(graph, x, model))


def _resnet(graph, model, x):
    x = _chain(graph, x, model.conv1, model.bn1, model.relu, model.maxpool,
               model.layer1, model.layer2, model.layer3, model.layer4, model.avgpool)
    return graph.convert(model.fc, _flatten(graph, x, model))


def _cifar_resnet(graph, model, x):
    x = _chain(graph, x, model.conv1, model.bn1, model.relu, model.layer1, model.layer2, model.layer3, model.avgpool)
    return graph.convert(model.fc, _flatten(graph, x, model))


def _basic_block(graph, block, x):
    identity = x if block.downsample is None else graph.convert(block.downsample, x)
    out = _chain(graph, x, block.conv1, block.bn1, block.relu, block.conv2, block.bn2)
    return _add_relu(graph, out, identity, block)


def _plain_block(graph, block, x):
    return _chain(graph, x, block.conv1, block.bn1, block.relu, block.conv2, block.bn2, block.relu)


def _bottleneck(graph, block, x):
    identity = x if block.downsample is None else graph.convert(block.downsample, x)
    out = _chain(graph, x, block.conv1, block.bn1, block.relu, block.conv2, block.bn2, block.relu,
                 block.conv3, block.bn3)
    return _add_relu(graph, out, identity, block)


def _shortcut_a(graph, shortcut, x):
    stride = shortcut.stride
    starts = graph.constant(shortcut, "starts", np.array([0, 0], dtype=np.int64))
    ends = graph.constant(shortcut, "ends", np.array([_INT64_MAX] * 2, dtype=np.int64))
    axes = graph.constant(shortcut, "axes", np.array([2, 3], dtype=np.int64))
    steps = graph.constant(shortcut, "steps", np.array([stride, stride], dtype=np.int64))
    sampled = graph.node("Slice", [x.name, starts, ends, axes, steps],
                         x.tensor[:, :, ::stride, ::stride], shortcut)
    before = shortcut.extra_channels // 2
    return _pad(graph, sampled, shortcut, (0, 0, 0, 0, before, shortcut.extra_channels - before))


def _googlenet(graph, model, x):
    if model.transform_input:
        x = _googlenet_transform_input(graph, model, x)
    x = _chain(graph, x, model.conv1, model.maxpool1, model.conv2, model.conv3, model.maxpool2,
               model.inception3a, model.inception3b, model.maxpool3,
               model.inception4a, model.inception4b, model.inception4c, model.inception4d, model.inception4e,
               model.maxpool4, model.inception5a, model.inception5b, model.avgpool)
    return _chain(graph, _flatten(graph, x, model), model.dropout, model.fc)  # aux heads run in training only


def _googlenet_transform_input(graph, model, x):
    """Channel c becomes x * (std_c / 0.5) + (mean_c - 0.5) / 0.5, as one Mul and one Add."""
    mean, std = np.array(_IMAGENET_MEAN), np.array(_IMAGENET_STD)
    scale = graph.constant(model, "transform_scale", (std / 0.5).reshape(1, 3, 1, 1))
    shift = graph.constant(model, "transform_shift", ((mean - 0.5) / 0.5).reshape(1, 3, 1, 1))
    scaled = graph.node("Mul", [x.name, scale], None, model)
    return graph.node("Add", [scaled.name, shift], model._transform_input(x.tensor), model)


def _basic_conv2d(graph, block, x):
    x = _chain(graph, x, block.conv, block.bn)
    return graph.node("Relu", [x.name], F.relu(x.tensor), block)


def _inception(graph, block, x):
    branches = [graph.convert(branch, x) for branch in (block.branch1, block.branch2, block.branch3, block.branch4)]
    return graph.node("Concat", [branch.name for branch in branches], F.cat([b.tensor for b in branches], 1),
                      block, axis=1)


_CONVERTERS = {
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.LocalResponseNorm: _local_response_norm,
    nn.MaxPool2d: _max_pool2d,
    nn.AvgPool2d: _avg_pool2d,
    nn.AdaptiveAvgPool2d: _adaptive_avg_pool2d,
    nn.Flatten: _flatten_module,
    nn.ReLU: _elementwise("Relu"),
    nn.LeakyReLU: _elementwise("LeakyRelu", alpha="negative_slope"),
    nn.Sigmoid: _elementwise("Sigmoid"),
    nn.Tanh: _elementwise("Tanh"),
    nn.Dropout: _identity,
    nn.Identity: _identity,
    nn.Sequential: _sequential,
    lenet.LeNet5: _lenet5,
    lenet.ClassicLeNet5: _classic_lenet5,
    lenet.Squash: _squash,
    lenet.Subsampling: _subsampling,
    lenet.PartialConv2d: _partial_conv2d,
    lenet.RBFOutput: _rbf_output,
    AlexNet: _alexnet_or_vgg,
    VGG: _alexnet_or_vgg,
    resnet.ResNet: _resnet,
    resnet.CifarResNet: _cifar_resnet,
    resnet.BasicBlock: _basic_block,
    resnet.PlainBlock: _plain_block,
    resnet.Bottleneck: _bottleneck,
    resnet.ShortcutA: _shortcut_a,
    GoogLeNet: _googlenet,
    BasicConv2d: _basic_conv2d,
    Inception: _inception,
}
