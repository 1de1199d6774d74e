"""GPU sgemm (pyconvnet._C_cuda.sgemm) against the CPU kernel (_C.sgemm) on the same inputs: every
transpose form, sizes below, at and across the 64x64x8 tile, k = 0, empty matrices, beta = 0 with NaN
in out, the CPU binding's errors with the same types and messages, and the opt-in TF32 path.
The `gpu` and `tf32` fixtures are shared with tests/test_cuda_conv.py."""

import numpy as np
import pytest

from pyconvnet import _C
from support import assert_close, random_array

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def gpu():
    """The GPU module with TF32 off (pyconvnet, like torch, lets convolutions use it by default), so the
    exact-fp32 kernels are what these tests compare; the switches are restored afterwards."""
    from pyconvnet.cuda import _module

    module = _module()
    previous = module.get_allow_tf32()
    module.set_allow_tf32(conv=False, matmul=False)
    yield module
    module.set_allow_tf32(*previous)


@pytest.fixture
def tf32(gpu):
    """Lets sgemm and the convolutions use TF32 tensor cores for one test, then restores the switches."""
    previous = gpu.get_allow_tf32()
    gpu.set_allow_tf32(conv=True, matmul=True)
    yield
    gpu.set_allow_tf32(*previous)


def assert_matches_cpu(got, expected, k):
    """fp32 sums of k products in two orders: the error grows with sqrt(k) on unit-variance data."""
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.sqrt(max(k, 1)))


def both(gpu, a, b, out=None, **kw):
    """(_C.sgemm, _C_cuda.sgemm) on copies of the same operands (out is updated in place on the CPU)."""
    cpu_out = None if out is None else out.copy()
    gpu_out = None if out is None else gpu.from_numpy(out, 0)
    expected = _C.sgemm(a, b, out=cpu_out, **kw)
    got = gpu.to_numpy(gpu.sgemm(gpu.from_numpy(a, 0), gpu.from_numpy(b, 0), out=gpu_out, **kw))
    return got, expected


# The CPU tests' shapes (tests/test_conv.py) plus tile edges: one tile exactly, one past it, 67x131.
@pytest.mark.parametrize(
    "m,n,k",
    [(1, 1, 1), (5, 7, 3), (6, 16, 256), (13, 33, 257), (16, 1000, 601), (2, 4100, 3), (130, 70, 600),
     (300, 2100, 20), (64, 64, 8), (65, 65, 9), (67, 131, 70), (1, 513, 1000)],
)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_sgemm_matches_cpu(gpu, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(0)
    a = random_array(rng, *((k, m) if trans_a else (m, k)))
    b = random_array(rng, *((n, k) if trans_b else (k, n)))
    c0 = random_array(rng, m, n)
    got, expected = both(gpu, a, b, c0, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=2.0)
    assert_matches_cpu(got, expected, k)
    got, expected = both(gpu, a, b, trans_a=trans_a, trans_b=trans_b)
    assert_matches_cpu(got, expected, k)


@pytest.mark.sanitize_subset
def test_sgemm_out_is_updated_in_place(gpu):
    rng = np.random.default_rng(1)
    a, b, c0 = random_array(rng, 9, 4), random_array(rng, 4, 70), random_array(rng, 9, 70)
    out = gpu.from_numpy(c0, 0)
    gpu.sgemm(gpu.from_numpy(a, 0), gpu.from_numpy(b, 0), beta=1.0, out=out)
    assert_matches_cpu(gpu.to_numpy(out), a.astype(np.float64) @ b + c0, 4)


def test_sgemm_beta_zero_ignores_nan_in_out(gpu):
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    got, _ = both(gpu, a, b, np.full((3, 5), np.nan, np.float32))
    assert np.array_equal(got, np.full((3, 5), 4.0, np.float32))


def test_sgemm_with_k_zero_writes_beta_times_out_or_zeros(gpu):
    a, b = np.ones((2, 0), np.float32), np.ones((0, 3), np.float32)
    got, expected = both(gpu, a, b)
    assert np.array_equal(got, np.zeros((2, 3), np.float32)) and np.array_equal(got, expected)
    got, expected = both(gpu, a, b, np.full((2, 3), 4.0, np.float32), beta=0.5)
    assert np.array_equal(got, np.full((2, 3), 2.0, np.float32)) and np.array_equal(got, expected)
    got, _ = both(gpu, a.T.copy(), b.T.copy(), np.full((2, 3), np.nan, np.float32), trans_a=True, trans_b=True)
    assert np.array_equal(got, np.zeros((2, 3), np.float32))


def test_sgemm_empty_results(gpu):
    assert both(gpu, np.ones((0, 4), np.float32), np.ones((4, 3), np.float32))[0].shape == (0, 3)
    assert both(gpu, np.ones((2, 4), np.float32), np.ones((4, 0), np.float32))[0].shape == (2, 0)


def test_nan_in_sgemm_propagates_to_its_row(gpu):
    a = np.ones((3, 4), np.float32)
    a[1, 2] = np.nan
    got, _ = both(gpu, a, np.ones((4, 70), np.float32))
    assert np.isnan(got[1]).all() and not np.isnan(got[[0, 2]]).any()


def test_sgemm_is_deterministic(gpu):
    rng = np.random.default_rng(2)
    a, b = gpu.from_numpy(random_array(rng, 130, 600), 0), gpu.from_numpy(random_array(rng, 600, 70), 0)
    assert np.array_equal(gpu.to_numpy(gpu.sgemm(a, b)), gpu.to_numpy(gpu.sgemm(a, b)))


def _errors(gpu, a, b, out=None, **kw):
    """The exception _C.sgemm raises and the one _C_cuda.sgemm raises for the same arguments."""
    raised = []
    for module, wrap in ((_C, lambda x: x), (gpu, lambda x: gpu.from_numpy(x, 0))):
        with pytest.raises(Exception) as info:
            module.sgemm(wrap(a), wrap(b), out=None if out is None else wrap(out), **kw)
        raised.append(info.value)
    return raised


@pytest.mark.parametrize(
    "a_shape,b_shape,out_shape,kw",
    [
        ((2, 3), (4, 5), None, {}),  # inner dimensions differ
        ((2, 3), (3, 5), None, {"trans_a": True}),
        ((3,), (3, 5), None, {}),  # not 2-D
        ((2, 3), (3, 5, 1), None, {}),
        ((2, 3), (3, 5), None, {"beta": 1.0}),  # beta without out
        ((2, 3), (3, 5), (5, 2), {}),  # out of the wrong shape
    ],
)
def test_sgemm_shape_errors_match_cpu(gpu, a_shape, b_shape, out_shape, kw):
    out = None if out_shape is None else np.zeros(out_shape, np.float32)
    cpu_error, gpu_error = _errors(gpu, np.zeros(a_shape, np.float32), np.zeros(b_shape, np.float32), out, **kw)
    assert type(cpu_error) is ValueError and type(gpu_error) is ValueError
    assert str(gpu_error) == str(cpu_error)


def test_sgemm_dtype_errors(gpu):
    a, b = np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float32)
    for bad_a, bad_b in ((a.astype(np.int64), b), (a, b.astype(np.int64))):
        with pytest.raises(TypeError, match="float32"):
            gpu.sgemm(gpu.from_numpy(bad_a, 0), gpu.from_numpy(bad_b, 0))
    cpu_error, gpu_error = _errors(gpu, a, b, np.zeros((2, 5), np.int64), beta=1.0)
    assert type(gpu_error) is TypeError and str(gpu_error) == str(cpu_error) == "sgemm: out must be a float32 array"


def test_tf32_switches_follow_pyconvnet_backends_and_take_bools(gpu):
    """torch's defaults (convolutions may use TF32, matmul may not) reach the module through
    pyconvnet.backends, at load and at each assignment."""
    import pyconvnet as pcn

    assert pcn.backends.cudnn.allow_tf32 and not pcn.backends.cuda.matmul.allow_tf32
    try:
        pcn.backends.cuda.matmul.allow_tf32 = True
        assert gpu.get_allow_tf32() == (True, True)
        pcn.backends.cudnn.allow_tf32 = False
        assert gpu.get_allow_tf32() == (False, True)
    finally:
        pcn.backends.cudnn.allow_tf32, pcn.backends.cuda.matmul.allow_tf32 = True, False
        gpu.set_allow_tf32(conv=False, matmul=False)
    with pytest.raises(TypeError):
        gpu.set_allow_tf32(1, 0)
    assert gpu.get_allow_tf32() == (False, False)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (13, 33, 257), (130, 70, 600), (67, 131, 70), (300, 2100, 20)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_sgemm_tf32_matches_cpu(gpu, tf32, m, n, k, trans_a, trans_b):
    """TF32 keeps 10 mantissa bits of each operand: about 1e-3 of the result's scale."""
    rng = np.random.default_rng(3)
    a = random_array(rng, *((k, m) if trans_a else (m, k)))
    b = random_array(rng, *((n, k) if trans_b else (k, n)))
    c0 = random_array(rng, m, n)
    got, expected = both(gpu, a, b, c0, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=2.0)
    assert_close(got, expected, rtol=1e-2, what="sgemm with TF32")
