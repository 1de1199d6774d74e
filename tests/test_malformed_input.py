"""Malformed input matrix: every public function of ``pyconvnet.nn.functional`` (and
``backend.sgemm``) crossed with wrong dtypes, wrong ndim, zero-size dimensions, huge sizes,
NaN/Inf values, non-contiguous and read-only arrays, out-of-range labels and mismatched batch
sizes. Each gives a clear exception (TypeError for types, ValueError for values and shapes) or
the documented result, never a crash:

* zero-size batches give empty outputs (and gradients); a mean over no elements is NaN, as torch;
* NaN and Inf propagate: every output that is non-finite in torch is non-finite here too;
* layout and writability of the caller's arrays never change a result; in-place ops and
  running statistics on read-only memory are refused.
"""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import backend

SHAPE = (2, 3, 6, 6)  # (N, C, H, W) of the main input
_rng = np.random.default_rng(0)
WEIGHT = _rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
LINEAR_WEIGHT = _rng.standard_normal((5, 6)).astype(np.float32)
TRANSPOSED_WEIGHT = _rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
OTHER = _rng.standard_normal(SHAPE).astype(np.float32)
PROBABILITIES = _rng.uniform(0.0, 1.0, SHAPE).astype(np.float32)
LABELS = _rng.integers(0, 3, size=(2, 6, 6))


def _labels(lib, shape_of_input):
    """Class labels (N, H, W) matching an (N, C, H, W) input."""
    n, _, h, w = shape_of_input
    return lib.tensor(LABELS[:n, :h, :w].copy())


# name -> call(F, lib, x): the same code runs with pyconvnet (F, pcn) and torch (tnf, torch).
OPS = {
    "conv2d": lambda F, lib, x: F.conv2d(x, lib.tensor(WEIGHT), None, 1, 1),
    "linear": lambda F, lib, x: F.linear(x, lib.tensor(LINEAR_WEIGHT)),
    "conv_transpose2d": lambda F, lib, x: F.conv_transpose2d(x, lib.tensor(TRANSPOSED_WEIGHT), None, 2, 1, 1),
    "pad": lambda F, lib, x: F.pad(x, (1, 2, 0, 1)),
    "max_pool2d": lambda F, lib, x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
    "avg_pool2d": lambda F, lib, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    "adaptive_avg_pool2d": lambda F, lib, x: F.adaptive_avg_pool2d(x, (4, 3)),
    "adaptive_max_pool2d": lambda F, lib, x: F.adaptive_max_pool2d(x, (4, 3)),
    "batch_norm": lambda F, lib, x: F.batch_norm(x, None, None, training=True),
    "batch_norm_relu": lambda F, lib, x: (F.batch_norm_relu(x, None, None, training=True) if F is pcn.nn.functional
                                          else lib.relu(F.batch_norm(x, None, None, training=True))),
    "local_response_norm": lambda F, lib, x: F.local_response_norm(x, 3),
    "group_norm": lambda F, lib, x: F.group_norm(x, 3),
    "interpolate": lambda F, lib, x: F.interpolate(x, scale_factor=2, mode="bilinear"),
    "layer_norm": lambda F, lib, x: F.layer_norm(x, (x.shape[-2], x.shape[-1])),
    "relu": lambda F, lib, x: F.relu(x),
    "leaky_relu": lambda F, lib, x: F.leaky_relu(x, 0.1),
    "sigmoid": lambda F, lib, x: F.sigmoid(x),
    "tanh": lambda F, lib, x: F.tanh(x),
    "dropout": lambda F, lib, x: F.dropout(x, 0.5, training=False),
    "dropout2d": lambda F, lib, x: F.dropout2d(x, 0.5, training=False),
    "gelu": lambda F, lib, x: F.gelu(x),
    "silu": lambda F, lib, x: F.silu(x),
    "relu6": lambda F, lib, x: F.relu6(x),
    "hardswish": lambda F, lib, x: F.hardswish(x),
    "hardsigmoid": lambda F, lib, x: F.hardsigmoid(x),
    "softmax": lambda F, lib, x: F.softmax(x, 1),
    "log_softmax": lambda F, lib, x: F.log_softmax(x, 1),
    "cross_entropy": lambda F, lib, x: F.cross_entropy(x, _labels(lib, x.shape), reduction="none"),
    "nll_loss": lambda F, lib, x: F.nll_loss(x, _labels(lib, x.shape), reduction="none"),
    "mse_loss": lambda F, lib, x: F.mse_loss(x, lib.tensor(OTHER[: x.shape[0]].copy()), reduction="none"),
    "l1_loss": lambda F, lib, x: F.l1_loss(x, lib.tensor(OTHER[: x.shape[0]].copy()), reduction="none"),
    "smooth_l1_loss": lambda F, lib, x: F.smooth_l1_loss(x, lib.tensor(OTHER[: x.shape[0]].copy()), reduction="none"),
    "huber_loss": lambda F, lib, x: F.huber_loss(x, lib.tensor(OTHER[: x.shape[0]].copy()), reduction="none"),
    "binary_cross_entropy_with_logits": lambda F, lib, x: F.binary_cross_entropy_with_logits(
        x, lib.tensor(OTHER[: x.shape[0]].copy()), reduction="none"),
    "binary_cross_entropy": lambda F, lib, x: F.binary_cross_entropy(
        F.sigmoid(x), lib.tensor(PROBABILITIES[: x.shape[0]].copy()), reduction="none"),
    "cat": lambda F, lib, x: lib.cat([x, x], 1),
    "add_relu": lambda F, lib, x: F.add_relu(x, x) if F is pcn.nn.functional else lib.relu(x + x),
    "conv2d_relu_max_pool2d": lambda F, lib, x: (
        F.conv2d_relu_max_pool2d(x, lib.tensor(WEIGHT), None, 1, 1, kernel_size=2) if F is pcn.nn.functional
        else F.max_pool2d(lib.relu(F.conv2d(x, lib.tensor(WEIGHT), None, 1, 1)), 2)),
    "linear_relu": lambda F, lib, x: (F.linear_relu(x, lib.tensor(LINEAR_WEIGHT)) if F is pcn.nn.functional
                                      else lib.relu(F.linear(x, lib.tensor(LINEAR_WEIGHT)))),
}


def _x(values=None, requires_grad=False):
    values = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32) if values is None else values
    return pcn.tensor(values, requires_grad=requires_grad)


def test_every_public_function_is_in_the_matrix():
    public = {name for name in dir(F) if not name.startswith("_") and callable(getattr(F, name))}
    # In-place forms: see the read-only test; one_hot takes int64 labels, not images: its bad inputs
    # are in test_torch_api.
    covered = set(OPS) | {"relu_", "leaky_relu_", "one_hot"}
    assert public <= covered, f"not covered: {sorted(public - covered)}"


# ------------------------------------------------------------------ wrong dtype
DTYPE_CHECKED = sorted(set(OPS) - {"pad", "cat", "dropout", "dropout2d"})  # these accept every dtype, as in torch (eval dropout is the identity)


@pytest.mark.parametrize("dtype", ["int64", "bool"])
@pytest.mark.parametrize("name", DTYPE_CHECKED)
def test_wrong_dtype_is_a_type_error(name, dtype):
    x = _x().long() if dtype == "int64" else _x() > 0
    with pytest.raises(TypeError, match="float32|dtype"):
        OPS[name](F, pcn, x)


@pytest.mark.parametrize(
    "call",
    [
        lambda: F.conv2d(_x(), pcn.tensor(WEIGHT).long()),
        lambda: F.conv2d(_x(), pcn.tensor(WEIGHT), pcn.zeros(4).long()),
        lambda: F.batch_norm(_x(), pcn.zeros(3).long(), pcn.ones(3), training=True),
        lambda: F.nll_loss(pcn.randn(4, 5), pcn.randn(4)),
        lambda: F.cross_entropy(pcn.randn(4, 5), pcn.zeros(4) > 0),
        lambda: backend.sgemm(np.ones((2, 2)), np.ones((2, 2), np.float32)),
        lambda: backend.sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.int32)),
        lambda: backend.sgemm(np.ones((2, 2), np.float32), [[1.0, 2.0], [3.0, 4.0]]),
        lambda: backend.sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), beta=1.0, out=np.ones((2, 2))),
        lambda: backend.sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32).astype(">f4")),
    ],
)
def test_wrong_dtype_of_other_arguments_is_a_type_error(call):
    with pytest.raises(TypeError):
        call()


# ------------------------------------------------------------------ wrong ndim
WRONG_NDIM = {
    "conv2d": [1, 3, 5],
    "conv2d_relu_max_pool2d": [1, 3, 5],
    "conv_transpose2d": [1, 2, 5],
    "max_pool2d": [1, 2, 5],
    "avg_pool2d": [1, 2, 5],
    "adaptive_avg_pool2d": [1, 2, 5],
    "adaptive_max_pool2d": [1, 2, 5],
    "batch_norm": [1],
    "batch_norm_relu": [1],
    "local_response_norm": [1, 2],
    "group_norm": [1],
    "interpolate": [3, 5],
}


@pytest.mark.parametrize("name,ndim", [(name, ndim) for name, dims in WRONG_NDIM.items() for ndim in dims])
def test_wrong_ndim_is_a_value_error_naming_the_shape(name, ndim):
    shape = (2, 3, 4, 5, 6)[:ndim]
    with pytest.raises(ValueError, match=r"\b" + ".*".join(map(str, shape)) + f"|got {ndim} dimensions"):
        OPS[name](F, pcn, pcn.zeros(*shape))


def test_sgemm_needs_two_dimensional_operands():
    for a, b in [(np.ones(3, np.float32), np.ones((3, 2), np.float32)), (np.ones((1, 2, 3), np.float32), np.ones((3, 2), np.float32))]:
        with pytest.raises(ValueError, match="2-D"):
            backend.sgemm(a, b)


# ------------------------------------------------------------------ zero-size dimensions
@pytest.mark.parametrize("name", sorted(OPS))
def test_empty_batch_gives_empty_output_and_gradient(name):
    x = pcn.zeros(0, *SHAPE[1:], requires_grad=True)
    y = OPS[name](F, pcn, x)
    assert y.shape[0] == 0
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
                                  "binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_mean_over_an_empty_batch_is_nan_as_torch(name):
    x = pcn.zeros(0, 3)
    target = pcn.zeros(0).long() if name in ("cross_entropy", "nll_loss") else pcn.zeros(0, 3)
    assert np.isnan(getattr(F, name)(x, target).item())


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: F.conv2d(pcn.zeros(2, 3, 0, 6), pcn.tensor(WEIGHT)), r"\[2, 3, 0, 6\]"),
        (lambda: F.conv2d(pcn.zeros(2, 0, 6, 6), pcn.zeros(4, 0, 3, 3)), r"\[2, 0, 6, 6\]"),
        (lambda: F.conv2d(_x(), pcn.zeros(0, 3, 3, 3)), r"\[0, 3, 3, 3\]"),
        (lambda: F.conv2d(_x(), pcn.zeros(4, 3, 0, 3)), r"\[4, 3, 0, 3\]"),
        (lambda: F.max_pool2d(pcn.zeros(2, 3, 6, 0), 2), r"\[2, 3, 6, 0\]"),
        (lambda: F.avg_pool2d(pcn.zeros(2, 0, 6, 6), 2), r"\[2, 0, 6, 6\]"),
        (lambda: F.adaptive_avg_pool2d(_x(), (0, 2)), r"output_size"),
        (lambda: F.adaptive_max_pool2d(pcn.zeros(2, 3, 0, 6), 2), r"\[2, 3, 0, 6\]"),
        (lambda: F.batch_norm(pcn.zeros(2, 0, 4), None, None, training=True), r"\[2, 0, 4\]"),
        (lambda: F.cross_entropy(pcn.zeros(3, 0), pcn.zeros(3).long()), r"\[3, 0"),
        (lambda: F.max_pool2d(_x(), 0), "kernel_size"),
        (lambda: F.conv2d(_x(), pcn.tensor(WEIGHT), stride=0), "stride"),
        (lambda: F.conv2d(_x(), pcn.tensor(WEIGHT), groups=0), "groups"),
        (lambda: F.local_response_norm(_x(), 0), "size"),
        (lambda: F.avg_pool2d(_x(), 2, divisor_override=0), "divisor_override"),
        (lambda: F.softmax(_x(), 4), "dim 4"),
        (lambda: F.softmax(_x(), -5), "dim -5"),
        (lambda: F.softmax(_x(), 2**62), "dim"),
    ],
)
def test_zero_sizes_that_have_no_meaning_are_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_zero_size_matrix_products():
    """k = 0 gives beta * C (zeros without out=), as BLAS and torch; m or n = 0 gives empty."""
    a, b = np.ones((2, 0), np.float32), np.ones((0, 3), np.float32)
    assert np.array_equal(backend.sgemm(a, b), np.zeros((2, 3), np.float32))
    assert np.array_equal(backend.sgemm(a.T.copy(), b.T.copy(), trans_a=True, trans_b=True), np.zeros((2, 3), np.float32))
    out = np.full((2, 3), 4.0, np.float32)
    assert np.array_equal(backend.sgemm(a, b, beta=0.5, out=out), np.full((2, 3), 2.0, np.float32))
    assert backend.sgemm(np.ones((0, 4), np.float32), np.ones((4, 3), np.float32)).shape == (0, 3)
    assert backend.sgemm(np.ones((2, 4), np.float32), np.ones((4, 0), np.float32)).shape == (2, 0)
    x, w = pcn.zeros(2, 0, requires_grad=True), pcn.zeros(4, 0, requires_grad=True)
    y = F.linear(x, w, pcn.ones(4))
    assert np.array_equal(y.detach().numpy(), np.ones((2, 4), np.float32))
    y.sum().backward()
    assert x.grad.shape == (2, 0) and w.grad.shape == (4, 0)
    x = pcn.ones(2, 3, requires_grad=True)
    y = F.linear(x, pcn.zeros(0, 3, requires_grad=True))
    assert y.shape == (2, 0)
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), np.zeros((2, 3), np.float32))


# ------------------------------------------------------------------ negative and huge sizes
HUGE = [2**31, 2**62, 2**63 - 1]  # fit int64: the library's own checks answer
BEYOND_INT64 = [2**63, 2**64]  # cannot reach the kernels: the argument conversion refuses them


def _huge_calls(value):
    """(argument, call) pairs: window and size arguments of ``value``."""
    x, w = _x(), pcn.tensor(WEIGHT)
    return [
        ("padding", lambda: F.conv2d(x, w, padding=value)),
        ("padding", lambda: F.conv2d(x, pcn.zeros(1, 3, 1, 1), padding=value)),
        ("dilation", lambda: F.conv2d(x, w, dilation=value)),
        ("groups", lambda: F.conv2d(x, w, groups=value)),
        ("kernel_size", lambda: F.max_pool2d(x, value)),
        ("dilation", lambda: F.max_pool2d(x, 2, 1, 0, dilation=value)),
        ("kernel_size", lambda: F.avg_pool2d(x, value)),
        ("kernel_size", lambda: F.avg_pool2d(x, (2, value), 1)),
        ("output_size", lambda: F.adaptive_avg_pool2d(x, (value, value))),
        ("output_size", lambda: F.adaptive_max_pool2d(x, (value, value))),
    ]


def _other_int_calls(value):
    """(argument, call) pairs: the integer arguments outside the int-or-pair parser."""
    x, labels = _x(), pcn.tensor([0, 1, 2, 0])
    return [
        ("dim", lambda: F.softmax(x, value)),
        ("dim", lambda: F.log_softmax(x, value)),
        ("dim", lambda: F.cat([x, x], value)),
        ("size", lambda: F.local_response_norm(x, value)),
        ("divisor_override", lambda: F.avg_pool2d(x, 2, divisor_override=value)),
        ("ignore_index", lambda: F.cross_entropy(pcn.randn(4, 3), labels, ignore_index=value)),
        ("ignore_index", lambda: F.nll_loss(pcn.randn(4, 3), labels, ignore_index=value)),
        ("pad", lambda: F.pad(x, (value, 0))),
    ]


@pytest.mark.parametrize("value", HUGE + [-1, -(2**63)])
@pytest.mark.parametrize("index", range(len(_huge_calls(1))))
def test_huge_and_negative_sizes_are_refused_before_allocation(index, value):
    """Sizes whose products pass 2^31 or 2^63 are checked in 64-bit before anything is
    allocated: ValueError."""
    _, call = _huge_calls(value)[index]
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("value", BEYOND_INT64 + [-(2**63) - 1])
@pytest.mark.parametrize("index", range(len(_huge_calls(1)) + len(_other_int_calls(1))))
def test_int_arguments_beyond_int64_are_value_errors_naming_the_argument(index, value):
    """Python ints that no 64-bit integer holds never reach the bindings (where pybind11 would
    answer with its generic "incompatible function arguments" TypeError)."""
    argument, call = (_huge_calls(value) + _other_int_calls(value))[index]
    with pytest.raises(ValueError, match=argument):
        call()


@pytest.mark.parametrize("amount,error", [(-1, ValueError), (2**62, ValueError), (2**63, ValueError), (2**40, MemoryError)])
def test_pad_refuses_negative_and_impossible_amounts(amount, error):
    with pytest.raises(error, match="^pad: "):
        F.pad(_x(), (amount, 0))


@pytest.mark.parametrize(
    "call,shape,size",
    [
        (lambda: F.conv2d(pcn.randn(1, 1, 2, 2), pcn.randn(1, 1, 1, 1), padding=2**20), "1, 1, 2097154, 2097154",
         "16.0 TiB"),
        (lambda: F.adaptive_max_pool2d(_x(), (2**20, 2**21)), "2, 3, 1048576, 2097152", "48.0 TiB"),
        (lambda: F.linear(pcn.ones(2**21, 1), pcn.ones(2**21, 1)), "2097152, 2097152", "16.0 TiB"),
        (lambda: F.pad(pcn.randn(1, 1, 2, 2), (2**41, 0)), "1, 1, 2, 2199023255554", "16.0 TiB"),
    ],
)
def test_outputs_larger_than_memory_are_memory_errors_naming_shape_and_bytes(call, shape, size):
    """Within the kernels' 2^46-element index limit yet beyond any machine's memory: refused
    before allocating (Linux could overcommit such an allocation and then kill the process
    while the kernel writes it), with the shape and the bytes it would take."""
    with pytest.raises(MemoryError, match=rf"output of shape \[{shape}\] \(float32\) needs {size} \(\d+ bytes\), "
                                          r"more than this machine's .* of physical memory"):
        call()


def test_huge_but_valid_stride_and_window_sizes_work():
    """A stride past 2^31 on a small input is legal: one output position, as torch."""
    x, w = _x(), pcn.tensor(WEIGHT)
    assert F.conv2d(x, w, stride=2**31).shape == (2, 4, 1, 1)
    assert F.max_pool2d(x, 2, 2**31).shape == (2, 3, 1, 1)
    assert F.avg_pool2d(x, 2, divisor_override=2**62).shape == (2, 3, 3, 3)
    assert F.local_response_norm(x, 2**62).shape == SHAPE


# ------------------------------------------------------------------ NaN and Inf
NAN_REFUSED = {"binary_cross_entropy"}  # probabilities outside [0, 1], NaN included, are errors, as in torch


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", sorted(OPS))
def test_nan_and_inf_propagate_at_least_as_in_torch(name, special):
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    values[0, 1, 2, 3] = special
    values[1, 2, 5, 5] = special
    if name in NAN_REFUSED:
        if np.isnan(special):
            with pytest.raises(ValueError, match="between 0 and 1"):
                OPS[name](F, pcn, pcn.tensor(values))
            with pytest.raises(RuntimeError, match="between 0 and 1"):
                OPS[name](torch.nn.functional, torch, torch.tensor(values))
            return
    ours = OPS[name](F, pcn, pcn.tensor(values)).numpy()
    theirs = OPS[name](torch.nn.functional, torch, torch.tensor(values)).numpy()
    assert ours.shape == theirs.shape
    missing = ~np.isfinite(theirs) & np.isfinite(ours)
    assert not missing.any(), f"{name}: {int(missing.sum())} outputs finite here but not in torch"
    extra = np.isnan(ours) & np.isfinite(theirs)
    assert not extra.any(), f"{name}: {int(extra.sum())} NaN outputs where torch has finite values"


def test_nan_in_sgemm_propagates_to_its_row():
    a = np.ones((3, 4), np.float32)
    a[1, 2] = np.nan
    y = backend.sgemm(a, np.ones((4, 2), np.float32))
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()


# ------------------------------------------------------------------ layout and writability
def _layouts(values):
    """The same values as: a read-only C array, a Fortran array, a strided view, a reversed
    view, a byte-swapped copy."""
    read_only = values.copy()
    read_only.setflags(write=False)
    padded = np.zeros(values.shape[:-1] + (2 * values.shape[-1],), np.float32)
    padded[..., ::2] = values
    reversed_view = np.ascontiguousarray(values[..., ::-1])[..., ::-1]
    return {"read-only": read_only, "fortran": np.asfortranarray(values), "strided": padded[..., ::2],
            "reversed": reversed_view, "big-endian": values.astype(">f4")}


@pytest.mark.parametrize("layout", list(_layouts(np.zeros((1, 1), np.float32))))
@pytest.mark.parametrize("name", sorted(OPS))
def test_layout_and_writability_never_change_a_result(name, layout):
    values = np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32)
    expected = OPS[name](F, pcn, pcn.tensor(values)).numpy()
    for make in (pcn.tensor, pcn.from_numpy):
        got = OPS[name](F, pcn, make(_layouts(values)[layout])).numpy()
        assert np.array_equal(got, expected, equal_nan=True), f"{name} on a {layout} array via {make.__name__}"


@pytest.mark.parametrize("layout", ["read-only", "fortran", "strided", "reversed"])
def test_sgemm_operand_layout_never_changes_the_result(layout):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((37, 21)).astype(np.float32), rng.standard_normal((21, 18)).astype(np.float32)
    expected = backend.sgemm(a, b)
    assert np.array_equal(backend.sgemm(_layouts(a)[layout], _layouts(b)[layout]), expected)
    assert np.array_equal(backend.sgemm(_layouts(a.T.copy())[layout], b, trans_a=True), expected)
    broadcast = np.broadcast_to(a[:1], (37, 21))  # zero row stride, read-only
    assert np.array_equal(backend.sgemm(broadcast, b), backend.sgemm(np.ascontiguousarray(broadcast), b))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda t: F.relu_(t), "writable"),
        (lambda t: F.relu(t, inplace=True), "writable"),
        (lambda t: F.leaky_relu_(t), "writable"),
        (lambda t: F.leaky_relu(t, inplace=True), "writable"),
        (lambda t: F.dropout(t, 0.5, True, inplace=True), "writable"),
        (lambda t: F.dropout2d(t, 0.5, True, inplace=True), "writable"),
        (lambda t: F.silu(t, inplace=True), "writable"),
        (lambda t: F.relu6(t, inplace=True), "writable"),
        (lambda t: F.hardswish(t, inplace=True), "writable"),
        (lambda t: F.hardsigmoid(t, inplace=True), "writable"),
        (lambda t: F.batch_norm(_x(), pcn.zeros(3), pcn.from_numpy(t.numpy()[0, 0, 0, :3]), training=True), "running_var"),
        (lambda t: backend.sgemm(np.ones((2, 6), np.float32), np.ones((6, 6), np.float32), out=t.numpy()[0, 0, :2]), "out"),
    ],
)
def test_writes_into_read_only_memory_are_refused(call, match):
    values = np.ones(SHAPE, np.float32)
    values.setflags(write=False)
    with pytest.raises(ValueError, match=match):
        call(pcn.from_numpy(values))
    assert np.array_equal(values, np.ones(SHAPE, np.float32))


def test_sgemm_out_must_be_c_contiguous_float32():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        backend.sgemm(a, b, out=np.ones((2, 4), np.float32)[:, ::2])
    with pytest.raises(ValueError, match=r"out must have shape \[2, 2\]"):
        backend.sgemm(a, b, out=np.ones((2, 3), np.float32))


# ------------------------------------------------------------------ labels and batch sizes
@pytest.mark.parametrize("bad", [3, -1, 2**31, 2**62, -(2**63)])
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_labels_out_of_range_are_value_errors(name, bad):
    target = np.zeros(4, np.int64)
    target[2] = bad
    with pytest.raises(ValueError, match=f"target value {bad} is out of bounds for 3 classes"):
        getattr(F, name)(pcn.randn(4, 3), pcn.tensor(target))


def test_ignore_index_is_not_out_of_range():
    loss = F.cross_entropy(pcn.randn(4, 3), pcn.tensor([0, 2**62, 1, 2**62]), ignore_index=2**62)
    assert np.isfinite(loss.item())


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: F.cross_entropy(pcn.randn(4, 3), pcn.zeros(3).long()), r"target must have shape \[4\]"),
        (lambda: F.nll_loss(pcn.randn(4, 3, 5), pcn.zeros(4, 2).long()), r"target must have shape \[4, 5\]"),
        (lambda: F.cross_entropy(pcn.randn(4, 3), pcn.randn(4, 2)), r"\(4, 3\)"),
        (lambda: F.mse_loss(pcn.randn(4, 3), pcn.randn(3, 3)), r"\[4, 3\]"),
        (lambda: F.nll_loss(pcn.randn(4, 3), pcn.zeros(4).long(), weight=pcn.ones(4)), "weight"),
        (lambda: F.cat([pcn.randn(2, 3), pcn.randn(2, 4)]), r"\(2, 3\).*\(2, 4\)"),
        (lambda: F.add_relu(pcn.randn(2, 3), pcn.randn(3, 2)), r"\[2, 3\].*\[3, 2\]"),
        (lambda: F.linear(pcn.randn(2, 3), pcn.randn(4, 5)), r"\(2, 3\).*\(4, 5\)"),
        (lambda: F.linear(pcn.randn(2, 5), pcn.randn(4, 5), pcn.randn(5)), r"bias"),
        (lambda: F.conv2d(_x(), pcn.randn(4, 2, 3, 3)), r"\[4, 2, 3, 3\].*\[2, 3, 6, 6\]"),
        (lambda: F.conv2d(_x(), pcn.tensor(WEIGHT), pcn.randn(5)), "bias"),
        (lambda: F.conv2d(_x(), pcn.randn(4, 1, 3, 3), groups=2), "groups"),
        (lambda: F.batch_norm(_x(), pcn.zeros(4), pcn.ones(4), training=True), r"running_mean must have shape \[3\]"),
        (lambda: F.batch_norm(_x(), None, None, pcn.ones(2), training=True), r"weight must have shape \[3\]"),
        (lambda: backend.sgemm(np.ones((2, 3), np.float32), np.ones((2, 2), np.float32)), r"\[2, 3\].*\[2, 2\]"),
    ],
)
def test_mismatched_shapes_are_value_errors_showing_the_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()
