"""l1_loss, smooth_l1_loss, huber_loss, binary_cross_entropy and binary_cross_entropy_with_logits
(and their modules): forward and the input and target gradients against float64 numpy references
and PyTorch on every ISA, over the edge shapes and all three reductions."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn as nn
import pyconvnet.nn.functional as F
from support import assert_close, random_array
from test_loss import backward_with, upstream


# ------------------------------------------------------------------ float64 references
# Each gives (per-element loss, d loss / d input, d loss / d target) for input x and target t.
def smooth_l1_reference(x, t, beta, huber=False):
    diff = x - t
    scale = beta if huber else 1.0
    inside = np.abs(diff) < beta
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = np.where(inside, 0.5 * diff**2 / beta, np.abs(diff) - 0.5 * beta)
        grad = np.where(inside, diff / beta, np.sign(diff))
    return scale * loss, scale * grad, -scale * grad


def bce_reference(x, t, w):
    log_x, log_1mx = np.maximum(np.log(x), -100), np.maximum(np.log1p(-x), -100)
    return (-w * (t * log_x + (1 - t) * log_1mx), w * (x - t) / np.maximum(x * (1 - x), 1e-12),
            w * (log_1mx - log_x))


def bce_logits_reference(x, t, w, p):
    log_sigmoid, log_sigmoid_neg = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    sigmoid = 1 / (1 + np.exp(-x))
    return (-w * (p * t * log_sigmoid + (1 - t) * log_sigmoid_neg), w * (p * t * (sigmoid - 1) + (1 - t) * sigmoid),
            w * (p * -log_sigmoid + log_sigmoid_neg))


def _tensors(lib, arrays):
    return {name: None if value is None else lib.tensor(value) for name, value in arrays.items()}


# name -> (make inputs(rng, shape) -> x, t, extras; reference(x, t, extras); call(F, lib, x, t, extras, reduction))
CASES = {
    "l1_loss": (
        lambda rng, shape: (random_array(rng, *shape), random_array(rng, *shape), {}),
        lambda x, t, e: smooth_l1_reference(x, t, 0.0),
        lambda F, lib, x, t, e, r: F.l1_loss(x, t, reduction=r),
    ),
    "smooth_l1_loss": (
        lambda rng, shape: (random_array(rng, *shape), random_array(rng, *shape), {}),
        lambda x, t, e: smooth_l1_reference(x, t, 1.0),
        lambda F, lib, x, t, e, r: F.smooth_l1_loss(x, t, reduction=r),
    ),
    "smooth_l1_loss_beta": (
        lambda rng, shape: (random_array(rng, *shape), random_array(rng, *shape), {}),
        lambda x, t, e: smooth_l1_reference(x, t, 0.3),
        lambda F, lib, x, t, e, r: F.smooth_l1_loss(x, t, reduction=r, beta=0.3),
    ),
    "huber_loss": (
        lambda rng, shape: (random_array(rng, *shape), random_array(rng, *shape), {}),
        lambda x, t, e: smooth_l1_reference(x, t, 0.7, huber=True),
        lambda F, lib, x, t, e, r: F.huber_loss(x, t, reduction=r, delta=0.7),
    ),
    "binary_cross_entropy": (
        lambda rng, shape: (rng.uniform(0.02, 0.98, shape).astype(np.float32), rng.random(shape).astype(np.float32),
                            {"weight": None}),
        lambda x, t, e: bce_reference(x, t, 1.0),
        lambda F, lib, x, t, e, r: F.binary_cross_entropy(x, t, reduction=r),
    ),
    "binary_cross_entropy_weighted": (
        lambda rng, shape: (rng.uniform(0.02, 0.98, shape).astype(np.float32), rng.random(shape).astype(np.float32),
                            {"weight": rng.uniform(0.5, 2, shape[-1:]).astype(np.float32)}),
        lambda x, t, e: bce_reference(x, t, e["weight"]),
        lambda F, lib, x, t, e, r: F.binary_cross_entropy(x, t, _tensors(lib, e)["weight"], reduction=r),
    ),
    "binary_cross_entropy_with_logits": (
        lambda rng, shape: (random_array(rng, *shape) * 3, rng.random(shape).astype(np.float32), {}),
        lambda x, t, e: bce_logits_reference(x, t, 1.0, 1.0),
        lambda F, lib, x, t, e, r: F.binary_cross_entropy_with_logits(x, t, reduction=r),
    ),
    "binary_cross_entropy_with_logits_weighted": (
        lambda rng, shape: (random_array(rng, *shape) * 3, rng.random(shape).astype(np.float32),
                            {"weight": rng.uniform(0.5, 2, shape[-1:]).astype(np.float32),
                             "pos_weight": rng.uniform(0.2, 4, shape[-1:]).astype(np.float32)}),
        lambda x, t, e: bce_logits_reference(x, t, e["weight"], e["pos_weight"]),
        lambda F, lib, x, t, e, r: F.binary_cross_entropy_with_logits(x, t, reduction=r, **_tensors(lib, e)),
    ),
}

SHAPES = [(1,), (4, 10), (3, 5, 7, 9), (70001,), (0, 3)]


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_matches_reference_and_torch(isa, name, shape, reduction):
    make, reference, call = CASES[name]
    rng = np.random.default_rng(10)
    x, t, extras = make(rng, shape)
    gy = upstream(rng, reduction, shape)
    xt, tt = pcn.tensor(x, requires_grad=True), pcn.tensor(t, requires_grad=True)
    loss = call(F, pcn, xt, tt, extras, reduction)
    backward_with(loss, gy)
    values, dx, dt = reference(x.astype(np.float64), t.astype(np.float64),
                               {k: None if v is None else v.astype(np.float64) for k, v in extras.items()})
    count = x.size
    scale = gy if reduction == "none" else float(gy) / (max(count, 1) if reduction == "mean" else 1)
    ref_loss = values if reduction == "none" else values.sum() / (max(count, 1) if reduction == "mean" else 1)
    if count == 0 and reduction == "mean":
        assert np.isnan(loss.item())
    else:
        assert_close(loss.detach().numpy(), np.asarray(ref_loss), what="loss")
    assert_close(xt.grad.numpy(), dx * scale, what="grad_input")
    assert_close(tt.grad.numpy(), dt * scale, what="grad_target")
    torch = pytest.importorskip("torch")
    if count:
        tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
        tl = call(torch.nn.functional, torch, tx, ty, extras, reduction)
        tl.backward(torch.tensor(np.asarray(gy, np.float32)))
        assert_close(loss.detach().numpy(), tl.detach().numpy(), what="loss vs torch")
        assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input vs torch")
        assert_close(tt.grad.numpy(), ty.grad.numpy(), what="grad_target vs torch")


def test_bce_clamps_logs_at_the_ends_like_torch(isa):
    torch = pytest.importorskip("torch")
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-30, 0.5], np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.25], np.float32)
    xt = pcn.tensor(x, requires_grad=True)
    loss = F.binary_cross_entropy(xt, pcn.tensor(t), reduction="none")
    loss.sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.binary_cross_entropy(tx, torch.tensor(t), reduction="none")
    tl.sum().backward()
    assert np.allclose(loss.detach().numpy(), tl.detach().numpy(), rtol=1e-6)
    assert np.allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-5)


def test_bce_with_logits_is_stable_for_large_logits(isa):
    torch = pytest.importorskip("torch")
    x = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], np.float32)
    t = np.array([1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0], np.float32)
    ours = F.binary_cross_entropy_with_logits(pcn.tensor(x), pcn.tensor(t), reduction="none").numpy()
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t), reduction="none")
    assert np.isfinite(ours).all()
    assert np.allclose(ours, theirs.numpy(), rtol=1e-6)


def test_loss_modules_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x, t = random_array(rng, 6, 4), rng.random((6, 4)).astype(np.float32)
    weight, pos_weight = rng.uniform(0.5, 2, 4).astype(np.float32), rng.uniform(0.5, 3, 4).astype(np.float32)
    probabilities = 1 / (1 + np.exp(-x))
    pairs = [
        (nn.L1Loss(), torch.nn.L1Loss(), x),
        (nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), x),
        (nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), x),
        (nn.SmoothL1Loss(reduction="none", beta=0.0), torch.nn.SmoothL1Loss(reduction="none", beta=0.0), x),
        (nn.HuberLoss(delta=2.0), torch.nn.HuberLoss(delta=2.0), x),
        (nn.BCELoss(pcn.tensor(weight)), torch.nn.BCELoss(torch.tensor(weight)), probabilities),
        (nn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(), x),
        (nn.BCEWithLogitsLoss(pcn.tensor(weight), pos_weight=pcn.tensor(pos_weight)),
         torch.nn.BCEWithLogitsLoss(torch.tensor(weight), pos_weight=torch.tensor(pos_weight)), x),
    ]
    for ours, theirs, inputs in pairs:
        xt, tx = pcn.tensor(inputs, requires_grad=True), torch.tensor(inputs, requires_grad=True)
        loss, tl = ours(xt, pcn.tensor(t)), theirs(tx, torch.tensor(t))
        assert_close(loss.detach().numpy(), tl.detach().numpy(), what=repr(ours))
        loss.sum().backward()
        tl.sum().backward()
        assert_close(xt.grad.numpy(), tx.grad.numpy(), what=f"grad of {ours!r}")
    module = nn.BCEWithLogitsLoss(pcn.tensor(weight), pos_weight=pcn.tensor(pos_weight))
    reference = torch.nn.BCEWithLogitsLoss(torch.tensor(weight), pos_weight=torch.tensor(pos_weight))
    assert sorted(module.state_dict()) == sorted(reference.state_dict()) == ["pos_weight", "weight"]


def test_elementwise_losses_do_not_depend_on_thread_count():
    rng = np.random.default_rng(12)
    x, t = random_array(rng, 300001), rng.random(300001).astype(np.float32)
    previous = pcn.backend.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            pcn.backend.set_num_threads(threads)
            results.append([F.smooth_l1_loss(pcn.tensor(x), pcn.tensor(t)).numpy(),
                            F.binary_cross_entropy_with_logits(pcn.tensor(x), pcn.tensor(t), reduction="sum").numpy()])
    finally:
        pcn.backend.set_num_threads(previous)
    for first, second in zip(*results):
        assert np.array_equal(first, second)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.l1_loss(pcn.zeros(2, 3), pcn.zeros(3, 2)), ValueError, r"target must have shape \[2, 3\], got \[3, 2\]"),
        (lambda: F.l1_loss(pcn.zeros(2, 3), pcn.zeros(2, 3), reduction="avg"), ValueError, "'avg' is not a valid value"),
        (lambda: F.l1_loss(pcn.zeros(2), pcn.zeros(2), weight=pcn.ones(2)), NotImplementedError, "weight"),
        (lambda: F.smooth_l1_loss(pcn.zeros(2), pcn.zeros(2), beta=-1.0), ValueError, "negative values for beta"),
        (lambda: F.smooth_l1_loss(pcn.zeros(2), pcn.zeros(2), beta="1"), TypeError, "beta must be a float"),
        (lambda: F.huber_loss(pcn.zeros(2), pcn.zeros(2), delta=0.0), ValueError, "non-positive values for delta"),
        (lambda: F.huber_loss(pcn.zeros(2), pcn.zeros(2), delta=float("inf")), ValueError, "delta"),
        (lambda: F.binary_cross_entropy(pcn.tensor([0.5, 1.5]), pcn.zeros(2)), ValueError,
         "all elements of input should be between 0 and 1"),
        (lambda: F.binary_cross_entropy(pcn.tensor([0.5, float("nan")]), pcn.zeros(2)), ValueError, "between 0 and 1"),
        (lambda: F.binary_cross_entropy(pcn.zeros(2), pcn.tensor([0.5, -0.5])), ValueError,
         "all elements of target should be between 0 and 1, got -0.5"),
        (lambda: F.binary_cross_entropy(pcn.zeros(2, 3), pcn.zeros(3)), ValueError,
         r"target size \[3\] must be the same as input size \[2, 3\]"),
        (lambda: F.binary_cross_entropy(pcn.zeros(2, 3), pcn.zeros(2, 3), weight=pcn.ones(2)), ValueError,
         r"weight of shape \[2\] does not broadcast to the input's shape \[2, 3\]"),
        (lambda: F.binary_cross_entropy_with_logits(pcn.zeros(2, 3), pcn.zeros(2, 3), pos_weight=pcn.ones(4)),
         ValueError, "pos_weight"),
        (lambda: F.binary_cross_entropy_with_logits(pcn.zeros(2, 3).long(), pcn.zeros(2, 3)), TypeError, "float32"),
        (lambda: F.binary_cross_entropy_with_logits(pcn.zeros(2, 3), pcn.zeros(2, 3).long()), TypeError, "target"),
        (lambda: nn.BCEWithLogitsLoss(pos_weight=[1.0, 2.0]), TypeError, "pos_weight must be a Tensor"),
        (lambda: nn.SmoothL1Loss(reduction="avg"), ValueError, "SmoothL1Loss: 'avg' is not a valid value for reduction"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
