"""``pyconvnet experiment``: the classic claims about CNNs as experiments anyone can rerun.

Each experiment trains or measures networks on Fashion-MNIST, then writes into its output
directory a ``results.json`` of its numbers, a short ``report.md`` that states whether the claim
showed, and its figures (with matplotlib, the ``viz`` extra); it prints a table and is
deterministic for a seed and thread count (``timing`` in results.json aside).

- ``degradation``: plain vs residual networks of 20 and 56 layers (He et al. 2016, Figure 1).
- ``mlp-vs-cnn``: LeNet-5 against fully connected networks: parameters, mult-adds, accuracy,
  accuracy on shifted images.
- ``kernels``: Sobel, Laplacian and Gaussian kernels beside LeNet-5's learned first layer.
- ``timeline``: every zoo model's parameters, mult-adds, measured training speed and recorded
  accuracy.

``run(name, size="quick", seed=0, ...)`` runs one from Python (see ``Options``).
"""

from . import degradation, kernels, mlp_vs_cnn, timeline
from ._common import SIZES, Options

__all__ = ["EXPERIMENTS", "SIZES", "Options", "run"]

EXPERIMENTS = {module.NAME: module for module in (degradation, mlp_vs_cnn, timeline, kernels)}


def run(name, **options):
    """Run experiment ``name`` with ``Options(**options)`` (None: the option's default);
    returns the results.json path."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)}")
    if options.get("checkpoint") is not None and name != kernels.NAME:
        raise ValueError(f"--checkpoint is for the kernels experiment only, not {name!r}")
    if options.get("runs") is not None and name != timeline.NAME:
        raise ValueError(f"--runs is for the timeline experiment only, not {name!r}")
    return EXPERIMENTS[name].run(Options(**{key: value for key, value in options.items() if value is not None}))
