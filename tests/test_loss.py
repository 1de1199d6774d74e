"""softmax, log_softmax, cross_entropy, nll_loss and mse_loss: forward and backward against a
float64 numpy reference and against PyTorch, on every ISA; bad arguments raise clear errors."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from support import assert_close, random_array


# ------------------------------------------------------------------ float64 numpy reference
def log_softmax_reference(x, dim):
    x = x.astype(np.float64)
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def class_loss_reference(log_probs, target, weight, ignore_index, reduction, smoothing, gy):
    """Cross-entropy on log-probabilities (nll_loss when smoothing is 0): the loss and its
    gradient with respect to log_probs for an upstream gradient gy, in float64."""
    lp = np.moveaxis(log_probs.astype(np.float64), 1, -1)  # (N, d..., C)
    classes = lp.shape[-1]
    w = np.ones(classes) if weight is None else weight.astype(np.float64)
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    picked = np.take_along_axis(lp, safe[..., None], axis=-1)[..., 0]
    nll = np.where(keep, -w[safe] * picked, 0.0)
    smooth = np.where(keep, -(lp * w).sum(-1), 0.0)
    per_element = (1 - smoothing) * nll + smoothing / classes * smooth
    divisor = w[safe][keep].sum()
    if reduction == "none":
        loss, g = per_element, np.asarray(gy, np.float64)
    elif reduction == "sum":
        loss, g = per_element.sum(), np.full(target.shape, float(gy))
    else:
        loss = per_element.sum() / divisor if divisor else np.nan
        g = np.full(target.shape, float(gy) / divisor if divisor else 0.0)
    g = np.where(keep, g, 0.0)
    dlp = -g[..., None] * smoothing / classes * w
    onehot = np.eye(classes)[safe]
    dlp -= (g * (1 - smoothing) * w[safe])[..., None] * onehot
    return loss, np.moveaxis(dlp, -1, 1)


def cross_entropy_reference(logits, target, weight, ignore_index, reduction, smoothing, gy):
    lp = log_softmax_reference(logits, 1)
    loss, dlp = class_loss_reference(lp, target, weight, ignore_index, reduction, smoothing, gy)
    dlogits = dlp - np.exp(lp) * dlp.sum(axis=1, keepdims=True)
    return loss, dlogits


def upstream(rng, reduction, target_shape):
    return random_array(rng, *target_shape) if reduction == "none" else np.float32(rng.uniform(0.5, 2.0))


def backward_with(loss, gy):
    loss.backward(pcn.tensor(np.asarray(gy, np.float32).reshape(loss.shape)))


# ------------------------------------------------------------------ softmax / log_softmax
# (shape, dim)
SOFTMAX_CASES = [
    ((4, 10), 1),
    ((1, 1), 1),  # batch 1, one class
    ((3, 17), -1),  # classes not a multiple of 8/16
    ((2, 5, 3, 7), 1),  # NCHW over channels: inner = 21
    ((2, 3, 9, 70), 1),  # inner = 630: several column blocks
    ((5, 4, 3), 0),  # dim 0: outer = 1
    ((2, 3, 4), -2),
    ((7,), 0),
    ((0, 5), 1),  # empty batch
    ((3, 1, 1, 1), 1),  # 1x1 images
]


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=str)
def test_softmax_matches_reference_and_torch(isa, op, shape, dim):
    rng = np.random.default_rng(0)
    x = (random_array(rng, *shape) * 3).astype(np.float32)
    gy = random_array(rng, *shape)
    xt = pcn.tensor(x, requires_grad=True)
    y = getattr(F, op)(xt, dim=dim)
    (y * pcn.tensor(gy)).sum().backward()
    ref_lp = log_softmax_reference(x, dim)
    if op == "softmax":
        ref_y = np.exp(ref_lp)
        ref_dx = ref_y * (gy - (gy * ref_y).sum(axis=dim, keepdims=True))
    else:
        ref_y = ref_lp
        ref_dx = gy - np.exp(ref_lp) * gy.astype(np.float64).sum(axis=dim, keepdims=True)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, op)(tx, dim=dim)
    ty.backward(torch.tensor(gy))
    assert_close(y.detach().numpy(), ty.detach().numpy(), what="output vs torch")
    assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input vs torch")


def test_softmax_is_stable_for_large_logits(isa):
    x = np.array([[1000.0, 999.0, -1000.0], [-1e30, 0.0, 1e30]], np.float32)
    y = F.softmax(pcn.tensor(x), dim=1).numpy()
    lp = F.log_softmax(pcn.tensor(x), dim=1).numpy()
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(lp))
    assert_close(y, np.exp(log_softmax_reference(x, 1)), what="softmax")
    assert_close(lp[0], log_softmax_reference(x, 1)[0], what="log_softmax")


def test_softmax_implicit_dim_warns_like_torch():
    x = pcn.tensor(np.zeros((2, 3), np.float32))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = F.softmax(x)
    assert np.allclose(y.numpy(), 1 / 3)


# ------------------------------------------------------------------ cross_entropy / nll_loss
# (input shape, weighted, ignore some, reduction, label_smoothing)
CLASS_CASES = [
    ((4, 10), False, False, "mean", 0.0),
    ((1, 1), False, False, "mean", 0.0),  # batch 1, one class
    ((5, 7), True, True, "mean", 0.0),
    ((5, 7), True, True, "sum", 0.1),
    ((6, 17), True, True, "none", 0.25),  # classes not a multiple of 8/16
    ((3, 5, 4, 6), False, True, "mean", 0.2),  # segmentation-style (N, C, H, W)
    ((2, 6, 9, 70), True, True, "mean", 0.3),  # inner = 630: several column blocks
    ((2, 4, 3), True, False, "none", 0.0),  # (N, C, d1)
    ((3, 9, 1, 1), True, True, "sum", 0.0),  # 1x1 images
    ((0, 5), False, False, "sum", 0.1),  # empty batch
]


def class_inputs(rng, shape, weighted, ignore):
    classes = shape[1]
    x = random_array(rng, *shape) * 2
    target_shape = (shape[0],) + shape[2:]
    target = rng.integers(0, classes, size=target_shape).astype(np.int64)
    if ignore and target.size > 1:
        target.reshape(-1)[::3] = -100
    weight = rng.uniform(0.2, 2.0, classes).astype(np.float32) if weighted else None
    return x.astype(np.float32), target, weight


def torch_class_loss(torch, op, x, target, weight, reduction, smoothing, gy):
    tx = torch.tensor(x, requires_grad=True)
    tw = None if weight is None else torch.tensor(weight)
    kwargs = {"label_smoothing": smoothing} if op == "cross_entropy" else {}
    tl = getattr(torch.nn.functional, op)(tx, torch.tensor(target), tw, reduction=reduction, **kwargs)
    tl.backward(torch.tensor(np.asarray(gy, np.float32)))
    return tl.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("case", CLASS_CASES, ids=str)
def test_cross_entropy_matches_reference_and_torch(isa, case):
    shape, weighted, ignore, reduction, smoothing = case
    rng = np.random.default_rng(1)
    x, target, weight = class_inputs(rng, shape, weighted, ignore)
    gy = upstream(rng, reduction, target.shape)
    xt = pcn.tensor(x, requires_grad=True)
    wt = None if weight is None else pcn.tensor(weight)
    loss = F.cross_entropy(xt, pcn.tensor(target), wt, reduction=reduction, label_smoothing=smoothing)
    backward_with(loss, gy)
    ref_loss, ref_dx = cross_entropy_reference(x, target, weight, -100, reduction, smoothing, gy)
    assert_close(loss.detach().numpy(), np.asarray(ref_loss), what="loss")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    torch = pytest.importorskip("torch")
    t_loss, t_dx = torch_class_loss(torch, "cross_entropy", x, target, weight, reduction, smoothing, gy)
    if np.isnan(t_loss).any():  # an empty batch with mean reduction
        assert np.isnan(loss.detach().numpy()).all()
    else:
        assert_close(loss.detach().numpy(), t_loss, what="loss vs torch")
    assert_close(xt.grad.numpy(), t_dx, what="grad_input vs torch")


@pytest.mark.parametrize("case", [c for c in CLASS_CASES if c[4] == 0.0] + [((5, 7), True, True, "none", 0.0)], ids=str)
def test_nll_loss_matches_reference_and_torch(isa, case):
    shape, weighted, ignore, reduction, _ = case
    rng = np.random.default_rng(2)
    x, target, weight = class_inputs(rng, shape, weighted, ignore)
    log_probs = log_softmax_reference(x, 1).astype(np.float32)
    gy = upstream(rng, reduction, target.shape)
    xt = pcn.tensor(log_probs, requires_grad=True)
    wt = None if weight is None else pcn.tensor(weight)
    loss = F.nll_loss(xt, pcn.tensor(target), wt, reduction=reduction)
    backward_with(loss, gy)
    ref_loss, ref_dx = class_loss_reference(log_probs, target, weight, -100, reduction, 0.0, gy)
    assert_close(loss.detach().numpy(), np.asarray(ref_loss), what="loss")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    torch = pytest.importorskip("torch")
    t_loss, t_dx = torch_class_loss(torch, "nll_loss", log_probs, target, weight, reduction, 0.0, gy)
    assert_close(loss.detach().numpy(), t_loss, what="loss vs torch")
    assert_close(xt.grad.numpy(), t_dx, what="grad_input vs torch")


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_all_ignored_mean_is_nan_with_zero_gradient_like_torch(isa, op):
    x = random_array(np.random.default_rng(3), 3, 4)
    target = np.full(3, 2, np.int64)
    xt = pcn.tensor(x, requires_grad=True)
    loss = getattr(F, op)(xt, pcn.tensor(target), ignore_index=2)
    loss.backward()
    assert np.isnan(loss.item())
    assert np.array_equal(xt.grad.numpy(), np.zeros_like(x))
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    tl = getattr(torch.nn.functional, op)(tx, torch.tensor(target), ignore_index=2)
    tl.backward()
    assert np.isnan(tl.item()) and np.array_equal(tx.grad.numpy(), np.zeros_like(x))


@pytest.mark.parametrize("shape", [(4, 10), (2, 5, 3, 3)], ids=str)
@pytest.mark.parametrize("weighted,reduction,smoothing", [(False, "mean", 0.0), (True, "sum", 0.2), (True, "none", 0.1), (False, "mean", 0.3)])
def test_cross_entropy_with_class_probabilities_matches_torch(isa, shape, weighted, reduction, smoothing):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    x = random_array(rng, *shape)
    probs = rng.uniform(size=shape)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    weight = rng.uniform(0.2, 2.0, shape[1]).astype(np.float32) if weighted else None
    gy = upstream(rng, reduction, (shape[0],) + shape[2:])
    xt = pcn.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, pcn.tensor(probs), None if weight is None else pcn.tensor(weight),
                           reduction=reduction, label_smoothing=smoothing)
    backward_with(loss, gy)
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(probs), None if weight is None else torch.tensor(weight),
                                           reduction=reduction, label_smoothing=smoothing)
    tl.backward(torch.tensor(np.asarray(gy, np.float32)))
    assert loss.shape == tuple(tl.shape)
    assert_close(loss.detach().numpy(), tl.detach().numpy(), what="loss vs torch")
    assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input vs torch")
    # float64 reference: -sum_c w[c] * t[c] * log_softmax(x)[c]
    lp = log_softmax_reference(x, 1)
    mixed = probs * (1 - smoothing) + smoothing / shape[1]
    w = np.ones(shape[1]) if weight is None else weight.astype(np.float64)
    per = -(mixed * w.reshape((1, -1) + (1,) * (len(shape) - 2)) * lp).sum(axis=1)
    ref = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    assert_close(loss.detach().numpy(), np.asarray(ref), what="loss vs float64")


@pytest.mark.parametrize("ignore_index", [0, 3, -1])
def test_custom_ignore_index_matches_torch(isa, ignore_index):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = random_array(rng, 8, 5)
    target = np.array([0, 1, 2, 3, 4, 0, 3, 1], np.int64)
    if ignore_index == -1:
        target[::2] = -1
    xt = pcn.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, pcn.tensor(target), ignore_index=ignore_index, label_smoothing=0.1)
    loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(target), ignore_index=ignore_index, label_smoothing=0.1)
    tl.backward()
    assert_close(loss.detach().numpy(), tl.detach().numpy(), what="loss")
    assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input")


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
def test_unbatched_input_matches_torch(op):
    torch = pytest.importorskip("torch")
    x = random_array(np.random.default_rng(5), 6)
    for reduction in ("mean", "none"):
        xt = pcn.tensor(x, requires_grad=True)
        loss = getattr(F, op)(xt, pcn.tensor(np.array(4, np.int64)), reduction=reduction)
        loss.backward()
        tx = torch.tensor(x, requires_grad=True)
        tl = getattr(torch.nn.functional, op)(tx, torch.tensor(4), reduction=reduction)
        tl.backward()
        assert loss.shape == tuple(tl.shape)
        assert_close(loss.detach().numpy(), tl.detach().numpy(), what="loss")
        assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input")


def test_legacy_size_average_and_reduce_pick_the_reduction():
    rng = np.random.default_rng(6)
    x, target = random_array(rng, 4, 3), np.array([0, 1, 2, 1], np.int64)
    xt, tt = pcn.tensor(x), pcn.tensor(target)
    summed = F.cross_entropy(xt, tt, reduction="sum").item()
    assert F.cross_entropy(xt, tt, size_average=False).item() == summed
    assert F.cross_entropy(xt, tt, reduce=False).shape == (4,)
    assert F.nll_loss(xt, tt, None, False).item() == F.nll_loss(xt, tt, reduction="sum").item()


# ------------------------------------------------------------------ mse_loss
@pytest.mark.parametrize("shape", [(1,), (4, 10), (3, 5, 7, 9), (70000,), (0, 3)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_reference_and_torch(isa, shape, reduction):
    rng = np.random.default_rng(7)
    x, y = random_array(rng, *shape), random_array(rng, *shape)
    gy = upstream(rng, reduction, shape)
    xt, yt = pcn.tensor(x, requires_grad=True), pcn.tensor(y, requires_grad=True)
    loss = F.mse_loss(xt, yt, reduction=reduction)
    backward_with(loss, gy)
    diff = x.astype(np.float64) - y
    count = diff.size
    if reduction == "none":
        ref_loss, ref_dx = diff**2, 2 * diff * gy
    elif reduction == "sum":
        ref_loss, ref_dx = (diff**2).sum(), 2 * diff * float(gy)
    else:
        ref_loss = (diff**2).sum() / count if count else np.nan
        ref_dx = 2 * diff * float(gy) / max(count, 1)
    if count == 0 and reduction == "mean":
        assert np.isnan(loss.item())
    else:
        assert_close(loss.detach().numpy(), np.asarray(ref_loss), what="loss")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    assert_close(yt.grad.numpy(), -ref_dx, what="grad_target")
    torch = pytest.importorskip("torch")
    if count:
        tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y)
        tl = torch.nn.functional.mse_loss(tx, ty, reduction=reduction)
        tl.backward(torch.tensor(np.asarray(gy, np.float32)))
        assert_close(loss.detach().numpy(), tl.detach().numpy(), what="loss vs torch")
        assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input vs torch")


# ------------------------------------------------------------------ determinism
def test_losses_are_deterministic():
    rng = np.random.default_rng(8)
    x, target, weight = class_inputs(rng, (64, 10, 5, 5), True, True)
    runs = []
    for _ in range(2):
        xt = pcn.tensor(x, requires_grad=True)
        loss = F.cross_entropy(xt, pcn.tensor(target), pcn.tensor(weight), label_smoothing=0.1)
        loss.backward()
        big = F.mse_loss(pcn.tensor(x), pcn.tensor(x * 0.5))
        runs.append((loss.detach().numpy().copy(), xt.grad.numpy().copy(), big.numpy().copy()))
    for first, second in zip(*runs):
        assert np.array_equal(first, second)


def test_loss_reductions_do_not_depend_on_thread_count():
    rng = np.random.default_rng(9)
    x, target, weight = class_inputs(rng, (300, 10), True, True)
    previous = pcn.backend.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            pcn.backend.set_num_threads(threads)
            results.append(_C.cross_entropy_forward(x, target, weight, -100, 1, 0.1)[0])
    finally:
        pcn.backend.set_num_threads(previous)
    assert np.array_equal(results[0], results[1])


# ------------------------------------------------------------------ bad input
def _ce(x_shape=(4, 5), target=None, **kw):
    target = np.array([0, 1, 2, 3], np.int64) if target is None else target
    return F.cross_entropy(pcn.zeros(*x_shape), pcn.tensor(target), **kw)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: _ce(target=np.array([0, 1, 7, 3], np.int64)), ValueError, "target value 7 is out of bounds for 5 classes"),
        (lambda: _ce(target=np.array([0, -3, 1, 2], np.int64)), ValueError, "target value -3 is out of bounds"),
        (lambda: _ce(target=np.array([0, 1, 2], np.int64)), ValueError, r"target must have shape \[4\] for input of shape \[4, 5\], got \[3\]"),
        (lambda: F.cross_entropy(pcn.zeros(4, 5), np.zeros(4, np.int32)), TypeError, "target must be a int64"),
        (lambda: _ce(target=np.zeros(4, np.float32)), ValueError, r"class-probability target must have the input's shape \(4, 5\), got \(4,\)"),
        (lambda: F.cross_entropy(pcn.zeros(4, 5).long(), pcn.tensor(np.zeros(4, np.int64))), TypeError, "input must be a float32"),
        (lambda: _ce(weight=pcn.zeros(4)), ValueError, r"weight must have shape \[5\], got \[4\]"),
        (lambda: _ce(reduction="avg"), ValueError, "'avg' is not a valid value for reduction"),
        (lambda: _ce(label_smoothing=1.5), ValueError, "label_smoothing must be between 0.0 and 1.0"),
        (lambda: _ce(x_shape=(4, 0)), ValueError, r"positive number of classes .*\[4, 0, 1\]"),
        (lambda: F.nll_loss(pcn.zeros(2, 3, 4), pcn.tensor(np.zeros((2, 5), np.int64))), ValueError, r"target must have shape \[2, 4\]"),
        (lambda: F.nll_loss(pcn.zeros(2, 3), pcn.tensor(np.array([3, 0], np.int64))), ValueError, "nll_loss: target value 3"),
        (lambda: F.mse_loss(pcn.zeros(2, 3), pcn.zeros(3, 2)), ValueError, r"mse_loss: target must have shape \[2, 3\], got \[3, 2\]"),
        (lambda: F.mse_loss(pcn.zeros(2, 3), pcn.zeros(2, 3), weight=pcn.zeros(2, 3)), NotImplementedError, "weight"),
        (lambda: F.softmax(pcn.zeros(2, 3), dim=2), ValueError, r"softmax: dim 2 is out of range for input of shape \[2, 3\]"),
        (lambda: F.log_softmax(pcn.zeros(2, 3), dim=1.0), TypeError, "dim must be an int"),
        (lambda: F.log_softmax(pcn.zeros(2, 3), dim=1, dtype=np.float64), ValueError, "only dtype=float32"),
        (lambda: _C.cross_entropy_backward(np.zeros(3, np.float32), np.zeros((4, 5), np.float32), np.zeros(4, np.int64), None, -100, 0, 0.0), ValueError, r"grad_output must have shape \[4\], got \[3\]"),
        (lambda: _C.nll_loss_backward(np.zeros((), np.float32), np.zeros(4, np.int64), None, [4, 5], -100, 3), ValueError, "reduction must be 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
