"""GPU activations, dropout and element-wise ops (pyconvnet._C_cuda) against the CPU kernels
(pyconvnet._C) as the oracle: the same inputs through both, outputs compared to fp32 rounding
(exactly for the piecewise-linear activations, add/mul, copies and dropout, whose masks are
bit-identical for a seed), in-place out=, zero sizes, and the same errors."""

import numpy as np
import pytest

from pyconvnet import _C
from support import random_array

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def gpu():
    from pyconvnet.cuda import _module

    return _module()


def to_gpu(gpu, value):
    """numpy arrays (also inside lists and tuples) uploaded to device 0; anything else unchanged."""
    if isinstance(value, np.ndarray):
        return gpu.from_numpy(np.require(value, requirements="C"), 0)  # keeps 0-d arrays 0-d
    if isinstance(value, (list, tuple)):
        return type(value)(to_gpu(gpu, v) for v in value)
    return value


def to_host(gpu, value):
    if isinstance(value, (list, tuple)):
        return type(value)(to_host(gpu, v) for v in value)
    return None if value is None else gpu.to_numpy(value)


def both(gpu, name, *args, **kwargs):
    """(CPU result, GPU result downloaded) of kernel `name` on the same arguments."""
    expected = getattr(_C, name)(*args, **kwargs)
    actual = getattr(gpu, name)(*to_gpu(gpu, args), **{k: to_gpu(gpu, v) for k, v in kwargs.items()})
    return expected, to_host(gpu, actual)


def assert_same_error(gpu, name, *args, **kwargs):
    """Both devices raise the same exception type; ValueErrors with the same message."""
    with pytest.raises(Exception) as cpu_error:
        getattr(_C, name)(*args, **kwargs)
    with pytest.raises(cpu_error.type) as gpu_error:
        getattr(gpu, name)(*to_gpu(gpu, args), **{k: to_gpu(gpu, v) for k, v in kwargs.items()})
    if cpu_error.type is ValueError:
        assert str(gpu_error.value) == str(cpu_error.value)


# (name, what the backward takes, exact): exact when both devices do the same float operations
ACTIVATIONS = [
    ("relu", "output", True),
    ("leaky_relu", "input", True),
    ("sigmoid", "output", False),
    ("tanh", "output", False),
    ("gelu", "input", False),
    ("gelu_tanh", "input", False),
    ("silu", "input", False),
    ("relu6", "output", True),
    ("hardswish", "input", True),
    ("hardsigmoid", "input", True),
]
SHAPES = [(1,), (7,), (8,), (2, 17), (3, 5, 7, 9), (1000,), (70001,), (0, 3, 2, 2)]
SPECIAL = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 3.0, -3.0, 6.0, -6.0, 2.5, -2.5, 9.0, -9.0, 20.0,
                    -20.0, 100.0, -100.0, np.inf, -np.inf, np.nan], np.float32)


def run_activation(gpu, name, saved, x, gy):
    slope = (0.01,) if name == "leaky_relu" else ()
    y, y_gpu = both(gpu, f"{name}_forward", x, *slope)
    v = y if saved == "output" else x
    dx, dx_gpu = both(gpu, f"{name}_backward", gy, v, *slope)
    return y, y_gpu, dx, dx_gpu


def assert_match(actual, expected, exact, rtol=1e-5, atol=1e-5):
    if exact:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,saved,exact", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_activation_matches_cpu(gpu, name, saved, exact, shape):
    rng = np.random.default_rng(0)
    x, gy = random_array(rng, *shape) * 4, random_array(rng, *shape)
    y, y_gpu, dx, dx_gpu = run_activation(gpu, name, saved, x, gy)
    assert y_gpu.shape == y.shape and dx_gpu.shape == dx.shape
    assert_match(y_gpu, y, exact)
    assert_match(dx_gpu, dx, exact)


@pytest.mark.parametrize("name,saved,exact", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_special_values(gpu, name, saved, exact):
    gy = np.linspace(-2, 2, SPECIAL.size).astype(np.float32)
    y, y_gpu, dx, dx_gpu = run_activation(gpu, name, saved, SPECIAL, gy)
    assert_match(y_gpu, y, exact, atol=1e-6)  # NaN where the CPU has NaN (assert_allclose: equal_nan)
    assert_match(dx_gpu, dx, exact, atol=1e-6)


def test_leaky_relu_negative_slope(gpu):
    x, gy = random_array(np.random.default_rng(1), 5, 9), random_array(np.random.default_rng(2), 5, 9)
    for slope in (0.2, -0.5, 0.0):
        y, y_gpu = both(gpu, "leaky_relu_forward", x, slope)
        np.testing.assert_array_equal(y_gpu, y)
        dx, dx_gpu = both(gpu, "leaky_relu_backward", gy, x, slope)
        np.testing.assert_array_equal(dx_gpu, dx)


@pytest.mark.sanitize_subset
@pytest.mark.parametrize("name", ["relu", "sigmoid", "gelu", "hardswish", "leaky_relu"])
def test_activation_out_and_inplace(gpu, name):
    x = random_array(np.random.default_rng(3), 4, 33) * 3
    slope = (0.1,) if name == "leaky_relu" else ()
    expected = getattr(_C, f"{name}_forward")(x, *slope)
    x_gpu, out_gpu = gpu.from_numpy(x, 0), gpu.from_numpy(np.zeros_like(x), 0)
    getattr(gpu, f"{name}_forward")(x_gpu, *slope, out=out_gpu)
    np.testing.assert_allclose(gpu.to_numpy(out_gpu), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(gpu.to_numpy(x_gpu), x)  # the input is untouched
    result = getattr(gpu, f"{name}_forward")(x_gpu, *slope, out=x_gpu)  # in place
    np.testing.assert_allclose(gpu.to_numpy(x_gpu), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(gpu.to_numpy(result), gpu.to_numpy(x_gpu))


# ------------------------------------------------------------------ dropout
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize(
    "shape,mask_ndim",
    [((2, 3, 4, 5), -1), ((2, 3, 4, 5), 2), ((1, 1, 1, 1), 2), ((4, 17, 1, 3), 2), ((3, 70, 33, 17), 2),
     ((200003,), -1), ((3, 0), 1), ((0, 4), -1), ((5, 6), 0)],
    ids=str,
)
def test_dropout_matches_cpu_bit_for_bit(gpu, p, shape, mask_ndim):
    rng = np.random.default_rng(4)
    x = random_array(rng, *shape) + 10.0
    for seed in (7, 2**63 + 5):
        (y, mask), (y_gpu, mask_gpu) = both(gpu, "dropout_forward", x, p, seed, mask_ndim=mask_ndim)
        assert mask_gpu.dtype == np.uint8 and mask_gpu.shape == mask.shape
        np.testing.assert_array_equal(mask_gpu, mask)
        np.testing.assert_array_equal(y_gpu, y)
        gy = random_array(rng, *shape)
        dx, dx_gpu = both(gpu, "dropout_backward", gy, mask, p)
        np.testing.assert_array_equal(dx_gpu, dx)


def test_dropout_inplace_and_nan(gpu):
    x = np.ones(1000, np.float32)
    (expected, mask) = _C.dropout_forward(x.copy(), 0.5, 3)
    x_gpu = gpu.from_numpy(x, 0)
    y_gpu, mask_gpu = gpu.dropout_forward(x_gpu, 0.5, 3, out=x_gpu)
    np.testing.assert_array_equal(gpu.to_numpy(x_gpu), expected)
    np.testing.assert_array_equal(gpu.to_numpy(y_gpu), expected)
    np.testing.assert_array_equal(gpu.to_numpy(mask_gpu), mask)
    y_nan, _ = gpu.dropout_forward(gpu.from_numpy(np.full(64, np.nan, np.float32), 0), 1.0, 0)
    assert np.isnan(gpu.to_numpy(y_nan)).all()  # a dropped NaN stays NaN, as on the CPU


# ------------------------------------------------------------------ add / mul / add_relu / sum / norm
ELTWISE_SHAPES = [(1,), (7,), (2, 3, 5, 5), (4, 17, 1, 1), (3, 64, 15, 15), (0, 4)]


@pytest.mark.parametrize("shape", ELTWISE_SHAPES, ids=str)
@pytest.mark.parametrize("op", ["add", "mul", "add_relu"])
def test_binary_ops_match_cpu_exactly(gpu, op, shape):
    rng = np.random.default_rng(5)
    a, b = random_array(rng, *shape), random_array(rng, *shape)
    y, y_gpu = both(gpu, op, a, b)
    np.testing.assert_array_equal(y_gpu, y)


@pytest.mark.parametrize("count", [0, 1, 10, 13, 1000, 4097, 16385, 100000, 300001, 5000011])
def test_sum_matches_cpu_and_is_deterministic(gpu, count):
    x = random_array(np.random.default_rng(6), count) + 0.25
    out, out_gpu = both(gpu, "sum", x)
    assert out_gpu.shape == ()
    np.testing.assert_allclose(out_gpu, out, rtol=1e-6, atol=1e-6)
    x_gpu = gpu.from_numpy(x, 0)
    assert all(np.array_equal(gpu.to_numpy(gpu.sum(x_gpu)), out_gpu) for _ in range(3))


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0, 2.0, 3.0, float("inf")])
@pytest.mark.parametrize("count", [0, 1, 1000, 100000, 300001])
def test_norm_matches_cpu(gpu, p, count):
    x = random_array(np.random.default_rng(7), count)
    if count > 3:
        x[::7] = 0.0
    out, out_gpu = both(gpu, "norm", x, p)
    np.testing.assert_allclose(out_gpu, out, rtol=1e-6, atol=1e-6)


def test_norm_propagates_nan(gpu):
    x = np.ones(5000, np.float32)
    x[4321] = np.nan
    for p in (0.0, 1.0, 2.0, 3.0, float("inf")):
        out, out_gpu = both(gpu, "norm", x, p)
        np.testing.assert_array_equal(out_gpu, out)


# ------------------------------------------------------------------ concat / split
CAT_CASES = [
    ([(2, 3, 4, 4), (2, 5, 4, 4)], 1),
    ([(2, 3, 4, 4), (2, 1, 4, 4), (2, 7, 4, 4), (2, 2, 4, 4)], -3),
    ([(1, 3, 1, 1), (1, 17, 1, 1)], 1),
    ([(3, 4), (5, 4)], 0),
    ([(3, 4), (3, 0), (3, 2)], -1),
    ([(6,), (1,)], 0),
    ([(0, 3, 2), (0, 5, 2)], 1),
    ([(2, 3, 5)], 2),
    ([(16, 64, 28, 28), (16, 128, 28, 28), (16, 32, 28, 28), (16, 32, 28, 28)], 1),  # an Inception block
]


@pytest.mark.parametrize("shapes,dim", CAT_CASES, ids=str)
def test_concat_and_split_match_cpu_exactly(gpu, shapes, dim):
    rng = np.random.default_rng(8)
    parts = [random_array(rng, *shape) for shape in shapes]
    y, y_gpu = both(gpu, "concat", parts, dim)
    np.testing.assert_array_equal(y_gpu, y)
    sizes = [shape[dim] for shape in shapes]
    back, back_gpu = both(gpu, "split", y, sizes, dim)
    assert len(back_gpu) == len(parts)
    for expected, actual in zip(back, back_gpu):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("shape,stride,before,after",
                         [((64, 16, 32, 32), 2, 8, 8), ((3, 5, 7, 9), 2, 1, 4), ((2, 4, 10, 11), 3, 3, 0)], ids=str)
def test_subsample_pad_channels_matches_cpu_exactly(gpu, shape, stride, before, after):
    rng = np.random.default_rng(9)
    x = random_array(rng, *shape)
    y, y_gpu = both(gpu, "subsample_pad_channels", x, stride, before, after)
    np.testing.assert_array_equal(y_gpu, y)
    grad = random_array(rng, *y.shape)
    dx, dx_gpu = both(gpu, "subsample_pad_channels_backward", grad, list(shape), stride, before, after)
    np.testing.assert_array_equal(dx_gpu, dx)


# ------------------------------------------------------------------ errors
Z23, Z32 = np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)


@pytest.mark.parametrize(
    "name,args,kwargs",
    [
        ("relu_backward", (Z23, Z32), {}),
        ("silu_backward", (Z23, Z32), {}),
        ("tanh_forward", (Z23,), {"out": np.zeros((2, 4), np.float32)}),
        ("gelu_tanh_backward", (np.zeros(3, np.float32), np.zeros(3, np.int64)), {}),
        ("relu_forward", (np.zeros(3, np.int64),), {}),
        ("leaky_relu_forward", (Z23, float("nan")), {}),
        ("dropout_forward", (np.zeros(3, np.float32), 2.0, 0), {}),
        ("dropout_forward", (Z23, 0.5, 0), {"mask_ndim": 3}),
        ("dropout_backward", (np.zeros(3, np.float32), np.zeros(3, np.int64), 0.5), {}),
        ("dropout_backward", (np.zeros(3, np.float32), np.zeros(4, np.uint8), 0.5), {}),
        ("dropout_backward", (np.zeros((2, 3, 4), np.float32), np.zeros((2, 4), np.uint8), 0.5), {}),
        ("add", (Z23, Z32), {}),
        ("mul", (Z23, np.zeros((2, 3), np.int64)), {}),
        ("sum", (np.zeros(3, np.int64),), {}),
        ("norm", (Z23, -1.0), {}),
        ("concat", ([], 0), {}),
        ("concat", ([Z23, np.zeros((4, 4), np.float32)], 0), {}),
        ("concat", ([np.zeros((), np.float32)], 0), {}),
        ("concat", ([Z23], 2), {}),
        ("split", (np.zeros((2, 6), np.float32), [2, 3], 1), {}),
        ("split", (np.zeros((2, 6), np.float32), [7, -1], 1), {}),
        ("split", (np.zeros((2, 6), np.float32), [], 1), {}),
        ("subsample_pad_channels", (np.zeros((2, 3, 4), np.float32), 2, 1, 1), {}),
        ("subsample_pad_channels_backward", (np.zeros((2, 5, 2, 2), np.float32), [2, 3, 4, 4], 2, 1, 2), {}),
    ],
)
def test_errors_match_cpu(gpu, name, args, kwargs):
    assert_same_error(gpu, name, *args, **kwargs)
