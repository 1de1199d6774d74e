"""The avx2 and avx512 kernel rows side by side on issue 18's layers: every pass (forward,
backward-data, backward-weight) on every algorithm that can compute it, the two ISAs alternating
in one process, one thread, each call timed in process CPU time (a shared machine's descheduling
does not inflate it), best of R rounds. Ratio = avx2 ms / avx512 ms: above 1, avx512 is faster.

``--baseline PATH`` also loads another build's extension module (``_C*.so`` of an earlier commit)
and times its rows in the same rounds, so before and after come from one run.

    python bench/isa_layers.py [--layers lenet-conv1 ...] [--algorithms window ...] [--repeats R]
                               [--baseline /path/to/_C.cpython-311-x86_64-linux-gnu.so]
"""

import argparse
import importlib.util
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


def load_baseline(path):
    """Another build's extension module, under a name of its own (its init function is _C's)."""
    spec = importlib.util.spec_from_file_location("pyconvnet_baseline._C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.set_num_threads(1)
    return module


def measure(name, shape, modules, algorithms, repeats, rng):
    args, weight_shape, geometry = operands(shape, rng)
    sides = [(label, module, isa) for label, module in modules for isa in ISAS]
    for pass_ in PASSES:
        names, heuristic = _C.conv2d_algorithms(pass_, shape[0], weight_shape, *geometry, isa="avx512")
        for algorithm in names:
            if algorithms and algorithm not in algorithms:
                continue
            for _, module, isa in sides:  # warm-up: sizes the scratch buffers
                getattr(module, "conv2d_" + pass_)(*args[pass_], algorithm=algorithm, isa=isa)
            ms = {side[0::2]: float("inf") for side in sides}
            for _ in range(repeats):  # each round times every side twice, alternating
                for label, module, isa in sides:
                    function = getattr(module, "conv2d_" + pass_)
                    for _ in range(2):
                        begin = time.process_time()
                        function(*args[pass_], algorithm=algorithm, isa=isa)
                        ms[label, isa] = min(ms[label, isa], (time.process_time() - begin) * 1e3)
            cells = []
            for label, _ in modules:
                avx2, avx512 = ms[label, "avx2"], ms[label, "avx512"]
                cells += [f"{avx2:.2f}", f"{avx512:.2f}", f"{avx2 / avx512:.2f}"]
            mark = "*" if algorithm == heuristic else ""
            print(f"| {name} | {pass_} | {algorithm}{mark} | " + " | ".join(cells) + " |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="*", choices=sorted(LAYERS), default=list(LAYERS))
    parser.add_argument("--algorithms", nargs="*", default=[])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", help="another build's _C extension module to time alongside")
    args = parser.parse_args()
    backend.set_num_threads(1)
    modules = [("base", load_baseline(args.baseline))] if args.baseline else []
    modules.append(("this", _C))
    print(f"isa at import {backend.isa()}, 1 thread, load average {os.getloadavg()[0]:.1f}; "
          "* = the heuristic's algorithm; ms = best of the rounds in process CPU time")
    header = " | ".join(f"{label} avx2 ms | {label} avx512 ms | {label} avx2 / avx512" for label, _ in modules)
    print(f"| layer | pass | algorithm | {header} |\n|---|---|---|" + "---:|" * (3 * len(modules)))
    rng = np.random.default_rng(0)
    for name in args.layers:
        measure(name, LAYERS[name], modules, args.algorithms, args.repeats, rng)


if __name__ == "__main__":
    main()
