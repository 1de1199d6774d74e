"""max_pool2d, avg_pool2d, adaptive_avg_pool2d and adaptive_max_pool2d: forward, indices and
backward against a float64 numpy reference and against PyTorch, on every ISA; bad arguments
raise clear errors."""


import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from references import adaptive_reference, avg_pool_reference, max_pool_reference
from support import assert_close, random_array


def _run(fn, x, gy=None, **kwargs):
    """Calls fn on a Tensor copy of x, backpropagates sum(y * gy); returns (y, indices, dx, gy)."""
    xt = pcn.tensor(x, requires_grad=True)
    out = fn(xt, **kwargs)
    y, indices = out if isinstance(out, tuple) else (out, None)
    if gy is None:
        gy = random_array(np.random.default_rng(99), *y.shape)
    (y * pcn.tensor(gy)).sum().backward()
    return y.detach().numpy(), None if indices is None else indices.numpy(), xt.grad.numpy(), gy


# ------------------------------------------------------------------ max_pool2d
# (batch, channels, H, W, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    (2, 3, 8, 8, 2, 2, 0, 1, False),  # the common 2x2/s2
    (3, 6, 28, 28, 2, 2, 0, 1, False),  # LeNet-5's two: a partial vector a row on every ISA
    (4, 16, 10, 10, 2, 2, 0, 1, False),
    (2, 3, 4, 70, 2, 2, 0, 1, True),  # 2x2/s2 rows of several vectors; ceil_mode without overhang
    (2, 3, 5, 9, 2, 2, 0, 1, False),  # odd sizes: the last row and column are dropped
    (2, 5, 13, 13, 3, 2, 1, 1, False),  # ResNet's 3x3/s2 with padding
    (1, 17, 27, 27, 3, 2, 0, 1, True),  # AlexNet-like, ceil_mode, odd channel count
    (3, 2, 9, 10, 3, 2, 1, 1, True),  # ceil_mode: last window starts in the input, overhangs padding
    (1, 2, 5, 5, 2, 2, 1, 1, True),  # ceil_mode last-window drop rule (would start in right padding)
    (2, 3, 6, 6, 3, 2, 1, 1, True),  # ceil_mode last window runs through the padding and beyond it
    (2, 3, 6, 7, (2, 3), (3, 2), (1, 1), 1, True),  # rectangular kernel, ceil
    (1, 1, 1, 1, 1, 1, 0, 1, False),  # batch 1, 1x1 image
    (2, 3, 2, 2, 4, 1, 1, 1, False),  # kernel equal to the padded input
    (2, 3, 4, 4, 4, 4, 0, 1, True),  # kernel equal to the input
    (2, 3, 7, 5, 2, 3, 0, 1, False),  # stride larger than the kernel
    (2, 3, 8, 8, 2, 3, 1, 1, True),  # stride larger than the kernel, ceil, padding
    (2, 4, 11, 11, 3, 1, 1, 2, False),  # dilation 2
    (1, 3, 12, 13, 3, 2, 1, 3, True),  # dilation 3, ceil
    (2, 3, 7, 7, 5, 1, 2, 1, False),  # padding = kernel/2
    (3, 9, 7, 5, 3, 3, 1, 1, True),  # odd sizes
    (2, 19, 32, 40, 3, 2, 1, 1, False),  # wide rows: long interior runs
]


def _max_kwargs(case):
    kernel, stride, padding, dilation, ceil_mode = case[4:]
    return dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool2d_matches_float64_reference(isa, case):
    x = random_array(np.random.default_rng(0), *case[:4])
    y, indices, dx, gy = _run(F.max_pool2d, x, return_indices=True, **_max_kwargs(case))
    ref_y, ref_idx, _, ref_dx = max_pool_reference(x, lambda s: gy, *case[4:])
    assert_close(y, ref_y, what="output")
    assert np.array_equal(indices, ref_idx)
    assert_close(dx, ref_dx, what="grad_input")


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool2d_matches_torch(isa, case):
    torch = pytest.importorskip("torch")
    x = random_array(np.random.default_rng(1), *case[:4])
    y, indices, dx, gy = _run(F.max_pool2d, x, return_indices=True, **_max_kwargs(case))
    tx = torch.tensor(x, requires_grad=True)
    ty, ti = torch.nn.functional.max_pool2d(tx, return_indices=True, **_max_kwargs(case))
    ty.backward(torch.tensor(gy))
    assert np.array_equal(y, ty.detach().numpy())
    assert np.array_equal(indices, ti.numpy())
    assert_close(dx, tx.grad.numpy(), what="grad_input")


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 1)])
def test_max_pool2d_ties_and_nan_match_torch(isa, kernel, stride, padding):
    """Ties keep the first maximum in window order; a NaN in the window wins."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, size=(2, 3, 9, 11)).astype(np.float32)  # many ties
    x[rng.random(x.shape) < 0.05] = np.nan
    x[0, 0, :3, :3] = np.nan  # whole windows of NaN
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding)
    y, indices, dx, gy = _run(F.max_pool2d, x, return_indices=True, **kwargs)
    ty, ti = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kwargs)
    assert np.array_equal(y, ty.numpy(), equal_nan=True)
    assert np.array_equal(indices, ti.numpy())
    ref_y, ref_idx, _, _ = max_pool_reference(x, lambda s: gy, kernel, stride, padding, 1, False)
    assert np.array_equal(indices, ref_idx)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, **kwargs).backward(torch.tensor(gy))
    assert_close(dx, tx.grad.numpy(), what="grad_input")


def test_max_pool2d_all_negative_infinity_window():
    x = np.full((1, 1, 4, 4), -np.inf, dtype=np.float32)
    y, indices = F.max_pool2d(pcn.tensor(x), 2, return_indices=True)
    assert np.all(y.numpy() == -np.inf)
    assert indices.numpy().ravel().tolist() == [0, 2, 8, 10]


@pytest.mark.parametrize("kernel,stride,padding,ceil_mode", [(3, 1, 1, False), (3, 2, 1, True), (2, 2, 1, False)])
def test_max_pool2d_negative_infinity_beside_padding_matches_torch(isa, kernel, stride, padding, ceil_mode):
    """Windows whose inputs are all -inf next to the padding take their first tap inside the
    input, as torch, never a padding position."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = random_array(rng, 2, 3, 9, 12)
    x[rng.random(x.shape) < 0.3] = -np.inf
    x[:, 0] = -np.inf  # whole planes
    x[:, 1, :3, :] = -np.inf  # the top rows
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    y, indices, _, _ = _run(F.max_pool2d, x, return_indices=True, **kwargs)
    ty, ti = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kwargs)
    assert np.array_equal(y, ty.numpy())
    assert np.array_equal(indices, ti.numpy())


def test_max_pool2d_window_without_input_elements(isa):
    """A dilated window can skip over a tiny input entirely: -inf, index -1, no gradient (torch
    reports an index outside the plane here)."""
    xt = pcn.tensor(np.ones((1, 1, 1, 1), np.float32), requires_grad=True)
    y, indices = F.max_pool2d(xt, 2, stride=1, padding=1, dilation=2, return_indices=True)
    assert y.detach().numpy().ravel().tolist() == [-np.inf] and indices.numpy().ravel().tolist() == [-1]
    (y * pcn.tensor(np.ones((1, 1, 1, 1), np.float32))).sum().backward()
    assert xt.grad.numpy().ravel().tolist() == [0.0]


# ------------------------------------------------------------------ avg_pool2d
# (batch, channels, H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    (2, 3, 8, 8, 2, 2, 0, False, True, None),
    (2, 3, 7, 7, 3, 2, 1, True, True, None),  # ceil window beyond the padded input: not counted
    (2, 3, 7, 7, 3, 2, 1, True, False, None),  # count_include_pad False
    (1, 5, 5, 5, 2, 2, 1, True, True, None),  # last-window drop rule
    (2, 3, 6, 6, 3, 2, 1, True, True, None),  # last window: input, padding, then beyond the padded input
    (2, 3, 6, 5, (3, 2), (2, 3), (1, 1), False, False, None),  # rectangular, stride > kernel along W
    (2, 3, 6, 6, 3, 2, 1, False, True, 5),  # divisor_override
    (2, 3, 6, 6, 3, 2, 1, True, False, 1),  # divisor_override wins over count_include_pad
    (1, 1, 1, 1, 1, 1, 0, False, True, None),  # 1x1
    (2, 17, 2, 2, 4, 1, 1, False, True, None),  # kernel equal to the padded input
    (2, 3, 9, 9, 2, 3, 0, True, True, None),  # stride larger than the kernel, ceil
    (2, 3, 7, 7, 5, 1, 2, False, False, None),  # padding = kernel/2
    (3, 9, 13, 13, 3, 2, 1, True, True, None),  # odd sizes, ceil
    (2, 19, 31, 40, 3, 2, 1, False, True, None),  # wide rows
]


def _avg_kwargs(case):
    kernel, stride, padding, ceil_mode, count_include_pad, divisor = case[4:]
    return dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                count_include_pad=count_include_pad, divisor_override=divisor)


@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool2d_matches_float64_reference_and_torch(isa, case):
    x = random_array(np.random.default_rng(3), *case[:4])
    y, _, dx, gy = _run(F.avg_pool2d, x, **_avg_kwargs(case))
    ref_y, _, ref_dx = avg_pool_reference(x, lambda s: gy, *case[4:])
    assert_close(y, ref_y, what="output")
    assert_close(dx, ref_dx, what="grad_input")
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, **_avg_kwargs(case))
    ty.backward(torch.tensor(gy))
    assert_close(y, ty.detach().numpy(), what="output vs torch")
    assert_close(dx, tx.grad.numpy(), what="grad_input vs torch")


# ------------------------------------------------------------------ adaptive pooling
# (batch, channels, H, W, output_size)
ADAPTIVE_CASES = [
    (2, 3, 7, 7, (3, 3)),  # windows that overlap (7 -> 3)
    (2, 3, 5, 5, (7, 7)),  # output larger than the input
    (2, 17, 8, 6, (1, 1)),  # global pooling
    (1, 3, 9, 4, (2, 3)),
    (2, 5, 6, 6, (6, 6)),  # identity
    (1, 1, 1, 1, (1, 1)),
    (2, 512, 7, 7, (1, 1)),  # ResNet's head
]


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=str)
def test_adaptive_pool2d_matches_float64_reference_and_torch(isa, case, mode):
    x = random_array(np.random.default_rng(4), *case[:4])
    fn = F.adaptive_avg_pool2d if mode == "avg" else F.adaptive_max_pool2d
    kwargs = {} if mode == "avg" else dict(return_indices=True)
    y, indices, dx, gy = _run(fn, x, output_size=case[4], **kwargs)
    ref_y, ref_idx, _, ref_dx = adaptive_reference(x, lambda s: gy, case[4], mode)
    assert_close(y, ref_y, what="output")
    assert_close(dx, ref_dx, what="grad_input")
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    if mode == "avg":
        ty = torch.nn.functional.adaptive_avg_pool2d(tx, case[4])
    else:
        ty, ti = torch.nn.functional.adaptive_max_pool2d(tx, case[4], return_indices=True)
        assert np.array_equal(indices, ref_idx)
        assert np.array_equal(indices, ti.numpy())
    ty.backward(torch.tensor(gy))
    assert_close(y, ty.detach().numpy(), what="output vs torch")
    assert_close(dx, tx.grad.numpy(), what="grad_input vs torch")


def test_adaptive_max_pool2d_ties_and_nan_match_torch(isa):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2, size=(2, 3, 7, 9)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    y, indices = F.adaptive_max_pool2d(pcn.tensor(x), (3, 4), return_indices=True)
    ty, ti = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), (3, 4), return_indices=True)
    assert np.array_equal(y.numpy(), ty.numpy(), equal_nan=True)
    assert np.array_equal(indices.numpy(), ti.numpy())


@pytest.mark.parametrize("output_size,expected", [(4, (4, 4)), ((None, 3), (10, 3)), ([2, None], (2, 7)), ((None, None), (10, 7))])
def test_adaptive_output_size_forms(output_size, expected):
    torch = pytest.importorskip("torch")
    x = random_array(np.random.default_rng(6), 2, 3, 10, 7)
    for fn, tfn in [(F.adaptive_avg_pool2d, torch.nn.functional.adaptive_avg_pool2d),
                    (F.adaptive_max_pool2d, torch.nn.functional.adaptive_max_pool2d)]:
        y = fn(pcn.tensor(x), output_size)
        assert tuple(y.shape) == (2, 3) + expected
        assert_close(y.numpy(), tfn(torch.tensor(x), output_size).numpy(), what=fn.__name__)


# ------------------------------------------------------------------ shared behaviour
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
        ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        ("adaptive_avg_pool2d", dict(output_size=(2, 3))),
        ("adaptive_max_pool2d", dict(output_size=(2, 3))),
    ],
)
def test_unbatched_input_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    x = random_array(np.random.default_rng(7), 3, 9, 8)
    y, _, dx, gy = _run(getattr(F, name), x, **kwargs)
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, name)(tx, **kwargs)
    ty.backward(torch.tensor(gy))
    assert y.shape == tuple(ty.shape)
    assert_close(y, ty.detach().numpy(), what="output")
    assert_close(dx, tx.grad.numpy(), what="grad_input")


def test_indices_are_int64_and_not_differentiable():
    xt = pcn.tensor(random_array(np.random.default_rng(8), 1, 2, 4, 4), requires_grad=True)
    for y, indices in (F.max_pool2d(xt, 2, return_indices=True), F.adaptive_max_pool2d(xt, 2, return_indices=True)):
        assert y.requires_grad
        assert indices.numpy().dtype == np.int64
        assert not indices.requires_grad


@pytest.mark.parametrize(
    "call",
    [
        lambda x: F.max_pool2d(x, 2),
        lambda x: F.avg_pool2d(x, 3, 2, 1),
        lambda x: F.adaptive_avg_pool2d(x, 3),
        lambda x: F.adaptive_max_pool2d(x, 3),
    ],
)
def test_empty_batch(call):
    xt = pcn.tensor(np.zeros((0, 3, 6, 6), np.float32), requires_grad=True)
    y = call(xt)
    assert y.shape[0] == 0 and y.shape[1] == 3
    y.sum().backward()
    assert xt.grad.shape == (0, 3, 6, 6)


def test_pooling_is_deterministic():
    x = random_array(np.random.default_rng(9), 4, 16, 15, 17)
    calls = [
        lambda t: F.max_pool2d(t, 3, 2, 1),
        lambda t: F.avg_pool2d(t, 3, 1, 1),
        lambda t: F.adaptive_avg_pool2d(t, (4, 5)),
        lambda t: F.adaptive_max_pool2d(t, (4, 5)),
    ]
    for call in calls:
        results = []
        for _ in range(2):
            y, _, dx, _ = _run(call, x)
            results.append((y.copy(), dx.copy()))
        for first, second in zip(*results):
            assert np.array_equal(first, second)


def test_results_do_not_depend_on_thread_count():
    """Every output and every dx plane is computed by one thread: any thread count agrees bitwise."""
    x = random_array(np.random.default_rng(10), 3, 5, 14, 13)
    previous = pcn.backend.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            pcn.backend.set_num_threads(threads)
            results.append([_run(call, x)[2] for call in (lambda t: F.max_pool2d(t, 3, 2, 1),
                                                            lambda t: F.avg_pool2d(t, 2, 1, 1, True, False),
                                                            lambda t: F.adaptive_avg_pool2d(t, 3))])
    finally:
        pcn.backend.set_num_threads(previous)
    for first, second in zip(*results):
        assert np.array_equal(first, second)


# ------------------------------------------------------------------ bad input
def _x(*shape):
    return pcn.zeros(*shape) if shape else pcn.zeros(2, 3, 8, 8)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.max_pool2d(_x().long(), 2), TypeError, "input must be a float32"),
        (lambda: F.adaptive_avg_pool2d(_x().long(), 2), TypeError, "input must be a float32"),
        (lambda: F.max_pool2d(_x(8, 8), 2), ValueError, r"max_pool2d: input must be 3-D .* or 4-D .*\(8, 8\)"),
        (lambda: F.avg_pool2d(_x(1, 2, 3, 8, 8), 2), ValueError, r"avg_pool2d: input must be 3-D .*\(1, 2, 3, 8, 8\)"),
        (lambda: F.adaptive_max_pool2d(_x(8,), 2), ValueError, "adaptive_max_pool2d: input must be 3-D"),
        (lambda: F.max_pool2d(_x(), 3, padding=2), ValueError,
         r"padding should be at most half of kernel_size, got padding=\(2, 2\) and kernel_size=\(3, 3\)"),
        (lambda: F.avg_pool2d(_x(), (2, 4), padding=(1, 3)), ValueError, r"avg_pool2d: padding should be at most half"),
        (lambda: F.max_pool2d(_x(2, 3, 3, 3), 5), ValueError, r"larger than the padded input height \(3 \+ 2\*0 = 3\)"),
        (lambda: F.max_pool2d(_x(2, 3, 3, 3), 3, dilation=2), ValueError, "spanning 5"),
        (lambda: F.max_pool2d(_x(), 0), ValueError, "kernel_size must be positive"),
        (lambda: F.avg_pool2d(_x(), (2, -1)), ValueError, "kernel_size must be positive"),
        (lambda: F.max_pool2d(_x(), 2, stride=0), ValueError, "stride must be positive"),
        (lambda: F.avg_pool2d(_x(), 2, stride=(1, -1)), ValueError, "stride must be positive"),
        (lambda: F.max_pool2d(_x(), 2, padding=-1), ValueError, "padding must be non-negative"),
        (lambda: F.max_pool2d(_x(), 2, dilation=0), ValueError, "dilation must be positive"),
        (lambda: F.max_pool2d(_x(), (2, 2, 2)), ValueError, "kernel_size must be an int or a pair"),
        (lambda: F.max_pool2d(_x(), 2, stride=1.5), TypeError, "stride must be an int"),
        (lambda: F.avg_pool2d(_x(), 2, divisor_override=0), ValueError, "divisor_override must be non-zero"),
        (lambda: F.avg_pool2d(_x(), 2, divisor_override=1.5), TypeError, "divisor_override must be an int"),
        (lambda: F.adaptive_avg_pool2d(_x(), 0), ValueError, r"output_size must be positive, got \(0, 0\) for input shape \[2, 3, 8, 8\]"),
        (lambda: F.adaptive_max_pool2d(_x(), (2, -3)), ValueError, r"output_size must be positive, got \(2, -3\)"),
        (lambda: F.adaptive_avg_pool2d(_x(), (1, 2, 3)), ValueError, "output_size must be an int or a pair"),
        (lambda: F.max_pool2d(_x(2, 0, 8, 8), 2), ValueError, r"positive channels.*\[2, 0, 8, 8\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _max_backward(grad_shape=(1, 1, 2, 2), indices=None, input_shape=(1, 1, 4, 4)):
    grad = np.zeros(grad_shape, np.float32)
    indices = np.zeros(grad_shape, np.int64) if indices is None else indices
    return _C.max_pool2d_backward(grad, indices, list(input_shape), (2, 2), (2, 2), (0, 0), (1, 1), False)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: _max_backward(indices=np.full((1, 1, 2, 2), 16, np.int64)), ValueError, r"indices must lie in \[0, 16\)"),
        (lambda: _max_backward(indices=np.full((1, 1, 2, 2), -7, np.int64)), ValueError, "got -7"),
        (lambda: _max_backward(indices=np.zeros((1, 1, 2, 3), np.int64)), ValueError, r"indices must have shape \[1, 1, 2, 2\], got \[1, 1, 2, 3\]"),
        (lambda: _max_backward(indices=np.zeros((1, 1, 2, 2), np.int32)), TypeError, "indices must be a int64"),
        (lambda: _max_backward(grad_shape=(1, 1, 3, 2)), ValueError, r"grad_output must have shape \[1, 1, 2, 2\]"),
        (lambda: _max_backward(input_shape=(1, 4, 4)), ValueError, "input_shape must have 4 entries"),
        (lambda: _max_backward(input_shape=(2**40, 2**40, 1, 1)), ValueError, "too large"),
        (lambda: _C.adaptive_max_pool2d_backward(np.zeros((1, 1, 2, 2), np.float32), np.full((1, 1, 2, 2), 9, np.int64), [1, 1, 3, 3]),
         ValueError, r"indices must lie in \[0, 9\)"),
        (lambda: _C.adaptive_avg_pool2d_backward(np.zeros((1, 1, 2, 2), np.float32), [1, 2, 3, 3]), ValueError,
         r"grad_output must have shape \[1, 2, 2, 2\]"),
        (lambda: _C.avg_pool2d_forward(np.zeros((1, 1, 4, 4), np.float32), (2**62, 2**62), (1, 1), (0, 0), False, True, 0),
         ValueError, "too large"),
        (lambda: _C.max_pool2d_forward(np.zeros((1, 1, 4, 4), np.float32), (2**40, 1), (1, 1), (0, 0), (2**40, 1), False),
         ValueError, "too large"),
    ],
)
def test_backward_bindings_reject_bad_indices_and_shapes(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("backward", ["max", "adaptive_max"])
def test_backward_kernels_report_the_first_index_outside_the_plane(isa, backward):
    """The kernels check the indices as they scatter (threaded over planes): the error names the
    first bad one in flat order, whichever thread met it, and -1 (an empty window) is accepted."""
    indices = np.zeros((2, 3, 2, 2), np.int64)
    indices[0, 0] = -1
    indices[1, 2, 1, 0] = 16  # flat position 22
    indices[1, 2, 1, 1] = -5
    grad = np.ones(indices.shape, np.float32)
    with pytest.raises(ValueError, match="got 16 at flat position 22"):
        if backward == "max":
            _C.max_pool2d_backward(grad, indices, [2, 3, 4, 4], (2, 2), (2, 2), (0, 0), (1, 1), False)
        else:
            _C.adaptive_max_pool2d_backward(grad, indices, [2, 3, 4, 4])
    indices[1, 2, 1] = 0
    dx = _C.max_pool2d_backward(grad, indices, [2, 3, 4, 4], (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert dx[0, 0].sum() == 0.0 and dx[1, 2, 0, 0] == 4.0
