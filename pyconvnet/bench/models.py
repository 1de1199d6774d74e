"""Training-step suite: one SGD step (forward, cross-entropy, backward, momentum update) of each
classic network in pyconvnet and in its PyTorch mirror holding the same initial weights, on
the same random batch, timed side by side; plus each side's peak memory, measured in a fresh
process of its own.

Dropout stays at each model's default rate (AlexNet 0.5, GoogLeNet 0.2) on both sides, as a
user would train: the masks differ between the libraries but their cost does not depend on them.

Peak memory is the growth of the resident set size of a fresh process (Linux /proc/self/status)
from the moment after its imports and the creation of the batch to its peak (VmHWM) during
``steps`` training steps, less the growth of its file-backed pages (RssFile: library code paged
in on first use, which says nothing about the library's appetite for memory). It counts the
model, its gradients, the optimizer's momentum, activations, workspaces, allocator caches and
JIT-compiled kernels.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from .. import manual_seed, models, optim, tensor
from ..models.vgg import CONFIGS as VGG_CONFIGS
from ..nn import functional
from ..summary import summary
from .timing import compare, require_torch, thread_environment

LEARNING_RATE = 0.01
MOMENTUM = 0.9
_BYTES_PER_MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class ModelCase:
    """One row of the suite: ``build`` makes the pyconvnet model; ``build_torch(torch_models)``
    makes its mirror from the pyconvnet.bench.torch_models module (so torch loads only when
    a mirror is wanted)."""

    name: str
    title: str
    batch: int
    input_shape: tuple
    num_classes: int
    build: object
    build_torch: object

    def with_batch(self, batch):
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        return replace(self, batch=batch)


def _pyconvnet_model(name, **options):
    return partial(models.get_model, name, **options)


# Input sizes and batches of issue 5; the 224x224 models keep their 1000 ImageNet classes.
MODEL_CASES = {case.name: case for case in (
    ModelCase("lenet5", "LeNet-5", 64, (1, 28, 28), 10, _pyconvnet_model("lenet5"),
              lambda tm: tm.TorchLeNet5(10)),
    ModelCase("resnet20", "CIFAR ResNet-20", 64, (3, 32, 32), 10, _pyconvnet_model("resnet20"),
              lambda tm: tm.TorchCifarResNet(3)),
    ModelCase("vgg11-cifar", "VGG-11-BN, 32x32 variant", 64, (3, 32, 32), 10,
              _pyconvnet_model("vgg11_bn", num_classes=10, cifar=True),
              lambda tm: tm.TorchVGG(VGG_CONFIGS[11], True, 10, 0.5, True)),
    ModelCase("resnet18", "ResNet-18", 16, (3, 224, 224), 1000, _pyconvnet_model("resnet18"),
              lambda tm: tm.TorchResNet(tm.TorchBasicBlock, [2, 2, 2, 2], 1000)),
    ModelCase("alexnet", "AlexNet", 16, (3, 224, 224), 1000, _pyconvnet_model("alexnet"),
              lambda tm: tm.TorchAlexNet(1000, 0.5)),
    ModelCase("googlenet", "GoogLeNet, no aux heads", 16, (3, 224, 224), 1000, _pyconvnet_model("googlenet"),
              lambda tm: tm.TorchGoogLeNet(1000, False, False, 0.2)),
)}


def select_cases(names=None, batch=None):
    """The cases called ``names`` (all when None), in the suite's order, with ``batch`` (if given)
    replacing each case's batch size. ValueError names an unknown case."""
    names = list(MODEL_CASES) if names is None else list(names)
    unknown = [name for name in names if name not in MODEL_CASES]
    if unknown:
        raise ValueError(f"models: unknown case(s) {unknown}; choose from {list(MODEL_CASES)}")
    cases = [MODEL_CASES[name] for name in MODEL_CASES if name in names]
    return [case.with_batch(batch) for case in cases] if batch is not None else cases


def random_batch(case, seed=0):
    """Images (float32, NCHW) and integer labels, the same for both sides."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((case.batch, *case.input_shape), dtype=np.float32)
    labels = rng.integers(0, case.num_classes, case.batch)
    return images, labels


def forward_flops(model, case):
    """Float operations of one forward pass of ``model`` over the case's batch: 2 x the
    multiply-adds of the convolution and linear layers (pyconvnet.summary's count)."""
    return 2 * summary(model, case.input_shape).total_mult_adds * case.batch


def pyconvnet_step(model, x, y):
    """One SGD step of ``model`` on the batch (x, y), as a zero-argument callable."""
    optimizer = optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    model.train()

    def step():
        optimizer.zero_grad()
        functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def torch_step(model, x, y):
    """``pyconvnet_step`` for a torch model."""
    torch = require_torch()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    model.train()

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def build_pair(case):
    """The pyconvnet model (seeded) and its torch mirror holding the same weights."""
    torch = require_torch()
    from . import torch_models

    manual_seed(0)
    model, mirror = case.build(), case.build_torch(torch_models)
    state = {key: torch.from_numpy(value.numpy().copy()) for key, value in model.state_dict().items()}
    mirror.load_state_dict(state, strict=True)
    return model, mirror


def _rss_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def measure_memory_here(case, side, steps):
    """Peak memory in MiB (see the module docstring) of ``steps`` training steps of ``side``
    ('pyconvnet' or 'torch') in this process, which must be fresh for the figure to mean much."""
    if side not in ("pyconvnet", "torch"):
        raise ValueError(f"side must be 'pyconvnet' or 'torch', got {side!r}")
    images, labels = random_batch(case)
    if side == "torch":
        torch = require_torch()
        from . import torch_models

        x, y = torch.from_numpy(images), torch.from_numpy(labels)
    else:
        x, y = tensor(images), tensor(labels)
    baseline, baseline_file = _rss_kib("VmRSS"), _rss_kib("RssFile")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current RSS: import-time peaks do not count
    if side == "torch":
        step = torch_step(case.build_torch(torch_models), x, y)
    else:
        step = pyconvnet_step(case.build(), x, y)
    for _ in range(steps):
        step()
    growth = _rss_kib("VmHWM") - baseline - (_rss_kib("RssFile") - baseline_file)
    return growth * 1024 / _BYTES_PER_MIB


def measure_memory(case, side, threads, steps=3):
    """Peak memory in MiB of ``side`` on ``case``, measured in a fresh ``python -m
    pyconvnet.bench`` process on ``threads`` threads; None where the OS has no /proc."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    command = [sys.executable, "-m", "pyconvnet.bench", case.name, side,
               "--batch", str(case.batch), "--threads", str(threads), "--steps", str(steps)]
    env = {**os.environ, **thread_environment(threads)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory measurement of {case.name} ({side}) failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)["peak_mib"]


def run_model_suite(cases, threads, peak_gflops, repeats=7, warmup=2, memory_steps=3, report=print):
    """Times every case and measures both sides' memory; returns one dict per case and passes
    each to ``report`` as soon as it is done. ``peak_gflops`` is the machine's measured FMA peak."""
    torch = require_torch()
    rows = []
    for case in cases:
        model, mirror = build_pair(case)
        flops = 3 * forward_flops(model, case)  # forward, backward-data and backward-weight
        images, labels = random_batch(case)
        timing = compare(pyconvnet_step(model, tensor(images), tensor(labels)),
                         torch_step(mirror, torch.from_numpy(images), torch.from_numpy(labels)),
                         repeats=repeats, warmup=warmup)
        row = timing_row(case, flops, timing, peak_gflops)
        for side in ("pyconvnet", "torch"):
            row[f"{side}_memory_mib"] = measure_memory(case, side, threads, memory_steps)
        rows.append(row)
        report(row)
    return rows


def timing_row(case, flops, timing, peak_gflops=None):
    """The suite's row for ``case`` from its ``Timing`` and FLOPs per step: milliseconds, ratio,
    images/s, GFLOP/s and, given the peak, each side's share of it (None without)."""
    row = {
        "name": case.name, "model": case.title, "batch": case.batch, "input": list(case.input_shape),
        "pyconvnet_ms": timing.ours_ms, "torch_ms": timing.theirs_ms, "ratio": timing.ratio,
        "gflop_per_step": flops / 1e9,
    }
    for side, ms in (("pyconvnet", timing.ours_ms), ("torch", timing.theirs_ms)):
        row[f"{side}_images_per_s"] = case.batch / ms * 1e3
        row[f"{side}_gflops"] = flops / ms / 1e6
        row[f"{side}_peak_percent"] = None if peak_gflops is None else 100.0 * row[f"{side}_gflops"] / peak_gflops
    return row
