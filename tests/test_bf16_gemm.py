"""The GEMMs with bfloat16 products (the avx512bf16 row's vdpbf16ps, the amx row's AMX tiles)
against float64 on bfloat16 operands, without torch, so that the sanitizer run (.ci/sanitize)
covers them too; tests/test_amp.py checks them against the portable path and torch's rounding."""

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import _C


# Shapes around the AMX micro-kernel's 12 x 32 tile and its steps of 32 k (16 pairs): k blocks with
# a partial last step, odd k, k shorter than one step, several k blocks (beta = 1 after the first),
# edge rows and columns, and both ways the driver shares a GEMM out (by columns; one shared B block).
BF16_GEMM_SHAPES = [(12, 32, 32), (1, 1, 1), (5, 7, 3), (13, 33, 33), (24, 64, 17), (37, 70, 300), (64, 100, 257),
                    (3, 5000, 40), (300, 40, 600)]


@pytest.mark.parametrize("shape", BF16_GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_bf16_product_gemms_against_float64(bf16_isa, shape):
    m, n, k = shape
    rng = np.random.default_rng(m * n + k)
    a = pcn.amp.round_bf16(rng.standard_normal((m, k), dtype=np.float32))
    b = pcn.amp.round_bf16(rng.standard_normal((k, n), dtype=np.float32))
    c = rng.standard_normal((m, n), dtype=np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(_C.sgemm(a, b, bf16=True), exact, rtol=0, atol=1e-6 * scale)
    out = c.copy()
    _C.sgemm(a.T.copy(), b.T.copy(), trans_a=True, trans_b=True, alpha=0.5, beta=-2.0, out=out, bf16=True)
    np.testing.assert_allclose(out, 0.5 * exact - 2.0 * c, rtol=0, atol=1e-6 * (scale + np.abs(c).max()))

