"""pyconvnet's packed SGEMM (pyconvnet.backend.sgemm) against numpy's matmul (OpenBLAS), side by
side in one process, on square sizes and on the GEMM shapes that convolutions produce.

    python bench/gemm.py [--threads N] [--repeats R]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from timing import compare, cpu_name, pin_threads, print_table  # noqa: E402

# (name, m, n, k): square sizes, then conv-as-GEMM shapes (out_channels x out_pixels x patch)
CASES = [
    ("square 256", 256, 256, 256),
    ("square 512", 512, 512, 512),
    ("square 1024", 1024, 1024, 1024),
    ("square 2048", 2048, 2048, 2048),
    ("lenet conv2 fwd", 16, 100, 150),
    ("resnet20 3x3x16", 16, 1024, 144),
    ("resnet20 3x3x64", 64, 64, 576),
    ("resnet18 3x3x64", 64, 3136, 576),
    ("resnet18 3x3x256", 256, 196, 2304),
    ("resnet18 bwd-w 3x3x64", 64, 576, 3136),
    ("alexnet fc6 b16", 16, 4096, 9216),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="threads for both sides (default: all)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    threads = pin_threads(args.threads)
    import numpy as np

    import pyconvnet as pcn

    print(f"sgemm vs numpy.matmul  |  {cpu_name()}  |  isa {pcn.backend.isa()}  |  {threads} threads")
    rng = np.random.default_rng(0)
    rows = []
    for name, m, n, k in CASES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ours, theirs, ratio = compare(lambda: pcn.backend.sgemm(a, b), lambda: a @ b, repeats=args.repeats)
        gflop = 2.0 * m * n * k / 1e9
        rows.append((name, f"{m}x{n}x{k}", f"{ours:.3f}", f"{theirs:.3f}", f"{gflop / ours * 1e3:.1f}",
                     f"{gflop / theirs * 1e3:.1f}", f"{ratio:.2f}"))
    print_table(["case", "m x n x k", "pcn ms", "numpy ms", "pcn GF/s", "numpy GF/s", "ratio"], rows)
    print("ratio = numpy time / pyconvnet time (above 1: pyconvnet is faster)")


if __name__ == "__main__":
    main()
