"""Per-layer timing of pyconvnet's kernels against PyTorch's, side by side in one process:
conv2d forward, backward-data and backward-weight on the layer shapes of LeNet-5, ResNet-20 and
ResNet-18, plus max_pool2d and batch_norm (forward + backward). Prints ms and the ratio
(PyTorch time / pyconvnet time: above 1 means pyconvnet is faster).

    python bench/ops.py [--threads N] [--repeats R] [--nets lenet5,resnet20,resnet18]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from timing import compare, cpu_name, pin_threads, print_table  # noqa: E402

# (net, batch, in_channels, size, out_channels, kernel, stride, padding)
CONV_LAYERS = [
    ("lenet5", 64, 1, 28, 6, 5, 1, 2),
    ("lenet5", 64, 6, 14, 16, 5, 1, 0),
    ("resnet20", 64, 3, 32, 16, 3, 1, 1),
    ("resnet20", 64, 16, 32, 16, 3, 1, 1),
    ("resnet20", 64, 16, 32, 32, 3, 2, 1),
    ("resnet20", 64, 32, 16, 32, 3, 1, 1),
    ("resnet20", 64, 64, 8, 64, 3, 1, 1),
    ("resnet18", 16, 3, 224, 64, 7, 2, 3),
    ("resnet18", 16, 64, 56, 64, 3, 1, 1),
    ("resnet18", 16, 64, 56, 128, 1, 2, 0),
    ("resnet18", 16, 128, 28, 128, 3, 1, 1),
    ("resnet18", 16, 256, 14, 256, 3, 1, 1),
    ("resnet18", 16, 512, 7, 512, 3, 1, 1),
]
# (net, batch, channels, size, kernel, stride, padding)
POOL_LAYERS = [
    ("lenet5", 64, 6, 28, 2, 2, 0),
    ("resnet18", 16, 64, 112, 3, 2, 1),
]
# (net, batch, channels, size)
NORM_LAYERS = [
    ("resnet20", 64, 16, 32),
    ("resnet20", 64, 64, 8),
    ("resnet18", 16, 64, 112),
    ("resnet18", 16, 256, 14),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="threads for both sides (default: all cores)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nets", default="lenet5,resnet20,resnet18")
    args = parser.parse_args()
    threads = pin_threads(args.threads)
    nets = set(args.nets.split(","))

    import numpy as np
    import torch
    import torch.nn.functional as TF

    import pyconvnet as pcn
    import pyconvnet.nn.functional as F
    from pyconvnet import _C

    torch.set_num_threads(threads)
    pcn.backend.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"pyconvnet {pcn.__version__} (isa {pcn.backend.isa()}) vs torch {torch.__version__}  |  "
          f"{cpu_name()}  |  {threads} threads")

    rows = []

    def record(net, op, shape, ours, theirs, repeats=args.repeats):
        our_ms, their_ms, ratio = compare(ours, theirs, repeats=repeats)
        rows.append((net, op, shape, f"{our_ms:.3f}", f"{their_ms:.3f}", f"{ratio:.2f}"))
        print(*rows[-1], sep="  ", flush=True)

    for net, n, c, size, o, k, s, p in CONV_LAYERS:
        if net not in nets:
            continue
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        w = rng.standard_normal((o, c, k, k), dtype=np.float32)
        geometry = ((s, s), (p, p), (1, 1), 1)
        y = _C.conv2d_forward(x, w, None, *geometry)
        gy = rng.standard_normal(y.shape, dtype=np.float32)
        tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
        shape = f"{n}x{c}x{size}x{size} -> {o} k{k} s{s}"

        def torch_backward(mask):
            return torch.ops.aten.convolution_backward(tgy, tx, tw, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

        with torch.no_grad():
            record(net, "conv fwd", shape, lambda: _C.conv2d_forward(x, w, None, *geometry),
                   lambda: TF.conv2d(tx, tw, None, s, p))
            record(net, "conv bwd-data", shape, lambda: _C.conv2d_backward_data(gy, w, list(x.shape), *geometry),
                   lambda: torch_backward([True, False, False]))
            record(net, "conv bwd-weight", shape, lambda: _C.conv2d_backward_weight(gy, x, list(w.shape), *geometry),
                   lambda: torch_backward([False, True, False]))

    for net, n, c, size, k, s, p in POOL_LAYERS:
        if net not in nets:
            continue
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        px, tx = pcn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)

        def ours():
            F.max_pool2d(px, k, s, p).sum().backward()

        def theirs():
            TF.max_pool2d(tx, k, s, p).sum().backward()

        record(net, "max_pool fwd+bwd", f"{n}x{c}x{size}x{size} k{k} s{s}", ours, theirs)

    for net, n, c, size in NORM_LAYERS:
        if net not in nets:
            continue
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        px, tx = pcn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        pw, tw = pcn.ones(c, requires_grad=True), torch.ones(c, requires_grad=True)
        pb, tb = pcn.zeros(c, requires_grad=True), torch.zeros(c, requires_grad=True)
        pm, pv, tm, tv = pcn.zeros(c), pcn.ones(c), torch.zeros(c), torch.ones(c)

        def ours():
            F.batch_norm(px, pm, pv, pw, pb, training=True).sum().backward()

        def theirs():
            TF.batch_norm(tx, tm, tv, tw, tb, training=True).sum().backward()

        record(net, "batch_norm fwd+bwd", f"{n}x{c}x{size}x{size}", ours, theirs)

    print()
    print_table(["net", "op", "shape", "pcn ms", "torch ms", "ratio"], rows)
    print("ratio = torch time / pyconvnet time (above 1: pyconvnet is faster)")


if __name__ == "__main__":
    main()
