"""batch_norm and local_response_norm: forward and backward against float64 numpy references and
against PyTorch on every ISA; running statistics, numerical stability, determinism, bad input."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from references import batch_norm_reference, lrn_reference
from support import assert_close, random_array


def _run_batch_norm(x, weight, bias, gy, training, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
    xt = pcn.tensor(x, requires_grad=True)
    wt = None if weight is None else pcn.tensor(weight, requires_grad=True)
    bt = None if bias is None else pcn.tensor(bias, requires_grad=True)
    y = F.batch_norm(xt, running_mean, running_var, wt, bt, training, momentum, eps)
    (y * pcn.tensor(gy)).sum().backward()
    grads = [None if t is None else t.grad.numpy() for t in (xt, wt, bt)]
    return y.detach().numpy(), grads


# (input shape) for batch norm: batch 1 with spatial > 1, (N, C) input, channels 1 and 3, odd
# sizes, channel counts that are not multiples of 8/16, 1x1 images.
BN_SHAPES = [(4, 3, 5, 5), (1, 3, 4, 4), (8, 5), (130, 7), (2, 1, 7), (3, 17, 3, 3), (5, 3, 1, 1), (2, 20, 9, 11), (1, 2, 70, 70)]


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batch_norm_matches_float64_reference(isa, shape, training, affine):
    rng = np.random.default_rng(0)
    channels = shape[1]
    x = random_array(rng, *shape) * 2 + 0.5
    gy = random_array(rng, *shape)
    weight = random_array(rng, channels) if affine else None
    bias = random_array(rng, channels) if affine else None
    running_mean = random_array(rng, channels)
    running_var = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    rm_t, rv_t = pcn.tensor(running_mean), pcn.tensor(running_var)
    y, (dx, dw, db) = _run_batch_norm(x, weight, bias, gy, training, rm_t, rv_t, momentum=0.3)
    rm, rv = rm_t.numpy(), rv_t.numpy()
    ref_y, ref_dx, ref_dw, ref_db, mean, var = batch_norm_reference(x, weight, bias, gy, 1e-5, training, running_mean, running_var)
    assert_close(y, ref_y, what="output")
    assert_close(dx, ref_dx, what="grad_input")
    if affine:
        assert_close(dw, ref_dw, what="grad_weight")
        assert_close(db, ref_db, what="grad_bias")
    if training:
        count = x.size // channels
        assert_close(rm, 0.7 * running_mean + 0.3 * mean, what="running_mean")
        assert_close(rv, 0.7 * running_var + 0.3 * var * count / (count - 1), what="running_var")
    else:
        assert np.array_equal(rm, running_mean) and np.array_equal(rv, running_var)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batch_norm_relu_equals_relu_of_batch_norm(isa, shape, training, affine):
    """The fused op applies relu as it writes the output and relu's gradient as it reads dy. Its
    output and running statistics are bitwise those of the two ops one after the other (a NaN
    input included); the gradients agree to float32 rounding (the fused loops may contract
    multiply-adds differently)."""
    rng = np.random.default_rng(8)
    channels = shape[1]
    x, gy = random_array(rng, *shape), random_array(rng, *shape)
    x.flat[0] = np.nan
    weight, bias = (random_array(rng, channels), random_array(rng, channels)) if affine else (None, None)
    results = []
    for fused in (True, False):
        stats = [pcn.tensor(random_array(np.random.default_rng(9), channels)),
                 pcn.tensor(np.random.default_rng(9).uniform(0.5, 2.0, channels).astype(np.float32))]
        xt = pcn.tensor(x, requires_grad=True)
        wt, bt = (None, None) if weight is None else (pcn.tensor(weight, requires_grad=True), pcn.tensor(bias, requires_grad=True))
        if fused:
            y = F.batch_norm_relu(xt, *stats, wt, bt, training, 0.3)
        else:
            y = F.relu(F.batch_norm(xt, *stats, wt, bt, training, 0.3))
        (y * pcn.tensor(gy)).sum().backward()
        results.append([y.detach().numpy(), *(t.grad.numpy() for t in (xt, wt, bt) if t is not None),
                        *(t.numpy() for t in stats)])
    assert np.isnan(results[0][0].flat[0])  # NaN passes relu
    (y, *grads_and_stats), (ref_y, *ref_grads_and_stats) = results
    assert np.array_equal(y, ref_y, equal_nan=True)
    for got, expected in zip(grads_and_stats, ref_grads_and_stats):
        finite = ~np.isnan(expected)
        assert np.array_equal(finite, ~np.isnan(got))
        assert_close(got[finite], expected[finite], rtol=1e-6)


def test_batch_norm_forward_relu_keeps_module_hooks_working():
    """BatchNorm2d.forward_relu fuses only while no hook watches the batch norm or the ReLU; with
    one it runs the two modules, so the hooks fire and see the unfused values."""
    rng = np.random.default_rng(10)
    bn, relu = pcn.nn.BatchNorm2d(3), pcn.nn.ReLU(inplace=True)
    x = pcn.tensor(random_array(rng, 2, 3, 4, 4))
    expected = F.relu(F.batch_norm(x, None, None, bn.weight, bn.bias, True)).detach().numpy()
    seen = []
    for module in (None, bn, relu):
        handle = None if module is None else module.register_forward_hook(lambda m, a, out: seen.append(type(m).__name__))
        assert np.array_equal(bn.forward_relu(x, relu).detach().numpy(), expected)
        if handle is not None:
            handle.remove()
    assert seen == ["BatchNorm2d", "ReLU"]
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3.*got input of shape \(2, 4, 4, 4\).*expected 3 channels"):
        bn.forward_relu(pcn.zeros(2, 4, 4, 4), relu)


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (8, 5), (1, 3, 4, 4), (3, 17, 6)], ids=str)
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batch_norm_running_stats_match_torch_over_three_steps(isa, shape, momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    channels = shape[1]
    weight, bias = random_array(rng, channels), random_array(rng, channels)
    running_mean, running_var = pcn.zeros(channels), pcn.ones(channels)
    trm, trv = torch.zeros(channels), torch.ones(channels)
    for step in range(3):
        x = random_array(rng, *shape) * (step + 1) + step
        gy = random_array(rng, *shape)
        y, (dx, dw, db) = _run_batch_norm(x, weight, bias, gy, True, running_mean, running_var, momentum)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
        ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, True, momentum, 1e-5)
        ty.backward(torch.tensor(gy))
        assert_close(y, ty.detach().numpy(), what=f"step {step} output")
        assert_close(dx, tx.grad.numpy(), what=f"step {step} grad_input")
        assert_close(dw, tw.grad.numpy(), what=f"step {step} grad_weight")
        assert_close(db, tb.grad.numpy(), what=f"step {step} grad_bias")
        assert_close(running_mean.numpy(), trm.numpy(), what=f"step {step} running_mean")
        assert_close(running_var.numpy(), trv.numpy(), what=f"step {step} running_var")
    # eval mode with the accumulated statistics, forward and backward
    x, gy = random_array(rng, *shape), random_array(rng, *shape)
    y, (dx, dw, db) = _run_batch_norm(x, weight, bias, gy, False, running_mean, running_var)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, False, momentum, 1e-5)
    ty.backward(torch.tensor(gy))
    assert_close(y, ty.detach().numpy(), what="eval output")
    assert_close(dx, tx.grad.numpy(), what="eval grad_input")
    assert_close(dw, tw.grad.numpy(), what="eval grad_weight")
    assert_close(db, tb.grad.numpy(), what="eval grad_bias")


def test_batch_norm_large_mean_offset_is_stable(isa):
    """x = 1000 + noise: a one-pass E[x^2] - E[x]^2 in float would lose the variance entirely."""
    rng = np.random.default_rng(2)
    shape = (8, 6, 12, 12)
    x = (1000.0 + rng.standard_normal(shape)).astype(np.float32)
    weight, bias, gy = random_array(rng, 6), random_array(rng, 6), random_array(rng, *shape)
    rm, rv = pcn.zeros(6), pcn.ones(6)
    y, (dx, dw, db) = _run_batch_norm(x, weight, bias, gy, True, rm, rv)
    ref_y, ref_dx, ref_dw, ref_db, mean, var = batch_norm_reference(x, weight, bias, gy, 1e-5, True)
    assert_close(y, ref_y, what="output")
    assert_close(dx, ref_dx, what="grad_input")
    assert_close(dw, ref_dw, what="grad_weight")
    assert_close(db, ref_db, what="grad_bias")
    count = x.size // 6
    assert_close(rv.numpy(), 0.9 + 0.1 * var * count / (count - 1), what="running_var")
    torch = pytest.importorskip("torch")
    ty = torch.nn.functional.batch_norm(torch.tensor(x), None, None, torch.tensor(weight), torch.tensor(bias), True)
    assert_close(y, ty.numpy(), what="output vs torch")


def test_batch_norm_one_value_per_channel_in_training_is_rejected():
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size \(1, 3, 1\)"):
        F.batch_norm(pcn.zeros(1, 3, 1), None, None, training=True)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        F.batch_norm(pcn.zeros(1, 4), None, None, training=True)
    # eval mode with one value is fine
    y = F.batch_norm(pcn.zeros(1, 3), pcn.zeros(3), pcn.ones(3), training=False)
    assert y.shape == (1, 3)


def test_batch_norm_empty_batch(isa):
    rm, rv = pcn.tensor(np.full(3, 0.5, np.float32)), pcn.tensor(np.full(3, 2.0, np.float32))
    x = pcn.tensor(np.zeros((0, 3, 4, 4), np.float32), requires_grad=True)
    y = F.batch_norm(x, rm, rv, pcn.ones(3), pcn.zeros(3), training=True)
    assert y.shape == (0, 3, 4, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 4, 4)
    assert np.array_equal(rm.numpy(), np.full(3, 0.5, np.float32)) and np.array_equal(rv.numpy(), np.full(3, 2.0, np.float32))


def test_batch_norm_without_running_stats_and_no_grad_for_weight(isa):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, weight, bias = random_array(rng, 3, 4, 5), random_array(rng, 4), random_array(rng, 4)
    gy = random_array(rng, 3, 4, 5)
    xt = pcn.tensor(x, requires_grad=True)
    y = F.batch_norm(xt, None, None, pcn.tensor(weight), pcn.tensor(bias), training=True)
    (y * pcn.tensor(gy)).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.batch_norm(tx, None, None, torch.tensor(weight), torch.tensor(bias), training=True)
    ty.backward(torch.tensor(gy))
    assert_close(y.detach().numpy(), ty.detach().numpy(), what="output")
    assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input")


def test_batch_norm_is_deterministic_for_fixed_threads():
    rng = np.random.default_rng(4)
    x, gy = random_array(rng, 16, 8, 20, 20), random_array(rng, 16, 8, 20, 20)
    weight, bias = random_array(rng, 8), random_array(rng, 8)
    first = _run_batch_norm(x, weight, bias, gy, True)
    second = _run_batch_norm(x, weight, bias, gy, True)
    assert np.array_equal(first[0], second[0])
    for a, b in zip(first[1], second[1]):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("shape", [(6, 5, 33, 17), (16, 6, 40, 40), (300, 37)], ids=str)
def test_batch_norm_does_not_depend_on_thread_count(shape):
    rng = np.random.default_rng(5)
    x, gy = random_array(rng, *shape), random_array(rng, *shape)
    weight, bias = random_array(rng, shape[1]), random_array(rng, shape[1])
    threads = pcn.backend.get_num_threads()
    try:
        results = []
        for count in (1, 2, 3):
            pcn.backend.set_num_threads(count)
            results.append(_run_batch_norm(x, weight, bias, gy, True))
    finally:
        pcn.backend.set_num_threads(threads)
    for other in results[1:]:
        assert np.array_equal(results[0][0], other[0])
        for a, b in zip(results[0][1], other[1]):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("relu", [False, True], ids=["plain", "relu"])
@pytest.mark.parametrize("batch,size", [(64, 32), (1024, 8), (2048, 7)], ids=str)
def test_batch_norm_channel_blocks_give_the_part_parallel_bits(batch, size, relu):
    # On two threads one channel is normalised part by part in parallel (fewer channels than
    # threads), two channels by blocks of channels: the shared channel must match. Planes of
    # 32 x 32 make parts of one image, 8 x 8 parts of 16, 7 x 7 parts of 20 and a last of 8.
    rng = np.random.default_rng(6)
    x, gy = random_array(rng, batch, 2, size, size) + 50.0, random_array(rng, batch, 2, size, size)
    weight, bias = rng.uniform(0.5, 1.5, 2).astype(np.float32), rng.uniform(-0.5, 0.5, 2).astype(np.float32)
    threads = pcn.backend.get_num_threads()
    try:
        pcn.backend.set_num_threads(2)
        results = []
        for channels in (slice(0, 1), slice(0, 2)):
            xs, gys = np.ascontiguousarray(x[:, channels]), np.ascontiguousarray(gy[:, channels])
            running = [np.zeros(xs.shape[1], np.float32), np.ones(xs.shape[1], np.float32)]
            y, mean, invstd = _C.batch_norm_forward_train(xs, *running, weight[channels], bias[channels], 0.1, 1e-5,
                                                          relu=relu)[:3]
            grads = _C.batch_norm_backward(gys, xs, mean, invstd, weight[channels], True, (True, True, True),
                                           y if relu else None)
            results.append([a[:, :1] if a.ndim == 4 else a[:1] for a in (y, mean, invstd, *running, *grads)])
    finally:
        pcn.backend.set_num_threads(threads)
    for one, two in zip(*results):
        assert np.array_equal(one, two)


# (input shape, size): sizes 1, 2, 5, size > channels, 3-D and 4-D inputs, odd sizes
LRN_CASES = [
    ((2, 7, 5, 3), 1),
    ((2, 7, 5, 3), 2),
    ((2, 7, 5, 3), 5),
    ((3, 3, 4, 4), 7),
    ((1, 16, 9), 5),
    ((2, 20, 17, 17), 4),
    ((1, 1, 1, 1), 3),
    ((2, 5, 1, 300), 3),
]


@pytest.mark.parametrize("shape,size", LRN_CASES, ids=str)
def test_local_response_norm_matches_float64_reference_and_torch(isa, shape, size):
    rng = np.random.default_rng(6)
    x, gy = random_array(rng, *shape) * 3, random_array(rng, *shape)
    alpha, beta, k = 0.05, 0.75, 1.5
    xt = pcn.tensor(x, requires_grad=True)
    y = F.local_response_norm(xt, size, alpha, beta, k)
    (y * pcn.tensor(gy)).sum().backward()
    ref_y, ref_dx = lrn_reference(x, gy, size, alpha, beta, k)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.local_response_norm(tx, size, alpha, beta, k)
    ty.backward(torch.tensor(gy))
    assert_close(y.detach().numpy(), ty.detach().numpy(), what="output vs torch")
    assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input vs torch")


@pytest.mark.parametrize("beta", [0.75, 0.5, 1.3])
def test_local_response_norm_defaults_and_other_betas(isa, beta):
    rng = np.random.default_rng(7)
    x, gy = random_array(rng, 2, 6, 4, 4) * 10, random_array(rng, 2, 6, 4, 4)
    xt = pcn.tensor(x, requires_grad=True)
    y = F.local_response_norm(xt, 3, beta=beta)
    (y * pcn.tensor(gy)).sum().backward()
    ref_y, ref_dx = lrn_reference(x, gy, 3, 1e-4, beta, 1.0)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")


def test_local_response_norm_empty_and_deterministic():
    y = F.local_response_norm(pcn.zeros(2, 3, 0), 2)
    assert y.shape == (2, 3, 0)
    y = F.local_response_norm(pcn.zeros(0, 3, 4, 4), 2)
    assert y.shape == (0, 3, 4, 4)
    x = random_array(np.random.default_rng(8), 4, 12, 30, 30)
    first, second = (F.local_response_norm(pcn.tensor(x), 5).numpy() for _ in range(2))
    assert np.array_equal(first, second)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.batch_norm(pcn.zeros(2, 3).long(), None, None, training=True), TypeError, "input must be a float32"),
        (lambda: F.batch_norm(pcn.zeros(4), None, None, training=True), ValueError, r"input must have at least 2 dimensions .*\[4\]"),
        (lambda: F.batch_norm(pcn.zeros(2, 3, 4), None, None, pcn.zeros(4), training=True), ValueError, r"weight must have shape \[3\], got \[4\]"),
        (lambda: F.batch_norm(pcn.zeros(2, 3, 4), None, None, None, pcn.zeros(2, 3), training=True), ValueError, r"bias must have shape \[3\], got \[2, 3\]"),
        (lambda: F.batch_norm(pcn.zeros(2, 3, 4), pcn.zeros(5), pcn.zeros(3), training=True), ValueError, r"running_mean must have shape \[3\], got \[5\]"),
        (lambda: F.batch_norm(pcn.zeros(2, 3, 4), None, None, training=False), ValueError, "running_mean and running_var are required"),
        (lambda: F.batch_norm(pcn.zeros(2, 3, 4), None, None, training=True, eps=-1.0), ValueError, "eps must be"),
        (lambda: F.batch_norm(pcn.zeros(2, 0, 4), None, None, training=True), ValueError, r"positive channels.*\[2, 0, 4\]"),
        (lambda: F.local_response_norm(pcn.zeros(3, 4), 2), ValueError, r"Expected 3D or higher dimensionality input \(got 2"),
        (lambda: F.local_response_norm(pcn.zeros(2, 3, 4), 0), ValueError, "size must be positive, got 0"),
        (lambda: F.local_response_norm(pcn.zeros(2, 3, 4), 2.5), TypeError, "size must be an int"),
        (lambda: F.local_response_norm(pcn.zeros(2, 3, 4).long(), 2), TypeError, "input must be a float32"),
        (lambda: _C.lrn_backward(*(np.zeros((2, 3, 4), np.float32),) * 3, np.zeros((2, 3, 5), np.float32), 2, 1e-4, 0.75, 1.0),
         ValueError, r"scale must have shape \[2, 3, 4\], got \[2, 3, 5\]"),
        (lambda: _C.batch_norm_backward(np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 5), np.float32), np.zeros(3, np.float32),
                                        np.ones(3, np.float32), None, True, (True, True, True)),
         ValueError, r"grad_output must have shape \[2, 3, 5\], got \[2, 3, 4\]"),
        (lambda: _C.batch_norm_forward_train(np.zeros((2, 3), np.float32), np.zeros(6, np.float32)[::2], None, None, None, 0.1, 1e-5),
         ValueError, "running_mean must be C-contiguous"),
        (lambda: _C.batch_norm_forward_train(np.zeros((2, 3), np.float32), np.zeros(3), None, None, None, 0.1, 1e-5),
         TypeError, "running_mean must be a float32"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
