"""One whole training step (forward, backward, SGD with momentum) of LeNet-5 on a batch of 128
Fashion-MNIST-sized images, pyconvnet against the same network in PyTorch, side by side in one
process with the same thread count. The seed of the model-level suite (issue 5).

    python bench/step.py [--threads N] [--repeats R] [--batch B]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from timing import compare, cpu_name, pin_threads  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="threads for both sides (default: all cores)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    threads = pin_threads(args.threads)

    import numpy as np
    import torch

    import pyconvnet as pcn
    import pyconvnet.nn.functional as F

    torch.set_num_threads(threads)
    pcn.backend.set_num_threads(threads)
    ours_model = pcn.models.lenet5()
    theirs_model = torch.nn.Sequential(
        torch.nn.ZeroPad2d(2), torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10))
    # Same initial weights on both sides (the layer order of the two models matches).
    for ours, theirs in zip(ours_model.parameters(), theirs_model.parameters()):
        theirs.data.copy_(torch.from_numpy(ours.detach().numpy()))
    ours_opt = pcn.optim.SGD(ours_model.parameters(), lr=0.05, momentum=0.9)
    theirs_opt = torch.optim.SGD(theirs_model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, args.batch)
    x, y = pcn.tensor(images), pcn.tensor(labels)
    tx, ty = torch.from_numpy(images), torch.from_numpy(labels)

    def ours_step():
        ours_opt.zero_grad()
        F.cross_entropy(ours_model(x), y).backward()
        ours_opt.step()

    def theirs_step():
        theirs_opt.zero_grad()
        torch.nn.functional.cross_entropy(theirs_model(tx), ty).backward()
        theirs_opt.step()

    our_ms, their_ms, ratio = compare(ours_step, theirs_step, repeats=args.repeats, warmup=3)
    print(f"LeNet-5 training step, batch {args.batch}  |  {cpu_name()}  |  isa {pcn.backend.isa()}  |  {threads} threads")
    print(f"pyconvnet {our_ms:.2f} ms ({args.batch / our_ms * 1e3:.0f} images/s)   "
          f"torch {their_ms:.2f} ms ({args.batch / their_ms * 1e3:.0f} images/s)   ratio {ratio:.2f}")
    print("ratio = torch time / pyconvnet time (above 1: pyconvnet is faster)")


if __name__ == "__main__":
    main()
