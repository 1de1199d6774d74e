"""add, mul, add_relu, the deterministic sum, cat/split and subsample_pad_channels: forward and
backward against a float64 numpy reference and against PyTorch, on every ISA; bad arguments raise
clear errors."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from pyconvnet.ops import elementwise
from support import assert_close, random_array

SHAPES = [(1,), (7,), (2, 3, 5, 5), (4, 17, 1, 1), (3, 64, 15, 15), (0, 4)]  # last two: many chunks, empty


# ------------------------------------------------------------------ add / mul / add_relu
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op", ["add", "mul", "add_relu"])
def test_binary_ops_match_reference_and_torch(isa, op, shape):
    rng = np.random.default_rng(0)
    a, b, gy = random_array(rng, *shape), random_array(rng, *shape), random_array(rng, *shape)
    at, bt = pcn.tensor(a, requires_grad=True), pcn.tensor(b, requires_grad=True)
    y = {"add": lambda: at + bt, "mul": lambda: at * bt, "add_relu": lambda: F.add_relu(at, bt)}[op]()
    (y * pcn.tensor(gy)).sum().backward()
    a64, b64, gy64 = a.astype(np.float64), b.astype(np.float64), gy.astype(np.float64)
    if op == "add":
        ref_y, ref_da, ref_db = a64 + b64, gy64, gy64
    elif op == "mul":
        ref_y, ref_da, ref_db = a64 * b64, gy64 * b64, gy64 * a64
    else:
        ref_y = np.maximum(a64 + b64, 0)
        ref_da = ref_db = gy64 * (a + b > 0)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(at.grad.numpy(), ref_da, what="grad_input")
    assert_close(bt.grad.numpy(), ref_db, what="grad_other")
    torch = pytest.importorskip("torch")
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ty = {"add": lambda: ta + tb, "mul": lambda: ta * tb, "add_relu": lambda: torch.relu(ta + tb)}[op]()
    ty.backward(torch.tensor(gy))
    assert np.array_equal(y.detach().numpy(), ty.detach().numpy())
    assert_close(at.grad.numpy(), ta.grad.numpy(), what="grad_input vs torch")
    assert_close(bt.grad.numpy(), tb.grad.numpy(), what="grad_other vs torch")


def test_same_shape_float32_arithmetic_runs_on_the_kernels(monkeypatch):
    calls = []
    for name in ("add", "mul", "sum"):
        kernel = getattr(_C, name)
        monkeypatch.setattr(_C, name, lambda *args, _k=kernel, _n=name: calls.append(_n) or _k(*args))
    a, b = pcn.ones(3, 4, requires_grad=True), pcn.ones(3, 4)
    ((a + b) * b).sum().backward()
    assert calls == ["add", "mul", "sum", "mul"]
    assert np.array_equal(a.grad.numpy(), np.ones((3, 4), np.float32))
    calls.clear()
    assert a.mean().item() == 1.0 and calls == ["sum"]


# ------------------------------------------------------------------ sum
@pytest.mark.parametrize("count", [0, 1, 13, 16384, 16385, 300001])
def test_sum_matches_float64(isa, count):
    x = random_array(np.random.default_rng(1), count) + 0.5
    out = _C.sum(x)
    assert out.shape == ()
    assert_close(out, np.asarray(x.astype(np.float64).sum()), rtol=1e-6, what="sum")


def test_sum_does_not_depend_on_thread_count():
    x = random_array(np.random.default_rng(2), 1_000_003)
    previous = pcn.backend.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            pcn.backend.set_num_threads(threads)
            results.append(_C.sum(x))
    finally:
        pcn.backend.set_num_threads(previous)
    assert results[0] == results[1] == results[2]


# ------------------------------------------------------------------ cat / split
# (shapes, dim)
CAT_CASES = [
    ([(2, 3, 4, 4), (2, 5, 4, 4)], 1),  # NCHW channel concat (Inception)
    ([(2, 3, 4, 4), (2, 1, 4, 4), (2, 7, 4, 4), (2, 2, 4, 4)], -3),  # four branches, negative dim
    ([(1, 3, 1, 1), (1, 17, 1, 1)], 1),  # batch 1, 1x1 images, odd channels
    ([(3, 4), (5, 4)], 0),  # batch concat
    ([(3, 4), (3, 0), (3, 2)], -1),  # an empty part
    ([(6,), (1,)], 0),  # 1-D
    ([(0, 3, 2), (0, 5, 2)], 1),  # empty batch
    ([(2, 3, 5)], 2),  # one tensor
]


@pytest.mark.parametrize("shapes,dim", CAT_CASES, ids=str)
def test_cat_matches_reference_and_torch(isa, shapes, dim):
    rng = np.random.default_rng(3)
    parts = [random_array(rng, *s) for s in shapes]
    tensors = [pcn.tensor(p, requires_grad=True) for p in parts]
    y = F.cat(tensors, dim=dim)
    expected = np.concatenate(parts, axis=dim)
    assert np.array_equal(y.detach().numpy(), expected)
    gy = random_array(rng, *expected.shape)
    (y * pcn.tensor(gy)).sum().backward()
    bounds = np.cumsum([0] + [s[dim] for s in shapes])
    for i, t in enumerate(tensors):
        ref = np.take(gy, np.arange(bounds[i], bounds[i + 1]), axis=dim)
        assert np.array_equal(t.grad.numpy(), ref), f"grad of tensors[{i}]"
    torch = pytest.importorskip("torch")
    tt = [torch.tensor(p, requires_grad=True) for p in parts]
    ty = torch.cat(tt, dim=dim)
    ty.backward(torch.tensor(gy))
    assert np.array_equal(y.detach().numpy(), ty.detach().numpy())
    for t, ref in zip(tensors, tt):
        assert np.array_equal(t.grad.numpy(), ref.grad.numpy())


def test_cat_of_int64_falls_back_to_numpy():
    a, b = np.arange(6, dtype=np.int64).reshape(2, 3), np.arange(4, dtype=np.int64).reshape(2, 2)
    y = F.cat([pcn.tensor(a), pcn.tensor(b)], dim=1)
    assert y.dtype == np.int64
    assert np.array_equal(y.numpy(), np.concatenate([a, b], axis=1))


def test_cat_and_split_are_deterministic():
    rng = np.random.default_rng(4)
    parts = [random_array(rng, 8, c, 9, 9) for c in (16, 32, 24)]
    first = _C.concat(parts, 1)
    assert np.array_equal(first, _C.concat(parts, 1))
    for part, back in zip(parts, _C.split(first, [16, 32, 24], 1)):
        assert np.array_equal(part, back)


# ------------------------------------------------------------------ subsample_pad_channels
# (input shape, stride, before, after): ResNet-20's two shortcuts, odd sizes, stride 1 and 3, no
# channels added, an empty batch
PAD_CASES = [((64, 16, 32, 32), 2, 8, 8), ((64, 32, 16, 16), 2, 16, 16), ((3, 5, 7, 9), 2, 1, 4),
             ((2, 3, 5, 5), 1, 0, 2), ((2, 4, 10, 11), 3, 3, 0), ((2, 3, 4, 4), 2, 0, 0), ((0, 2, 4, 4), 2, 1, 1)]


@pytest.mark.parametrize("shape,stride,before,after", PAD_CASES, ids=str)
def test_subsample_pad_channels_matches_slicing(isa, shape, stride, before, after):
    rng = np.random.default_rng(12)
    x = random_array(rng, *shape)
    expected = np.zeros((shape[0], before + shape[1] + after, -(-shape[2] // stride), -(-shape[3] // stride)),
                       np.float32)
    expected[:, before:before + shape[1]] = x[:, :, ::stride, ::stride]
    assert np.array_equal(_C.subsample_pad_channels(x, stride, before, after), expected)
    grad = random_array(rng, *expected.shape)
    grad_x = np.zeros_like(x)
    grad_x[:, :, ::stride, ::stride] = grad[:, before:before + shape[1]]
    assert np.array_equal(_C.subsample_pad_channels_backward(grad, list(shape), stride, before, after), grad_x)


def test_option_a_shortcut_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    from pyconvnet.models.resnet import ShortcutA
    rng = np.random.default_rng(13)
    x, grad = random_array(rng, 4, 6, 9, 9), random_array(rng, 4, 12, 5, 5)
    xt = pcn.tensor(x, requires_grad=True)
    y = ShortcutA(2, 6)(xt)
    (y * pcn.tensor(grad)).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.pad(tx[:, :, ::2, ::2], (0, 0, 0, 0, 3, 3))
    ty.backward(torch.tensor(grad))
    assert np.array_equal(y.detach().numpy(), ty.detach().numpy())
    assert np.array_equal(xt.grad.numpy(), tx.grad.numpy())


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.cat([pcn.zeros(2, 3, 4), pcn.zeros(2, 3, 5)], dim=1), ValueError, r"must match except in dimension 1: tensors\[0\] has shape \(2, 3, 4\) but tensors\[1\] has shape \(2, 3, 5\)"),
        (lambda: F.cat([pcn.zeros(2, 3), pcn.zeros(2, 3, 1)]), ValueError, r"tensors\[1\] has shape \(2, 3, 1\)"),
        (lambda: F.cat([pcn.zeros(2, 3)], dim=2), ValueError, r"dim 2 is out of range for 2-D tensors of shape \(2, 3\)"),
        (lambda: F.cat([pcn.zeros(2, 3)], dim=1.0), TypeError, "dim must be an int"),
        (lambda: F.cat([]), ValueError, "non-empty"),
        (lambda: F.cat([pcn.tensor(np.float32(1.0))]), ValueError, "zero-dimensional"),
        (lambda: _C.concat([np.zeros((2, 3), np.float32), np.zeros((2, 3))], 0), TypeError, r"tensors\[1\] must be a float32"),
        (lambda: _C.concat([np.zeros((2, 3), np.float32), np.zeros((4, 4), np.float32)], 0), ValueError, r"tensors\[0\] has shape \[2, 3\] but tensors\[1\] has shape \[4, 4\]"),
        (lambda: _C.split(np.zeros((2, 6), np.float32), [2, 3], 1), ValueError, r"sizes \[2, 3\] must add up to dimension 1 of input shape \[2, 6\]"),
        (lambda: _C.split(np.zeros((2, 6), np.float32), [7, -1], 1), ValueError, "negative extent"),
        (lambda: _C.add(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)), ValueError, r"add: input and other must have the same shape, got \[2, 3\] and \[3, 2\]"),
        (lambda: _C.mul(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int64)), TypeError, "mul: other must be a float32"),
        (lambda: elementwise.add_relu(pcn.zeros(4), pcn.zeros(5)), ValueError, r"add_relu: .*\[4\] and \[5\]"),
        (lambda: _C.sum(np.zeros(3)), TypeError, "sum: input must be a float32"),
        (lambda: _C.subsample_pad_channels(np.zeros((2, 3, 4), np.float32), 2, 1, 1), ValueError,
         r"subsample_pad_channels: expected a 4-D \(N, C, H, W\) input, got shape \[2, 3, 4\]"),
        (lambda: _C.subsample_pad_channels(np.zeros((2, 3, 4, 4), np.float32), 0, 1, 1), ValueError,
         "stride must be at least 1, got 0"),
        (lambda: _C.subsample_pad_channels(np.zeros((2, 3, 4, 4), np.float32), 2, -1, 1), ValueError,
         "must be non-negative, got -1 and 1"),
        (lambda: _C.subsample_pad_channels_backward(np.zeros((2, 5, 2, 2), np.float32), [2, 3, 4, 4], 2, 1, 2),
         ValueError, r"grad_output must have shape \[2, 6, 2, 2\], got \[2, 5, 2, 2\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_add_relu_passes_the_gradient_where_the_output_is_nan_as_relu_does():
    a = pcn.tensor(np.array([np.nan, -1.0, 2.0], np.float32), requires_grad=True)
    b = pcn.tensor(np.zeros(3, np.float32), requires_grad=True)
    F.add_relu(a, b).sum().backward()
    assert np.array_equal(a.grad.numpy(), np.array([1.0, 0.0, 1.0], np.float32))
