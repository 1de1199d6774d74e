"""How far a bfloat16 Winograd F(4x4, 3x3) would move a convolution's output: the error of the
output when the transformed tiles (B^T d B) and weights (G g G^T) are rounded to bfloat16 before
their products (what a `vdpbf16ps` elementwise stage needs), against the exact convolution of the
bfloat16-rounded operands (what `autocast` computes today). The transforms are csrc/kernels/
conv_winograd.cpp's (points 0, 1, -1, 1/2, -2, infinity), read off as matrices; float64 elsewhere.
For scale it also prints the error of rounding the exact output to bfloat16 (PyTorch's autocast
convolution returns bfloat16).

    python bench/winograd_bf16_error.py [--tiles 200] [--seed 0]
"""

import argparse

import numpy as np

# Rows of B^T, G and A^T as conv_winograd.cpp's input_transform_1d, weight_transform_1d and
# output_transform_1d compute them.
B_T = np.array([[1, -1.5, -2, 1.5, 1, 0],
                [0, -1, 0.5, 2.5, 1, 0],
                [0, 1, -2.5, 0.5, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 0.5, -1, -0.5, 1, 0],
                [0, 1, -1.5, -2, 1.5, 1]])
G = np.array([[1, 0, 0],
              [1 / 3, 1 / 3, 1 / 3],
              [-1 / 3, 1 / 3, -1 / 3],
              [-16 / 15, -8 / 15, -4 / 15],
              [1 / 15, -2 / 15, 4 / 15],
              [0, 0, 1]])
A_T = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 0.5, -2, 0],
                [0, 1, 1, 0.25, 4, 0],
                [0, 1, -1, 0.125, -8, 1]])


def round_bf16(x):
    """float32 values rounded to the nearest bfloat16 (ties to even), as float32."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def check_transforms(rng):
    """The matrices compute a 1-D correlation of 4 outputs (the transcription is right)."""
    d, g = rng.standard_normal(6), rng.standard_normal(3)
    direct = np.array([d[i:i + 3] @ g for i in range(4)])
    assert np.allclose(A_T @ ((G @ g) * (B_T @ d)), direct), "transform matrices do not compute a correlation"


def relative_errors(channels, kernels, tiles, rng, after_relu):
    d = rng.standard_normal((tiles, channels, 6, 6)).astype(np.float32)
    d = round_bf16(np.maximum(d, 0) if after_relu else d).astype(np.float64)
    g = round_bf16(rng.standard_normal((kernels, channels, 3, 3)) * np.sqrt(2 / (9 * channels))).astype(np.float64)
    exact = sum(np.einsum("tchw,kc->tkhw", d[:, :, i:i + 4, j:j + 4], g[:, :, i, j]) for i in range(3) for j in range(3))
    v = np.einsum("ab,tcbd,ed->tcae", B_T, d, B_T)
    u = np.einsum("ab,kcbd,ed->kcae", G, g, G)
    scale = np.sqrt(np.mean(exact ** 2))
    rows = {}
    for name, rounding in (("float32 tiles", lambda a: a.astype(np.float32)), ("bfloat16 tiles", round_bf16)):
        m = np.einsum("kcae,tcae->tkae", rounding(u).astype(np.float64), rounding(v).astype(np.float64))
        error = np.einsum("ab,tkbd,ed->tkae", A_T, m, A_T) - exact
        rows[name] = (np.sqrt(np.mean(error ** 2)) / scale, np.abs(error).max() / scale)
    error = round_bf16(exact) - exact
    rows["output rounded to bfloat16"] = (np.sqrt(np.mean(error ** 2)) / scale, np.abs(error).max() / scale)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    check_transforms(rng)
    print("error relative to the output's rms: rms / max over", args.tiles, "tiles x 32 kernels x 16 outputs")
    for channels, after_relu in ((64, True), (256, True), (512, False)):
        for name, (rms, worst) in relative_errors(channels, 32, args.tiles, rng, after_relu).items():
            print(f"  {channels:3d} channels{' (after ReLU)' if after_relu else '             '}  {name:27s}"
                  f"  {rms:.2e} / {worst:.2e}")


if __name__ == "__main__":
    main()
