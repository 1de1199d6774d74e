"""layer_norm and group_norm (one group-norm kernel pair): forward and the input, weight and bias
gradients against float64 numpy references and PyTorch on every ISA, over edge shapes; the
LayerNorm / GroupNorm modules against torch's."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn as nn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from support import assert_close, random_array


def group_norm_reference(x, groups, w, b, eps, gy):
    """Output and the gradients of sum(y * gy) w.r.t. x, w, b for (N, C, *) x, in float64."""
    n, c = x.shape[:2]
    if x.size == 0:
        return x.copy(), x.copy(), np.zeros(c), np.zeros(c)
    rows = x.reshape(n, groups, x.size // max(n * groups, 1))
    mean, var = rows.mean(axis=2, keepdims=True), rows.var(axis=2, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xhat = ((rows - mean) * rstd).reshape(x.shape)
    channel = (1, c) + (1,) * (x.ndim - 2)
    wb, bb = (np.ones(c) if w is None else w).reshape(channel), (np.zeros(c) if b is None else b).reshape(channel)
    y = xhat * wb + bb
    g = (gy * wb).reshape(rows.shape)
    xh = xhat.reshape(rows.shape)
    dx = (rstd * (g - g.mean(axis=2, keepdims=True) - xh * (g * xh).mean(axis=2, keepdims=True))).reshape(x.shape)
    axes = (0,) + tuple(range(2, x.ndim))
    return y, dx, (gy * xhat).sum(axis=axes), gy.sum(axis=axes)


def layer_norm_reference(x, ndim, w, b, eps, gy):
    """layer_norm as group_norm of the (rows, D) view with one group."""
    shape = x.shape[x.ndim - ndim:]
    rows = int(np.prod(x.shape[: x.ndim - ndim]))
    flat = lambda a: None if a is None else a.reshape(-1)  # noqa: E731
    size = int(np.prod(shape))
    y, dx, dw, db = group_norm_reference(x.reshape(rows, size), 1, flat(w), flat(b), eps, gy.reshape(rows, size))
    return y.reshape(x.shape), dx.reshape(x.shape), dw.reshape(shape), db.reshape(shape)


def _run(call, x, gy, w, b):
    xt = pcn.tensor(x, requires_grad=True)
    wt = None if w is None else pcn.tensor(w, requires_grad=True)
    bt = None if b is None else pcn.tensor(b, requires_grad=True)
    y = call(xt, wt, bt)
    (y * pcn.tensor(gy)).sum().backward()
    return [y.detach().numpy(), xt.grad.numpy()] + [None if t is None else t.grad.numpy() for t in (wt, bt)]


def _compare(ours, reference, torch_results):
    for what, got, expected in zip(["output", "grad_input", "grad_weight", "grad_bias"], ours, reference):
        if got is not None:
            assert_close(got, expected, what=what)
    for what, got, expected in zip(["output", "grad_input", "grad_weight", "grad_bias"], ours, torch_results):
        if got is not None:
            assert_close(got, expected, what=f"{what} vs torch")


def _torch_run(torch, call, x, gy, w, b):
    tx = torch.tensor(x, requires_grad=True)
    tw = None if w is None else torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = call(tx, tw, tb)
    ty.backward(torch.tensor(gy))
    return [ty.detach().numpy(), tx.grad.numpy()] + [None if t is None else t.grad.numpy() for t in (tw, tb)]


# (input shape, num_groups, affine)
GROUP_CASES = [
    ((2, 6, 5, 5), 3, True),
    ((1, 4, 1, 1), 1, True),  # batch 1, 1x1 images (a group of two values has a gradient of ~eps only)
    ((2, 4, 3), 4, True),  # a group per channel
    ((3, 8, 7), 1, True),  # one group: layer norm over (C, L)
    ((2, 17, 3, 3), 17, False),  # channels not a multiple of the vector width, no affine
    ((4, 32, 9, 11), 8, True),  # several channel blocks in the weight gradient
    ((5, 6), 2, True),  # (N, C): spatial 1
    ((0, 6, 2, 2), 3, True),  # empty batch
]


@pytest.mark.parametrize("shape,groups,affine", GROUP_CASES, ids=str)
def test_group_norm_matches_reference_and_torch(isa, shape, groups, affine):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, gy = random_array(rng, *shape) * 3 + 1, random_array(rng, *shape)
    w, b = (random_array(rng, shape[1]), random_array(rng, shape[1])) if affine else (None, None)
    ours = _run(lambda xt, wt, bt: F.group_norm(xt, groups, wt, bt, eps=1e-5), x, gy, w, b)
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    reference = group_norm_reference(f64(x), groups, f64(w), f64(b), 1e-5, f64(gy))
    theirs = _torch_run(torch, lambda tx, tw, tb: torch.nn.functional.group_norm(tx, groups, tw, tb, eps=1e-5), x, gy, w, b)
    _compare(ours, reference, theirs)


# (input shape, normalized_shape, weight, bias)
LAYER_CASES = [
    ((4, 10), (10,), True, True),
    ((2, 3, 5, 7), (5, 7), True, True),  # normalise over (H, W)
    ((2, 3, 5, 7), (3, 5, 7), True, False),  # over (C, H, W), no bias
    ((1, 3), (3,), True, True),  # batch 1
    ((3, 4, 17), (17,), False, False),
    ((7,), (7,), True, True),  # unbatched
    ((0, 5), (5,), True, True),
    ((5, 40), 40, True, True),  # an int normalized_shape; several weight blocks
]


@pytest.mark.parametrize("shape,normalized,weighted,biased", LAYER_CASES, ids=str)
def test_layer_norm_matches_reference_and_torch(isa, shape, normalized, weighted, biased):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, gy = random_array(rng, *shape) * 2 - 5, random_array(rng, *shape)
    pshape = (normalized,) if isinstance(normalized, int) else normalized
    w = random_array(rng, *pshape) if weighted else None
    b = random_array(rng, *pshape) if biased else None
    ours = _run(lambda xt, wt, bt: F.layer_norm(xt, normalized, wt, bt), x, gy, w, b)
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    reference = layer_norm_reference(f64(x), len(pshape), f64(w), f64(b), 1e-5, f64(gy))
    theirs = _torch_run(torch, lambda tx, tw, tb: torch.nn.functional.layer_norm(tx, pshape, tw, tb), x, gy, w, b)
    _compare(ours, reference, theirs)


def test_norms_are_accurate_far_from_zero_and_thread_independent():
    x = (1000.0 + random_array(np.random.default_rng(2), 64, 32, 8, 8)).astype(np.float32)
    y = F.group_norm(pcn.tensor(x), 4).numpy()
    ref = group_norm_reference(x.astype(np.float64), 4, None, None, 1e-5, np.zeros_like(x, np.float64))[0]
    assert_close(y, ref, rtol=1e-4, what="output far from zero")
    previous = pcn.backend.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            pcn.backend.set_num_threads(threads)
            mean, rstd = _C.group_norm_forward(x, 4, None, None, 1e-5)[1:]
            grads = _C.group_norm_backward(x, x, mean, rstd, np.ones(32, np.float32), 4, (True, True, True))
            results.append([mean, rstd, *grads])
    finally:
        pcn.backend.set_num_threads(previous)
    for first, second in zip(*results):
        assert np.array_equal(first, second)


def test_modules_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = random_array(rng, 2, 6, 4, 4)
    pairs = [
        (nn.GroupNorm(3, 6), torch.nn.GroupNorm(3, 6)),
        (nn.GroupNorm(2, 6, eps=1e-3, affine=False), torch.nn.GroupNorm(2, 6, eps=1e-3, affine=False)),
        (nn.LayerNorm([4, 4]), torch.nn.LayerNorm([4, 4])),
        (nn.LayerNorm(4, elementwise_affine=False), torch.nn.LayerNorm(4, elementwise_affine=False)),
        (nn.LayerNorm((6, 4, 4), bias=False), torch.nn.LayerNorm((6, 4, 4), bias=False)),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
        for name, value in theirs.state_dict().items():
            assert ours.state_dict()[name].shape == tuple(value.shape)
        with torch.no_grad():
            for p in theirs.parameters():
                p.copy_(torch.tensor(random_array(rng, *p.shape)))
        ours.load_state_dict({k: pcn.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
        xt, tx = pcn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours(xt), theirs(tx)
        assert_close(y.detach().numpy(), ty.detach().numpy(), what=repr(ours))
        gy = random_array(rng, *x.shape)  # not sum(y * y): its gradient is ~0 through a normalisation
        (y * pcn.tensor(gy)).sum().backward()
        ty.backward(torch.tensor(gy))
        assert_close(xt.grad.numpy(), tx.grad.numpy(), what=f"grad of {ours!r}")
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            assert_close(p.grad.numpy(), q.grad.numpy(), what=f"{name} grad of {ours!r}")


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.group_norm(pcn.zeros(2, 6, 3), 4), ValueError, "divisible by num_groups"),
        (lambda: F.group_norm(pcn.zeros(2, 6, 3), 0), ValueError, "group_norm"),
        (lambda: F.group_norm(pcn.zeros(6), 2), ValueError, "at least 2 dimensions"),
        (lambda: F.group_norm(pcn.zeros(2, 6, 3), 2.0), TypeError, "num_groups must be an int"),
        (lambda: F.group_norm(pcn.zeros(2, 6, 3), 2, pcn.ones(3)), ValueError, r"weight must have shape \[6\], got \[3\]"),
        (lambda: F.group_norm(pcn.zeros(2, 6, 3).long(), 2), TypeError, "float32"),
        (lambda: F.group_norm(pcn.zeros(2, 6, 3), 2, eps=-1.0), ValueError, "eps"),
        (lambda: F.layer_norm(pcn.zeros(2, 5), (4,)), ValueError,
         r"normalized_shape=\[4\], expected input with shape \[\*, 4\], but got input of size \[2, 5\]"),
        (lambda: F.layer_norm(pcn.zeros(5), (2, 5)), ValueError, "normalized_shape"),
        (lambda: F.layer_norm(pcn.zeros(2, 5), (5,), pcn.ones(4)), ValueError, r"weight must have shape \[5\], got \[4\]"),
        (lambda: F.layer_norm(pcn.zeros(2, 5), (5,), None, pcn.ones(2, 5)), ValueError, "bias must have shape"),
        (lambda: nn.GroupNorm(4, 6), ValueError, "divisible"),
        (lambda: F.group_norm(pcn.zeros(1, 4, 1, 1), 4), ValueError,
         r"more than 1 value per channel when training, got input size \[1, 4, 1, 1\]"),
        (lambda: _C.layer_norm_backward(np.zeros((2, 5), np.float32), np.zeros((2, 5), np.float32),
                                        np.zeros(3, np.float32), np.zeros(2, np.float32), None, 1, (True, True, True)),
         ValueError, r"mean must have shape \[2\], got \[3\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
