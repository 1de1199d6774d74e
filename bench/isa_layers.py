"""The avx2 and avx512 kernel rows side by side on issue 18's layers: every pass (forward,
backward-data, backward-weight) on every algorithm that can compute it, the two ISAs alternating
in one process, one thread, each call timed in process CPU time (a shared machine's descheduling
does not inflate it), best of R. Ratio = avx2 ms / avx512 ms: above 1, avx512 is faster.

    python bench/isa_layers.py [--layers lenet-conv1 ...] [--repeats R] [--algorithms window ...]
"""

import argparse
import os
import time

import numpy as np

from pyconvnet import _C, backend

# name -> (input shape, out_channels, kernel, stride, padding): issue 18's table.
LAYERS = {
    "lenet-conv1": ((64, 1, 32, 32), 6, 5, 1, 0),
    "lenet-conv2": ((64, 6, 14, 14), 16, 5, 1, 0),
    "resnet20-16": ((64, 16, 32, 32), 16, 3, 1, 1),
    "resnet20-32": ((64, 32, 16, 16), 32, 3, 1, 1),
    "resnet20-16to32-s2": ((64, 16, 32, 32), 32, 3, 2, 1),
    "vgg-128to256": ((64, 128, 16, 16), 256, 3, 1, 1),
    "resnet18-64": ((16, 64, 56, 56), 64, 3, 1, 1),
    "resnet18-256": ((16, 256, 14, 14), 256, 3, 1, 1),
}
ISAS = ("avx2", "avx512")
PASSES = ("forward", "backward_data", "backward_weight")


def operands(shape, rng):
    """One layer's call arguments per pass, its weight shape and its geometry."""
    input_shape, out_channels, kernel, stride, padding = shape
    x = rng.standard_normal(input_shape, dtype=np.float32)
    w = rng.standard_normal((out_channels, input_shape[1], kernel, kernel), dtype=np.float32)
    geometry = ((stride, stride), (padding, padding), (1, 1), 1)
    y = _C.conv2d_forward(x, w, None, *geometry)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    return {"forward": (x, w, None, *geometry), "backward_data": (dy, w, list(x.shape), *geometry),
            "backward_weight": (dy, x, list(w.shape), *geometry)}, w.shape, geometry


def best_ms(function, args, isa, algorithm, repeats):
    times = []
    for _ in range(repeats):
        begin = time.process_time()
        function(*args, algorithm=algorithm, isa=isa)
        times.append(time.process_time() - begin)
    return min(times) * 1e3


def measure(name, shape, algorithms, repeats, rng):
    args, weight_shape, geometry = operands(shape, rng)
    for pass_ in PASSES:
        function = getattr(_C, "conv2d_" + pass_)
        names, heuristic = _C.conv2d_algorithms(pass_, shape[0], weight_shape, *geometry, isa="avx512")
        for algorithm in names:
            if algorithms and algorithm not in algorithms:
                continue
            for isa in ISAS:  # warm-up: sizes the scratch buffers
                function(*args[pass_], algorithm=algorithm, isa=isa)
            ms = {isa: float("inf") for isa in ISAS}
            for _ in range(repeats):  # rounds alternate the ISAs; each round's best of 2 calls
                for isa in ISAS:
                    ms[isa] = min(ms[isa], best_ms(function, args[pass_], isa, algorithm, 2))
            mark = "*" if algorithm == heuristic else " "
            print(f"| {name} | {pass_} | {algorithm}{mark} | {ms['avx2']:.2f} | {ms['avx512']:.2f} | "
                  f"{ms['avx2'] / ms['avx512']:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="*", choices=sorted(LAYERS), default=list(LAYERS))
    parser.add_argument("--algorithms", nargs="*", default=[])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    backend.set_num_threads(1)
    print(f"isa {backend.isa()}, {backend.get_num_threads()} thread, load average {os.getloadavg()[0]:.1f}; "
          "* = the heuristic's algorithm")
    print("| layer | pass | algorithm | avx2 ms | avx512 ms | avx2 / avx512 |\n|---|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for name in args.layers:
        measure(name, LAYERS[name], args.algorithms, args.repeats, rng)


if __name__ == "__main__":
    main()
