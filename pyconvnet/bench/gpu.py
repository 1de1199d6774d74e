"""``pyconvnet bench --device cuda``: the training-step suite on a GPU, pyconvnet's own kernels
against PyTorch's CUDA build (cuDNN) in the same process: the same networks, weights, batch and
SGD step as pyconvnet.bench.models, timed as on the CPU (alternating, warm-up, median of the
pairwise ratios) with each side's queue drained before a sample's clock starts and before it
stops. TF32 as PyTorch's defaults on both sides: allowed for convolutions, not for matmul.

Peak memory is each library's caching-allocator high-water mark of allocated bytes
(``max_memory_allocated``) during the case, above what was allocated when it began: the model,
its gradients, the momentum, the batch, activations and workspaces.
"""

import datetime
import gc
import platform

import numpy as np

from .. import __version__, backend, backends, cuda, tensor
from . import models as model_suite
from .timing import compare, cpu_name, require_torch

# Issue 14's batches (LeNet-5 and ResNet-20 128, ResNet-18 64); the other cases keep the suite's.
BATCHES = {"lenet5": 128, "resnet20": 128, "resnet18": 64}
QUICK = {"repeats": 5, "warmup": 1}
FULL = {"repeats": 9, "warmup": 3}
TF32 = {"convolution": True, "matmul": False}  # PyTorch's defaults
_BYTES_PER_MIB = 1024.0 * 1024.0


def select_cases(names=None, batch=None):
    """The cases called ``names`` (all when None) at the GPU suite's batches, or at ``batch``."""
    cases = model_suite.select_cases(names)
    return [case.with_batch(batch if batch is not None else BATCHES.get(case.name, case.batch)) for case in cases]


def torch_for(device):
    """(torch, the torch device) for pyconvnet's cuda ``device``; ValueError when PyTorch cannot use it."""
    torch = require_torch()
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: PyTorch {torch.__version__} cannot use CUDA here "
                         "(torch.cuda.is_available() is False), and the GPU suite compares against PyTorch's CUDA build")
    return torch, torch.device("cuda", device.index)


def set_tf32(torch):
    """Both libraries at PyTorch's default TF32 switches (``TF32``), whatever the environment said."""
    torch.backends.cudnn.allow_tf32 = backends.cudnn.allow_tf32 = TF32["convolution"]
    torch.backends.cuda.matmul.allow_tf32 = backends.cuda.matmul.allow_tf32 = TF32["matmul"]


def machine_facts(device, torch, git_commit):
    major, minor = cuda.get_device_capability(device)
    return {
        "gpu": cuda.get_device_name(device), "device": str(device), "capability": f"{major}.{minor}",
        "cuda_architectures": backend.cuda_info()["architectures"], "cpu": cpu_name(), "pyconvnet": __version__,
        "git_commit": git_commit, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "tf32": dict(TF32), "numpy": np.__version__,
        "python": platform.python_version(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def time_case(case, device, torch, torch_device, repeats, warmup):
    """The suite's row for ``case`` on the GPU (see the module docstring)."""
    model, mirror = model_suite.build_pair(case)
    flops = 3 * model_suite.forward_flops(model, case)  # forward, backward-data and backward-weight
    images, labels = model_suite.random_batch(case)
    gc.collect()  # the previous case's tensors go back to the allocators
    cuda.reset_peak_memory_stats(device)
    torch.cuda.reset_peak_memory_stats(torch_device)
    ours_before, theirs_before = cuda.memory_allocated(device), torch.cuda.memory_allocated(torch_device)
    model.to(device)
    mirror.to(torch_device)
    ours = model_suite.pyconvnet_step(model, tensor(images).to(device), tensor(labels).to(device))
    theirs = model_suite.torch_step(mirror, torch.from_numpy(images).to(torch_device),
                                    torch.from_numpy(labels).to(torch_device))
    timing = compare(ours, theirs, repeats=repeats, warmup=warmup,
                     synchronize=(lambda: cuda.synchronize(device), lambda: torch.cuda.synchronize(torch_device)))
    row = model_suite.timing_row(case, flops, timing)
    row["pyconvnet_memory_mib"] = (cuda.max_memory_allocated(device) - ours_before) / _BYTES_PER_MIB
    row["torch_memory_mib"] = (torch.cuda.max_memory_allocated(torch_device) - theirs_before) / _BYTES_PER_MIB
    return row


def run(device, model_names=None, quick=False, repeats=None, batch=None, git_commit=None, report=print):
    """Times the cases on the GPU ``device`` (a cuda device with its index), printing a header first
    and passing each row to ``report``; returns the record (machine facts, settings, rows).
    ``quick``: fewer repeats and warm-ups, the full batches (about a minute on an H200)."""
    torch, torch_device = torch_for(device)
    cases = select_cases(model_names, batch)
    settings = dict(QUICK if quick else FULL)
    if repeats is not None:
        settings["repeats"] = repeats
    set_tf32(torch)
    facts = machine_facts(device, torch, git_commit)
    print(f"pyconvnet {facts['pyconvnet']} vs torch {facts['torch']} (CUDA {facts['torch_cuda']}, cuDNN "
          f"{facts['cudnn']})  |  {facts['gpu']} ({device}, compute capability {facts['capability']})  |  TF32 "
          f"for convolutions {'on' if TF32['convolution'] else 'off'}, for matmul {'on' if TF32['matmul'] else 'off'}",
          flush=True)
    print(f"{'quick: ' if quick else ''}{settings['repeats']} timed repeats after {settings['warmup']} warm-up "
          f"step(s); batches: {', '.join(f'{case.name} {case.batch}' for case in cases)}", flush=True)
    rows = []
    for case in cases:
        rows.append(time_case(case, device, torch, torch_device, **settings))
        report(rows[-1])
    return {"machine": facts, "settings": {**settings, "quick": quick, "batch": batch, "device": str(device)},
            "models": rows}
