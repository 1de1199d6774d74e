"""pyconvnet.nn.utils: clip_grad_norm_ / get_total_norm / clip_grads_with_norm_ (on the norm kernel),
clip_grad_value_, parameters_to_vector and vector_to_parameters against torch.nn.utils, and the
norm kernel itself against float64 numpy on every ISA."""

import math

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn as nn
from pyconvnet import _C
from support import assert_close, random_array

NORM_TYPES = [2.0, 1.0, math.inf, 3.0, 0.5, 0.0]


@pytest.mark.parametrize("p", NORM_TYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 7, 9), (70001,), (0,)], ids=str)
def test_norm_kernel_matches_float64_reference(isa, p, shape):
    x = random_array(np.random.default_rng(0), *shape) * 3
    expected = np.linalg.norm(x.astype(np.float64).ravel(), p) if x.size else 0.0
    assert_close(_C.norm(x, p), np.asarray(expected), rtol=1e-6, what=f"{p}-norm")


def test_norm_kernel_special_values_and_thread_count():
    x = np.array([1.0, np.nan, -3.0], np.float32)
    for p in NORM_TYPES:
        assert np.isnan(_C.norm(x, p)) or p == 0.0
    assert _C.norm(np.array([np.inf, 1.0], np.float32), 2.0) == np.inf
    assert _C.norm(np.array([np.inf, 1.0], np.float32), math.inf) == np.inf
    big = random_array(np.random.default_rng(1), 500001)
    previous = pcn.backend.get_num_threads()
    try:
        results = []
        for threads in (1, 3):
            pcn.backend.set_num_threads(threads)
            results.append([_C.norm(big, p) for p in NORM_TYPES])
    finally:
        pcn.backend.set_num_threads(previous)
    assert results[0] == results[1]
    with pytest.raises(ValueError, match="order p must be non-negative"):
        _C.norm(big, -1.0)
    with pytest.raises(TypeError, match="float32"):
        _C.norm(big.astype(np.float64), 2.0)


def _models(torch):
    """A small conv net in both libraries with the same weights and the same gradients."""
    rng = np.random.default_rng(2)
    ours = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 5))
    for p, q in zip(ours.parameters(), theirs.parameters()):
        values = random_array(rng, *p.shape)
        p.data = pcn.tensor(values)
        q.data = torch.tensor(values)
        grad = random_array(rng, *p.shape) * 2
        p.grad, q.grad = pcn.tensor(grad), torch.tensor(grad)
    return ours, theirs


@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("max_norm", [0.5, 1e9])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ours, theirs = _models(torch)
    total = nn.utils.clip_grad_norm_(ours.parameters(), max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm, norm_type=norm_type)
    assert isinstance(total, pcn.Tensor) and total.shape == ()
    assert_close(total.numpy(), expected.numpy(), rtol=1e-5, what="total norm")
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, what="clipped gradient")


def test_get_total_norm_and_clip_grads_with_norm_match_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _models(torch)
    grads = [p.grad for p in ours.parameters()]
    total = nn.utils.get_total_norm(grads, 3.0)
    expected = torch.nn.utils.get_total_norm([q.grad for q in theirs.parameters()], 3.0)
    assert_close(total.numpy(), expected.numpy(), rtol=1e-5, what="total norm")
    nn.utils.clip_grads_with_norm_(ours.parameters(), 0.25, total)
    torch.nn.utils.clip_grads_with_norm_(theirs.parameters(), 0.25, expected)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, what="clipped gradient")
    assert nn.utils.get_total_norm([]).item() == 0.0


def test_clip_grad_norm_edge_cases():
    w = pcn.tensor(np.array([3.0, 4.0], np.float32), requires_grad=True)
    w.grad = pcn.tensor(np.array([3.0, 4.0], np.float32))
    assert nn.utils.clip_grad_norm_(w, 1.0).item() == pytest.approx(5.0)  # a single Tensor
    assert np.allclose(w.grad.numpy(), [0.6, 0.8], rtol=1e-5)
    no_grad = pcn.zeros(3, requires_grad=True)
    assert nn.utils.clip_grad_norm_([no_grad], 1.0).item() == 0.0 and no_grad.grad is None
    w.grad = pcn.tensor(np.array([np.inf, 1.0], np.float32))
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    assert np.isinf(nn.utils.clip_grad_norm_([w], 1.0).item())
    assert np.isnan(w.grad.numpy()[0])  # inf * 0, as torch
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        nn.utils.clip_grad_norm([w], 1.0)
    with pytest.raises(TypeError, match="max_norm must be a number"):
        nn.utils.clip_grad_norm_([w], "1")
    with pytest.raises(ValueError, match="norm_type must be non-negative"):
        nn.utils.clip_grad_norm_([w], 1.0, norm_type=-2)


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _models(torch)
    assert nn.utils.clip_grad_value_(ours.parameters(), 0.3) is None
    torch.nn.utils.clip_grad_value_(theirs.parameters(), 0.3)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert np.abs(p.grad.numpy()).max() <= 0.3
        assert_close(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, what="clamped gradient")


def test_parameters_to_vector_and_back_match_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _models(torch)
    vector = nn.utils.parameters_to_vector(ours.parameters())
    expected = torch.nn.utils.parameters_to_vector(theirs.parameters())
    assert np.array_equal(vector.detach().numpy(), expected.detach().numpy())
    for p in ours.parameters():
        p.grad = None
    (vector * pcn.tensor(np.arange(vector.numel(), dtype=np.float32))).sum().backward()
    flat_grads = np.concatenate([p.grad.numpy().ravel() for p in ours.parameters()])
    assert np.array_equal(flat_grads, np.arange(vector.numel(), dtype=np.float32))  # differentiable, as torch
    new = pcn.tensor(np.arange(vector.numel(), dtype=np.float32))
    nn.utils.vector_to_parameters(new, ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new.numpy()), theirs.parameters())
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())
        assert np.shares_memory(p.detach().numpy(), new.numpy())
    with pytest.raises(TypeError, match="expected Tensor"):
        nn.utils.vector_to_parameters(new.numpy(), ours.parameters())
    with pytest.raises(ValueError, match=r"1-D with \d+ elements"):
        nn.utils.vector_to_parameters(new[:-1], ours.parameters())


def test_module_path_is_torchs():
    import pyconvnet.nn.utils as utils
    from pyconvnet.nn.utils import clip_grad_norm_, parameters_to_vector

    assert utils.clip_grad_norm_ is clip_grad_norm_ is nn.utils.clip_grad_norm_
    assert utils.parameters_to_vector is parameters_to_vector
