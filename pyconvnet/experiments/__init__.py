"""``pyconvnet experiment``: the classic claims about CNNs as experiments anyone can rerun.

Each experiment trains or measures networks on Fashion-MNIST, then writes into its output
directory a ``results.json`` of its numbers, a short ``report.md`` that states whether the claim
showed, and its figures (with matplotlib, the ``viz`` extra); it prints a table and is
deterministic for a seed and thread count (``timing`` in results.json aside).

- ``degradation``: plain vs residual networks of 20 and 56 layers (He et al. 2016, Figure 1).
- ``mlp-vs-cnn``: LeNet-5 against fully connected networks: parameters, mult-adds, accuracy,
  accuracy on shifted images.
- ``kernels``: Sobel, Laplacian and Gaussian kernels beside LeNet-5's learned first layer.

``run(name, size="quick", seed=0, ...)`` runs one from Python (see ``Options``).
"""

from . import degradation, kernels, mlp_vs_cnn
from ._common import SIZES, Options

__all__ = ["EXPERIMENTS", "SIZES", "Options", "run"]

EXPERIMENTS = {module.NAME: module for module in (degradation, mlp_vs_cnn, kernels)}


def run(name, **options):
    """Run experiment ``name`` with ``Options(**options)``; returns the results.json path."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)}")
    if options.get("checkpoint") is not None and name != kernels.NAME:
        raise ValueError(f"--checkpoint is for the kernels experiment only, not {name!r}")
    return EXPERIMENTS[name].run(Options(**options))
