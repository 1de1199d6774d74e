"""conv2d, linear and pad: forward and every backward against a float64 numpy reference and
against PyTorch, on every ISA; bad arguments raise clear errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from references import conv2d_reference
from support import assert_close, random_array


# (batch, in_channels, H, W, out_channels, kernel, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 3, 8, 8, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # ordinary 3x3
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1), 1),  # batch 1, 1x1 image
    (3, 5, 7, 9, 6, (3, 2), (2, 2), (1, 1), (2, 2), 1),  # odd sizes, rectangular kernel, dilation 2
    (2, 6, 10, 10, 6, (3, 3), (1, 1), (1, 1), (1, 1), 6),  # depthwise: groups = channels
    (4, 8, 5, 5, 12, (1, 1), (1, 1), (0, 0), (1, 1), 2),  # pointwise GEMM path, grouped
    (4, 3, 11, 11, 7, (5, 5), (3, 3), (2, 2), (3, 3), 1),  # stride > 1 with dilation 3
    (2, 4, 6, 6, 4, (6, 6), (1, 1), (0, 0), (1, 1), 2),  # kernel = padded input
    (1, 2, 5, 5, 3, (2, 2), (4, 4), (1, 1), (1, 1), 1),  # stride larger than the kernel
    (3, 17, 9, 9, 19, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # channels not a multiple of 8/16
    (2, 3, 28, 28, 6, (5, 5), (1, 1), (2, 2), (1, 1), 1),  # LeNet's first layer
    (1, 16, 14, 14, 40, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # single image: the team-parallel path
    (4, 1, 28, 28, 6, (5, 5), (1, 1), (2, 2), (1, 1), 1),  # one input channel (LeNet conv1)
    (2, 2, 9, 7, 3, (3, 3), (2, 1), (2, 1), (2, 2), 1),  # stride_h 2, stride_w 1, dilation 2
    (1, 8, 12, 10, 20, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # stride 1, one image: the team shares windows
    (2, 4, 7, 6, 5, (3, 3), (1, 1), (3, 2), (1, 1), 1),  # padding beyond kernel - 1: GEMM backward-data
    (2, 3, 9, 9, 4, (1, 1), (1, 1), (1, 1), (1, 1), 1),  # 1x1 with padding: not a plain GEMM
    (2, 4, 10, 11, 6, (3, 3), (1, 2), (1, 1), (1, 1), 2),  # stride_w 2, grouped
    (2, 4, 9, 9, 8, (3, 3), (1, 1), (2, 2), (2, 2), 2),  # stride 1, dilation 2, grouped
    (2, 5, 40, 40, 13, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # more positions than one dot-product pass
    (1, 200, 6, 6, 70, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # weights in several L2 blocks, odd panels
    (5, 8, 6, 6, 10, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # small images bundled, the last bundle partial
    # Strided windows over stride phases: GEMM, direct tiles, dot products, bundles
    (2, 3, 67, 67, 20, (5, 5), (2, 2), (2, 2), (1, 1), 1),  # weight gradient by dot products (34x34 out)
    (7, 5, 9, 9, 24, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # small strided images bundled, the last partial
    (3, 4, 23, 23, 8, (11, 11), (4, 4), (2, 2), (1, 1), 1),  # AlexNet's conv1 in small: 16 phases
    (2, 3, 13, 12, 4, (3, 3), (2, 3), (2, 1), (2, 2), 1),  # unequal strides with dilation
    (5, 6, 7, 7, 10, (1, 1), (1, 1), (0, 0), (1, 1), 1),  # pointwise on 7x7: images bundled, the last partial
    (2, 6, 14, 14, 16, (5, 5), (1, 1), (0, 0), (1, 1), 1),  # LeNet's conv2: backward-data tiles start every row
    (2, 5, 16, 16, 13, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # 13 output channels: direct tiles of a whole panel and of 1 row
    (3, 7, 12, 12, 20, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # 12-wide rows: packed panels of several short runs
    # The whole map as one matrix product (Note [dense convolution])
    (5, 19, 2, 2, 21, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # VGG's 2x2 maps: every input meets every output
    (3, 40, 1, 1, 33, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # one position: the centre tap only
    (4, 6, 3, 2, 9, (3, 3), (2, 1), (0, 1), (1, 1), 1),  # strided, rectangular map
    (2, 5, 1, 2, 4, (3, 3), (1, 1), (2, 1), (2, 1), 1),  # dilated rows
    (2, 90, 1, 3, 100, (1, 5), (1, 1), (0, 2), (1, 1), 1),  # 3 positions: GEMM k blocks start mid-channel
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"-k{c[5][0]}s{c[6][0]}g{c[9]}")
def test_conv2d_matches_float64_reference(isa, case):
    n, c, h, w, o, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(0)
    x = random_array(rng, n, c, h, w)
    weight = random_array(rng, o, c // groups, *kernel)
    bias = random_array(rng, o)
    xt = pcn.tensor(x, requires_grad=True)
    wt = pcn.tensor(weight, requires_grad=True)
    bt = pcn.tensor(bias, requires_grad=True)
    y = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    gy = random_array(rng, *y.shape)
    (y * pcn.tensor(gy)).sum().backward()
    ref_y, ref_dx, ref_dw, ref_db = conv2d_reference(x, weight, bias, gy, stride, padding, dilation, groups)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    assert_close(wt.grad.numpy(), ref_dw, what="grad_weight")
    assert_close(bt.grad.numpy(), ref_db, what="grad_bias")


@pytest.mark.parametrize("case", CONV_CASES[:6], ids=str)
def test_conv2d_matches_torch(isa, case):
    torch = pytest.importorskip("torch")
    n, c, h, w, o, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(1)
    x, weight = random_array(rng, n, c, h, w), random_array(rng, o, c // groups, *kernel)
    xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(weight, requires_grad=True)
    y = F.conv2d(xt, wt, None, stride, padding, dilation, groups)
    gy = random_array(rng, *y.shape)
    (y * pcn.tensor(gy)).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(weight, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, None, stride, padding, dilation, groups)
    ty.backward(torch.tensor(gy))
    assert_close(y.detach().numpy(), ty.detach().numpy(), what="output")
    assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input")
    assert_close(wt.grad.numpy(), tw.grad.numpy(), what="grad_weight")


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")  # torch's note about its own copy
@pytest.mark.parametrize("kernel,dilation", [((3, 3), (1, 1)), ((4, 4), (1, 1)), ((2, 3), (2, 1)), ((1, 1), (1, 1))])
def test_conv2d_padding_same_and_valid(kernel, dilation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, weight = random_array(rng, 2, 3, 7, 8), random_array(rng, 4, 3, *kernel)
    for mode in ("same", "valid"):
        xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(weight, requires_grad=True)
        y = F.conv2d(xt, wt, padding=mode, dilation=dilation)
        y.sum().backward()
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
        ty = torch.nn.functional.conv2d(tx, tw, padding=mode, dilation=dilation)
        ty.sum().backward()
        assert_close(y.detach().numpy(), ty.detach().numpy(), what=f"{mode} output")
        assert_close(xt.grad.numpy(), tx.grad.numpy(), what=f"{mode} grad_input")
        assert_close(wt.grad.numpy(), tw.grad.numpy(), what=f"{mode} grad_weight")


def test_conv2d_is_deterministic_for_fixed_threads():
    rng = np.random.default_rng(3)
    x, weight = random_array(rng, 6, 8, 12, 12), random_array(rng, 16, 8, 3, 3)
    results = []
    for _ in range(2):
        xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(weight, requires_grad=True)
        F.conv2d(xt, wt, padding=1).sum().backward()
        results.append((xt.grad.numpy().copy(), wt.grad.numpy().copy()))
    for first, second in zip(*results):
        assert np.array_equal(first, second)


# Shapes the Winograd F(4x4, 3x3) path takes (3x3, stride 1, 16+ channels on both sides; the
# weight gradient with channels in lanes up to 128 on each side, as GEMMs beyond that up to 512):
# (batch, in_channels, H, W, out_channels, padding)
WINOGRAD_CASES = [
    (2, 16, 8, 8, 16, 1),  # whole 4x4 tiles, the smallest channel counts it takes
    (3, 17, 9, 11, 19, 1),  # partial edge tiles, channels not a multiple of the vector or the tile rows
    (1, 16, 3, 5, 24, 2),  # padding 2: windows hang over the image on both sides
    (2, 20, 7, 6, 16, 0),  # no padding; backward-data pads dy by 2
    (1, 300, 6, 6, 40, 1),  # 300 channels: two k blocks of the GEMMs
    (4, 40, 33, 30, 32, 1),  # many tiles: several blocks per thread, threads split them
    (2, 24, 5, 5, 18, 3),  # padding 3: forward by Winograd, backward-data by the general path
    (2, 33, 10, 9, 35, 1),  # weight gradient by Winograd, partial edge tiles
    (3, 50, 9, 10, 56, 1),  # channels in four vectors (AVX-512's widest lane products), out channels padded
    (1, 256, 8, 8, 256, 1),  # the widest weight gradient the fixed heuristic took before measured plans
    (1, 512, 6, 6, 384, 1),  # the widest weight gradient it takes: 512 channels, out not a power of two
    (2, 32, 64, 64, 32, 1),  # large maps: the lanes' weight gradient in bands of tile rows
    (2, 16, 37, 70, 16, 1),  # bands of 3 tile rows of 18 tiles, the last band one row
    (9, 16, 12, 12, 16, 1),  # small maps: 7 images a chunk, the last chunk 2
    (2, 136, 36, 36, 32, 1),  # the weight gradient's GEMMs, the tiles in two blocks summed in order
]


@pytest.fixture(params=[True, False], ids=["winograd", "direct"])
def winograd(request):
    """Runs the test with the Winograd convolutions allowed, then forbidden; restores the setting."""
    previous = pcn.backend.winograd_enabled()
    pcn.backend.set_winograd(request.param)
    yield request.param
    pcn.backend.set_winograd(previous)


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=lambda c: "x".join(map(str, c)))
def test_winograd_shapes_match_float64_reference(isa, winograd, case):
    n, c, h, w, o, pad = case
    rng = np.random.default_rng(4)
    x, weight, bias = random_array(rng, n, c, h, w), random_array(rng, o, c, 3, 3), random_array(rng, o)
    xt, wt, bt = (pcn.tensor(a, requires_grad=True) for a in (x, weight, bias))
    y = F.conv2d(xt, wt, bt, padding=pad)
    gy = random_array(rng, *y.shape)
    (y * pcn.tensor(gy)).sum().backward()
    ref_y, ref_dx, ref_dw, ref_db = conv2d_reference(x, weight, bias, gy, (1, 1), (pad, pad), (1, 1), 1)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    assert_close(wt.grad.numpy(), ref_dw, what="grad_weight")
    assert_close(bt.grad.numpy(), ref_db, what="grad_bias")


@pytest.mark.parametrize("shape", [(8, 512, 7, 7, 512), (4, 256, 14, 14, 256), (2, 64, 56, 56, 64)], ids=str)
def test_winograd_error_stays_well_inside_tolerance_on_network_layers(shape):
    """The transforms' rounding grows with the channel count: on the largest layers of the model
    zoo it stays ten times below the parity tolerance (measured up to 7e-6; the direct sums: 5e-7),
    and the switch really changes the path."""
    n, c, h, w, o = shape
    rng = np.random.default_rng(5)
    x, weight = random_array(rng, n, c, h, w), random_array(rng, o, c, 3, 3)
    gy = random_array(rng, n, o, h, w)
    ref_y, ref_dx, ref_dw, _ = conv2d_reference(x, weight, None, gy, (1, 1), (1, 1), (1, 1), 1)
    previous = pcn.backend.winograd_enabled()
    results = {}
    try:
        for enabled in (True, False):
            pcn.backend.set_winograd(enabled)
            y = _C.conv2d_forward(x, weight, None, (1, 1), (1, 1), (1, 1), 1)
            dx = _C.conv2d_backward_data(gy, weight, list(x.shape), (1, 1), (1, 1), (1, 1), 1)
            dw = _C.conv2d_backward_weight(gy, x, list(weight.shape), (1, 1), (1, 1), (1, 1), 1)
            results[enabled] = (y, dx, dw)
    finally:
        pcn.backend.set_winograd(previous)
    for y, dx, dw in results.values():
        assert_close(y, ref_y, rtol=1e-5, what="output")
        assert_close(dx, ref_dx, rtol=1e-5, what="grad_input")
        assert_close(dw, ref_dw, rtol=1e-5, what="grad_weight")
    assert not np.array_equal(results[True][0], results[False][0])


def test_winograd_with_padding_beyond_the_tile_bounds():
    """Paddings of 128 and more put whole 6x6 windows outside a 1x1 image (the window bounds are
    small integers): they must read nothing and give the reference's result."""
    rng = np.random.default_rng(6)
    x, weight = random_array(rng, 1, 32, 1, 1), random_array(rng, 32, 32, 3, 3)
    xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(weight, requires_grad=True)
    y = F.conv2d(xt, wt, padding=130)
    gy = random_array(rng, *y.shape)
    (y * pcn.tensor(gy)).sum().backward()
    ref_y, ref_dx, ref_dw, _ = conv2d_reference(x, weight, None, gy, (1, 1), (130, 130), (1, 1), 1)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    assert_close(wt.grad.numpy(), ref_dw, what="grad_weight")


def test_winograd_weight_gradient_gemms_do_not_depend_on_the_thread_count():
    """The GEMM path's team splits the 36 point GEMMs, not the tiles: each sum runs in the same
    order whatever the number of threads, so the result is bitwise the same."""
    rng = np.random.default_rng(7)
    x, gy = random_array(rng, 2, 144, 20, 20), random_array(rng, 2, 40, 20, 20)
    previous = pcn.backend.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            pcn.backend.set_num_threads(threads)
            results.append(_C.conv2d_backward_weight(gy, x, [40, 144, 3, 3], (1, 1), (1, 1), (1, 1), 1,
                                                     algorithm="winograd"))
    finally:
        pcn.backend.set_num_threads(previous)
    assert all(np.array_equal(results[0], other) for other in results[1:])


def test_winograd_lane_passes_do_not_depend_on_the_thread_count(isa):
    """Channels in lanes, forward and backward-data: the threads take chunks of tiles from a queue,
    and each chunk's outputs are computed alike whichever thread takes it, so 1, 2 and 3 threads
    give the same bits (and the reference's values within the tolerance)."""
    rng = np.random.default_rng(9)
    x, weight = random_array(rng, 12, 16, 20, 20), random_array(rng, 24, 16, 3, 3)
    gy = random_array(rng, 12, 24, 20, 20)
    ref_y, ref_dx, _, _ = conv2d_reference(x, weight, None, gy, (1, 1), (1, 1), (1, 1), 1)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    algorithm = "auto" if isa == "reference" else "winograd"
    previous = pcn.backend.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            pcn.backend.set_num_threads(threads)
            results.append((_C.conv2d_forward(x, weight, None, *geometry, algorithm=algorithm),
                            _C.conv2d_backward_data(gy, weight, list(x.shape), *geometry, algorithm=algorithm)))
    finally:
        pcn.backend.set_num_threads(previous)
    for y, dx in results[1:]:
        assert np.array_equal(y, results[0][0]) and np.array_equal(dx, results[0][1])
    assert_close(results[0][0], ref_y, what="output")
    assert_close(results[0][1], ref_dx, what="grad_input")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_winograd_lane_weight_gradient_is_deterministic_for_fixed_threads(isa, threads):
    """Channels in lanes: each thread sums whole chunks of tiles, the threads' sums are added in
    thread order, so a fixed thread count gives the same bits every time (and the reference's sums
    within the tolerance)."""
    rng = np.random.default_rng(8)
    x, gy = random_array(rng, 5, 16, 20, 20), random_array(rng, 5, 24, 20, 20)
    weight = random_array(rng, 24, 16, 3, 3)
    _, _, ref_dw, _ = conv2d_reference(x, weight, None, gy, (1, 1), (1, 1), (1, 1), 1)
    _, heuristic = _C.conv2d_algorithms("backward_weight", x.shape, weight.shape, (1, 1), (1, 1), (1, 1), 1)
    assert heuristic == ("auto" if isa == "reference" else "winograd")
    previous = pcn.backend.get_num_threads()
    try:
        pcn.backend.set_num_threads(threads)
        results = [_C.conv2d_backward_weight(gy, x, [24, 16, 3, 3], (1, 1), (1, 1), (1, 1), 1) for _ in range(2)]
    finally:
        pcn.backend.set_num_threads(previous)
    assert np.array_equal(results[0], results[1])
    assert_close(results[0], ref_dw, what="grad_weight")


def test_set_winograd_takes_a_bool():
    with pytest.raises(TypeError, match="enabled must be a bool"):
        pcn.backend.set_winograd(1)
    assert isinstance(pcn.backend.winograd_enabled(), bool)


# (in_features, out_features, leading shape)
LINEAR_CASES = [(1, 1, (1,)), (7, 5, (3,)), (120, 84, (64,)), (33, 17, (2, 5)), (300, 130, (9,))]


@pytest.mark.parametrize("case", LINEAR_CASES, ids=str)
def test_linear_matches_float64_reference_and_torch(isa, case):
    in_features, out_features, lead = case
    rng = np.random.default_rng(4)
    x, weight, bias = random_array(rng, *lead, in_features), random_array(rng, out_features, in_features), random_array(rng, out_features)
    xt, wt, bt = (pcn.tensor(a, requires_grad=True) for a in (x, weight, bias))
    y = F.linear(xt, wt, bt)
    gy = random_array(rng, *y.shape)
    (y * pcn.tensor(gy)).sum().backward()
    x64, w64, gy64 = x.astype(np.float64), weight.astype(np.float64), gy.astype(np.float64)
    assert_close(y.detach().numpy(), x64 @ w64.T + bias, what="output")
    assert_close(xt.grad.numpy(), gy64 @ w64, what="grad_input")
    assert_close(wt.grad.numpy(), gy64.reshape(-1, out_features).T @ x64.reshape(-1, in_features), what="grad_weight")
    assert_close(bt.grad.numpy(), gy64.reshape(-1, out_features).sum(0), what="grad_bias")
    torch = pytest.importorskip("torch")
    ty = torch.nn.functional.linear(torch.tensor(x), torch.tensor(weight), torch.tensor(bias))
    assert_close(y.detach().numpy(), ty.numpy(), what="output vs torch")


# Shapes cover both driver paths (m <= MC: one row block, B packed in groups of panels; larger m:
# shared B blocks), k below/at/above the k block, n not a multiple of the tile and over NC.
@pytest.mark.parametrize(
    "m,n,k",
    [(1, 1, 1), (5, 7, 3), (6, 16, 256), (13, 33, 257), (16, 1000, 601), (2, 4100, 3), (130, 70, 600), (300, 2100, 20)],
)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_sgemm_matches_float64(isa, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(5)
    a = random_array(rng, *((k, m) if trans_a else (m, k)))
    b = random_array(rng, *((n, k) if trans_b else (k, n)))
    c0 = random_array(rng, m, n)
    out = c0.copy()
    pcn.backend.sgemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=2.0, out=out)
    op_a = (a.T if trans_a else a).astype(np.float64)
    op_b = (b.T if trans_b else b).astype(np.float64)
    assert_close(out, 0.5 * op_a @ op_b + 2.0 * c0, what="sgemm")


def test_sgemm_beta_zero_ignores_nan_in_out():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    out = np.full((3, 5), np.nan, np.float32)
    pcn.backend.sgemm(a, b, out=out)
    assert np.array_equal(out, np.full((3, 5), 4.0, np.float32))


@pytest.mark.parametrize("value", [0.5, 0.0, -0.0])
def test_pad_matches_torch(value):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = random_array(rng, 2, 3, 4, 5)
    xt = pcn.tensor(x, requires_grad=True)
    y = F.pad(xt, (1, 2, 0, 3), value=value)
    gy = random_array(rng, *y.shape)
    (y * pcn.tensor(gy)).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.pad(tx, (1, 2, 0, 3), value=value)
    ty.backward(torch.tensor(gy))
    assert np.array_equal(y.detach().numpy(), ty.detach().numpy())
    assert np.array_equal(np.signbit(y.detach().numpy()), np.signbit(ty.detach().numpy()))  # -0.0 padding stays -0.0
    assert np.array_equal(xt.grad.numpy(), tx.grad.numpy())


# ------------------------------------------------------------------ bad input
def _conv(x_shape=(2, 3, 8, 8), w_shape=(4, 3, 3, 3), **kw):
    return F.conv2d(pcn.zeros(*x_shape), pcn.zeros(*w_shape), **kw)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.conv2d(pcn.zeros(2, 3, 8, 8).long(), pcn.zeros(4, 3, 3, 3)), TypeError, "input must be a float32"),
        (lambda: _conv(x_shape=(3, 8, 8)), ValueError, r"input must be 4-D .*\[3, 8, 8\]"),
        (lambda: _conv(w_shape=(4, 2, 3, 3)), ValueError, r"weight of shape \[4, 2, 3, 3\].*input of shape \[2, 3, 8, 8\]"),
        (lambda: _conv(stride=0), ValueError, "stride must be positive"),
        (lambda: _conv(stride=(1, -2)), ValueError, "stride must be positive"),
        (lambda: _conv(padding=-1), ValueError, "padding must be non-negative"),
        (lambda: _conv(dilation=0), ValueError, "dilation must be positive"),
        (lambda: _conv(w_shape=(4, 3, 11, 3)), ValueError, r"larger than the padded input height \(8 \+ 2\*0 = 8\)"),
        (lambda: _conv(x_shape=(2, 6, 8, 8), w_shape=(4, 3, 3, 3), groups=4), ValueError, "groups=4"),
        (lambda: _conv(x_shape=(2, 6, 8, 8), w_shape=(5, 3, 3, 3), groups=2), ValueError, "must divide"),
        (lambda: _conv(groups=0), ValueError, "groups must be positive"),
        (lambda: _conv(padding="full"), ValueError, "padding must be"),
        (lambda: _conv(stride=2, padding="same"), ValueError, "'same'"),
        (lambda: _conv(stride=1.5), TypeError, "stride must be an int"),
        (lambda: _conv(stride=2**64), ValueError, "stride value 18446744073709551616 does not fit in a 64-bit integer"),
        (lambda: _conv(groups=2**64), ValueError, "groups value 18446744073709551616 does not fit"),
        (lambda: F.conv2d(pcn.zeros(2, 3, 8, 8), pcn.zeros(4, 3, 3, 3), pcn.zeros(5)), ValueError, r"bias must have shape \[4\]"),
        (lambda: F.linear(pcn.zeros(4, 5), pcn.zeros(3, 6)), ValueError, r"input shape \(4, 5\) does not match weight shape \(3, 6\)"),
        (lambda: F.linear(pcn.zeros(4, 5), pcn.zeros(3, 5), pcn.zeros(4)), ValueError, "bias must have shape"),
        (lambda: pcn.backend.sgemm(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32)), ValueError, "inner dimensions"),
        (lambda: pcn.backend.sgemm(np.zeros((2, 3)), np.zeros((3, 5), np.float32)), TypeError, "float32"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_sizes_that_overflow_are_rejected_before_allocation():
    from pyconvnet import _C

    huge = [2**40, 2**40, 1, 1]
    with pytest.raises(ValueError, match="too large|negative"):
        _C.conv2d_backward_data(np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32), huge, (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="too large"):
        _C.conv2d_backward_weight(np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32), [2**62, 1, 1, 1], (1, 1), (0, 0), (1, 1), 1)


_EDGE_TILE_STEPS = """
import pyconvnet as pcn
from pyconvnet import backend, models, train
backend.set_autotune(False)
model = models.get_model("googlenet", **train.model_kwargs("googlenet", "fashion-mnist"))
x = pcn.randn(32, 1, 28, 28)
for _ in range(2):
    model(x).sum().backward()
print("ok")
"""


@pytest.mark.parametrize("isa_name", [name for name in ("avx512", "avx512bf16", "amx") if name in _C.available_isas()])
def test_winograd_edge_tiles_at_the_end_of_an_output_buffer_do_not_fault(isa_name):
    """GoogLeNet's 14x14 Winograd layers end their outputs with tiles of two columns; GCC fused
    their masked stores into vextractf32x4 m128{k}, which Zen 4 faults on past a page's end even for
    masked-out lanes: two steps of the Fashion-MNIST GoogLeNet crashed the interpreter."""
    env = {**os.environ, "PYCONVNET_ISA": isa_name, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", _EDGE_TILE_STEPS], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_dense_products_carry_nan_and_infinity_to_the_outputs_they_reach():
    """Note [dense convolution]: on a 2x2 map under a 3x3 kernel every input reaches every output of
    its image, so a NaN or an infinity in one image spoils all of that image's outputs and input
    gradients, as the window path's, and no other image's."""
    rng = np.random.default_rng(5)
    x, weight = random_array(rng, 3, 8, 2, 2), random_array(rng, 6, 8, 3, 3)
    gy = random_array(rng, 3, 6, 2, 2)
    x[1, 2, 0, 1], gy[2, 4, 1, 1] = np.nan, np.inf
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    for algorithm in ("dense", "window"):
        y = _C.conv2d_forward(x, weight, None, *geometry, algorithm=algorithm)
        dx = _C.conv2d_backward_data(gy, weight, list(x.shape), *geometry, algorithm=algorithm)
        assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all(), algorithm
        assert (~np.isfinite(dx[2])).all() and np.isfinite(dx[[0, 1]]).all(), algorithm
