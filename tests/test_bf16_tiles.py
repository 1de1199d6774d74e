"""The AMX tile convolutions (conv_tiles.h, algorithm "tiles": autocast's bfloat16 operands in the
amx build) against the float32 reference kernels on the same bfloat16 values, without torch so
that the sanitizer run (.ci/sanitize) covers them too. A product of two bfloat16 values is exact in
float32, so the two differ only by the order of the float32 sums."""

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import _C

from conftest import BF16_PRODUCT_ISAS, ISAS

# (N, C, H, W), (O, C, kh, kw), stride, padding, dilation: channels and out channels off the 16 and
# 32 of the tiles, k shorter than one tile step and spanning several, position blocks of 32 that
# cross images (planes of 49, 81, 100), strides, dilations, paddings up to kernel - 1 and beyond.
TILE_CASES = [
    ((2, 3, 12, 12), (8, 3, 3, 3), 1, 1, 1),
    ((3, 20, 7, 7), (40, 20, 3, 3), 1, 1, 1),
    ((2, 5, 11, 11), (17, 5, 3, 3), 1, 0, 1),
    ((1, 6, 14, 14), (16, 6, 5, 5), 1, 2, 1),
    ((2, 64, 6, 6), (32, 64, 1, 1), 1, 0, 1),
    ((2, 33, 10, 9), (48, 33, 3, 3), 1, 1, 1),
    ((2, 16, 9, 9), (32, 16, 3, 3), 2, 1, 1),
    ((2, 8, 10, 10), (8, 8, 3, 3), 1, 2, 2),
    ((2, 4, 9, 9), (6, 4, 2, 3), 2, 3, 1),
    # Stride 1, channels a multiple of 32, at most a fifth of the padded images dropped: positions
    # over the padded images, A tiles read straight from the channels-last copy (Note [grid
    # positions]); backward-data's channels are the out channels (64 in the fourth). The weight
    # gradient takes grid positions in the first three and the 1 x 1 case above (Note [grid weight
    # gradient]), and whole patches in the fourth.
    ((3, 32, 20, 20), (40, 32, 3, 3), 1, 1, 1),
    ((2, 64, 9, 9), (20, 64, 1, 1), 1, 0, 1),
    ((2, 32, 40, 40), (16, 32, 3, 3), 1, 2, 2),
    ((2, 24, 20, 20), (64, 24, 3, 3), 1, 1, 1),
    # Forward and backward-data lay the copy out in bands, several a thread here.
    ((2, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    # Strides: backward-data in phases (Note [backward-data phases]). ResNet's 3x3 at stride 2 on
    # an even plane, where the phases need more padding below than above; stride 3 with a 5x5
    # kernel on planes that are not multiples of it; padding beyond kernel - 1, at stride 2 and 1.
    ((2, 32, 16, 16), (48, 32, 3, 3), 2, 1, 1),
    ((3, 16, 17, 13), (20, 16, 5, 5), 3, 2, 1),
    ((2, 8, 7, 7), (12, 8, 3, 3), 2, 3, 1),
    ((2, 16, 6, 6), (8, 16, 3, 3), 1, 3, 1),
]
# Backward-data takes kernels at least as large as the stride, undilated.
BACKWARD_DATA_CASES = [case for case in TILE_CASES if case[4] == 1 and min(case[1][2:]) >= case[2]]


@pytest.fixture
def amx():
    if "amx" not in ISAS:
        pytest.skip(f"{BF16_PRODUCT_ISAS['amx']} (or the build lacks its kernels)")
    return "amx"


def _operands(case, seed):
    x_shape, w_shape, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    x = pcn.amp.round_bf16(rng.standard_normal(x_shape, dtype=np.float32))
    w = pcn.amp.round_bf16(rng.standard_normal(w_shape, dtype=np.float32))
    return x, w, ((stride,) * 2, (padding,) * 2, (dilation,) * 2, 1)


def _grad_output(case, seed):
    """A bfloat16-valued gradient of the case's output shape."""
    (n, _, h, w), (out_channels, _, kh, kw), stride, padding, dilation = case
    spatial = [(length + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for length, k in ((h, kh), (w, kw))]
    shape = (n, out_channels, *spatial)
    return pcn.amp.round_bf16(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def _assert_same_sums(ours, reference):
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5 * np.abs(reference).max())


def _assert_tiles_match(pass_, case, seed, oracle="reference", bias=False):
    """The tiles' pass on the case's bfloat16 operands (seed; its gradient seed + 1) against the
    oracle ISA's float32 kernels on the same values."""
    x, w, geometry = _operands(case, seed)
    if pass_ == "forward":
        args = (x, w, np.linspace(-1, 1, w.shape[0], dtype=np.float32) if bias else None)
    elif pass_ == "backward_data":
        args = (_grad_output(case, seed + 1), w, list(x.shape))
    else:
        args = (_grad_output(case, seed + 1), x, list(w.shape))
    kernel = getattr(_C, "conv2d_" + pass_)
    _assert_same_sums(kernel(*args, *geometry, algorithm="tiles", isa="amx", bf16=True),
                      kernel(*args, *geometry, isa=oracle))


@pytest.mark.parametrize("case", TILE_CASES, ids=str)
def test_tile_forward_matches_float32_on_bfloat16_values(amx, case):
    _assert_tiles_match("forward", case, 1, bias=True)


@pytest.mark.parametrize("case", BACKWARD_DATA_CASES, ids=str)
def test_tile_backward_data_matches_float32_on_bfloat16_values(amx, case):
    _assert_tiles_match("backward_data", case, 2)


def test_tile_backward_data_phases_over_random_geometries(amx):
    """Backward-data in phases (Note [backward-data phases]) for kernels, strides and paddings
    that differ between height and width: strides up to the kernel and 3, paddings up to kernel + 1,
    planes down to one output pixel."""
    rng = np.random.default_rng(20)
    for _ in range(60):
        kh, kw = rng.integers(1, 6, size=2)
        sh, sw = rng.integers(1, min(3, kh) + 1), rng.integers(1, min(3, kw) + 1)
        ph, pw = rng.integers(0, kh + 2), rng.integers(0, kw + 2)
        h, w = rng.integers(max(1, kh - 2 * ph), 14), rng.integers(max(1, kw - 2 * pw), 14)
        n, c, o = rng.integers(1, 4), rng.choice([3, 16, 17, 40]), rng.choice([5, 16, 33])
        x_shape, w_shape = (int(n), int(c), int(h), int(w)), (int(o), int(c), int(kh), int(kw))
        geometry = ((int(sh), int(sw)), (int(ph), int(pw)), (1, 1), 1)
        weights = pcn.amp.round_bf16(rng.standard_normal(w_shape, dtype=np.float32))
        out = [(length + 2 * pad - k) // stride + 1 for length, pad, k, stride in ((h, ph, kh, sh), (w, pw, kw, sw))]
        dy = pcn.amp.round_bf16(rng.standard_normal((int(n), int(o), *out), dtype=np.float32))
        ours = _C.conv2d_backward_data(dy, weights, list(x_shape), *geometry, algorithm="tiles", isa=amx, bf16=True)
        _assert_same_sums(ours, _C.conv2d_backward_data(dy, weights, list(x_shape), *geometry, isa="reference"))


@pytest.mark.parametrize("case", TILE_CASES + [((3, 48, 9, 9), (40, 48, 3, 3), 1, 1, 1)], ids=str)
def test_tile_backward_weight_matches_float32_on_bfloat16_values(amx, case):
    _assert_tiles_match("backward_weight", case, 5)


@pytest.mark.parametrize("case", [((9, 256, 12, 12), (32, 256, 3, 3), 1, 1, 1),  # tap by tap
                                  ((2, 3, 72, 72), (16, 3, 3, 3), 1, 1, 1),  # whole patches (3 channels)
                                  # Grid positions (Note [grid weight gradient]): 4 spans; 2 spans
                                  # of a 5 x 5 kernel on odd planes, 31 channels padded to 32 columns.
                                  ((4, 64, 40, 40), (48, 64, 3, 3), 1, 1, 1),
                                  ((6, 31, 45, 43), (20, 31, 5, 5), 1, 2, 1),
                                  # Spans in parts, each part's tables added at the end (Note
                                  # [weight gradient parts]): tap by tap, whole patches.
                                  ((168, 32, 14, 14), (16, 32, 3, 3), 1, 1, 1),
                                  ((8, 3, 72, 72), (16, 3, 3, 3), 1, 1, 1)],
                         ids=["taps", "patches", "grid", "grid-5x5", "taps-parts", "patches-parts"])
def test_tile_weight_gradient_spans_many_position_blocks(amx, case):
    """More positions than one span holds (the sums carried in the float32 tables between spans;
    the grid cases go in parts too)."""
    _assert_tiles_match("backward_weight", case, 7)


def test_tile_convolution_in_chunks_of_k_and_groups_of_blocks(amx):
    """B tiles over 512 KiB for all out channels: k goes in chunks, the sums between chunks in
    float32 for groups of blocks (several groups here), in forward and in backward-data.
    The float32 avx512 kernels are the oracle (the reference kernels take seconds on these)."""
    _assert_tiles_match("forward", ((2, 256, 24, 24), (496, 256, 3, 3), 1, 1, 1), 9, oracle="avx512")
    # Dilated taps split by a chunk's edge (256 values: 5 taps and a third of 48 channels).
    _assert_tiles_match("forward", ((2, 48, 9, 9), (1024, 48, 3, 3), 1, 2, 2), 12, oracle="avx512")
    # Grid positions (Note [grid positions]) in five chunks of k.
    _assert_tiles_match("forward", ((1, 256, 20, 20), (512, 256, 3, 3), 1, 1, 1), 18, oracle="avx512")
    _assert_tiles_match("backward_data", ((2, 240, 6, 6), (256, 240, 3, 3), 1, 1, 1), 10, oracle="avx512")
    # Four phases in chunks of k (ResNet-18's 256 -> 512 at stride 2).
    _assert_tiles_match("backward_data", ((2, 256, 14, 14), (512, 256, 3, 3), 2, 1, 1), 19, oracle="avx512")


def _assert_same_bits_on_1_2_3_threads(passes):
    """Each of the zero-argument callables gives the same bits on teams of 1, 2 and 3 threads."""
    previous = pcn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            pcn.set_num_threads(threads)
            results.append([run() for run in passes])
    finally:
        pcn.set_num_threads(previous)
    for other in results[1:]:
        for ours, theirs in zip(results[0], other):
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("case", [((3, 64, 10, 10), (80, 64, 3, 3), 1, 1, 1),
                                  ((2, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),  # grid positions, in bands
                                  ((4, 64, 28, 28), (128, 64, 3, 3), 2, 1, 1)],  # backward-data phases
                         ids=["patches", "grid", "strided"])
def test_tile_results_are_the_same_bits_for_any_thread_count(amx, case):
    """Each output, and each weight-gradient tile's sum over the positions, is computed by one
    thread in a fixed order, whatever the team."""
    x, w, geometry = _operands(case, 14)
    dy = _grad_output(case, 15)
    _assert_same_bits_on_1_2_3_threads([
        lambda: _C.conv2d_forward(x, w, None, *geometry, algorithm="tiles", isa=amx, bf16=True),
        lambda: _C.conv2d_backward_data(dy, w, list(x.shape), *geometry, algorithm="tiles", isa=amx, bf16=True),
        lambda: _C.conv2d_backward_weight(dy, x, list(w.shape), *geometry, algorithm="tiles", isa=amx, bf16=True)])


@pytest.mark.parametrize("case", [((4, 64, 40, 40), (48, 64, 3, 3), 1, 1, 1),
                                  ((168, 32, 14, 14), (16, 32, 3, 3), 1, 1, 1),
                                  ((8, 3, 72, 72), (16, 3, 3, 3), 1, 1, 1)],
                         ids=["grid", "taps", "patches"])
def test_tile_weight_gradient_parts_are_the_same_bits_for_any_thread_count(amx, case):
    """The spans' parts (Note [weight gradient parts]) are fixed by the shape, not by the team."""
    x, w, geometry = _operands(case, 16)
    dy = _grad_output(case, 17)
    _assert_same_bits_on_1_2_3_threads([
        lambda: _C.conv2d_backward_weight(dy, x, list(w.shape), *geometry, algorithm="tiles", isa=amx, bf16=True)])


def test_tile_passes_of_an_empty_batch(amx):
    x, w, geometry = _operands(((0, 8, 6, 6), (16, 8, 3, 3), 1, 1, 1), 13)
    dy = np.zeros((0, 16, 6, 6), np.float32)
    assert _C.conv2d_forward(x, w, None, *geometry, algorithm="tiles", isa=amx, bf16=True).shape == (0, 16, 6, 6)
    assert _C.conv2d_backward_data(dy, w, [0, 8, 6, 6], *geometry, algorithm="tiles", isa=amx, bf16=True).shape == x.shape
    dw = _C.conv2d_backward_weight(dy, x, [16, 8, 3, 3], *geometry, algorithm="tiles", isa=amx, bf16=True)
    np.testing.assert_array_equal(dw, np.zeros((16, 8, 3, 3), np.float32))


def test_tile_operands_are_rounded_to_bfloat16(amx):
    """Given values that are not bfloat16, the tiles multiply their rounded values."""
    x, w, geometry = _operands(TILE_CASES[1], 4)
    noisy_x, noisy_w = x * np.float32(1 + 2**-12), w * np.float32(1 - 2**-12)
    reference = _C.conv2d_forward(pcn.amp.round_bf16(noisy_x), pcn.amp.round_bf16(noisy_w), None, *geometry,
                                  isa="reference")
    _assert_same_sums(_C.conv2d_forward(noisy_x, noisy_w, None, *geometry, algorithm="tiles", isa=amx, bf16=True),
                      reference)


def test_tiles_are_a_candidate_and_the_heuristic_only_for_bfloat16_operands_on_amx():
    shapes = ((2, 16, 8, 8), (16, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    for isa in ISAS:
        for pass_ in ("forward", "backward_data", "backward_weight"):
            fp32, fp32_heuristic = _C.conv2d_algorithms(pass_, *shapes, isa=isa)
            bf16, bf16_heuristic = _C.conv2d_algorithms(pass_, *shapes, isa=isa, bf16=True)
            assert "tiles" not in fp32
            assert ("tiles" in bf16) == (isa == "amx")
            # The fixed heuristic (autotuning off, or the yardstick of a measurement) takes them too.
            assert bf16_heuristic == ("tiles" if isa == "amx" else fp32_heuristic)
    # Backward-data takes strides up to the kernel (in phases), not dilations.
    strided = ((2, 16, 8, 8), (16, 16, 3, 3), (2, 2), (1, 1), (1, 1), 1)
    for isa in ISAS:
        assert ("tiles" in _C.conv2d_algorithms("backward_data", *strided, isa=isa, bf16=True)[0]) == (isa == "amx")
        for beyond in (((2, 16, 8, 8), (16, 16, 1, 1), (2, 2), (0, 0), (1, 1), 1),
                       ((2, 16, 8, 8), (16, 16, 3, 3), (1, 1), (2, 2), (2, 2), 1)):
            assert "tiles" not in _C.conv2d_algorithms("backward_data", *beyond, isa=isa, bf16=True)[0]
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="algorithm 'tiles' cannot compute"):
        _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, algorithm="tiles")
