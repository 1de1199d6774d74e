"""Helpers for the parity tests: tolerance checks and float64 numpy references."""

import numpy as np
import pytest

import pyconvnet as pcn

# float32 kernels against a float64 reference: max error relative to the reference's scale.
RTOL = 1e-4


def assert_close(actual, expected, rtol=RTOL, what="value"):
    """Same shape, and the largest absolute error over the largest absolute reference value
    (floored at 1e-6) at most ``rtol``: a "relative error" on the tensor's scale, not per
    element, so elements far below the largest are held only to ``rtol`` times the largest."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-6)
    error = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0)) / scale
    assert error <= rtol, f"{what}: relative error {error:.3g} > {rtol:g}"


def random_array(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def check_against_torch(fn, arrays, rtol=1e-5, atol=1e-5):
    """Run ``fn`` on pyconvnet and torch tensors built from ``arrays``; compare the outputs
    and, through a random upstream gradient, the gradient of every input."""
    torch = pytest.importorskip("torch")
    ours = [pcn.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = fn(*ours), fn(*theirs)
    assert out.shape == tuple(expected.shape)
    assert out.dtype == pcn.float32
    np.testing.assert_allclose(
        out.detach().numpy(), expected.detach().numpy(), rtol=rtol, atol=atol
    )

    upstream = np.random.default_rng(99).standard_normal(out.shape).astype(np.float32)
    out.backward(pcn.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    for mine, reference in zip(ours, theirs):
        if reference.grad is None:
            assert mine.grad is None
            continue
        assert mine.grad.dtype == pcn.float32 and mine.grad.shape == mine.shape
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), rtol=rtol, atol=atol)
