"""relu, leaky_relu, sigmoid, tanh, gelu, silu, relu6, hardswish, hardsigmoid and dropout: forward
and backward against float64 numpy references and PyTorch on every ISA; special values, in-place
forms, dropout masks (the newer activations' own tests: test_activation_more.py)."""

import math

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from support import assert_close, random_array


# ------------------------------------------------------------------ float64 numpy references
def relu_reference(x, gy):
    y = np.maximum(x, 0.0)
    return y, np.where(y <= 0, 0.0, gy)  # from the output, as torch: a NaN output passes the gradient


def leaky_relu_reference(x, gy, slope):
    return np.where(x > 0, x, x * slope), np.where(x > 0, gy, gy * slope)


def sigmoid_reference(x, gy):
    e = np.exp(-np.abs(x))  # float64: exp of a non-positive number never overflows
    y = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return y, gy * y * (1.0 - y)


def tanh_reference(x, gy):
    y = np.tanh(x)
    return y, gy * (1.0 - y * y)


_erfc = np.vectorize(math.erfc)


def gelu_reference(x, gy):
    cdf = 0.5 * _erfc(-x / math.sqrt(2.0))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return x * cdf, gy * (cdf + np.where(pdf == 0, 0.0, x * pdf))


def gelu_tanh_reference(x, gy):
    k = math.sqrt(2 / math.pi)
    t = np.tanh(k * (x + 0.044715 * x**3))
    return 0.5 * x * (1 + t), gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))


def silu_reference(x, gy):
    s = 1 / (1 + np.exp(-x))
    return x * s, gy * s * (1 + x * (1 - s))


def relu6_reference(x, gy):
    y = np.clip(x, 0, 6)
    return y, np.where((y <= 0) | (y >= 6), 0.0, gy)


def hardswish_reference(x, gy):
    return x * np.clip(x + 3, 0, 6) / 6, np.where(x <= -3, 0.0, np.where(x < 3, gy * (x / 3 + 0.5), gy))


def hardsigmoid_reference(x, gy):
    return np.clip(x + 3, 0, 6) / 6, np.where((x > -3) & (x < 3), gy / 6, 0.0)


OPS = {
    "relu": (lambda t: F.relu(t), relu_reference, "relu"),
    "leaky_relu": (lambda t: F.leaky_relu(t), lambda x, g: leaky_relu_reference(x, g, 0.01), "leaky_relu"),
    "leaky_relu_zero": (lambda t: F.leaky_relu(t, 0.0), lambda x, g: leaky_relu_reference(x, g, 0.0), None),
    "leaky_relu_negative": (lambda t: F.leaky_relu(t, -0.5), lambda x, g: leaky_relu_reference(x, g, -0.5), None),
    "leaky_relu_steep": (lambda t: F.leaky_relu(t, 2.0), lambda x, g: leaky_relu_reference(x, g, 2.0), None),
    "sigmoid": (lambda t: F.sigmoid(t), sigmoid_reference, "sigmoid"),
    "tanh": (lambda t: F.tanh(t), tanh_reference, "tanh"),
    "gelu": (lambda t: F.gelu(t), gelu_reference, None),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), gelu_tanh_reference, None),
    "silu": (lambda t: F.silu(t), silu_reference, None),
    "relu6": (lambda t: F.relu6(t), relu6_reference, None),
    "hardswish": (lambda t: F.hardswish(t), hardswish_reference, None),
    "hardsigmoid": (lambda t: F.hardsigmoid(t), hardsigmoid_reference, None),
}
NEW_OPS = ["gelu", "gelu_tanh", "silu", "relu6", "hardswish", "hardsigmoid"]  # their own file: test_activation_more.py

TORCH_OPS = {
    "relu": lambda torch, t: torch.nn.functional.relu(t),
    "leaky_relu": lambda torch, t: torch.nn.functional.leaky_relu(t),
    "leaky_relu_zero": lambda torch, t: torch.nn.functional.leaky_relu(t, 0.0),
    "leaky_relu_negative": lambda torch, t: torch.nn.functional.leaky_relu(t, -0.5),
    "leaky_relu_steep": lambda torch, t: torch.nn.functional.leaky_relu(t, 2.0),
    "sigmoid": lambda torch, t: torch.sigmoid(t),
    "tanh": lambda torch, t: torch.tanh(t),
    "gelu": lambda torch, t: torch.nn.functional.gelu(t),
    "gelu_tanh": lambda torch, t: torch.nn.functional.gelu(t, approximate="tanh"),
    "silu": lambda torch, t: torch.nn.functional.silu(t),
    "relu6": lambda torch, t: torch.nn.functional.relu6(t),
    "hardswish": lambda torch, t: torch.nn.functional.hardswish(t),
    "hardsigmoid": lambda torch, t: torch.nn.functional.hardsigmoid(t),
}

# shapes: a scalar-like size, sizes around the vector widths (4, 8, 16), a multi-block size
SHAPES = [(1,), (7,), (8,), (2, 17), (3, 5, 7, 9), (70001,)]


def _forward_backward(op, x, gy):
    xt = pcn.tensor(x, requires_grad=True)
    y = op(xt)
    (y * pcn.tensor(gy)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_activation_matches_float64_reference(isa, name, shape):
    op, reference, _ = OPS[name]
    rng = np.random.default_rng(0)
    x, gy = random_array(rng, *shape) * 4, random_array(rng, *shape)
    y, dx = _forward_backward(op, x, gy)
    ref_y, ref_dx = reference(x.astype(np.float64), gy.astype(np.float64))
    assert_close(y, ref_y, what="output")
    assert_close(dx, ref_dx, what="grad_input")


@pytest.mark.parametrize("name", list(OPS))
def test_activation_matches_torch(isa, name):
    torch = pytest.importorskip("torch")
    op = OPS[name][0]
    rng = np.random.default_rng(1)
    x, gy = random_array(rng, 4, 3, 9, 11) * 6, random_array(rng, 4, 3, 9, 11)
    y, dx = _forward_backward(op, x, gy)
    tx = torch.tensor(x, requires_grad=True)
    ty = TORCH_OPS[name](torch, tx)
    ty.backward(torch.tensor(gy))
    assert_close(y, ty.detach().numpy(), what="output")
    assert_close(dx, tx.grad.numpy(), what="grad_input")


SPECIAL = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-5, -1e-5, 0.3, -0.3, 9.0, -9.0, 20.0, -20.0, 50.0, -50.0, 89.0,
                    -89.0, 200.0, -200.0, 1e30, -1e30, np.inf, -np.inf, np.nan], np.float32)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_activation_special_values(isa, name):
    """0, tiny, saturating, huge, infinite and NaN inputs: no overflow to NaN, NaN propagates,
    each element accurate on its own scale (the tail and the vector body give the same answer)."""
    op, reference, _ = OPS[name]
    x = np.concatenate([SPECIAL, SPECIAL[::-1], SPECIAL[:5]])  # values land in every vector lane and the tail
    gy = np.ones_like(x)
    with np.errstate(invalid="ignore", over="ignore"):
        ref_y, ref_dx = reference(x.astype(np.float64), gy.astype(np.float64))
    xt = pcn.tensor(x, requires_grad=True)
    y = op(xt)
    y.backward(pcn.tensor(gy))  # not y.sum(): inf + -inf would warn
    y, dx = y.detach().numpy(), xt.grad.numpy()
    assert np.array_equal(np.isnan(y), np.isnan(ref_y)), "NaN pattern of the output"
    finite = ~np.isnan(ref_y)
    with np.errstate(invalid="ignore"):
        error = np.abs(y[finite] - ref_y[finite])
    assert np.all((y[finite] == ref_y[finite]) | (error <= 1e-6 * np.abs(ref_y[finite]) + 1e-37))
    if name in ("sigmoid", "tanh"):
        assert np.all(np.abs(y[~np.isnan(y)]) <= 1.0)
        saturated = np.abs(x) >= 50
        assert np.array_equal(np.abs(y[saturated & (x > 0)]), np.ones(np.count_nonzero(saturated & (x > 0))))
    dfinite = ~np.isnan(ref_dx)
    with np.errstate(invalid="ignore"):
        assert np.all(np.abs(dx[dfinite] - ref_dx[dfinite]) <= 1e-6)
    torch = pytest.importorskip("torch")
    ty = TORCH_OPS[name](torch, torch.tensor(x)).numpy()
    assert np.array_equal(np.isnan(y), np.isnan(ty))
    with np.errstate(invalid="ignore"):
        assert np.allclose(y[finite], ty[finite], rtol=1e-6, atol=1e-7)


def test_relu_inplace_shares_memory_and_gives_correct_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, weight, bias, gy = random_array(rng, 4, 3, 5, 5), random_array(rng, 3), random_array(rng, 3), random_array(rng, 4, 3, 5, 5)
    # conv -> batch_norm -> relu(inplace): batch_norm saves its input, relu its output: safe
    xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(weight, requires_grad=True)
    h = F.batch_norm(xt, None, None, wt, pcn.tensor(bias), training=True)
    y = F.relu(h, inplace=True)
    assert np.shares_memory(y.detach().numpy(), h.detach().numpy())
    (y * pcn.tensor(gy)).sum().backward()
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    ty = torch.relu_(torch.nn.functional.batch_norm(tx, None, None, tw, torch.tensor(bias), training=True))
    ty.backward(torch.tensor(gy))
    assert_close(y.detach().numpy(), ty.detach().numpy(), what="output")
    assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input")
    assert_close(wt.grad.numpy(), tw.grad.numpy(), what="grad_weight")
    # relu_ and leaky_relu_ on plain (no-grad) tensors write through
    a = pcn.tensor(np.array([-1.0, 2.0, -3.0], np.float32))
    r = F.relu_(a)
    assert np.array_equal(a.numpy(), [0.0, 2.0, 0.0]) and np.shares_memory(r.numpy(), a.numpy())
    b = pcn.tensor(np.array([-1.0, 2.0], np.float32))
    F.leaky_relu_(b, 0.5)
    assert np.array_equal(b.numpy(), [-0.5, 2.0])


def test_leaky_relu_inplace_gradient_and_negative_slope_rule():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0], np.float32)
    xt = pcn.tensor(x, requires_grad=True)
    y = F.leaky_relu(xt * 1.0, 0.2, inplace=True)
    y.sum().backward()
    assert np.allclose(xt.grad.numpy(), [0.2, 0.2, 0.2, 1.0, 1.0])
    xt = pcn.tensor(x, requires_grad=True)
    y = F.leaky_relu(xt * 1.0, -0.2, inplace=True)
    with pytest.raises(RuntimeError, match="negative slope"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        F.relu_(pcn.tensor(x, requires_grad=True))


def test_activations_are_deterministic_and_alias_safe():
    x = random_array(np.random.default_rng(3), 100003) * 5
    for kernel in (_C.relu_forward, _C.sigmoid_forward, _C.tanh_forward):
        first, second = kernel(x), kernel(x)
        assert np.array_equal(first, second)
        inplace = x.copy()
        out = kernel(inplace, out=inplace)
        assert out is inplace or np.shares_memory(out, inplace)
        assert np.array_equal(inplace, first)


def test_empty_inputs(isa):
    for op in (F.relu, F.leaky_relu, F.sigmoid, F.tanh, F.gelu, F.silu, F.relu6, F.hardswish, F.hardsigmoid,
               F.dropout, F.dropout2d):
        xt = pcn.zeros(0, 3, 2, 2, requires_grad=True)
        y = op(xt)
        assert y.shape == (0, 3, 2, 2)
        y.sum().backward()
        assert xt.grad.shape == (0, 3, 2, 2)


# ------------------------------------------------------------------ dropout
def _dropout_mask(x, p, seed=0, op=F.dropout):
    pcn.manual_seed(seed)
    xt = pcn.tensor(x, requires_grad=True)
    y = op(xt, p)
    gy = np.arange(x.size, dtype=np.float32).reshape(x.shape) + 1
    (y * pcn.tensor(gy)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), gy


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_dropout_scales_kept_values_and_gradient_uses_the_same_mask(isa, p):
    x = random_array(np.random.default_rng(4), 3, 7, 11) + 10.0  # no zeros: kept <=> nonzero
    y, dx, gy = _dropout_mask(x, p)
    kept = y != 0
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    assert_close(y, np.where(kept, x.astype(np.float64) * scale, 0.0), what="output")
    assert_close(dx, np.where(kept, gy.astype(np.float64) * scale, 0.0), what="grad_input")
    if p == 0.0:
        assert kept.all() and np.array_equal(y, x)
    if p == 1.0:
        assert not kept.any()


def test_dropout_mask_is_reproducible_across_seeds_threads_and_isas():
    x = np.ones(200003, np.float32)
    reference, _, _ = _dropout_mask(x, 0.3, seed=7)
    again, _, _ = _dropout_mask(x, 0.3, seed=7)
    assert np.array_equal(reference, again)
    other, _, _ = _dropout_mask(x, 0.3, seed=8)
    assert not np.array_equal(reference, other)
    threads, isa = pcn.backend.get_num_threads(), pcn.backend.isa()
    try:
        for count in (1, 2):
            pcn.backend.set_num_threads(count)
            for name in pcn.backend.available_isas():
                pcn.backend.set_isa(name)
                assert np.array_equal(_dropout_mask(x, 0.3, seed=7)[0], reference), f"threads={count} isa={name}"
    finally:
        pcn.backend.set_num_threads(threads)
        pcn.backend.set_isa(isa)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_dropout_keep_rate(p):
    x = np.ones(100000, np.float32)
    rates = [np.count_nonzero(_dropout_mask(x, p, seed)[0]) / x.size for seed in range(3)]
    # binomial std of the rate is sqrt(p(1-p)/n) <= 0.0016; allow ~6 sigma
    for rate in rates:
        assert abs(rate - (1 - p)) < 0.01


def test_dropout_eval_inplace_and_nan():
    x = pcn.tensor(random_array(np.random.default_rng(5), 4, 5))
    assert F.dropout(x, 0.5, training=False) is x
    a = pcn.tensor(np.ones(1000, np.float32))
    out = F.dropout(a, 0.5, inplace=True)
    assert np.shares_memory(out.numpy(), a.numpy()) and set(np.unique(a.numpy())) <= {0.0, 2.0}
    y = F.dropout(pcn.tensor(np.full(64, np.nan, np.float32)), 1.0).numpy()
    assert np.isnan(y).all()  # as torch's input * mask: a dropped NaN stays NaN


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.relu(pcn.zeros(2, 3).long()), TypeError, "relu: input must be a float32"),
        (lambda: F.sigmoid(pcn.zeros(2, 3).long()), TypeError, "sigmoid: input must be a float32"),
        (lambda: F.leaky_relu(pcn.zeros(2), "0.1"), TypeError, "negative_slope must be a float"),
        (lambda: F.leaky_relu(pcn.zeros(2), float("nan")), ValueError, "negative_slope must be finite"),
        (lambda: F.dropout(pcn.zeros(3), 1.5), ValueError, "dropout probability has to be between 0 and 1, but got 1.5"),
        (lambda: F.dropout(pcn.zeros(3), -0.1), ValueError, "between 0 and 1"),
        (lambda: _C.relu_backward(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)), ValueError,
         r"grad_output must have shape \[3, 2\], got \[2, 3\]"),
        (lambda: _C.tanh_forward(np.zeros((2, 3), np.float32), out=np.zeros((2, 4), np.float32)), ValueError,
         r"out must have shape \[2, 3\], got \[2, 4\]"),
        (lambda: _C.relu_forward(np.zeros(6, np.float32), out=np.zeros(12, np.float32)[::2]), ValueError, "C-contiguous"),
        (lambda: _C.dropout_backward(np.zeros(3, np.float32), np.zeros(3, np.int64), 0.5), TypeError, "mask must be a uint8"),
        (lambda: _C.dropout_backward(np.zeros(3, np.float32), np.zeros(4, np.uint8), 0.5), ValueError,
         r"mask shape \[4\] does not match grad_output shape \[3\]"),
        (lambda: _C.dropout_forward(np.zeros(3, np.float32), 2.0, 0), ValueError, "between 0 and 1"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
