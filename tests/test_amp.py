"""bfloat16 autocast on the CPU (pyconvnet.amp): the region's semantics, the bfloat16 rounding against
torch's, conv2d / conv_transpose2d / linear forward and backward against a float64 reference on
bfloat16-rounded operands (per ISA), and a LeNet-5 training step against the same step with the
operands rounded by hand."""

import threading
import warnings

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import amp
from pyconvnet.autograd import Function
import pyconvnet.nn.functional as F

torch = pytest.importorskip("torch")


def _torch_bf16(array):
    """torch's own float32 -> bfloat16 rounding, back in float32 (the independent oracle)."""
    return torch.from_numpy(np.array(array, dtype=np.float32)).to(torch.bfloat16).float().numpy()


def _bf16_region():
    return pcn.autocast("cpu", dtype=pcn.bfloat16)


# --- the region ---------------------------------------------------------------------------------------------


def test_region_switches_only_inside_and_nests():
    assert not pcn.is_autocast_enabled("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bfloat16 on the CPU is honoured: no warning
        with _bf16_region() as region:
            assert region.fast_dtype is pcn.bfloat16 and pcn.is_autocast_enabled("cpu")
            assert not pcn.is_autocast_enabled("cuda")
            with pcn.autocast("cpu", enabled=False):
                assert not pcn.is_autocast_enabled("cpu")
                with pcn.autocast("cpu"):  # bfloat16 is the CPU default, as in torch
                    assert pcn.is_autocast_enabled("cpu")
                assert not pcn.is_autocast_enabled("cpu")
            assert pcn.is_autocast_enabled("cpu")
    assert not pcn.is_autocast_enabled("cpu")
    assert pcn.get_autocast_dtype("cpu") is pcn.bfloat16 and repr(pcn.bfloat16) == "pyconvnet.bfloat16"


def test_region_is_restored_after_an_exception_and_as_a_decorator():
    with pytest.raises(RuntimeError, match="inside"):
        with _bf16_region():
            raise RuntimeError("inside")
    assert not pcn.is_autocast_enabled("cpu")

    @_bf16_region()
    def enabled_inside(depth):
        return pcn.is_autocast_enabled("cpu") and (depth == 0 or enabled_inside(depth - 1))

    assert enabled_inside(2) and not pcn.is_autocast_enabled("cpu")


def test_region_is_per_thread():
    seen = []
    with _bf16_region():
        worker = threading.Thread(target=lambda: seen.append(pcn.is_autocast_enabled("cpu")))
        worker.start()
        worker.join()
    assert seen == [False]


def test_dtype_and_device_validation():
    with pytest.raises(TypeError, match="dtype"):
        pcn.autocast("cpu", dtype="not a dtype")
    with pytest.raises(TypeError, match="device_type"):
        pcn.autocast(0)
    x, w = pcn.randn(4, 8), pcn.randn(3, 8)
    with pytest.warns(UserWarning, match="float32"):
        region = pcn.autocast("cpu", dtype=pcn.float32)
    with region:
        assert not pcn.is_autocast_enabled("cpu")
        assert F.linear(x, w).numpy().tobytes() == F.linear(x, w).numpy().tobytes()
    with pytest.warns(UserWarning, match="CPU only"):
        pcn.autocast("cuda", dtype=pcn.bfloat16)
    with pytest.raises(TypeError):
        pcn.zeros(2, dtype=pcn.bfloat16)  # storage stays float32


def test_only_convolution_and_linear_change_and_outside_is_unchanged():
    rng = np.random.default_rng(0)
    x = pcn.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    w = pcn.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    a, b = pcn.tensor(rng.standard_normal((5, 7)).astype(np.float32)), pcn.tensor(rng.standard_normal((7, 6)).astype(np.float32))

    def others():
        return [(a @ b).numpy(), (a * 1.001 + 0.3).exp().numpy(), F.relu(x).sum().numpy(),
                F.max_pool2d(x, 2).numpy(), F.batch_norm(x, None, None, training=True).numpy()]

    def layers():
        return [F.conv2d(x, w, padding=1).numpy(), F.linear(a, b.T).numpy(),
                F.conv_transpose2d(x, w.transpose(0, 1)).numpy()]

    before_others, before_layers = others(), layers()
    with _bf16_region():
        inside_others, inside_layers = others(), layers()
    after_layers = layers()
    for outside, inside in zip(before_others, inside_others):
        assert outside.tobytes() == inside.tobytes()
    for outside, inside, after in zip(before_layers, inside_layers, after_layers):
        assert outside.tobytes() == after.tobytes()
        assert outside.dtype == inside.dtype == np.float32
        assert not np.array_equal(outside, inside)  # the region rounds the operands


# --- rounding -----------------------------------------------------------------------------------------------


def test_rounding_matches_torch(isa):
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    ties = (rng.integers(0, 2**16, size=1000, dtype=np.uint32) << 16 | 0x8000).view(np.float32)  # exact halfway
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.3895314e38, -3.3895314e38, 1e-45, -1e-40,
                        np.finfo(np.float32).max, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-9], dtype=np.float32)
    for array in (values, ties, special, values.reshape(400, 500)[:, ::3]):
        ours, theirs = amp.round_bf16(array), _torch_bf16(array)
        assert ours.shape == array.shape and ours.dtype == np.float32
        assert np.array_equal(ours, theirs, equal_nan=True)
        assert np.array_equal(np.isnan(ours), np.isnan(array))


# --- layers against the float64 reference -------------------------------------------------------------------


def _fp32_tolerance(abs_reference, terms):
    """A bound on float32 accumulation error: terms * 2^-24 on the sum of |products| (float64)."""
    return terms * 2.0**-24 * abs_reference + 1e-30


def _check(ours, reference, abs_reference, terms, unrounded):
    bound = _fp32_tolerance(abs_reference, terms)
    assert np.all(np.abs(ours.astype(np.float64) - reference) <= bound)
    # The comparison can fail: without the rounding the results are far outside the bound.
    assert np.any(np.abs(unrounded - reference) > 10 * bound)


CONV_CASES = [  # (N, C, H, W), (O, C/g, kh, kw), stride, padding, dilation, groups
    ((2, 3, 12, 12), (8, 3, 3, 3), 1, 1, 1, 1),
    ((2, 16, 9, 9), (32, 16, 3, 3), 2, 1, 1, 1),
    ((1, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1, 1),
    ((2, 8, 10, 10), (8, 4, 3, 3), 1, 2, 2, 2),
    ((2, 64, 6, 6), (32, 64, 1, 1), 1, 0, 1, 1),
    ((2, 16, 9, 9), (24, 16, 1, 1), 2, 0, 1, 1),
]
# The cases that run as GEMMs (the others take Winograd or the window kernels, float32 on any ISA).
GEMM_CASES = CONV_CASES[4:]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}x{c[1]}s{c[2]}p{c[3]}d{c[4]}g{c[5]}")
def test_conv2d_forward_and_backward_against_float64(isa, case):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    xp, wp = pcn.tensor(x, requires_grad=True), pcn.tensor(w, requires_grad=True)
    bp = pcn.tensor(b, requires_grad=True)
    with _bf16_region():
        y = F.conv2d(xp, wp, bp, **geometry)
    g = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(pcn.tensor(g))

    def reference(x, w, g, absolute=False):
        tx, tw = (torch.tensor(np.abs(v) if absolute else v, dtype=torch.float64, requires_grad=True) for v in (x, w))
        ty = torch.nn.functional.conv2d(tx, tw, None, **geometry)
        ty.backward(torch.tensor(np.abs(g) if absolute else g, dtype=torch.float64))
        return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()

    rx, rw, rg = _torch_bf16(x), _torch_bf16(w), _torch_bf16(g)
    exact = reference(rx, rw, rg)
    absolute = reference(rx, rw, rg, absolute=True)
    unrounded = reference(x, w, g)
    k = w_shape[1] * w_shape[2] * w_shape[3]
    terms = (k, w_shape[0] // groups * w_shape[2] * w_shape[3], x_shape[0] * y.shape[2] * y.shape[3])
    outputs = (y.detach().numpy() - b.reshape(1, -1, 1, 1), xp.grad.numpy(), wp.grad.numpy())
    for ours, ref, abs_ref, n, plain in zip(outputs, exact, absolute, terms, unrounded):
        _check(ours, ref, abs_ref, n + 2, plain)
    np.testing.assert_allclose(bp.grad.numpy(), rg.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)  # of the rounded dy


def test_linear_and_conv_transpose_against_float64(isa):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((33, 70)).astype(np.float32)
    w = rng.standard_normal((45, 70)).astype(np.float32)
    xp, wp = pcn.tensor(x, requires_grad=True), pcn.tensor(w, requires_grad=True)
    with _bf16_region():
        y = F.linear(xp, wp)
    g = rng.standard_normal((33, 45)).astype(np.float32)
    y.backward(pcn.tensor(g))
    rx, rw, rg = (_torch_bf16(v).astype(np.float64) for v in (x, w, g))
    checks = [(y.detach().numpy(), rx @ rw.T, np.abs(rx) @ np.abs(rw).T, 70, x.astype(np.float64) @ w.T),
              (xp.grad.numpy(), rg @ rw, np.abs(rg) @ np.abs(rw), 45, g.astype(np.float64) @ w),
              (wp.grad.numpy(), rg.T @ rx, np.abs(rg).T @ np.abs(rx), 33, g.T.astype(np.float64) @ x)]
    for ours, ref, abs_ref, terms, plain in checks:
        _check(ours, ref, abs_ref, terms + 2, plain)

    xt = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    wt = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    with _bf16_region():
        yt = F.conv_transpose2d(pcn.tensor(xt), pcn.tensor(wt), stride=2)
    tx, tw = (torch.tensor(_torch_bf16(v), dtype=torch.float64) for v in (xt, wt))
    ref = torch.nn.functional.conv_transpose2d(tx, tw, stride=2).numpy()
    abs_ref = torch.nn.functional.conv_transpose2d(tx.abs(), tw.abs(), stride=2).numpy()
    plain = torch.nn.functional.conv_transpose2d(torch.tensor(xt, dtype=torch.float64),
                                                 torch.tensor(wt, dtype=torch.float64), stride=2).numpy()
    _check(yt.numpy(), ref, abs_ref, 6 * 9 + 2, plain)


# --- a training step ----------------------------------------------------------------------------------------


class _RoundOperand(Function):
    """Rounds to bfloat16 going forward (torch's rounding); the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, x):
        return _torch_bf16(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _RoundGradient(Function):
    """Unchanged going forward; rounds the incoming gradient to bfloat16."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return _torch_bf16(grad)


def _by_hand(layer, x):
    r = _RoundOperand.apply
    if isinstance(layer, pcn.nn.Conv2d):
        return _RoundGradient.apply(F.conv2d(r(x), r(layer.weight), layer.bias))
    return _RoundGradient.apply(F.linear(r(x), r(layer.weight), layer.bias))


def _lenet_by_hand(model, x):
    f, c = model.features, model.classifier
    x = F.max_pool2d(F.relu(_by_hand(f[0], x)), 2)
    x = F.max_pool2d(F.relu(_by_hand(f[3], x)), 2).flatten(1)
    x = F.relu(_by_hand(c[0], x))
    return _by_hand(c[4], F.relu(_by_hand(c[2], x)))


def test_lenet5_step_matches_the_step_with_operands_rounded_by_hand():
    rng = np.random.default_rng(4)
    images = pcn.tensor(rng.standard_normal((16, 1, 32, 32)).astype(np.float32))
    labels = pcn.tensor(rng.integers(0, 10, 16))

    def step(forward):
        pcn.manual_seed(0)
        model = pcn.models.get_model("lenet5")
        optimizer = pcn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss = F.cross_entropy(forward(model), labels)
        loss.backward()
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        optimizer.step()
        return loss.item(), grads, [p.detach().numpy().copy() for p in model.parameters()]

    def autocast_forward(model):
        with _bf16_region():
            return model(images)

    # Every convolution as a GEMM on both sides, so that they multiply the same values exactly:
    # the Winograd kernels' transforms (the float32 heuristic's) add errors of their own.
    previous = pcn.backend.conv_algorithm()
    pcn.backend.set_conv_algorithm("gemm")
    try:
        loss, grads, params = step(autocast_forward)
        loss_by_hand, grads_by_hand, params_by_hand = step(lambda model: _lenet_by_hand(model, images))
    finally:
        pcn.backend.set_conv_algorithm(previous)
    loss_fp32, grads_fp32, _ = step(lambda model: model(images))
    # The same products, summed in another order (autocast on vdpbf16ps or AMX where there are, by
    # hand in float32).
    assert loss == pytest.approx(loss_by_hand, rel=1e-5)
    for ours, theirs in zip(grads, grads_by_hand):
        scale = np.abs(theirs).max()
        assert np.abs(ours - theirs).max() <= 1e-5 * scale
    for ours, theirs in zip(params, params_by_hand):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    # bfloat16 is visible in the step: the float32 gradients differ by far more than the tolerance
    assert max(np.abs(fp32 - theirs).max() / np.abs(theirs).max() for fp32, theirs in zip(grads_fp32, grads_by_hand)) > 1e-2


# --- the kernels with bfloat16 products (vdpbf16ps, AMX tiles) against the portable path ---------------------

@pytest.mark.parametrize("case", GEMM_CASES, ids=lambda c: f"{c[0]}x{c[1]}")
def test_bf16_product_and_portable_paths_agree(bf16_isa, case):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    results = {}
    for name in ("avx512", bf16_isa):
        pcn.backend.set_isa(name)
        xp, wp = pcn.tensor(x, requires_grad=True), pcn.tensor(w, requires_grad=True)
        with _bf16_region():
            y = F.conv2d(xp, wp, stride=stride, padding=padding, dilation=dilation, groups=groups)
        y.backward(pcn.tensor(np.cos(np.arange(y.numel(), dtype=np.float32)).reshape(tuple(y.shape))))
        results[name] = (y.detach().numpy(), xp.grad.numpy(), wp.grad.numpy())
    for portable, fast in zip(results["avx512"], results[bf16_isa]):
        scale = np.abs(portable).max()
        np.testing.assert_allclose(fast, portable, rtol=0, atol=2e-6 * scale)


CONTRACT_CONVS = [  # (input shape, weight shape, stride, padding, dilation, groups)
    ((2, 8, 9, 9), (16, 8, 1, 1), (2, 2), (0, 0), (1, 1), 1),  # pointwise, strided
    ((2, 5, 10, 11), (7, 5, 3, 3), (1, 1), (1, 1), (1, 1), 1),  # Winograd, window, tiles, gemm
    ((3, 4, 9, 8), (6, 2, 3, 2), (2, 2), (1, 0), (2, 1), 2),  # grouped, strided, dilated
    ((3, 20, 2, 2), (24, 20, 3, 3), (1, 1), (1, 1), (1, 1), 1),  # a 2x2 map: dense, tiles, window
]


@pytest.mark.parametrize("case", CONTRACT_CONVS, ids=["pointwise", "3x3", "grouped", "2x2"])
def test_kernels_read_bf16_operands_rounded(isa, case):
    """bf16=True is a contract of every kernel, not a promise of the caller: given float32 operands
    that are not bfloat16 values, every ISA's GEMM and every conv2d algorithm of each pass (and the
    bias gradient) computes with the operands rounded to bfloat16, as torch rounds them."""
    from pyconvnet import _C

    x_shape, w_shape, *geometry = case
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32)
    xt, wt = (torch.tensor(_torch_bf16(v), dtype=torch.float64, requires_grad=True) for v in (x, w))
    yt = torch.nn.functional.conv2d(xt, wt, None, *geometry)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(_torch_bf16(dy), dtype=torch.float64))
    expected = {"forward": yt.detach().numpy(), "backward_data": xt.grad.numpy(), "backward_weight": wt.grad.numpy()}
    operands = {"forward": (x, w, None), "backward_data": (dy, w, list(x_shape)),
                "backward_weight": (dy, x, list(w_shape))}
    for pass_, (a, b, c) in operands.items():
        names, heuristic = _C.conv2d_algorithms(pass_, x_shape, w_shape, *geometry, bf16=True)
        for algorithm in ["auto", *names]:
            got = getattr(_C, "conv2d_" + pass_)(a, b, c, *geometry, algorithm=algorithm, bf16=True)
            np.testing.assert_allclose(got, expected[pass_], rtol=1e-5, atol=1e-4, err_msg=f"{pass_} {algorithm}")
    np.testing.assert_allclose(_C.conv2d_backward_bias(dy, bf16=True),
                               _torch_bf16(dy).astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-6, atol=1e-5)
    a, b = rng.standard_normal((37, 300)).astype(np.float32), rng.standard_normal((300, 70)).astype(np.float32)
    rounded_gemm = _torch_bf16(a).astype(np.float64) @ _torch_bf16(b)
    np.testing.assert_allclose(_C.sgemm(a, b, bf16=True), rounded_gemm, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(_C.sgemm(np.ascontiguousarray(a.T), np.ascontiguousarray(b.T), trans_a=True,
                                        trans_b=True, bf16=True), rounded_gemm, rtol=1e-5, atol=1e-4)
    assert np.abs(_C.sgemm(a, b) - rounded_gemm).max() > 1e-2  # the operands do need rounding

def test_bf16_operand_rounding_keeps_every_nan(isa):
    """A NaN whose rounding carry would wrap (all bits set) or reach the exponent (a signalling NaN)
    stays NaN in the products, on every path (Winograd may spread it further, as in float32)."""
    from pyconvnet import _C

    nan = np.array([0xFFFFFFFF, 0x7F800001], dtype=np.uint32).view(np.float32)
    a, b = np.ones((5, 40), np.float32), np.ones((40, 20), np.float32)
    a[0, 3], a[1, 7] = nan
    c = _C.sgemm(a, b, bf16=True)
    assert np.isnan(c[:2]).all() and np.isfinite(c[2:]).all()
    x, w = np.ones((1, 32, 6, 6), np.float32), np.ones((32, 32, 3, 3), np.float32)
    x[0, 5, 2, 2], x[0, 9, 4, 4] = nan
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    names, _ = _C.conv2d_algorithms("forward", x.shape, w.shape, *geometry, bf16=True)
    for algorithm in ["auto", *names]:
        y = _C.conv2d_forward(x, w, None, *geometry, algorithm=algorithm, bf16=True)
        assert np.isnan(y[0, :, 1:4, 1:4]).all() and np.isnan(y[0, :, 3:6, 3:6]).all(), algorithm
