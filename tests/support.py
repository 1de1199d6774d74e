"""Helpers for the parity tests: tolerance checks and float64 numpy references."""

import numpy as np

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
