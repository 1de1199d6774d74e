"""gelu (both forms), silu, relu6, hardswish, hardsigmoid, the Softmax/LogSoftmax modules and
dropout2d: forward and backward against float64 numpy references and PyTorch on every ISA,
special values, in-place forms and the modules."""

import warnings

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn as nn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from support import assert_close, random_array
from test_activation import NEW_OPS, SPECIAL, TORCH_OPS, _dropout_mask, _forward_backward
from test_activation import OPS as OPS_ALL

# name -> (pyconvnet op, float64 reference, torch op): the parity tests of test_activation.py run
# these too (through its OPS and TORCH_OPS)
OPS = {name: (OPS_ALL[name][0], OPS_ALL[name][1], TORCH_OPS[name]) for name in NEW_OPS}


def test_hard_activations_take_torch_branch_at_each_kink(isa):
    torch = pytest.importorskip("torch")
    x = np.array([-3.0, 3.0, 0.0, 6.0, -6.0, 1e-3, -1e-3, 2.9999998, -2.9999998], np.float32)
    gy = np.linspace(0.5, 1.5, x.size).astype(np.float32)
    for name in ("relu6", "hardswish", "hardsigmoid"):
        y, dx = _forward_backward(OPS[name][0], x, gy)
        tx = torch.tensor(x, requires_grad=True)
        OPS[name][2](torch, tx).backward(torch.tensor(gy))
        assert np.allclose(dx, tx.grad.numpy(), rtol=1e-6, atol=0), name


@pytest.mark.parametrize("name", list(OPS))
def test_activation_special_values(isa, name):
    """0, tiny, saturating, huge, infinite and NaN inputs, in every vector lane and the tail:
    each finite output within 1e-6 of its own magnitude (1e-5 in gelu's far tail, where the
    float rounding of x^2 enters exp), NaN exactly where the float64 reference has it."""
    op, reference, torch_op = OPS[name]
    x = np.concatenate([SPECIAL, SPECIAL[::-1], SPECIAL[:5]])
    gy = np.ones_like(x)
    with np.errstate(invalid="ignore", over="ignore"):
        ref_y, ref_dx = reference(x.astype(np.float64), gy.astype(np.float64))
    xt = pcn.tensor(x, requires_grad=True)
    y = op(xt)
    y.backward(pcn.tensor(gy))
    y, dx = y.detach().numpy(), xt.grad.numpy()
    assert np.array_equal(np.isnan(y), np.isnan(ref_y)), "NaN pattern of the output"
    finite = np.isfinite(ref_y) & (np.abs(x) < 1e29)  # x^3 overflows float32 in gelu_tanh
    error = np.abs(y[finite] - ref_y[finite])
    assert np.all(error <= 1e-5 * np.abs(ref_y[finite]) + 1e-37), (x[finite], y[finite], ref_y[finite])
    dfinite = np.isfinite(ref_dx) & (np.abs(x) < 1e14)
    assert np.all(np.abs(dx[dfinite] - ref_dx[dfinite]) <= 1e-6 * np.maximum(1, np.abs(ref_dx[dfinite])))
    torch = pytest.importorskip("torch")
    ty = torch_op(torch, torch.tensor(x)).numpy()
    assert not (np.isnan(y) & ~np.isnan(ty)).any()
    # torch has NaN for silu(-inf) (-inf / inf) and gelu(+-inf); the float64 limits are -0, inf and -inf*0
    assert np.isinf(x[np.isnan(ty) & ~np.isnan(y)]).all()
    assert np.allclose(y[finite], ty[finite], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["silu", "relu6", "hardswish", "hardsigmoid"])
def test_inplace_forms_share_memory_and_give_the_same_gradients(name):
    op = getattr(F, name)
    rng = np.random.default_rng(2)
    x, gy = random_array(rng, 3, 4, 5) * 5, random_array(rng, 3, 4, 5)
    expected_y, expected_dx = _forward_backward(op, x, gy)
    xt = pcn.tensor(x, requires_grad=True)
    h = xt * 1.0
    y = op(h, inplace=True)
    assert np.shares_memory(y.detach().numpy(), h.detach().numpy())
    (y * pcn.tensor(gy)).sum().backward()
    assert np.array_equal(y.detach().numpy(), expected_y)
    assert np.array_equal(xt.grad.numpy(), expected_dx)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        op(pcn.tensor(x, requires_grad=True), inplace=True)


def test_activation_modules_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = random_array(rng, 2, 3, 4, 5) * 4
    pairs = [(nn.GELU(), torch.nn.GELU()), (nn.GELU("tanh"), torch.nn.GELU("tanh")), (nn.SiLU(), torch.nn.SiLU()),
             (nn.ReLU6(), torch.nn.ReLU6()), (nn.Hardswish(), torch.nn.Hardswish()),
             (nn.Hardsigmoid(), torch.nn.Hardsigmoid()), (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
             (nn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1)), (nn.Softmax(2), torch.nn.Softmax(2))]
    for ours, theirs in pairs:
        xt, tx = pcn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours(xt), theirs(tx)
        assert_close(y.detach().numpy(), ty.detach().numpy(), what=repr(ours))
        (y * y).sum().backward()
        (ty * ty).sum().backward()
        assert_close(xt.grad.numpy(), tx.grad.numpy(), what=f"grad of {ours!r}")
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.ReLU6(inplace=True)) == "ReLU6(inplace=True)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    a = pcn.tensor(np.array([-1.0, 7.0, 3.0], np.float32))
    nn.ReLU6(inplace=True)(a)
    assert np.array_equal(a.numpy(), [0.0, 6.0, 3.0])


def test_softmax_module_implicit_dim_follows_torch():
    torch = pytest.importorskip("torch")
    for shape in [(5,), (2, 5), (2, 3, 4), (2, 3, 4, 5)]:
        x = random_array(np.random.default_rng(4), *shape)
        with pytest.warns(UserWarning, match="Implicit dimension choice"):
            ours = nn.Softmax()(pcn.tensor(x)).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = torch.nn.Softmax()(torch.tensor(x)).numpy()
        assert_close(ours, theirs, what=f"implicit dim for shape {shape}")


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate argument must be either none or tanh"):
        F.gelu(pcn.zeros(3), approximate="fast")


# ------------------------------------------------------------------ dropout2d
def _dropout2d(x, p, seed=0):
    return _dropout_mask(x, p, seed, F.dropout2d)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 1), (4, 17, 1, 3), (3, 70, 33, 17)], ids=str)
def test_dropout2d_drops_whole_channels_and_gradient_uses_the_same_mask(isa, p, shape):
    x = random_array(np.random.default_rng(5), *shape) + 10.0  # no zeros: kept <=> nonzero
    y, dx, gy = _dropout2d(x, p)
    kept = (y != 0).reshape(shape[0], shape[1], -1)
    assert (kept.all(axis=2) | ~kept.any(axis=2)).all(), "a channel is kept or dropped as a whole"
    kept = kept.reshape(shape)
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    assert_close(y, np.where(kept, x.astype(np.float64) * scale, 0.0), what="output")
    assert_close(dx, np.where(kept, gy.astype(np.float64) * scale, 0.0), what="grad_input")
    if p == 0.0:
        assert kept.all()
    if p == 1.0:
        assert not kept.any()


def test_dropout2d_mask_is_reproducible_and_matches_dropout_on_one_element_planes():
    """The channel mask is the element-wise dropout mask of the (N, C) grid: same hash, same seed."""
    x = np.ones((8, 64, 3, 3), np.float32)
    first = _dropout2d(x, 0.4, seed=11)[0]
    assert np.array_equal(first, _dropout2d(x, 0.4, seed=11)[0])
    assert not np.array_equal(first, _dropout2d(x, 0.4, seed=12)[0])
    elementwise = _dropout_mask(np.ones((8, 64), np.float32), 0.4, seed=11)[0]
    assert np.array_equal(first[:, :, 1, 2], elementwise)
    rate = np.count_nonzero(_dropout2d(np.ones((400, 250, 1, 1), np.float32), 0.25, seed=3)[0]) / 100000
    assert abs(rate - 0.75) < 0.01


def test_dropout2d_module_ranks_and_eval():
    torch = pytest.importorskip("torch")
    layer = nn.Dropout2d(0.5)
    assert repr(layer) == "Dropout2d(p=0.5, inplace=False)" == repr(torch.nn.Dropout2d(0.5))
    x = pcn.ones(2, 6, 3, 3)
    layer.eval()
    assert layer(x) is x
    layer.train()
    with pytest.warns(UserWarning, match=r"3D input to dropout2d.*\(N, C, L\)"):
        y = layer(pcn.ones(4, 6, 5)).numpy()
    assert ((y == 0).all(axis=2) | (y == 2).all(axis=2)).all()
    with pytest.warns(UserWarning, match="5-D input to dropout2d"):
        y = layer(pcn.ones(2, 3, 2, 2, 2)).numpy().reshape(2, 3, -1)
    assert ((y == 0).all(axis=2) | (y == 2).all(axis=2)).all()
    with pytest.raises(ValueError, match=r"dropout2d: .*\[5\]"):
        F.dropout2d(pcn.ones(5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout2d(1.5)
    a = pcn.ones(2, 50, 2, 2)
    out = F.dropout2d(a, 0.5, inplace=True)
    assert np.shares_memory(out.numpy(), a.numpy()) and set(np.unique(a.numpy())) == {0.0, 2.0}


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.gelu(pcn.zeros(2, 3).long()), TypeError, "gelu: input must be a float32"),
        (lambda: F.hardswish(pcn.zeros(2, 3) > 0), TypeError, "hardswish: input must be a float32"),
        (lambda: _C.silu_backward(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)), ValueError,
         r"silu backward: grad_output must have shape \[3, 2\], got \[2, 3\]"),
        (lambda: _C.gelu_tanh_backward(np.zeros(3, np.float32), np.zeros(3, np.int64)), TypeError, "input must be a float32"),
        (lambda: _C.relu6_forward(np.zeros((2, 3), np.float32), out=np.zeros((2, 4), np.float32)), ValueError,
         r"out must have shape \[2, 3\], got \[2, 4\]"),
        (lambda: F.dropout2d(pcn.zeros(2, 3, 4, 4), "0.5"), TypeError, "dropout2d: p must be a float"),
        (lambda: F.dropout2d(pcn.zeros(2, 3, 4, 4), 1.5), ValueError, "between 0 and 1, but got 1.5"),
        (lambda: _C.dropout_forward(np.zeros((2, 3), np.float32), 0.5, 0, mask_ndim=3), ValueError,
         r"mask_ndim 3 exceeds the dims of input of shape \[2, 3\]"),
        (lambda: _C.dropout_backward(np.zeros((2, 3, 4), np.float32), np.zeros((2, 4), np.uint8), 0.5), ValueError,
         r"mask shape \[2, 4\] does not match grad_output shape \[2, 3, 4\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
