"""interpolate (nearest and bilinear, align_corners both ways, size or scale_factor) and the Upsample
modules: forward and backward against a float64 numpy reference and PyTorch on every ISA."""

import math

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn as nn
import pyconvnet.nn.functional as F
from support import assert_close, random_array


def _axis_weights(in_size, out_size, mode, align_corners, factor):
    """(out, in) matrix of the taps along one axis, from torch's source-index rules in float32."""
    m = np.zeros((out_size, in_size))
    if align_corners:
        scale = np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else np.float32(0)
    else:
        scale = np.float32(1.0 / factor) if factor else np.float32(in_size) / np.float32(out_size)
    for o in range(out_size):
        if mode == "nearest":
            if out_size == in_size:
                m[o, o] = 1
            elif out_size == 2 * in_size:
                m[o, o // 2] = 1
            else:
                m[o, min(int(math.floor(np.float32(o) * scale)), in_size - 1)] = 1
            continue
        src = scale * np.float32(o) if align_corners else scale * (np.float32(o) + np.float32(0.5)) - np.float32(0.5)
        src = max(float(src), 0.0)
        i0 = min(int(math.floor(src)), in_size - 1)
        f = min(max(src - i0, 0.0), 1.0)
        m[o, i0] += 1 - f
        m[o, min(i0 + 1, in_size - 1)] += f
    return m


def interpolate_reference(x, gy, out_size, mode, align_corners, factors):
    mh = _axis_weights(x.shape[2], out_size[0], mode, align_corners, factors[0])
    mw = _axis_weights(x.shape[3], out_size[1], mode, align_corners, factors[1])
    y = np.einsum("oh,nchw,pw->ncop", mh, x, mw)
    dx = np.einsum("oh,ncop,pw->nchw", mh, gy, mw)
    return y, dx


# (input shape, size, scale_factor)
CASES = [
    ((2, 3, 4, 5), None, 2),  # the common 2x upsampling
    ((1, 1, 1, 1), (3, 2), None),  # 1x1 image
    ((2, 17, 7, 9), (5, 13), None),  # down in one axis, up in the other; odd channel count
    ((1, 2, 6, 6), None, (0.5, 1.5)),
    ((1, 2, 5, 7), None, 1.7),  # a factor whose reciprocal is not the size ratio
    ((3, 4, 8, 8), (8, 8), None),  # identity size
    ((1, 2, 3, 3), (1, 1), None),  # to one pixel
]


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("shape,size,scale_factor", CASES, ids=str)
def test_interpolate_matches_reference_and_torch(isa, mode, align_corners, shape, size, scale_factor):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = random_array(rng, *shape)
    kwargs = dict(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(tx, **kwargs)
    gy = random_array(rng, *ty.shape)
    ty.backward(torch.tensor(gy))
    xt = pcn.tensor(x, requires_grad=True)
    y = F.interpolate(xt, **kwargs)
    (y * pcn.tensor(gy)).sum().backward()
    assert y.shape == tuple(ty.shape)
    factors = (scale_factor,) * 2 if isinstance(scale_factor, (int, float)) else (scale_factor or (None, None))
    ref_y, ref_dx = interpolate_reference(x.astype(np.float64), gy.astype(np.float64), y.shape[2:], mode,
                                          bool(align_corners), factors)
    assert_close(y.detach().numpy(), ref_y, what="output")
    assert_close(xt.grad.numpy(), ref_dx, what="grad_input")
    assert_close(y.detach().numpy(), ty.detach().numpy(), what="output vs torch")
    assert_close(xt.grad.numpy(), tx.grad.numpy(), what="grad_input vs torch")


def test_recompute_scale_factor_and_empty_batch():
    torch = pytest.importorskip("torch")
    x = random_array(np.random.default_rng(1), 1, 2, 5, 7)
    for recompute in (None, True):
        ours = F.interpolate(pcn.tensor(x), scale_factor=1.7, mode="bilinear", recompute_scale_factor=recompute)
        theirs = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=1.7, mode="bilinear",
                                                 recompute_scale_factor=recompute)
        assert_close(ours.numpy(), theirs.numpy(), what=f"recompute_scale_factor={recompute}")
    xt = pcn.zeros(0, 3, 4, 4, requires_grad=True)
    y = F.interpolate(xt, scale_factor=2)
    assert y.shape == (0, 3, 8, 8)
    y.sum().backward()
    assert xt.grad.shape == (0, 3, 4, 4)


def test_upsample_modules_match_torch():
    torch = pytest.importorskip("torch")
    x = random_array(np.random.default_rng(2), 2, 3, 5, 4)
    pairs = [
        (nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
        (nn.Upsample(size=(7, 3), mode="bilinear"), torch.nn.Upsample(size=(7, 3), mode="bilinear")),
        (nn.Upsample(scale_factor=3, mode="bilinear", align_corners=True),
         torch.nn.Upsample(scale_factor=3, mode="bilinear", align_corners=True)),
        (nn.UpsamplingNearest2d(scale_factor=2), torch.nn.UpsamplingNearest2d(scale_factor=2)),
        (nn.UpsamplingBilinear2d(size=(6, 6)), torch.nn.UpsamplingBilinear2d(size=(6, 6))),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        assert_close(ours(pcn.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), what=repr(ours))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3)), ValueError, "only one of size or scale_factor"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3), size=4, scale_factor=2), ValueError, "only one of size"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3), size=4, mode="bicubic"), NotImplementedError, "bicubic"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3), size=4, align_corners=True), ValueError, "align_corners option"),
        (lambda: F.interpolate(pcn.zeros(2, 3, 3), size=4), ValueError, r"4-D .* got shape \[2, 3, 3\]"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3), size=0), ValueError, r"output size must be positive"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3), scale_factor=0.1), ValueError, "output size must be positive"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3), scale_factor=-2), ValueError, "scale_factor must be positive"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3), scale_factor="2"), TypeError, "scale_factor"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3).long(), size=4), TypeError, "float32"),
        (lambda: F.interpolate(pcn.zeros(1, 2, 3, 3), size=(2**40, 2**40)), ValueError, "interpolate"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
