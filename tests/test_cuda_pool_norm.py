"""GPU pooling, resampling and normalisation kernels (pyconvnet._C_cuda) against the CPU kernels
(pyconvnet._C) as the oracle, over the CPU tests' shape sweeps: max/avg/adaptive pooling and
interpolate forward and backward (argmax indices exactly), batch norm train/eval/backward with the
fused ReLU and the in-place running statistics, group / layer norm and LRN; zero-size inputs; and the
bindings' errors (same type, same message for ValueErrors)."""

import numpy as np
import pytest

from pyconvnet import _C
from support import assert_close, random_array

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def gpu():
    from pyconvnet.cuda import _module

    return _module()


def _upload(gpu, value):
    if isinstance(value, np.ndarray):
        return gpu.from_numpy(np.ascontiguousarray(value), 0)
    return value


def _download(gpu, value):
    if isinstance(value, tuple):
        return tuple(_download(gpu, v) for v in value)
    return None if value is None else gpu.to_numpy(value)


def run_both(gpu, name, *args, **kwargs):
    """(_C.name(...), gpu.name(...) downloaded) on the same arguments; arrays are uploaded first, so a
    CPU call that writes an argument in place cannot change the GPU's input."""
    dev_args = [_upload(gpu, a) for a in args]
    dev_kwargs = {k: _upload(gpu, v) for k, v in kwargs.items()}
    cpu = getattr(_C, name)(*args, **kwargs)
    return cpu, _download(gpu, getattr(gpu, name)(*dev_args, **dev_kwargs))


def check_same(cpu, dev, rtol=1e-5, what="value"):
    """Outputs of one call: None where the CPU gives None, integer arrays equal, float arrays close."""
    if isinstance(cpu, tuple):
        assert isinstance(dev, tuple) and len(dev) == len(cpu), what
        for i, (c, d) in enumerate(zip(cpu, dev)):
            check_same(c, d, rtol, f"{what}[{i}]")
        return
    if cpu is None:
        assert dev is None, what
        return
    assert (dev.dtype, dev.shape) == (cpu.dtype, cpu.shape), f"{what}: {dev.dtype}{dev.shape} != {cpu.dtype}{cpu.shape}"
    if cpu.dtype == np.int64:
        assert np.array_equal(dev, cpu), what
    else:
        assert_close(dev, cpu, rtol=rtol, what=what)


def check_same_error(gpu, name, *args, error=ValueError):
    """The GPU binding raises the CPU binding's error type, and for a ValueError its message."""
    dev_args = [_upload(gpu, a) for a in args]
    with pytest.raises(error) as cpu_error:
        getattr(_C, name)(*args)
    with pytest.raises(error) as dev_error:
        getattr(gpu, name)(*dev_args)
    if error is ValueError:
        assert str(dev_error.value) == str(cpu_error.value)


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


# ------------------------------------------------------------------ max_pool2d
# (batch, channels, H, W, kernel, stride, padding, dilation, ceil_mode): tests/test_pooling.py's sweep
# plus many channels and a large plane
MAX_CASES = [
    (2, 3, 8, 8, 2, 2, 0, 1, False),
    (2, 5, 13, 13, 3, 2, 1, 1, False),
    (1, 17, 27, 27, 3, 2, 0, 1, True),
    (3, 2, 9, 10, 3, 2, 1, 1, True),
    (1, 2, 5, 5, 2, 2, 1, 1, True),
    (2, 3, 6, 6, 3, 2, 1, 1, True),
    (2, 3, 6, 7, (2, 3), (3, 2), (1, 1), 1, True),
    (1, 1, 1, 1, 1, 1, 0, 1, False),  # batch 1, 1x1 image
    (2, 3, 2, 2, 4, 1, 1, 1, False),  # kernel equal to the padded input
    (2, 3, 4, 4, 4, 4, 0, 1, True),
    (2, 3, 7, 5, 2, 3, 0, 1, False),  # stride larger than the kernel
    (2, 3, 8, 8, 2, 3, 1, 1, True),
    (2, 4, 11, 11, 3, 1, 1, 2, False),  # dilation 2
    (1, 3, 12, 13, 3, 2, 1, 3, True),  # dilation 3, ceil
    (2, 3, 7, 7, 5, 1, 2, 1, False),
    (3, 9, 7, 5, 3, 3, 1, 1, True),
    (2, 19, 32, 40, 3, 2, 1, 1, False),
    (2, 300, 9, 9, 3, 2, 1, 1, True),  # many channels
    (1, 2, 130, 67, (3, 2), (1, 2), (1, 0), (2, 1), False),  # a plane larger than a block
    (1, 1, 1, 1, 2, 1, 1, 2, False),  # a dilated window without input elements: -inf, index -1
]


def _max_args(case):
    kernel, stride, padding, dilation, ceil_mode = case[4:]
    return _pair(kernel), _pair(stride), _pair(padding), _pair(dilation), ceil_mode


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool2d(gpu, case):
    rng = np.random.default_rng(0)
    x = random_array(rng, *case[:4])
    (y, indices), (dev_y, dev_indices) = run_both(gpu, "max_pool2d_forward", x, *_max_args(case))
    assert np.array_equal(dev_y, y) and np.array_equal(dev_indices, indices)
    gy = random_array(rng, *y.shape)
    check_same(*run_both(gpu, "max_pool2d_backward", gy, indices, list(x.shape), *_max_args(case)), what="dx")


@pytest.mark.sanitize_subset
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 1)])
def test_max_pool2d_ties_nan_and_infinity(gpu, kernel, stride, padding):
    """Ties keep the first maximum in window order, a NaN wins (the last one), -inf beside padding
    takes the first tap inside: the same values and indices as the CPU kernel."""
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 2, size=(2, 3, 9, 8)).astype(np.float32)
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[1, 2, 4, 4] = np.nan
    x[1, 1] = -np.inf
    x[0, 2, :3, :3] = -np.inf
    args = ((kernel, kernel), (stride, stride), (padding, padding), (1, 1), True)
    (y, indices), (dev_y, dev_indices) = run_both(gpu, "max_pool2d_forward", x, *args)
    assert np.array_equal(dev_y, y, equal_nan=True) and np.array_equal(dev_indices, indices)
    gy = random_array(rng, *y.shape)
    check_same(*run_both(gpu, "max_pool2d_backward", gy, indices, list(x.shape), *args), what="dx")


@pytest.mark.parametrize("backward", ["max", "adaptive_max"])
def test_max_backward_drops_indices_outside_their_window(gpu, backward):
    """The CPU bindings report an index outside the plane; the GPU cannot without waiting for the
    kernel, so such an index (or any not in its own window, which no forward pass writes) gets no
    gradient and nothing is written out of bounds: the CPU result with those indices set to -1."""
    rng = np.random.default_rng(2)
    x = random_array(rng, 2, 3, 4, 4)
    if backward == "max":
        args = ((2, 2), (2, 2), (0, 0), (1, 1), False)
        _, indices = _C.max_pool2d_forward(x, *args)
    else:
        args = ()
        _, indices = _C.adaptive_max_pool2d_forward(x, (2, 2))
    grad = random_array(rng, *indices.shape)
    bad = indices.copy()
    bad[0, 0, 0, 0], bad[1, 2, 1, 0], bad[1, 2, 1, 1], bad[0, 1, 0, 1] = 16, -5, 2**40, 0  # 0: another window's
    dev = gpu.to_numpy(getattr(gpu, f"{backward}_pool2d_backward")(_upload(gpu, grad), _upload(gpu, bad),
                                                                   [2, 3, 4, 4], *args))
    dropped = np.where(bad == indices, indices, -1)
    check_same(getattr(_C, f"{backward}_pool2d_backward")(grad, dropped, [2, 3, 4, 4], *args), dev)


# ------------------------------------------------------------------ avg_pool2d
# (batch, channels, H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    (2, 3, 8, 8, 2, 2, 0, False, True, 0),
    (2, 3, 7, 7, 3, 2, 1, True, True, 0),
    (2, 3, 7, 7, 3, 2, 1, True, False, 0),
    (1, 5, 5, 5, 2, 2, 1, True, True, 0),
    (2, 3, 6, 6, 3, 2, 1, True, True, 0),
    (2, 3, 6, 5, (3, 2), (2, 3), (1, 1), False, False, 0),
    (2, 3, 6, 6, 3, 2, 1, False, True, 5),
    (2, 3, 6, 6, 3, 2, 1, True, False, 1),
    (1, 1, 1, 1, 1, 1, 0, False, True, 0),
    (2, 17, 2, 2, 4, 1, 1, False, True, 0),
    (2, 3, 9, 9, 2, 3, 0, True, True, 0),
    (2, 3, 7, 7, 5, 1, 2, False, False, 0),
    (3, 9, 13, 13, 3, 2, 1, True, True, 0),
    (2, 19, 31, 40, 3, 2, 1, False, True, 0),
    (2, 300, 8, 8, 2, 2, 0, False, True, 0),
    (1, 2, 130, 67, (3, 4), (1, 3), (1, 2), True, False, 0),
]


def _avg_args(case):
    kernel, stride, padding, ceil_mode, count_include_pad, divisor = case[4:]
    return _pair(kernel), _pair(stride), _pair(padding), ceil_mode, count_include_pad, divisor


@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool2d(gpu, case):
    rng = np.random.default_rng(3)
    x = random_array(rng, *case[:4])
    y, dev_y = run_both(gpu, "avg_pool2d_forward", x, *_avg_args(case))
    check_same(y, dev_y, what="y")
    gy = random_array(rng, *y.shape)
    check_same(*run_both(gpu, "avg_pool2d_backward", gy, list(x.shape), *_avg_args(case)), what="dx")


# ------------------------------------------------------------------ adaptive pooling
ADAPTIVE_CASES = [
    (2, 3, 7, 7, (3, 3)),
    (2, 3, 5, 5, (7, 7)),  # output larger than the input
    (2, 17, 8, 6, (1, 1)),  # global pooling
    (1, 3, 9, 4, (2, 3)),
    (2, 5, 6, 6, (6, 6)),
    (1, 1, 1, 1, (1, 1)),
    (2, 512, 7, 7, (1, 1)),
    (1, 3, 67, 131, (5, 9)),
]


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=str)
def test_adaptive_pool2d(gpu, case):
    rng = np.random.default_rng(4)
    x = random_array(rng, *case[:4])
    x[0, 0, 0, :2] = np.nan
    y, dev_y = run_both(gpu, "adaptive_avg_pool2d_forward", x, case[4])
    assert_close(np.nan_to_num(dev_y), np.nan_to_num(y), rtol=1e-5, what="avg y")
    assert np.array_equal(np.isnan(dev_y), np.isnan(y))
    gy = random_array(rng, *y.shape)
    check_same(*run_both(gpu, "adaptive_avg_pool2d_backward", gy, list(x.shape)), what="avg dx")
    (y, indices), (dev_y, dev_indices) = run_both(gpu, "adaptive_max_pool2d_forward", x, case[4])
    assert np.array_equal(dev_y, y, equal_nan=True) and np.array_equal(dev_indices, indices)
    check_same(*run_both(gpu, "adaptive_max_pool2d_backward", gy, indices, list(x.shape)), what="max dx")


# ------------------------------------------------------------------ interpolate
# (input shape, output size, scale factors or (0, 0))
RESAMPLE_CASES = [
    ((2, 3, 4, 5), (8, 10), (2.0, 2.0)),
    ((1, 1, 1, 1), (3, 2), (0.0, 0.0)),
    ((2, 17, 7, 9), (5, 13), (0.0, 0.0)),
    ((1, 2, 6, 6), (3, 9), (0.5, 1.5)),
    ((1, 2, 5, 7), (8, 11), (1.7, 1.7)),
    ((3, 4, 8, 8), (8, 8), (0.0, 0.0)),
    ((1, 2, 3, 3), (1, 1), (0.0, 0.0)),
    ((1, 3, 67, 40), (131, 9), (0.0, 0.0)),
]


@pytest.mark.parametrize("mode,align_corners", [("nearest", False), ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("shape,size,scales", RESAMPLE_CASES, ids=str)
def test_interpolate(gpu, mode, align_corners, shape, size, scales):
    rng = np.random.default_rng(5)
    x = random_array(rng, *shape)
    y, dev_y = run_both(gpu, "interpolate_forward", x, size, scales, mode, align_corners)
    check_same(y, dev_y, what="y")
    gy = random_array(rng, *y.shape)
    check_same(*run_both(gpu, "interpolate_backward", gy, list(shape), scales, mode, align_corners), what="dx")


# ------------------------------------------------------------------ pooling: empty batch and errors
def test_pooling_empty_batch(gpu):
    x = np.zeros((0, 3, 6, 6), np.float32)
    for name, args in [("max_pool2d_forward", ((2, 2), (2, 2), (0, 0), (1, 1), False)),
                       ("avg_pool2d_forward", ((3, 3), (2, 2), (1, 1), False, True, 0)),
                       ("adaptive_avg_pool2d_forward", ((3, 3),)), ("adaptive_max_pool2d_forward", ((3, 3),)),
                       ("interpolate_forward", ((4, 4), (0.0, 0.0), "bilinear", False))]:
        check_same(*run_both(gpu, name, x, *args), what=name)
    gy = np.zeros((0, 3, 3, 3), np.float32)
    check_same(*run_both(gpu, "avg_pool2d_backward", gy, [0, 3, 6, 6], (3, 3), (2, 2), (1, 1), False, True, 0))
    check_same(*run_both(gpu, "adaptive_max_pool2d_backward", gy, np.zeros(gy.shape, np.int64), [0, 3, 6, 6]))


POOL_ERRORS = [
    ("max_pool2d_forward", (np.zeros((2, 3, 8, 8), np.float32), (3, 3), (1, 1), (2, 2), (1, 1), False)),
    ("max_pool2d_forward", (np.zeros((2, 3, 3, 3), np.float32), (5, 5), (1, 1), (0, 0), (1, 1), False)),
    ("max_pool2d_forward", (np.zeros((2, 3, 3, 3), np.float32), (3, 3), (1, 1), (0, 0), (2, 2), False)),
    ("max_pool2d_forward", (np.zeros((2, 3, 8, 8), np.float32), (2, 2), (0, 1), (0, 0), (1, 1), False)),
    ("max_pool2d_forward", (np.zeros((8, 8), np.float32), (2, 2), (2, 2), (0, 0), (1, 1), False)),
    ("max_pool2d_forward", (np.zeros((2, 0, 8, 8), np.float32), (2, 2), (2, 2), (0, 0), (1, 1), False)),
    ("max_pool2d_backward", (np.zeros((1, 1, 3, 2), np.float32), np.zeros((1, 1, 2, 2), np.int64), [1, 1, 4, 4],
                             (2, 2), (2, 2), (0, 0), (1, 1), False)),
    ("max_pool2d_backward", (np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 2, 3), np.int64), [1, 1, 4, 4],
                             (2, 2), (2, 2), (0, 0), (1, 1), False)),
    ("max_pool2d_backward", (np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 2, 2), np.int64), [1, 4, 4],
                             (2, 2), (2, 2), (0, 0), (1, 1), False)),
    ("avg_pool2d_forward", (np.zeros((2, 3, 8, 8), np.float32), (2, 4), (2, 4), (1, 3), False, True, 0)),
    ("avg_pool2d_forward", (np.zeros((1, 1, 4, 4), np.float32), (2**62, 2**62), (1, 1), (0, 0), False, True, 0)),
    ("adaptive_avg_pool2d_forward", (np.zeros((2, 3, 8, 8), np.float32), (0, 0))),
    ("adaptive_max_pool2d_forward", (np.zeros((2, 3, 8, 8), np.float32), (2, -3))),
    ("adaptive_avg_pool2d_backward", (np.zeros((1, 1, 2, 2), np.float32), [1, 2, 3, 3])),
    ("interpolate_forward", (np.zeros((1, 2, 3, 3), np.float32), (4, 4), (0.0, 0.0), "bicubic", False)),
    ("interpolate_forward", (np.zeros((1, 2, 3, 3), np.float32), (0, 4), (0.0, 0.0), "nearest", False)),
    ("interpolate_forward", (np.zeros((2, 3, 3), np.float32), (4, 4), (0.0, 0.0), "nearest", False)),
    ("interpolate_backward", (np.zeros((1, 2, 4, 5), np.float32), [1, 3, 3, 3], (0.0, 0.0), "nearest", False)),
]


@pytest.mark.parametrize("name,args", POOL_ERRORS, ids=lambda v: v if isinstance(v, str) else None)
def test_pooling_errors_match_the_cpu(gpu, name, args):
    check_same_error(gpu, name, *args)


def test_pooling_dtype_errors(gpu):
    x = np.zeros((2, 3, 8, 8), np.int64)
    check_same_error(gpu, "max_pool2d_forward", x, (2, 2), (2, 2), (0, 0), (1, 1), False, error=TypeError)
    check_same_error(gpu, "adaptive_avg_pool2d_forward", x, (2, 2), error=TypeError)
    check_same_error(gpu, "max_pool2d_backward", np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 2, 2), np.uint8),
                     [1, 1, 4, 4], (2, 2), (2, 2), (0, 0), (1, 1), False, error=TypeError)


# ------------------------------------------------------------------ batch norm
# tests/test_normalization.py's shapes, many channels, and 64 x 64 x 64 values per channel (a reduction
# far longer than one block)
BN_SHAPES = [(4, 3, 5, 5), (1, 3, 4, 4), (8, 5), (130, 7), (2, 1, 7), (3, 17, 3, 3), (5, 3, 1, 1), (2, 20, 9, 11),
             (1, 2, 70, 70), (4, 300, 3, 3), (300, 37), (64, 2, 64, 64)]


def _bn_params(rng, channels, affine):
    if not affine:
        return None, None
    return random_array(rng, channels) + 1, random_array(rng, channels)


@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn_relu"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_train_and_backward(gpu, shape, affine, relu):
    rng = np.random.default_rng(6)
    x = random_array(rng, *shape) * 2 + 0.5
    w, b = _bn_params(rng, shape[1], affine)
    rm, rv = random_array(rng, shape[1]), np.abs(random_array(rng, shape[1])) + 0.5
    cpu_rm, cpu_rv, dev_rm, dev_rv = rm.copy(), rv.copy(), _upload(gpu, rm), _upload(gpu, rv)
    cpu = _C.batch_norm_forward_train(x, cpu_rm, cpu_rv, w, b, 0.3, 1e-5, relu=relu)
    dev = gpu.batch_norm_forward_train(_upload(gpu, x), dev_rm, dev_rv, _upload(gpu, w), _upload(gpu, b), 0.3, 1e-5,
                                       relu=relu)
    check_same(cpu, _download(gpu, dev), what="forward")
    check_same(cpu_rm, gpu.to_numpy(dev_rm), what="running_mean")
    check_same(cpu_rv, gpu.to_numpy(dev_rv), what="running_var")
    y, mean, invstd = cpu
    gy = random_array(rng, *shape)
    for mask in [(True, True, True), (True, False, False), (False, affine, True)]:
        check_same(*run_both(gpu, "batch_norm_backward", gy, x, mean, invstd, w, True, mask, y if relu else None),
                   rtol=2e-5, what=f"backward {mask}")


@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn_relu"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_eval_and_backward(gpu, shape, affine, relu):
    rng = np.random.default_rng(7)
    x = random_array(rng, *shape)
    w, b = _bn_params(rng, shape[1], affine)
    rm, rv = random_array(rng, shape[1]), np.abs(random_array(rng, shape[1])) + 0.5
    y, dev_y = run_both(gpu, "batch_norm_forward_eval", x, rm, rv, w, b, 1e-5, relu=relu)
    check_same(y, dev_y, what="forward")
    invstd = (1.0 / np.sqrt(rv.astype(np.float64) + 1e-5)).astype(np.float32)
    gy = random_array(rng, *shape)
    check_same(*run_both(gpu, "batch_norm_backward", gy, x, rm, invstd, w, False, (True, affine, True),
                         y if relu else None), rtol=2e-5, what="backward")


def test_batch_norm_running_stats_none_and_large_offset(gpu):
    """No running statistics given; data far from zero (x = 1000 + noise) keeps its variance."""
    rng = np.random.default_rng(8)
    x = random_array(rng, 16, 4, 12, 12) * 0.01 + 1000
    check_same(*run_both(gpu, "batch_norm_forward_train", x, None, None, None, None, 0.1, 1e-5), rtol=1e-4)
    check_same(*run_both(gpu, "batch_norm_forward_train", x[:, :, 0, 0].copy(), None, None, None, None, 0.1, 1e-5),
               rtol=1e-4)


@pytest.mark.sanitize_subset
def test_batch_norm_three_steps_update_running_stats_in_place(gpu):
    rng = np.random.default_rng(9)
    rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
    dev_rm, dev_rv = _upload(gpu, rm), _upload(gpu, rv)
    for step in range(3):
        x = random_array(rng, 6, 5, 4, 3) * (step + 1) + step
        _C.batch_norm_forward_train(x, rm, rv, None, None, 0.5, 1e-5)
        gpu.batch_norm_forward_train(_upload(gpu, x), dev_rm, dev_rv, None, None, 0.5, 1e-5)
    check_same(rm, gpu.to_numpy(dev_rm), what="running_mean")
    check_same(rv, gpu.to_numpy(dev_rv), what="running_var")


def test_batch_norm_empty_batch(gpu):
    x = np.zeros((0, 3, 4, 4), np.float32)
    rm, rv = np.full(3, 0.5, np.float32), np.full(3, 2.0, np.float32)
    dev_rm, dev_rv = _upload(gpu, rm), _upload(gpu, rv)
    cpu = _C.batch_norm_forward_train(x, rm, rv, None, None, 0.1, 1e-5)
    check_same(cpu, _download(gpu, gpu.batch_norm_forward_train(_upload(gpu, x), dev_rm, dev_rv, None, None, 0.1,
                                                                1e-5)))
    assert np.array_equal(gpu.to_numpy(dev_rm), rm) and np.array_equal(gpu.to_numpy(dev_rv), rv)
    check_same(*run_both(gpu, "batch_norm_forward_eval", x, rm, rv, None, None, 1e-5))
    w = np.ones(3, np.float32)
    check_same(*run_both(gpu, "batch_norm_backward", x, x, rm, rv, w, True, (True, True, True)))


BN_ERRORS = [
    ("batch_norm_forward_train", (np.zeros(4, np.float32), None, None, None, None, 0.1, 1e-5)),
    ("batch_norm_forward_train", (np.zeros((2, 3, 4), np.float32), None, None, np.zeros(4, np.float32), None, 0.1,
                                  1e-5)),
    ("batch_norm_forward_train", (np.zeros((2, 3, 4), np.float32), np.zeros(5, np.float32), np.zeros(3, np.float32),
                                  None, None, 0.1, 1e-5)),
    ("batch_norm_forward_train", (np.zeros((2, 3, 4), np.float32), None, None, None, None, 0.1, -1.0)),
    ("batch_norm_forward_train", (np.zeros((2, 0, 4), np.float32), None, None, None, None, 0.1, 1e-5)),
    ("batch_norm_forward_train", (np.zeros((1, 3), np.float32), None, None, None, None, 0.1, 1e-5)),
    ("batch_norm_forward_eval", (np.zeros((2, 3, 4), np.float32), None, None, None, None, 1e-5)),
    ("batch_norm_backward", (np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 5), np.float32), np.zeros(3, np.float32),
                             np.ones(3, np.float32), None, True, (True, True, True))),
    ("batch_norm_backward", (np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 4), np.float32), None,
                             np.ones(3, np.float32), None, True, (True, True, True))),
]


@pytest.mark.parametrize("name,args", BN_ERRORS, ids=lambda v: v if isinstance(v, str) else None)
def test_batch_norm_errors_match_the_cpu(gpu, name, args):
    check_same_error(gpu, name, *args)


def test_batch_norm_dtype_errors(gpu):
    x = np.zeros((2, 3), np.float32)
    check_same_error(gpu, "batch_norm_forward_train", x.astype(np.int64), None, None, None, None, 0.1, 1e-5,
                     error=TypeError)
    check_same_error(gpu, "batch_norm_forward_train", x, np.zeros(3, np.int64), None, None, None, 0.1, 1e-5,
                     error=TypeError)


# ------------------------------------------------------------------ group / layer norm
GROUP_CASES = [
    ((2, 6, 5, 5), 3, True),
    ((1, 4, 1, 1), 1, True),
    ((2, 4, 3), 4, True),
    ((3, 8, 7), 1, True),
    ((2, 17, 3, 3), 17, False),
    ((4, 32, 9, 11), 8, True),
    ((5, 6), 2, True),
    ((0, 6, 2, 2), 3, True),  # empty batch
    ((2, 300, 4, 4), 30, True),
    ((2, 4, 64, 64), 2, True),  # rows far longer than a block
]


@pytest.mark.parametrize("shape,groups,affine", GROUP_CASES, ids=str)
def test_group_norm(gpu, shape, groups, affine):
    rng = np.random.default_rng(10)
    x, gy = random_array(rng, *shape) * 3 + 1, random_array(rng, *shape)
    w, b = (random_array(rng, shape[1]), random_array(rng, shape[1])) if affine else (None, None)
    cpu, dev = run_both(gpu, "group_norm_forward", x, groups, w, b, 1e-5)
    check_same(cpu, dev, what="forward")
    _, mean, rstd = cpu
    for mask in [(True, True, True), (False, True, False), (True, False, False)]:
        check_same(*run_both(gpu, "group_norm_backward", gy, x, mean, rstd, w, groups, mask), rtol=2e-5,
                   what=f"backward {mask}")


LAYER_CASES = [((4, 10), 1, True, True), ((2, 3, 5, 7), 2, True, True), ((2, 3, 5, 7), 3, True, False),
               ((1, 3), 1, True, True), ((3, 4, 17), 1, False, False), ((7,), 1, True, True), ((0, 5), 1, True, True),
               ((5, 40), 1, True, True), ((3, 1000), 1, True, True)]


@pytest.mark.parametrize("shape,ndim,weighted,biased", LAYER_CASES, ids=str)
def test_layer_norm(gpu, shape, ndim, weighted, biased):
    rng = np.random.default_rng(11)
    x, gy = random_array(rng, *shape) * 2 - 1, random_array(rng, *shape)
    params = shape[len(shape) - ndim:]
    w = random_array(rng, *params) if weighted else None
    b = random_array(rng, *params) if biased else None
    cpu, dev = run_both(gpu, "layer_norm_forward", x, ndim, w, b, 1e-5)
    check_same(cpu, dev, what="forward")
    _, mean, rstd = cpu
    check_same(*run_both(gpu, "layer_norm_backward", gy, x, mean, rstd, w, ndim, (True, weighted, biased)),
               rtol=2e-5, what="backward")


GROUP_ERRORS = [
    ("group_norm_forward", (np.zeros((2, 6, 3), np.float32), 4, None, None, 1e-5)),
    ("group_norm_forward", (np.zeros((2, 6, 3), np.float32), 0, None, None, 1e-5)),
    ("group_norm_forward", (np.zeros(6, np.float32), 2, None, None, 1e-5)),
    ("group_norm_forward", (np.zeros((2, 6, 3), np.float32), 2, np.ones(3, np.float32), None, 1e-5)),
    ("group_norm_forward", (np.zeros((2, 6, 3), np.float32), 2, None, None, -1.0)),
    ("layer_norm_forward", (np.zeros(5, np.float32), 2, None, None, 1e-5)),
    ("layer_norm_forward", (np.zeros((2, 5), np.float32), 1, np.ones(4, np.float32), None, 1e-5)),
    ("layer_norm_backward", (np.zeros((2, 5), np.float32), np.zeros((2, 5), np.float32), np.zeros(3, np.float32),
                             np.zeros(2, np.float32), None, 1, (True, True, True))),
    ("group_norm_backward", (np.zeros((2, 6, 4), np.float32), np.zeros((2, 6, 3), np.float32), np.zeros(4, np.float32),
                             np.zeros(4, np.float32), None, 2, (True, True, True))),
]


@pytest.mark.parametrize("name,args", GROUP_ERRORS, ids=lambda v: v if isinstance(v, str) else None)
def test_group_and_layer_norm_errors_match_the_cpu(gpu, name, args):
    check_same_error(gpu, name, *args)


# ------------------------------------------------------------------ LRN
LRN_CASES = [((2, 7, 5, 3), 1), ((2, 7, 5, 3), 2), ((2, 7, 5, 3), 5), ((3, 3, 4, 4), 7), ((1, 16, 9), 5),
             ((2, 20, 17, 17), 4), ((1, 1, 1, 1), 3), ((2, 5, 1, 300), 3), ((2, 300, 3, 3), 5), ((0, 3, 4, 4), 2),
             ((2, 3, 0), 2)]


@pytest.mark.parametrize("beta", [0.75, 1.3])
@pytest.mark.parametrize("shape,size", LRN_CASES, ids=str)
def test_local_response_norm(gpu, shape, size, beta):
    rng = np.random.default_rng(12)
    x, gy = random_array(rng, *shape) * 3, random_array(rng, *shape)
    cpu, dev = run_both(gpu, "lrn_forward", x, size, 0.05, beta, 1.5)
    check_same(cpu, dev, what="forward")
    y, scale = cpu
    check_same(*run_both(gpu, "lrn_backward", gy, x, y, scale, size, 0.05, beta, 1.5), rtol=2e-5, what="backward")


LRN_ERRORS = [
    ("lrn_forward", (np.zeros((3, 4), np.float32), 2, 1e-4, 0.75, 1.0)),
    ("lrn_forward", (np.zeros((2, 3, 4), np.float32), 0, 1e-4, 0.75, 1.0)),
    ("lrn_forward", (np.zeros((2, 3, 4), np.float32), 2, float("inf"), 0.75, 1.0)),
    ("lrn_backward", (*(np.zeros((2, 3, 4), np.float32),) * 3, np.zeros((2, 3, 5), np.float32), 2, 1e-4, 0.75, 1.0)),
]


@pytest.mark.parametrize("name,args", LRN_ERRORS, ids=lambda v: v if isinstance(v, str) else None)
def test_lrn_errors_match_the_cpu(gpu, name, args):
    check_same_error(gpu, name, *args)
