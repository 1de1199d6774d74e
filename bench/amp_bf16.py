"""bfloat16 autocast against float32, side by side in one process: one SGD step of suite models
(pyconvnet.bench.models) with and without ``autocast("cpu", dtype=bfloat16)``, and the packed
GEMM with and without bf16 panels. Ratios are float32 time / bfloat16 time (above 1: bf16 faster).

    python bench/amp_bf16.py [--models resnet18 vgg11-cifar] [--batch N] [--threads T] [--repeats R]
"""

import argparse
import os

import numpy as np

import pyconvnet as pcn
from pyconvnet import _C, backend
from pyconvnet.bench.models import pyconvnet_step, random_batch, select_cases
from pyconvnet.bench.timing import compare, cpu_name


def model_rows(names, batch, repeats):
    for case in select_cases(names, batch):
        images, labels = random_batch(case)
        x, y = pcn.tensor(images), pcn.tensor(labels)
        steps = {}
        for precision in ("fp32", "bf16"):
            pcn.manual_seed(0)
            step = pyconvnet_step(case.build(), x, y)
            if precision == "bf16":
                step = pcn.autocast("cpu", dtype=pcn.bfloat16)(step)
            steps[precision] = step
        timing = compare(steps["bf16"], steps["fp32"], repeats=repeats, warmup=1)
        print(f"{case.title} (batch {case.batch}): fp32 {timing.theirs_ms:.1f} ms, bf16 {timing.ours_ms:.1f} ms, "
              f"fp32/bf16 {timing.ratio:.2f}", flush=True)


def gemm_rows(repeats):
    rng = np.random.default_rng(0)
    for m, n, k in ((256, 3136, 576), (512, 784, 1152), (1024, 1024, 1024)):
        a = pcn.amp.round_bf16(rng.standard_normal((m, k), dtype=np.float32))
        b = pcn.amp.round_bf16(rng.standard_normal((k, n), dtype=np.float32))
        timing = compare(lambda: _C.sgemm(a, b, bf16=True), lambda: _C.sgemm(a, b), repeats=repeats)
        flops = 2.0 * m * n * k
        print(f"sgemm {m}x{n}x{k}: fp32 {flops / timing.theirs_ms / 1e6:.0f} GFLOP/s, "
              f"bf16 {flops / timing.ours_ms / 1e6:.0f} GFLOP/s, fp32/bf16 {timing.ratio:.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["resnet18", "vgg11-cifar"])
    parser.add_argument("--batch", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        backend.set_num_threads(args.threads)
    print(f"{cpu_name()}, isa {backend.isa()}, {backend.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    gemm_rows(args.repeats)
    model_rows(args.models, args.batch, args.repeats)


if __name__ == "__main__":
    main()
