"""GPU softmax / log_softmax, the losses and the fused optimiser updates (pyconvnet._C_cuda) against
the CPU kernels (pyconvnet._C) as the oracle: the same inputs through both, compared to fp32
rounding, over the CPU tests' shapes plus rows of 1, 10, 1000 and 100000 classes, ignore_index,
class weights, label smoothing, every reduction and every optimiser flag; the same errors; and the
GPU's one documented difference (an out-of-range class target gives NaN instead of raising)."""

import itertools

import numpy as np
import pytest

from pyconvnet import _C
from support import random_array
from test_cuda_activation_eltwise import assert_same_error, both, gpu, to_gpu  # noqa: F401 (gpu: the fixture)

pytestmark = pytest.mark.cuda

NONE, MEAN, SUM = 0, 1, 2
REDUCTIONS = {"none": NONE, "mean": MEAN, "sum": SUM}


# ------------------------------------------------------------------ softmax / log_softmax
SOFTMAX_CASES = [
    ((4, 10), 1),
    ((1, 1), 1),
    ((3, 17), -1),
    ((2, 5, 3, 7), 1),
    ((2, 3, 9, 70), 1),
    ((5, 4, 3), 0),
    ((2, 3, 4), -2),
    ((7,), 0),
    ((0, 5), 1),
    ((3, 1, 1, 1), 1),
    ((), 0),
    ((6, 1), -1),  # rows of 1, 10, 1000 and 100000 classes
    ((6, 10), -1),
    ((5, 1000), -1),
    ((2, 100000), -1),
    ((2, 1000, 3), 1),  # a long strided row
]


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=str)
def test_softmax_matches_cpu(gpu, op, shape, dim):
    rng = np.random.default_rng(0)
    x, gy = np.asarray(random_array(rng, *shape) * 3), np.asarray(random_array(rng, *shape))  # () gives scalars
    y, y_gpu = both(gpu, f"{op}_forward", x, dim)
    assert y_gpu.shape == y.shape
    np.testing.assert_allclose(y_gpu, y, rtol=1e-5, atol=1e-5 if op == "log_softmax" else 1e-8)
    dx, dx_gpu = both(gpu, f"{op}_backward", gy, y, dim)
    np.testing.assert_allclose(dx_gpu, dx, rtol=1e-5, atol=1e-5)


def test_softmax_extreme_rows(gpu):
    x = np.array([[1e30, 0.0, -1e30], [-np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0], [88.0, 89.0, 90.0]], np.float32)
    for op in ("softmax_forward", "log_softmax_forward"):
        y, y_gpu = both(gpu, op, x, 1)
        np.testing.assert_allclose(y_gpu, y, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ cross_entropy / nll_loss
# (input shape, weighted, ignore some, reduction, label_smoothing)
CLASS_CASES = [
    ((4, 10), False, False, "mean", 0.0),
    ((1, 1), False, False, "mean", 0.0),
    ((5, 7), True, True, "mean", 0.0),
    ((5, 7), True, True, "sum", 0.1),
    ((6, 17), True, True, "none", 0.25),
    ((3, 5, 4, 6), False, True, "mean", 0.2),
    ((2, 6, 9, 70), True, True, "mean", 0.3),
    ((2, 4, 3), True, False, "none", 0.0),
    ((3, 9, 1, 1), True, True, "sum", 0.0),
    ((0, 5), False, False, "sum", 0.1),
    ((0, 5), False, False, "mean", 0.0),  # NaN on both
    ((128, 10), True, True, "mean", 0.1),
    ((7, 1000), True, True, "none", 0.1),
    ((2, 100000), False, True, "mean", 0.1),
    ((3, 1), False, False, "sum", 0.1),
]


def class_inputs(rng, shape, weighted, ignore, ignore_index=-100):
    x = random_array(rng, *shape) * 2
    target = rng.integers(0, shape[1], size=(shape[0],) + shape[2:]).astype(np.int64)
    if ignore and target.size > 1:
        target.reshape(-1)[::3] = ignore_index
    weight = rng.uniform(0.2, 2.0, shape[1]).astype(np.float32) if weighted else None
    return x, target, weight


def upstream(rng, reduction, target):
    return np.full((), 1.7, np.float32) if reduction != NONE else random_array(rng, *target.shape)


@pytest.mark.parametrize("case", CLASS_CASES, ids=str)
def test_cross_entropy_matches_cpu(gpu, case):
    shape, weighted, ignore, reduction, smoothing = case
    reduction = REDUCTIONS[reduction]
    rng = np.random.default_rng(1)
    x, target, weight = class_inputs(rng, shape, weighted, ignore)
    (loss, lp), (loss_gpu, lp_gpu) = both(gpu, "cross_entropy_forward", x, target, weight, -100, reduction, smoothing)
    assert loss_gpu.shape == loss.shape
    np.testing.assert_allclose(loss_gpu, loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lp_gpu, lp, rtol=1e-5, atol=1e-5)
    gy = upstream(rng, reduction, target)
    dx, dx_gpu = both(gpu, "cross_entropy_backward", gy, lp, target, weight, -100, reduction, smoothing)
    np.testing.assert_allclose(dx_gpu, dx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CLASS_CASES, ids=str)
def test_nll_loss_matches_cpu(gpu, case):
    shape, weighted, ignore, reduction, _ = case
    reduction = REDUCTIONS[reduction]
    rng = np.random.default_rng(2)
    x, target, weight = class_inputs(rng, shape, weighted, ignore)
    lp = _C.log_softmax_forward(x, 1)
    loss, loss_gpu = both(gpu, "nll_loss_forward", lp, target, weight, -100, reduction)
    np.testing.assert_allclose(loss_gpu, loss, rtol=1e-5, atol=1e-6)
    gy = upstream(rng, reduction, target)
    dx, dx_gpu = both(gpu, "nll_loss_backward", gy, target, weight, list(shape), -100, reduction)
    np.testing.assert_allclose(dx_gpu, dx, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("ignore_index", [0, 3, -1])
@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
def test_ignore_index_values_match_cpu(gpu, ignore_index, reduction):
    rng = np.random.default_rng(3)
    x, target, weight = class_inputs(rng, (9, 6), True, True, ignore_index)
    (loss, lp), (loss_gpu, _) = both(gpu, "cross_entropy_forward", x, target, weight, ignore_index, reduction, 0.1)
    np.testing.assert_allclose(loss_gpu, loss, rtol=1e-5, atol=1e-6)
    gy = upstream(rng, reduction, target)
    dx, dx_gpu = both(gpu, "cross_entropy_backward", gy, lp, target, weight, ignore_index, reduction, 0.1)
    np.testing.assert_allclose(dx_gpu, dx, rtol=1e-5, atol=1e-6)
    loss, loss_gpu = both(gpu, "nll_loss_forward", lp, target, weight, ignore_index, reduction)
    np.testing.assert_allclose(loss_gpu, loss, rtol=1e-5, atol=1e-6)


@pytest.mark.sanitize_subset
def test_class_losses_are_deterministic(gpu):
    rng = np.random.default_rng(4)
    x, target, weight = class_inputs(rng, (300, 1000), True, True)
    args = to_gpu(gpu, (x, target, weight))
    first = gpu.to_numpy(gpu.cross_entropy_forward(*args, -100, MEAN, 0.1)[0])
    assert all(np.array_equal(gpu.to_numpy(gpu.cross_entropy_forward(*args, -100, MEAN, 0.1)[0]), first)
               for _ in range(3))


def test_out_of_range_target_gives_nan_not_a_crash(gpu):
    # the CPU raises (it checks targets on the host); the GPU cannot without waiting for the device
    x = random_array(np.random.default_rng(5), 3, 5)
    target = np.array([0, 7, 1], np.int64)
    args = to_gpu(gpu, (x, target))
    loss, lp = gpu.cross_entropy_forward(*args, None, -100, NONE, 0.0)
    loss = gpu.to_numpy(loss)
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()
    assert np.isnan(gpu.to_numpy(gpu.cross_entropy_forward(*args, None, -100, MEAN, 0.0)[0]))
    dx = gpu.to_numpy(gpu.cross_entropy_backward(gpu.from_numpy(np.ones(3, np.float32), 0), lp, args[1], None, -100,
                                                 NONE, 0.0))
    assert np.isnan(dx[1]).all() and np.isfinite(dx[[0, 2]]).all()
    assert np.isnan(gpu.to_numpy(gpu.nll_loss_forward(lp, args[1], None, -100, SUM)))


# ------------------------------------------------------------------ element-wise losses
# name -> (kernel, options): smooth_l1 (beta, huber); binary_cross_entropy (logits, weighted, pos_weighted)
FLAT_CASES = {
    "mse": ("mse_loss", ()),
    "l1": ("smooth_l1_loss", (0.0, False)),
    "smooth_l1": ("smooth_l1_loss", (1.0, False)),
    "smooth_l1_beta": ("smooth_l1_loss", (0.3, False)),
    "huber": ("smooth_l1_loss", (0.7, True)),
    "bce": ("binary_cross_entropy", (False, False, False)),
    "bce_weighted": ("binary_cross_entropy", (False, True, False)),
    "bce_logits": ("binary_cross_entropy", (True, False, False)),
    "bce_logits_weighted": ("binary_cross_entropy", (True, True, True)),
}
FLAT_SHAPES = [(1,), (4, 10), (3, 5, 7, 9), (1000,), (70001,), (0, 3)]


def flat_arguments(rng, name, options, shape, reduction):
    """The forward kernel's arguments and the backward's after grad_output."""
    if name != "binary_cross_entropy":
        x, t = random_array(rng, *shape) * 2, random_array(rng, *shape)
        return (x, t, reduction, *options), (x, t, reduction, *options)
    logits, weighted, pos_weighted = options
    if logits:
        x, t = random_array(rng, *shape) * 3, rng.random(shape).astype(np.float32)
    else:
        x, t = rng.uniform(0.02, 0.98, shape).astype(np.float32), rng.random(shape).astype(np.float32)
    weight = rng.uniform(0.5, 2, shape).astype(np.float32) if weighted else None
    pos_weight = rng.uniform(0.2, 4, shape).astype(np.float32) if pos_weighted else None
    return (x, t, weight, pos_weight, reduction, logits), (x, t, weight, pos_weight, reduction, logits, True)


@pytest.mark.parametrize("reduction", [NONE, MEAN, SUM])
@pytest.mark.parametrize("shape", FLAT_SHAPES, ids=str)
@pytest.mark.parametrize("case", list(FLAT_CASES))
def test_elementwise_loss_matches_cpu(gpu, case, shape, reduction):
    name, options = FLAT_CASES[case]
    rng = np.random.default_rng(6)
    forward, backward = flat_arguments(rng, name, options, shape, reduction)
    loss, loss_gpu = both(gpu, f"{name}_forward", *forward)
    assert loss_gpu.shape == loss.shape
    np.testing.assert_allclose(loss_gpu, loss, rtol=1e-5, atol=1e-6)
    gy = np.full((), 0.7, np.float32) if reduction != NONE else random_array(rng, *shape)
    grads, grads_gpu = both(gpu, f"{name}_backward", gy, *backward)
    if name != "binary_cross_entropy":  # one gradient array, not a list
        grads, grads_gpu = [grads], [grads_gpu]
    assert len(grads_gpu) == len(grads)
    for expected, actual in zip(grads, grads_gpu):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_bce_without_target_grad_returns_one_gradient(gpu):
    rng = np.random.default_rng(7)
    x, t = rng.uniform(0.02, 0.98, (5, 3)).astype(np.float32), rng.random((5, 3)).astype(np.float32)
    grads, grads_gpu = both(gpu, "binary_cross_entropy_backward", np.ones((), np.float32), x, t, None, None, MEAN,
                            False, False)
    assert len(grads_gpu) == len(grads) == 1
    np.testing.assert_allclose(grads_gpu[0], grads[0], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ optimisers
STEPS = 3
OPTIM_SHAPES = [(37,), (3, 5, 7), (41000,), (0,)]


def check_updates(gpu, name, shape, states, make_args, rtol=2e-6):
    """STEPS updates of `name` on both devices from the same parameter, state and gradients;
    make_args(arrays, grad, step) gives the kernel's arguments. Parameter and state must match."""
    rng = np.random.default_rng(8)
    cpu = {"param": random_array(rng, *shape), **states}
    dev = {key: None if value is None else gpu.from_numpy(value, 0) for key, value in cpu.items()}
    for step in range(1, STEPS + 1):
        grad = random_array(rng, *shape)
        assert getattr(_C, name)(*make_args(cpu, grad, step)) is None
        assert getattr(gpu, name)(*make_args(dev, gpu.from_numpy(grad, 0), step)) is None
    for key, value in cpu.items():
        if value is not None:
            np.testing.assert_allclose(gpu.to_numpy(dev[key]), value, rtol=rtol, atol=1e-6, err_msg=key)


def flag_id(flags):
    return "-".join(f"{k}={v}" for k, v in flags.items())


SGD_FLAGS = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
    for m, d, n, w, x in itertools.product((0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.05), (False, True))
    if not (n and (m == 0.0 or d != 0.0))
]


@pytest.mark.parametrize("shape", OPTIM_SHAPES, ids=str)
@pytest.mark.parametrize("flags", SGD_FLAGS, ids=flag_id)
def test_sgd_update_matches_cpu(gpu, flags, shape):
    f = flags
    states = {"buf": np.zeros(shape, np.float32) if f["momentum"] else None}
    check_updates(gpu, "sgd_update", shape, states, lambda a, g, step: (
        a["param"], g, a["buf"], 0.05, f["momentum"], f["dampening"], f["weight_decay"], f["nesterov"],
        f["maximize"], step == 1))


ADAM_FLAGS = [
    dict(amsgrad=a, maximize=m, weight_decay=w, decoupled_weight_decay=d)
    for a, m, w, d in itertools.product((False, True), (False, True), (0.0, 0.1), (False, True))
]


@pytest.mark.parametrize("shape", OPTIM_SHAPES, ids=str)
@pytest.mark.parametrize("flags", ADAM_FLAGS, ids=flag_id)
def test_adam_update_matches_cpu(gpu, flags, shape):
    f = flags
    zeros = lambda: np.zeros(shape, np.float32)  # noqa: E731
    states = {"avg": zeros(), "sq": zeros(), "max": zeros() if f["amsgrad"] else None}
    check_updates(gpu, "adam_update", shape, states, lambda a, g, step: (
        a["param"], g, a["avg"], a["sq"], a["max"], step, 1e-2, 0.9, 0.999, 1e-8, f["weight_decay"], f["amsgrad"],
        f["maximize"], f["decoupled_weight_decay"]))


RMSPROP_FLAGS = [
    dict(centered=c, momentum=m, weight_decay=w, maximize=x)
    for c, m, w, x in itertools.product((False, True), (0.0, 0.9), (0.0, 0.1), (False, True))
]


@pytest.mark.parametrize("shape", OPTIM_SHAPES, ids=str)
@pytest.mark.parametrize("flags", RMSPROP_FLAGS, ids=flag_id)
def test_rmsprop_update_matches_cpu(gpu, flags, shape):
    f = flags
    zeros = lambda: np.zeros(shape, np.float32)  # noqa: E731
    states = {"sq": zeros(), "avg": zeros() if f["centered"] else None, "buf": zeros() if f["momentum"] else None}
    check_updates(gpu, "rmsprop_update", shape, states, lambda a, g, step: (
        a["param"], g, a["sq"], a["avg"], a["buf"], 1e-2, 0.99, 1e-8, f["weight_decay"], f["momentum"], f["centered"],
        f["maximize"]), rtol=1e-5 if f["centered"] else 2e-6)  # centered: sqrt(sq - avg^2) cancels (seen: 5.7e-6 on an H200)


ADAGRAD_FLAGS = [
    dict(lr_decay=d, weight_decay=w, initial_accumulator_value=a, maximize=x)
    for d, w, a, x in itertools.product((0.0, 0.3), (0.0, 0.1), (0.0, 0.1), (False, True))
]


@pytest.mark.parametrize("shape", OPTIM_SHAPES, ids=str)
@pytest.mark.parametrize("flags", ADAGRAD_FLAGS, ids=flag_id)
def test_adagrad_update_matches_cpu(gpu, flags, shape):
    f = flags
    states = {"sum": np.full(shape, f["initial_accumulator_value"], np.float32)}
    check_updates(gpu, "adagrad_update", shape, states, lambda a, g, step: (
        a["param"], g, a["sum"], step, 1e-2, f["lr_decay"], 1e-10, f["weight_decay"], f["maximize"]))


ADADELTA_FLAGS = [
    dict(weight_decay=w, maximize=x, rho=r) for w, x, r in itertools.product((0.0, 0.1), (False, True), (0.9, 0.5))
]


@pytest.mark.parametrize("shape", OPTIM_SHAPES, ids=str)
@pytest.mark.parametrize("flags", ADADELTA_FLAGS, ids=flag_id)
def test_adadelta_update_matches_cpu(gpu, flags, shape):
    f = flags
    states = {"sq": np.zeros(shape, np.float32), "acc": np.zeros(shape, np.float32)}
    check_updates(gpu, "adadelta_update", shape, states, lambda a, g, step: (
        a["param"], g, a["sq"], a["acc"], 1.0, f["rho"], 1e-6, f["weight_decay"], f["maximize"]))


# ------------------------------------------------------------------ errors
Z4, Z5 = np.zeros(4, np.float32), np.zeros(5, np.float32)
Z45, I4 = np.zeros((4, 5), np.float32), np.zeros(4, np.int64)
SGD = (0.1, 0.0, 0.0, 0.0, False, False, True)  # lr, momentum, dampening, weight_decay, nesterov, maximize, first
ADAM = (1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, False)  # step ... decoupled_weight_decay
RMS = (1e-2, 0.99, 1e-8, 0.0, 0.0, False, False)  # lr, alpha, eps, weight_decay, momentum, centered, maximize


@pytest.mark.parametrize(
    "name,args",
    [
        ("softmax_forward", (np.zeros((2, 3), np.float32), 2)),
        ("log_softmax_forward", (np.zeros((2, 3), np.int64), 1)),
        ("softmax_backward", (np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32), 1)),
        ("cross_entropy_forward", (Z45, np.zeros(3, np.int64), None, -100, MEAN, 0.0)),
        ("cross_entropy_forward", (Z45, np.zeros(4, np.float32), None, -100, MEAN, 0.0)),
        ("cross_entropy_forward", (Z45, I4, Z4, -100, MEAN, 0.0)),
        ("cross_entropy_forward", (Z45, I4, None, -100, MEAN, 1.5)),
        ("cross_entropy_forward", (Z45, I4, None, -100, 5, 0.0)),
        ("cross_entropy_forward", (np.zeros((4, 0), np.float32), I4, None, -100, MEAN, 0.0)),
        ("cross_entropy_forward", (Z4, I4, None, -100, MEAN, 0.0)),
        ("cross_entropy_backward", (np.zeros(3, np.float32), Z45, I4, None, -100, NONE, 0.0)),
        ("nll_loss_forward", (np.zeros((2, 3, 4), np.float32), np.zeros((2, 5), np.int64), None, -100, MEAN)),
        ("nll_loss_backward", (np.zeros((), np.float32), I4, None, [4, 5], -100, 3)),
        ("mse_loss_forward", (np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32), MEAN)),
        ("mse_loss_backward", (np.zeros(3, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32), NONE)),
        ("smooth_l1_loss_forward", (Z4, Z4, MEAN, -1.0, False)),
        ("smooth_l1_loss_forward", (Z4, Z4, MEAN, 0.0, True)),
        ("binary_cross_entropy_forward", (Z4, Z4, None, Z4, MEAN, False)),
        ("binary_cross_entropy_forward", (Z4, Z4, Z5, None, MEAN, True)),
        ("sgd_update", (I4, Z4, None, *SGD)),
        ("sgd_update", (Z4, Z5, None, *SGD)),
        ("sgd_update", (Z4, Z4, np.zeros(3, np.float32), 0.1, 0.9, 0.0, 0.0, False, False, True)),
        ("sgd_update", (Z4, Z4, None, -1.0, 0.0, 0.0, 0.0, False, False, True)),
        ("sgd_update", (Z4, Z4, Z4, 0.1, 0.9, 0.5, 0.0, True, False, True)),
        ("adam_update", (Z4, Z4, Z4, Z4, None, 1, 1e-3, 1.0, 0.999, 1e-8, 0.0, False, False, False)),
        ("adam_update", (Z4, Z4, Z4, Z4, None, 0, *ADAM[1:])),
        ("adam_update", (Z4, Z4, Z4, Z4, None, *ADAM[:6], True, False, False)),
        ("adam_update", (Z4, Z4, Z5, Z4, None, *ADAM)),
        ("rmsprop_update", (Z4, Z4, Z4, None, None, *RMS[:5], True, False)),
        ("rmsprop_update", (Z4, Z4, Z4, None, None, *RMS[:4], 0.9, False, False)),
        ("rmsprop_update", (Z4, Z4, Z4, None, None, 1e-2, -0.5, *RMS[2:])),
        ("rmsprop_update", (Z4, Z4, np.zeros(4, np.int64), None, None, *RMS)),
        ("adagrad_update", (Z4, Z4, Z4, 0, 1e-2, 0.0, 1e-10, 0.0, False)),
        ("adagrad_update", (Z4, Z4, Z4, 1, 1e-2, -0.1, 1e-10, 0.0, False)),
        ("adadelta_update", (Z4, Z4, Z4, Z4, 1.0, 1.5, 1e-6, 0.0, False)),
        ("adadelta_update", (Z4, Z4, Z4, Z5, 1.0, 0.9, 1e-6, 0.0, False)),
    ],
)
def test_errors_match_cpu(gpu, name, args):
    assert_same_error(gpu, name, *(a.copy() if isinstance(a, np.ndarray) else a for a in args))
