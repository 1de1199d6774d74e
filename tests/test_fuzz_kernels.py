"""Property-based sweep of the kernels: random conv2d, max/avg/adaptive pooling, batch norm and
local response norm configurations, forward and every backward pass, against the float64
references in ``references.py``, on every ISA and at 1-3 kernel threads.

Two profiles: a quick one (``FUZZ_EXAMPLES_QUICK`` examples per op and ISA, derandomised so
every run checks the same cases) in the default run, and a long one behind the ``slow`` marker
(``pytest -m slow tests/test_fuzz_kernels.py``) with ``FUZZ_EXAMPLES_LONG`` random examples per
op and ISA. A failure prints the configuration (hypothesis shrinks it to a small one).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import backend
from references import (
    adaptive_reference,
    avg_pool_reference,
    batch_norm_reference,
    conv2d_reference,
    lrn_reference,
    max_pool_reference,
)
from support import RTOL

FUZZ_EXAMPLES_QUICK = 25
FUZZ_EXAMPLES_LONG = 2000

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILES = [
    pytest.param(settings(max_examples=FUZZ_EXAMPLES_QUICK, derandomize=True, **_COMMON), id="quick"),
    pytest.param(settings(max_examples=FUZZ_EXAMPLES_LONG, derandomize=False, print_blob=True, **_COMMON),
                 id="long", marks=pytest.mark.slow),
]


def run_property(profile, strategy, check):
    """Runs ``check(case)`` on examples of ``strategy`` under the hypothesis ``profile``; each
    example also draws the kernel thread count (restored afterwards)."""

    @profile
    @given(case=strategy, threads=st.integers(1, 3))
    def property_holds(case, threads):
        note(f"threads={threads} isa={backend.isa()} case={case}")
        previous = backend.get_num_threads()
        backend.set_num_threads(threads)
        try:
            check(case)
        finally:
            backend.set_num_threads(previous)

    property_holds()


def assert_close(actual, expected, what, magnitude=0.0, condition=1.0):
    """Max error within RTOL of the larger of the reference's scale and ``magnitude`` (the size
    of the terms a result is summed from, for results that cancel to near zero). ``condition``
    widens the bound for ill-conditioned inputs by what float32 rounding of them alone costs."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), magnitude, 1e-6)
    error = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0)) / scale
    bound = max(RTOL, 8 * float(np.finfo(np.float32).eps) * condition)
    assert error <= bound, f"{what}: relative error {error:.3g} > {bound:g}"


def _rng(seed):
    return np.random.default_rng(seed)


def _values(rng, shape, ties):
    """Standard normal float32 values, or small integers (many exact ties) when ``ties``."""
    if ties:
        return rng.integers(-2, 3, size=shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def _min_size(span, padding):
    """Smallest input length that gives at least one output for a window of ``span``."""
    return max(1, span - 2 * padding)


# ------------------------------------------------------------------ conv2d
@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 4))
    in_per_group = draw(st.one_of(st.integers(1, 4), st.integers(5, 20)))
    out_per_group = draw(st.one_of(st.integers(1, 4), st.integers(5, 20)))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    sizes = []
    for axis in range(2):
        low = _min_size(dilation[axis] * (kernel[axis] - 1) + 1, padding[axis])
        sizes.append(draw(st.integers(low, low + 14)))
    return dict(batch=draw(st.integers(1, 4)), in_channels=groups * in_per_group, size=tuple(sizes),
                out_channels=groups * out_per_group, kernel=kernel, stride=stride, padding=padding,
                dilation=dilation, groups=groups, bias=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


@st.composite
def winograd_conv_cases(draw):
    """3x3 stride-1 convolutions with 16+ channels: the shapes the Winograd path takes."""
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    size = tuple(draw(st.integers(_min_size(3, p), 13)) for p in padding)
    return dict(batch=draw(st.integers(1, 3)), in_channels=draw(st.integers(16, 40)), size=size,
                out_channels=draw(st.integers(16, 40)), kernel=(3, 3), stride=(1, 1), padding=padding,
                dilation=(1, 1), groups=1, bias=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


def check_conv2d(case):
    rng = _rng(case["seed"])
    x = _values(rng, (case["batch"], case["in_channels"]) + case["size"], False)
    w = _values(rng, (case["out_channels"], case["in_channels"] // case["groups"]) + case["kernel"], False)
    b = _values(rng, (case["out_channels"],), False) if case["bias"] else None
    geometry = (case["stride"], case["padding"], case["dilation"], case["groups"])
    xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(w, requires_grad=True)
    bt = None if b is None else pcn.tensor(b, requires_grad=True)
    y = F.conv2d(xt, wt, bt, *geometry)
    gy = _values(rng, y.shape, False)
    (y * pcn.tensor(gy)).sum().backward()
    ref_y, ref_dx, ref_dw, ref_db = conv2d_reference(x, w, b, gy, *geometry)
    assert_close(y.detach().numpy(), ref_y, "output")
    assert_close(xt.grad.numpy(), ref_dx, "grad_input")
    assert_close(wt.grad.numpy(), ref_dw, "grad_weight")
    if b is not None:
        assert_close(bt.grad.numpy(), ref_db, "grad_bias")



# ------------------------------------------------------------------ pooling
@st.composite
def pool_cases(draw, max_pool):
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if max_pool else (1, 1)
    case = dict(batch=draw(st.integers(1, 3)), channels=draw(st.integers(1, 9)), kernel=kernel,
                stride=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
                padding=(draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2))),
                dilation=dilation, ceil_mode=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))
    sizes = []
    for axis in range(2):
        low = _min_size(dilation[axis] * (kernel[axis] - 1) + 1, case["padding"][axis])
        sizes.append(draw(st.integers(low, low + 12)))
    case["size"] = tuple(sizes)
    if max_pool:
        case["ties"] = draw(st.booleans())
        case["nan"] = draw(st.booleans())
    else:
        case["count_include_pad"] = draw(st.booleans())
        case["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 30)))
    return case


def _pool_input(case, ties=False):
    rng = _rng(case["seed"])
    return rng, _values(rng, (case["batch"], case["channels"]) + case["size"], ties)


def _backprop(y, rng):
    gy = _values(rng, y.shape, False)
    (y * pcn.tensor(gy)).sum().backward()
    return gy


def check_max_pool2d(case):
    rng, x = _pool_input(case, case["ties"])
    if case["nan"]:
        x[rng.random(x.shape) < 0.1] = np.nan
    geometry = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    xt = pcn.tensor(x, requires_grad=True)
    y, indices = F.max_pool2d(xt, *geometry, return_indices=True)
    gy = _backprop(y, rng)
    ref_y, ref_idx, _, ref_dx = max_pool_reference(x, lambda shape: gy, *geometry)
    # The output is a copy of input elements: exact, NaN where the window holds one.
    assert np.array_equal(y.detach().numpy(), ref_y.astype(np.float32), equal_nan=True), "output"
    assert np.array_equal(indices.numpy(), ref_idx), "indices"
    assert_close(xt.grad.numpy(), ref_dx, "grad_input")


def check_avg_pool2d(case):
    rng, x = _pool_input(case)
    geometry = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"], case["count_include_pad"],
                case["divisor_override"])
    xt = pcn.tensor(x, requires_grad=True)
    y = F.avg_pool2d(xt, *geometry)
    gy = _backprop(y, rng)
    ref_y, _, ref_dx = avg_pool_reference(x, lambda shape: gy, *geometry)
    assert_close(y.detach().numpy(), ref_y, "output", magnitude=float(np.abs(x).max()))
    assert_close(xt.grad.numpy(), ref_dx, "grad_input")




@st.composite
def adaptive_cases(draw):
    return dict(batch=draw(st.integers(1, 3)), channels=draw(st.integers(1, 9)),
                size=(draw(st.integers(1, 12)), draw(st.integers(1, 12))),
                output_size=(draw(st.integers(1, 9)), draw(st.integers(1, 9))),
                mode=draw(st.sampled_from(["avg", "max"])), seed=draw(st.integers(0, 2**32 - 1)))


def check_adaptive_pool2d(case):
    rng, x = _pool_input(case)
    xt = pcn.tensor(x, requires_grad=True)
    if case["mode"] == "avg":
        y, indices = F.adaptive_avg_pool2d(xt, case["output_size"]), None
    else:
        y, indices = F.adaptive_max_pool2d(xt, case["output_size"], return_indices=True)
    gy = _backprop(y, rng)
    ref_y, ref_idx, _, ref_dx = adaptive_reference(x, lambda shape: gy, case["output_size"], case["mode"])
    assert_close(y.detach().numpy(), ref_y, "output", magnitude=float(np.abs(x).max()))
    if indices is not None:
        assert np.array_equal(indices.numpy(), ref_idx), "indices"
    assert_close(xt.grad.numpy(), ref_dx, "grad_input")



# ------------------------------------------------------------------ normalization
@st.composite
def batch_norm_cases(draw):
    spatial = draw(st.lists(st.integers(1, 9), min_size=0, max_size=2))
    batch = draw(st.integers(1, 6))
    training = draw(st.booleans())
    if training and batch * int(np.prod(spatial)) < 2:
        batch = 2  # training needs more than one value per channel
    return dict(shape=(batch, draw(st.integers(1, 20)), *spatial), training=training, affine=draw(st.booleans()),
                offset=draw(st.sampled_from([0.0, 3.0, 100.0])), eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])),
                seed=draw(st.integers(0, 2**32 - 1)))


def check_batch_norm(case):
    rng = _rng(case["seed"])
    shape, channels = case["shape"], case["shape"][1]
    x = _values(rng, shape, False) * 2 + np.float32(case["offset"])
    gy = _values(rng, shape, False)
    weight = _values(rng, (channels,), False) if case["affine"] else None
    bias = _values(rng, (channels,), False) if case["affine"] else None
    running_mean = _values(rng, (channels,), False)
    running_var = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    rm_t, rv_t = pcn.tensor(running_mean), pcn.tensor(running_var)
    xt = pcn.tensor(x, requires_grad=True)
    wt = None if weight is None else pcn.tensor(weight, requires_grad=True)
    bt = None if bias is None else pcn.tensor(bias, requires_grad=True)
    momentum = 0.3
    y = F.batch_norm(xt, rm_t, rv_t, wt, bt, case["training"], momentum, case["eps"])
    (y * pcn.tensor(gy)).sum().backward()
    ref_y, ref_dx, ref_dw, ref_db, mean, var = batch_norm_reference(
        x, weight, bias, gy, case["eps"], case["training"], running_mean, running_var)
    # Bounds on the terms each result sums, for results that cancel to near zero.
    per_channel = (1, channels) + (1,) * (x.ndim - 2)
    xhat_max = float((np.abs(x - mean.reshape(per_channel)) / np.sqrt(var + case["eps"]).reshape(per_channel)).max())
    gain_max = float((np.ones(channels) if weight is None else np.abs(weight)).max() / np.sqrt(var + case["eps"]).min())
    gy_max = float(np.abs(gy).max())
    # x - mean loses the digits that the offset takes: a channel whose spread is small against its
    # values is ill-conditioned in float32 (batch 2 at offset 100 is).
    axes = (0,) + tuple(range(2, x.ndim))
    condition = float((np.abs(x).max(axis=axes) / np.sqrt(var + case["eps"])).max())
    assert_close(y.detach().numpy(), ref_y, "output", magnitude=xhat_max, condition=condition)
    assert_close(xt.grad.numpy(), ref_dx, "grad_input", magnitude=gain_max * gy_max, condition=condition)
    count = x.size // channels
    if weight is not None:
        assert_close(wt.grad.numpy(), ref_dw, "grad_weight", magnitude=gy_max * xhat_max * count, condition=condition)
        assert_close(bt.grad.numpy(), ref_db, "grad_bias", magnitude=gy_max * count)
    if case["training"]:
        assert_close(rm_t.numpy(), (1 - momentum) * running_mean + momentum * mean, "running_mean",
                     magnitude=abs(case["offset"]) + 1)
        assert_close(rv_t.numpy(), (1 - momentum) * running_var + momentum * var * count / (count - 1), "running_var")
    else:
        assert np.array_equal(rm_t.numpy(), running_mean) and np.array_equal(rv_t.numpy(), running_var)



@st.composite
def lrn_cases(draw):
    spatial = draw(st.lists(st.integers(1, 9), min_size=1, max_size=2))
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, 24)), *spatial), size=draw(st.integers(1, 9)),
                alpha=draw(st.sampled_from([1e-4, 0.05, 1.0])), beta=draw(st.sampled_from([0.5, 0.75, 1.3])),
                k=draw(st.sampled_from([1.0, 2.0])), scale=draw(st.sampled_from([1.0, 10.0])),
                seed=draw(st.integers(0, 2**32 - 1)))


def check_local_response_norm(case):
    rng = _rng(case["seed"])
    x = _values(rng, case["shape"], False) * np.float32(case["scale"])
    gy = _values(rng, case["shape"], False)
    xt = pcn.tensor(x, requires_grad=True)
    y = F.local_response_norm(xt, case["size"], case["alpha"], case["beta"], case["k"])
    (y * pcn.tensor(gy)).sum().backward()
    ref_y, ref_dx = lrn_reference(x, gy, case["size"], case["alpha"], case["beta"], case["k"])
    # scale >= k >= 1, so every term of the gradient is bounded by |gy| (1 + 2 beta |x|^2 alpha).
    magnitude = float(np.abs(gy).max()) * (1 + 2 * case["beta"] * case["alpha"] * float(np.abs(x).max()) ** 2)
    assert_close(y.detach().numpy(), ref_y, "output")
    assert_close(xt.grad.numpy(), ref_dx, "grad_input", magnitude=magnitude)


FUZZED = {
    "conv2d": (conv_cases, check_conv2d),
    "conv2d_winograd": (winograd_conv_cases, check_conv2d),
    "max_pool2d": (lambda: pool_cases(max_pool=True), check_max_pool2d),
    "avg_pool2d": (lambda: pool_cases(max_pool=False), check_avg_pool2d),
    "adaptive_pool2d": (adaptive_cases, check_adaptive_pool2d),
    "batch_norm": (batch_norm_cases, check_batch_norm),
    "local_response_norm": (lrn_cases, check_local_response_norm),
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("op", list(FUZZED))
def test_matches_float64_reference(isa, op, profile):
    strategy, check = FUZZED[op]
    run_property(profile, strategy(), check)
