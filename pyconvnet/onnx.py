"""ONNX export: ``export(model, input_shape, path)`` writes any ``nn.Module`` as an ONNX file (opset 17)
that onnxruntime runs with the same logits.

The graph is traced: the model runs once in eval mode under ``no_grad`` on an example batch while
``Function.apply`` hands every op to a ``_Tracer`` (``autograd.tracer``), which maps it to ONNX
nodes (``_CONVERTERS``, one converter per Function class). Tensors that no recorded op computed
from the input (parameters, buffers, constants, and whatever ops on those alone compute) become
initialisers. Every value remembers which axis is the batch, so reshapes and slices keep the
batch dimension dynamic. In-place Tensor methods on traced tensors are refused (``x += y`` is
recorded as ``x = x + y``). A second trace with another batch size and other values checks that
the graph and its constants do not depend on the example: a tensor made from the input outside the
traced ops (``.numpy()``, ``.item()``, argmax, sort, a shape with the batch size in it) is refused
with a TypeError naming the op that reads it, as is an op with no ONNX mapping. Needs the ``onnx``
extra (``pip install pyconvnet[onnx]``); importing pyconvnet does not import onnx.
"""

import math
import os
import sys
import weakref
from collections import namedtuple

import numpy as np

from . import autograd, nn
from .autograd import no_grad
from .models.resnet import _SubsamplePadChannels
from .ops import activation, arithmetic, conv, elementwise, indexing, loss, normalization, pooling, reduction
from .ops import shape as shape_ops
from .tensor import Tensor

__all__ = ["export", "OPSET", "IR_VERSION"]

OPSET = 17
IR_VERSION = 8  # what opset 17 needs; every onnxruntime since 1.13 reads it
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_EXAMPLE_BATCHES = (2, 3)  # the trace and its check; neither 1, which a broadcast could hide

# A value of the graph: its name, the shape and dtype it had in the example and its batch axis (None
# once the batch is reduced away or indexed out, and for initialisers).
_Value = namedtuple("_Value", ["name", "shape", "dtype", "batch_axis"])


def export(model, input_shape, path):
    """Write ``model`` (an ``nn.Module``) to ``path`` as an ONNX model for inputs of one sample's
    shape ``input_shape`` (e.g. ``(1, 28, 28)``). The graph's input is ``input`` of shape
    (batch, *input_shape) with a dynamic ``batch`` dimension; its output is ``logits``. The
    model is exported in eval mode and left in the mode it was in. TypeError for an op with no
    ONNX mapping or one that cannot be traced (naming it), ValueError for a layer setting ONNX
    cannot express."""
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
        rng = np.random.default_rng(0)
        traced, check = (_trace(model, rng.standard_normal((batch, *input_shape)).astype(np.float32))
                         for batch in _EXAMPLE_BATCHES)
        traced.check_matches(check)
    finally:
        for module, training in modes:
            module.training = training
    onnx.save(traced.to_onnx(onnx, input_shape), os.fspath(path))


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError("pyconvnet.onnx.export needs the onnx package: pip install 'pyconvnet[onnx]'") from error
    return onnx


def _trace(model, example):
    """The ``_Tracer`` holding ``model``'s graph for the ``example`` batch (an array)."""
    if autograd.tracer is not None:
        raise RuntimeError("export: another export is tracing in this process")
    tracer = _Tracer(model, Tensor._wrap(example))
    handles = [hook for module in model.modules()
               for hook in (module.register_forward_pre_hook(tracer.enter), module.register_forward_hook(tracer.leave))]
    autograd.tracer = tracer
    try:
        with no_grad():
            output = model(tracer.input)
    finally:
        autograd.tracer = None
        for handle in handles:
            handle.remove()
    tracer.finish(output)
    return tracer


class _Tracer:
    """Records the ops of one forward pass as ONNX nodes: ``record`` is called by ``Function.apply``."""

    def __init__(self, model, example):
        self.input = example
        self.paths = {id(module): path for path, module in model.named_modules()}
        self.scopes = []  # the paths of the modules running now, innermost last
        self.names = {id(t._array): name for name, t in (*model.named_parameters(), *model.named_buffers())}
        self.values = {}  # id of a traced array (while it lives) -> its _Value
        self.bind(example._array, "input", 0)
        self.nodes = []  # (op, inputs, outputs, name, attributes)
        self.initializers = {}  # name -> array
        self.constant_names = {}  # id of a constant's array -> its initialiser name
        self.ops = []  # (Function name, scope) of each recorded op
        self.constant_reads = []  # (op index, array) of each constant that is not a parameter or buffer
        self.unexpressible = {}  # id of a traced array (while it lives) that no ONNX value holds -> why
        self.output = None

    # --------------------------------------------------------------- recording
    def enter(self, module, args):
        self.scopes.append(self.paths.get(id(module), type(module).__name__) or type(module).__name__)

    def leave(self, module, args, output):
        self.scopes.pop()

    @property
    def scope(self):
        return self.scopes[-1] if self.scopes else "model"

    def is_traced(self, value):
        array = _array_of(value)
        return array is not None and (id(array) in self.values or id(array) in self.unexpressible)

    def record(self, function, args, kwargs, outputs):
        """Add the ONNX nodes of ``function.apply(*args, **kwargs)``, which returned the Tensors ``outputs``."""
        if not any(self.is_traced(arg) for arg in (*args, *kwargs.values())):
            return  # an op on constants: its outputs are constants too
        op = function.__name__
        self.ops.append((op, self.scope))
        converter = _CONVERTERS.get(function)
        if converter is None:
            raise TypeError(f"export: no ONNX mapping for op {op} ({function.__module__}) in '{self.scope}'")
        results = converter(self, op, *args, **kwargs)
        for output, result in zip(outputs, results if isinstance(results, list) else [results]):
            if isinstance(result, str):
                self.unexpressible[id(output._array)] = result
                weakref.finalize(output._array, self.unexpressible.pop, id(output._array), None)
            else:
                self.bind(output._array, *result)
        for arg in args:  # an in-place op: the input's memory now holds the output
            array = _array_of(arg)
            if array is not None and id(array) in self.values:
                for output in outputs:
                    if output._array is not array and output._array.shape == array.shape \
                            and np.may_share_memory(output._array, array):
                        self.values[id(array)] = self.values[id(output._array)]

    def check_inplace(self, target, operands, op):
        if any(self.is_traced(value) for value in (target, *operands)):
            op = op or sys._getframe(2).f_code.co_name  # the Tensor method that called check_inplace
            raise TypeError(f"export: in-place op {op} in '{self.scope}' writes a tensor computed from the input, "
                            f"which tracing cannot record; use the out-of-place form (x = x + y, torch.where, ...)")

    def bind(self, array, name, batch_axis):
        """``array`` holds the value ``name`` from now on, until it dies and its id may be reused."""
        self.values[id(array)] = _Value(name, array.shape, array.dtype, batch_axis)
        weakref.finalize(array, self.values.pop, id(array), None)

    def finish(self, output):
        if not isinstance(output, Tensor):
            raise TypeError(f"export: the model must return one Tensor, got {type(output).__name__}")
        self.output = self.value(output)

    # --------------------------------------------------------------- values and nodes
    def value(self, tensor):
        """The ``_Value`` of a Tensor, array or number: traced, or an initialiser (batch axis None)."""
        array = _array_of(tensor)
        if array is None:
            array = np.asarray(tensor, dtype=np.float32)
        key = id(array)
        if key in self.values:
            return self.values[key]
        if key in self.unexpressible:
            raise TypeError(f"export: ONNX has no value for {self.unexpressible[key]}, which '{self.scope}' reads")
        name = self.constant_names.get(key)
        if name is None:
            name = self.names.get(key)
            if name is None:
                name = f"{self.scope}/constant_{len(self.initializers)}"
                self.constant_reads.append((len(self.ops) - 1, np.array(array)))
            self.constant_names[key] = name
            self.initializers[name] = array  # which keeps it alive, so its id stays its own
        return _Value(name, array.shape, array.dtype, None)

    def name(self, tensor):
        return self.value(tensor).name

    def constant(self, array, dtype=np.int64):
        """The name of a new initialiser holding ``array`` (a list or number) as ``dtype``."""
        return self.value(np.asarray(array, dtype=dtype)).name

    def node(self, op, inputs, outputs=1, **attributes):
        """Add ONNX operator ``op`` reading ``inputs`` (names; "" for an absent optional one); the
        name of its output, or a list of ``outputs`` names."""
        name = f"{self.scope}/{op}_{len(self.nodes)}"
        names = [name] if outputs == 1 else [f"{name}:{i}" for i in range(outputs)]
        self.nodes.append((op, list(inputs), names, name, attributes))
        return names[0] if outputs == 1 else names

    # --------------------------------------------------------------- the check and the file
    def check_matches(self, other):
        """TypeError unless ``other`` (a trace with another example) ran the same ops reading the
        same constants."""
        for index, (op, scope) in enumerate(self.ops):
            if index >= len(other.ops) or other.ops[index] != (op, scope):
                raise TypeError(f"export: the ops the model runs depend on the input (op {op} in '{scope}' is "
                                f"not run for another batch): tracing records one fixed graph")
        if len(other.ops) != len(self.ops):
            raise TypeError("export: the ops the model runs depend on the input: tracing records one fixed graph")
        for (index, array), (_, other_array) in zip(self.constant_reads, other.constant_reads):
            if array.shape != other_array.shape or not np.array_equal(array, other_array, equal_nan=True):
                op, scope = self.ops[index]
                raise TypeError(
                    f"export: op {op} in '{scope}' reads a tensor that changes with the input but was not computed "
                    f"from it by traced ops (made through .numpy(), .item(), argmax, sort, or with "
                    f"the batch size baked into its shape), so ONNX cannot express it")

    def to_onnx(self, onnx, input_shape):
        helper = onnx.helper
        nodes = [helper.make_node(op, inputs, outputs, name=name, **attributes)
                 for op, inputs, outputs, name, attributes in self.nodes]
        nodes.append(helper.make_node("Identity", [self.output.name], ["logits"], name="logits"))
        output_shape = list(self.output.shape)
        if self.output.batch_axis is not None:
            output_shape[self.output.batch_axis] = "batch"
        element_type = helper.np_dtype_to_tensor_dtype(self.output.dtype)
        graph = helper.make_graph(
            nodes, "pyconvnet",
            [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", *input_shape])],
            [helper.make_tensor_value_info("logits", element_type, output_shape)],
            [onnx.numpy_helper.from_array(array, name)
             for name, array in self.initializers.items()],
        )
        return helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", OPSET)],
                                 producer_name="pyconvnet")


def _array_of(value):
    """The array a Tensor argument holds (Functions also take storage arrays), else None."""
    if isinstance(value, Tensor):
        return value._array
    return value if isinstance(value, np.ndarray) else None


# ----------------------------------------------------------------------------- converters
# Each converter gets the tracer, the op's name and the arguments ``apply`` got; it adds nodes and
# returns per output (a list for several) its (name, batch axis), or a string saying why ONNX has
# no value for it.


def _broadcast(g, *operands):
    """The input names of an element-wise op on Tensors or numbers (numbers become constants of the
    Tensors' dtype) and where the batch axis of the first operand with one lands in the result
    (shapes align at the right when they broadcast)."""
    arrays = [_array_of(v) for v in operands]
    dtype = next((array.dtype for array in arrays if array is not None and array.dtype != np.bool_), np.float32)
    names = [g.name(v) if array is not None else g.constant(v, dtype) for v, array in zip(operands, arrays)]
    ndim = max(array.ndim for array in arrays if array is not None)
    for v, array in zip(operands, arrays):
        batch = g.value(v).batch_axis if g.is_traced(v) else None
        if batch is not None:
            return names, ndim - array.ndim + batch
    return names, None


def _binary(onnx_op):
    def convert(g, op, a, b):
        names, batch = _broadcast(g, a, b)
        return g.node(onnx_op, names), batch
    return convert


def _unary(onnx_op, **attributes):
    def convert(g, op, x, *flags):
        value = g.value(x)
        return g.node(onnx_op, [value.name], **attributes), value.batch_axis
    return convert


def _relu6(g, op, x, inplace):
    value = g.value(x)
    return g.node("Clip", [value.name, g.constant(0.0, np.float32), g.constant(6.0, np.float32)]), value.batch_axis


def _silu(g, op, x, inplace):
    value = g.value(x)
    return g.node("Mul", [value.name, g.node("Sigmoid", [value.name])]), value.batch_axis


def _gelu(g, op, x, inplace):
    """0.5 x (1 + erf(x / sqrt 2)), or with tanh: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    value = g.value(x)
    if op == "GeluTanhFunction":
        cube = g.node("Mul", [value.name, g.node("Mul", [value.name, value.name])])
        inner = g.node("Add", [value.name, g.node("Mul", [cube, g.constant(0.044715, np.float32)])])
        curve = g.node("Tanh", [g.node("Mul", [inner, g.constant(math.sqrt(2 / math.pi), np.float32)])])
    else:
        curve = g.node("Erf", [g.node("Div", [value.name, g.constant(math.sqrt(2.0), np.float32)])])
    half_x = g.node("Mul", [value.name, g.constant(0.5, np.float32)])
    return g.node("Mul", [half_x, g.node("Add", [curve, g.constant(1.0, np.float32)])]), value.batch_axis


def _leaky_relu(g, op, x, negative_slope, inplace):
    value = g.value(x)
    return g.node("LeakyRelu", [value.name], alpha=float(negative_slope)), value.batch_axis


def _identity(g, op, x, *args):
    value = g.value(x)
    return value.name, value.batch_axis


def _clamp(g, op, x, low, high):
    value = g.value(x)
    bounds = [g.constant(b, value.dtype) if b is not None else "" for b in (low, high)]
    return g.node("Clip", [value.name, *bounds]), value.batch_axis


def _add_relu(g, op, a, b):
    total, batch = _binary("Add")(g, op, a, b)
    return g.node("Relu", [total]), batch


_COMPARISONS = {np.equal: "Equal", np.less: "Less", np.less_equal: "LessOrEqual", np.greater: "Greater",
                np.greater_equal: "GreaterOrEqual"}


def _compare(g, op, a, b, comparison):
    if comparison is np.not_equal:
        equal, batch = _binary("Equal")(g, op, a, b)
        return g.node("Not", [equal]), batch
    return _binary(_COMPARISONS[comparison])(g, op, a, b)


_ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.int64): 7, np.dtype(np.bool_): 9}  # TensorProto's numbers


def _cast(g, op, x, dtype):
    value = g.value(x)
    return g.node("Cast", [value.name], to=_ONNX_TYPES[np.dtype(dtype)]), value.batch_axis


def _matmul(g, op, a, b):
    """The batch axes broadcast as an element-wise op's, unless the first operand is a vector."""
    names, batch = _broadcast(g, a, b)
    return g.node("MatMul", names), batch if _array_of(a).ndim > 1 else None


def _conv2d(g, op, x, weight, bias, stride, padding, dilation, groups):
    value = g.value(x)
    inputs = [value.name, g.name(weight)] + ([g.name(bias)] if bias is not None else [])
    return g.node("Conv", inputs, kernel_shape=list(_array_of(weight).shape[2:]), strides=list(stride),
                  pads=list(padding) * 2, dilations=list(dilation), group=int(groups)), value.batch_axis


def _conv_transpose2d(g, op, x, weight, bias, output_shape, stride, padding, dilation, groups):
    value = g.value(x)
    kernel = _array_of(weight).shape[2:]
    extra = [out - (s * (n - 1) + d * (k - 1) + 1 - 2 * p)  # torch's output_padding
             for out, s, n, d, k, p in zip(output_shape[-2:], stride, value.shape[2:], dilation, kernel, padding)]
    inputs = [value.name, g.name(weight)] + ([g.name(bias)] if bias is not None else [])
    return g.node("ConvTranspose", inputs, kernel_shape=list(kernel), strides=list(stride), pads=list(padding) * 2,
                  dilations=list(dilation), group=int(groups), output_padding=extra), value.batch_axis


def _linear(g, op, x, weight, bias):
    value = g.value(x)
    bias = [g.name(bias)] if bias is not None else []
    if len(value.shape) == 2:
        return g.node("Gemm", [value.name, g.name(weight), *bias], transB=1), value.batch_axis
    product = g.node("MatMul", [value.name, g.node("Transpose", [g.name(weight)], perm=[1, 0])])
    return (g.node("Add", [product, *bias]) if bias else product), value.batch_axis


def _batch_norm(g, op, x, weight, bias, running_mean, running_var, training, momentum, eps, relu):
    if training or running_mean is None:
        raise ValueError(f"export: '{g.scope}' normalises with batch statistics (track_running_stats=False or "
                         f"training=True), which ONNX BatchNormalization cannot express")
    value = g.value(x)
    channels = value.shape[1]
    scale = g.name(weight) if weight is not None else g.constant(np.ones(channels), np.float32)
    shift = g.name(bias) if bias is not None else g.constant(np.zeros(channels), np.float32)
    output = g.node("BatchNormalization", [value.name, scale, shift, g.name(running_mean), g.name(running_var)],
                    epsilon=float(eps))
    return (g.node("Relu", [output]) if relu else output), value.batch_axis


def _group_norm(g, op, x, weight, bias, layer, size, eps):
    """layer_norm is ONNX LayerNormalization; group_norm normalises (N, groups, -1) by hand."""
    value = g.value(x)
    if layer:
        normalised_shape = value.shape[len(value.shape) - size:]
        scale = g.name(weight) if weight is not None else g.constant(np.ones(normalised_shape), np.float32)
        inputs = [value.name, scale] + ([g.name(bias)] if bias is not None else [])
        return g.node("LayerNormalization", inputs, axis=-size, epsilon=float(eps)), value.batch_axis
    shape = value.shape
    grouped = g.node("Reshape", [value.name, g.constant([0, size, -1])])
    centred = g.node("Sub", [grouped, g.node("ReduceMean", [grouped], axes=[2], keepdims=1)])
    variance = g.node("ReduceMean", [g.node("Mul", [centred, centred])], axes=[2], keepdims=1)
    deviation = g.node("Sqrt", [g.node("Add", [variance, g.constant(eps, np.float32)])])
    output = g.node("Reshape", [g.node("Div", [centred, deviation]), g.constant([0, *shape[1:]])])
    per_channel = [shape[1]] + [1] * (len(shape) - 2)
    if weight is not None:
        output = g.node("Mul", [output, g.node("Reshape", [g.name(weight), g.constant(per_channel)])])
    if bias is not None:
        output = g.node("Add", [output, g.node("Reshape", [g.name(bias), g.constant(per_channel)])])
    return output, value.batch_axis


def _local_response_norm(g, op, x, size, alpha, beta, k):
    if size % 2 == 0:  # ONNX centres an even window one channel later than torch
        raise ValueError(f"export: '{g.scope}' (local_response_norm) has an even size ({size}); ONNX LRN matches "
                         f"torch's channel window only for odd sizes")
    value = g.value(x)
    return g.node("LRN", [value.name], size=int(size), alpha=float(alpha), beta=float(beta),
                  bias=float(k)), value.batch_axis


def _check_4d(g, value, op):
    if len(value.shape) != 4:
        raise TypeError(f"export: {op} in '{g.scope}' on a {len(value.shape)}-D input: ONNX pools (N, C, H, W) only")


def _window_attributes(kernel_size, stride, padding, ceil_mode):
    return {"kernel_shape": list(kernel_size), "strides": list(stride), "pads": list(padding) * 2,
            "ceil_mode": int(ceil_mode)}


def _max_pool2d(g, op, x, kernel_size, stride, padding, dilation, ceil_mode):
    value = g.value(x)
    _check_4d(g, value, op)
    output = g.node("MaxPool", [value.name], **_window_attributes(kernel_size, stride, padding, ceil_mode),
                    dilations=list(dilation))
    return [(output, value.batch_axis), f"the indices of {op} in '{g.scope}'"]


def _avg_pool2d(g, op, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if divisor_override:
        raise ValueError(f"export: '{g.scope}' (avg_pool2d) has divisor_override={divisor_override}, which ONNX "
                         f"AveragePool cannot express")
    value = g.value(x)
    _check_4d(g, value, op)
    return g.node("AveragePool", [value.name], **_window_attributes(kernel_size, stride, padding, ceil_mode),
                  count_include_pad=int(count_include_pad)), value.batch_axis


def _adaptive_avg_pool2d(g, op, x, output_size):
    value = g.value(x)
    _check_4d(g, value, op)
    size = value.shape[2:]
    if tuple(output_size) == (1, 1):
        return g.node("GlobalAveragePool", [value.name]), value.batch_axis
    if not any(n % o for n, o in zip(size, output_size)):
        kernel = [n // o for n, o in zip(size, output_size)]
        return g.node("AveragePool", [value.name], kernel_shape=kernel, strides=kernel), value.batch_axis
    # Uneven windows (e.g. 2x2 -> 7x7): average with a matrix per axis, x (N, C, H, W) ->
    # rows (oh, H) @ x @ columns (W, ow).
    rows = g.constant(_averaging_matrix(size[0], output_size[0]), np.float32)
    columns = g.constant(_averaging_matrix(size[1], output_size[1]).T, np.float32)
    return g.node("MatMul", [rows, g.node("MatMul", [value.name, columns])]), value.batch_axis


def _averaging_matrix(size, output_size):
    """(output_size, size): row i averages adaptive pooling's window i,
    [floor(i * size / output_size), ceil((i + 1) * size / output_size))."""
    matrix = np.zeros((output_size, size))
    for i in range(output_size):
        start, stop = (i * size) // output_size, -((-(i + 1) * size) // output_size)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def _adaptive_max_pool2d(g, op, x, output_size):
    value = g.value(x)
    _check_4d(g, value, op)
    size = value.shape[2:]
    if any(n % o for n, o in zip(size, output_size)):
        raise TypeError(f"export: {op} in '{g.scope}' from {tuple(size)} to {tuple(output_size)} has uneven windows, "
                        f"which ONNX MaxPool cannot express")
    kernel = [n // o for n, o in zip(size, output_size)]
    output = g.node("MaxPool", [value.name], kernel_shape=kernel, strides=kernel)
    return [(output, value.batch_axis), f"the indices of {op} in '{g.scope}'"]


def _interpolate(g, op, x, output_size, scales, mode, align_corners):
    """Resize to the (N, C) of the input and the traced output size, or by the scale factors that
    torch maps pixels with when they were given."""
    value = g.value(x)
    if any(scales):
        sizing = ["", g.constant([1.0, 1.0, *scales], np.float32)]
    else:
        batch_and_channels = g.node("Slice", [g.node("Shape", [value.name]), g.constant([0]), g.constant([2])])
        sizing = ["", "", g.node("Concat", [batch_and_channels, g.constant(list(output_size))], axis=0)]
    if mode == "nearest":
        attributes = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attributes = {"mode": "linear",
                      "coordinate_transformation_mode": "align_corners" if align_corners else "pytorch_half_pixel"}
    return g.node("Resize", [value.name, *sizing], **attributes), value.batch_axis


def _pad(g, op, x, widths, fill):
    value = g.value(x)
    pads = g.constant([before for before, _ in widths] + [after for _, after in widths])
    return g.node("Pad", [value.name, pads, g.constant(fill, value.dtype)]), value.batch_axis


def _subsample_pad_channels(g, op, x, stride, before, after):
    """ResNet's option-A shortcut: x[:, :, ::stride, ::stride] with zero channels around it."""
    value = g.value(x)
    sampled = g.node("Slice", [value.name, g.constant([0, 0]), g.constant([_INT64_MAX] * 2), g.constant([2, 3]),
                               g.constant([stride, stride])])
    pads = g.constant([0, before, 0, 0, 0, after, 0, 0])
    return g.node("Pad", [sampled, pads]), value.batch_axis


def _concat(g, op, dim, *tensors):
    batch = next((g.value(t).batch_axis for t in tensors if g.is_traced(t)), None)
    return g.node("Concat", [g.name(t) for t in tensors], axis=int(dim)), batch


def _softmax(g, op, x, dim, log):
    value = g.value(x)
    return g.node("LogSoftmax" if log else "Softmax", [value.name], axis=int(dim)), value.batch_axis


def _reduced_batch(batch_axis, axes, ndim, keepdim):
    """Where the batch axis is after reducing ``axes`` (None: all)."""
    axes = range(ndim) if axes is None else axes
    if batch_axis is None or batch_axis in axes:
        return None
    return batch_axis if keepdim else batch_axis - sum(1 for axis in axes if axis < batch_axis)


def _sum(g, op, x, axes, keepdim):
    value = g.value(x)
    axes_input = [g.constant(list(axes))] if axes is not None else []
    output = g.node("ReduceSum", [value.name, *axes_input], keepdims=int(keepdim))
    return output, _reduced_batch(value.batch_axis, axes, len(value.shape), keepdim)


def _mean(g, op, x, axes, keepdim):
    value = g.value(x)
    axes_attribute = {"axes": list(axes)} if axes is not None else {}
    output = g.node("ReduceMean", [value.name], keepdims=int(keepdim), **axes_attribute)
    return output, _reduced_batch(value.batch_axis, axes, len(value.shape), keepdim)


def _extremum(g, op, x, largest):
    return g.node("ReduceMax" if largest else "ReduceMin", [g.name(x)], keepdims=0), None


def _extremum_along_dim(g, op, x, dim, keepdim, largest):
    value = g.value(x)
    values = g.node("ReduceMax" if largest else "ReduceMin", [value.name], axes=[dim], keepdims=int(keepdim))
    indices = g.node("ArgMax" if largest else "ArgMin", [value.name], axis=dim, keepdims=int(keepdim))
    batch = _reduced_batch(value.batch_axis, (dim,), len(value.shape), keepdim)
    return [(values, batch), (indices, batch)]


def _reshape(g, op, x, target):
    """The traced output shape with -1 where the batch went, so the batch stays dynamic."""
    value = g.value(x)
    shape, new_shape = value.shape, list(target)
    if -1 in new_shape:
        new_shape[new_shape.index(-1)] = -math.prod(shape) // math.prod(new_shape)
    batch = value.batch_axis
    if batch is not None:
        before, after = math.prod(shape[:batch]), math.prod(shape[batch + 1:])
        batch = next((j for j in range(len(new_shape)) if new_shape[j] == shape[batch]
                      and math.prod(new_shape[:j]) == before and math.prod(new_shape[j + 1:]) == after), None)
        if batch is None:
            raise TypeError(f"export: {op} in '{g.scope}' from {tuple(shape)} to {tuple(new_shape)} merges the batch "
                            f"dimension with others, so the graph would only work for the example's batch size")
        new_shape[batch] = -1
    return g.node("Reshape", [value.name, g.constant(new_shape)]), batch


def _permute(g, op, x, axes):
    value = g.value(x)
    batch = None if value.batch_axis is None else list(axes).index(value.batch_axis)
    return g.node("Transpose", [value.name], perm=[int(a) for a in axes]), batch


def _expand(g, op, x, target):
    """ONNX Expand broadcasts both ways, so a 1 where the batch goes keeps it dynamic."""
    value = g.value(x)
    batch = None if value.batch_axis is None else value.batch_axis + len(target) - len(value.shape)
    target = list(target)
    if batch is not None:
        target[batch] = 1
    return g.node("Expand", [value.name, g.constant(target)]), batch


def _index(g, op, x, key):
    """Basic indexing (ints, slices, None, ...) as one Slice, a Gather per int and an Unsqueeze."""
    value = g.value(x)
    entries = _basic_key(key, len(value.shape))
    if entries is None:
        raise TypeError(f"export: indexing with {key!r} in '{g.scope}' (advanced indexing) has no ONNX mapping here; "
                        f"use basic indexing (ints, slices, None)")
    starts, ends, axes, steps, ints, new_axes = [], [], [], [], [], []
    batch, axis, out_axis = None, 0, 0
    for entry in entries:
        if entry is None:
            new_axes.append(out_axis)
            out_axis += 1
            continue
        size = value.shape[axis]
        if isinstance(entry, slice):
            start, stop, step = entry.indices(size)
            whole = (start, step) == (0, 1) and stop == size
            if axis == value.batch_axis:
                if not whole:
                    raise TypeError(f"export: slicing the batch dimension with {entry} in '{g.scope}' would fix the "
                                    f"batch size; ONNX export keeps it dynamic")
                batch = out_axis
            elif not whole:
                end = stop if step > 0 or stop >= 0 else _INT64_MIN
                starts, ends, axes, steps = starts + [start], ends + [end], axes + [axis], steps + [step]
            out_axis += 1
        else:
            ints.append((axis, int(entry) % size))
        axis += 1
    name = value.name
    if axes:
        name = g.node("Slice", [name, g.constant(starts), g.constant(ends), g.constant(axes), g.constant(steps)])
    for int_axis, position in reversed(ints):  # the last first, so the earlier axes keep their numbers
        name = g.node("Gather", [name, g.constant(position)], axis=int_axis)
    if new_axes:
        name = g.node("Unsqueeze", [name, g.constant(new_axes)])
    return name, batch


def _basic_key(key, ndim):
    """``key`` as one entry per input axis (plus Nones), Ellipsis expanded; None if not basic."""
    entries = list(key) if isinstance(key, tuple) else [key]
    if not all(e is None or e is Ellipsis or isinstance(e, (slice, int, np.integer)) and not isinstance(e, bool)
               for e in entries):
        return None
    used = sum(1 for e in entries if e is not None and e is not Ellipsis)
    if Ellipsis in entries:
        at = entries.index(Ellipsis)
        entries[at:at + 1] = [slice(None)] * (ndim - used)
    return entries + [slice(None)] * (ndim - sum(1 for e in entries if e is not None))


def _gather(g, op, x, dim, index):
    value = g.value(x)
    return g.node("GatherElements", [value.name, g.name(index)], axis=int(dim)), value.batch_axis


def _where(g, op, condition, a, b):
    names, batch = _broadcast(g, condition, a, b)
    return g.node("Where", names), batch


_CONVERTERS = {
    arithmetic.Add: _binary("Add"),
    arithmetic.Sub: _binary("Sub"),
    arithmetic.Mul: _binary("Mul"),
    arithmetic.Div: _binary("Div"),
    arithmetic.Pow: _binary("Pow"),
    arithmetic.Neg: _unary("Neg"),
    arithmetic.Exp: _unary("Exp"),
    arithmetic.Log: _unary("Log"),
    arithmetic.Sqrt: _unary("Sqrt"),
    arithmetic.Abs: _unary("Abs"),
    arithmetic.Clamp: _clamp,
    arithmetic.MatMul: _matmul,
    arithmetic.Compare: _compare,
    arithmetic.Cast: _cast,
    activation.ReluFunction: _unary("Relu"),
    activation.SigmoidFunction: _unary("Sigmoid"),
    activation.TanhFunction: _unary("Tanh"),
    activation.Relu6Function: _relu6,
    activation.HardswishFunction: _unary("HardSwish"),
    activation.HardsigmoidFunction: _unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    activation.SiluFunction: _silu,
    activation.GeluFunction: _gelu,
    activation.GeluTanhFunction: _gelu,
    activation.LeakyReluFunction: _leaky_relu,
    activation.DropoutFunction: _identity,  # eval-mode export: dropout is the identity
    shape_ops.Clone: _identity,
    shape_ops.Reshape: _reshape,
    shape_ops.Permute: _permute,
    shape_ops.Expand: _expand,
    shape_ops.Index: _index,
    elementwise.AddReluFunction: _add_relu,
    elementwise.CatFunction: _concat,
    conv.Conv2dFunction: _conv2d,
    conv.ConvTranspose2dFunction: _conv_transpose2d,
    conv.LinearFunction: _linear,
    conv.ConstantPadFunction: _pad,
    normalization.BatchNormFunction: _batch_norm,
    normalization.GroupNormFunction: _group_norm,
    normalization.LocalResponseNormFunction: _local_response_norm,
    pooling.MaxPool2dFunction: _max_pool2d,
    pooling.AvgPool2dFunction: _avg_pool2d,
    pooling.AdaptiveAvgPool2dFunction: _adaptive_avg_pool2d,
    pooling.AdaptiveMaxPool2dFunction: _adaptive_max_pool2d,
    pooling.InterpolateFunction: _interpolate,
    loss.SoftmaxFunction: _softmax,
    reduction.Sum: _sum,
    reduction.Mean: _mean,
    reduction.Extremum: _extremum,
    reduction.ExtremumAlongDim: _extremum_along_dim,
    indexing.Gather: _gather,
    indexing.Where: _where,
    _SubsamplePadChannels: _subsample_pad_channels,
}
