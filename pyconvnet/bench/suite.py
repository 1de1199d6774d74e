"""``pyconvnet bench``: probes the FMA peak, runs the training-step suite (and, on request, the
layer suite), prints their tables and writes everything as one JSON record; with a cuda device,
the training-step suite on the GPU instead (pyconvnet.bench.gpu)."""

import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from .. import __version__, backend
from . import layers as layer_suite
from . import models as model_suite
from . import profile as profile_suite
from . import sharing
from .timing import cpu_name, default_threads, format_table, require_torch

QUICK = {"repeats": 3, "warmup": 1, "memory_steps": 2}
FULL = {"repeats": 7, "warmup": 2, "memory_steps": 3}
SHARING_ROUNDS = {"quick": 2, "full": 5}
RESULTS_DIR = Path("bench") / "results"


def git_commit():
    """``git describe`` of the source tree pyconvnet runs from (an editable install), else None."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        result = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                                capture_output=True, text=True, check=False)
    except OSError:
        return None
    return result.stdout.strip() or None


def machine_facts(threads, peak_gflops, torch):
    return {
        "cpu": cpu_name(), "isa": backend.isa(), "threads": threads, "fma_peak_gflops": peak_gflops,
        "pyconvnet": __version__, "git_commit": git_commit(), "torch": torch.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def default_json_path(processor, now):
    """bench/results/YYYY-MM-DD-HHMM-<processor>.json under the current directory (the CPU's or GPU's name)."""
    short_name = re.sub(r"[^a-z0-9]+", "-", processor.lower()).strip("-")[:32] or "cpu"
    return RESULTS_DIR / f"{now:%Y-%m-%d-%H%M}-{short_name}.json"


def _number(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def model_table(rows):
    headers = ["model", "batch", "pcn ms", "torch ms", "ratio", "pcn img/s", "torch img/s", "pcn GF/s",
               "torch GF/s", "pcn %pk", "torch %pk", "pcn MiB", "torch MiB"]
    return format_table(headers, [
        (r["name"], r["batch"], _number(r["pyconvnet_ms"], 2), _number(r["torch_ms"], 2), _number(r["ratio"], 2),
         _number(r["pyconvnet_images_per_s"], 0), _number(r["torch_images_per_s"], 0),
         _number(r["pyconvnet_gflops"], 1), _number(r["torch_gflops"], 1), _number(r["pyconvnet_peak_percent"], 0),
         _number(r["torch_peak_percent"], 0), _number(r["pyconvnet_memory_mib"], 0),
         _number(r["torch_memory_mib"], 0))
        for r in rows])


def layer_table(rows):
    headers = ["layer", "op", "shape", "plan", "vs", "pcn ms", "their ms", "ratio", "pcn GF/s", "their GF/s",
               "pcn %pk", "their %pk", "models"]
    return format_table(headers, [
        (r["kind"], r["op"], r["shape"], r["plan"] or "", r["baseline"], _number(r["pyconvnet_ms"], 3),
         _number(r["baseline_ms"], 3),
         _number(r["ratio"], 2), _number(r["pyconvnet_gflops"], 1), _number(r["baseline_gflops"], 1),
         _number(r["pyconvnet_peak_percent"], 0), _number(r["baseline_peak_percent"], 0), r["models"])
        for r in rows])


def _report_model(row):
    print(f"  {row['name']}: pyconvnet {row['pyconvnet_ms']:.2f} ms, torch {row['torch_ms']:.2f} ms, "
          f"ratio {row['ratio']:.2f}", file=sys.stderr, flush=True)


def _report_layer(row):
    print(f"  {row['kind']} {row['op']} {row['shape']}: ratio {row['ratio']:.2f}", file=sys.stderr, flush=True)


def _report_sharing(row):
    print(f"  {row['name']}: pyconvnet {row['pyconvnet_quiet_ms']:.2f} -> {row['pyconvnet_loaded_ms']:.2f} ms "
          f"({row['pyconvnet_threads_loaded']:g} threads; fixed: {row['pyconvnet_loaded_fixed_ms']:.2f} ms), "
          f"torch {row['torch_quiet_ms']:.2f} -> {row['torch_loaded_ms']:.2f} ms", file=sys.stderr, flush=True)


def run(model_names=None, layers=False, quick=False, threads=None, repeats=None, batch=None, json_path=None,
        device="cpu", profile=False, neighbours=None, rounds=None):
    """Runs the suites, prints the tables and writes the JSON record; returns the record.

    ``model_names``: cases of pyconvnet.bench.models.MODEL_CASES (default all); ``layers``: also
    the layer suite over those models' layers and layers.GEMM_CASES; ``quick``: fewer repeats and
    warm-ups (a smoke run); ``threads``: both libraries' thread count (default: this process's
    cores; numpy's BLAS keeps what OPENBLAS_NUM_THREADS said when it loaded); ``repeats``
    overrides the timed repeats; ``batch`` every case's batch size; ``json_path`` the record's
    path (default ``default_json_path``), also written into $OUT when that variable is set;
    ``device``: 'cpu', or 'cuda' / 'cuda:N' for the training-step suite on that GPU (its batches
    and settings: pyconvnet.bench.gpu; ``threads`` then only sets the host's threads); ``profile``:
    also split each pyconvnet step into kernels and the rest (pyconvnet.bench.profile);
    ``neighbours``: instead of the training-step suite, the sharing suite (pyconvnet.bench.sharing)
    beside that many busy-loop processes, over ``rounds`` alternating rounds (default 5, quick 2)."""
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1):
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if (layers or profile) and device != "cpu":
        raise ValueError(f"--layers and --profile time the CPU kernels: leave them out with --device {device}")
    if neighbours is not None and (layers or profile or device != "cpu"):
        raise ValueError("--neighbour times CPU training steps beside busy loops: leave out --layers, --profile "
                         "and --device")
    if rounds is not None and neighbours is None:
        raise ValueError("--rounds counts the rounds of --neighbour: give both or neither")
    from ..train import resolve_device

    resolved = resolve_device(device)  # ValueError: no device, or a GPU that cannot be used, and why
    if resolved.type == "cuda":
        return _run_gpu(resolved, model_names, quick, threads, repeats, batch, json_path)
    cases = model_suite.select_cases(model_names, batch)
    settings = dict(QUICK if quick else FULL)
    if repeats is not None:
        settings["repeats"] = repeats
    torch = require_torch()
    threads = default_threads() if threads is None else threads
    previous = backend.get_num_threads(), torch.get_num_threads(), backend.adaptive_threads()
    backend.set_num_threads(threads)
    torch.set_num_threads(threads)
    # Side by side, both libraries run on `threads` whatever else the machine does; sharing
    # measures the library as a user gets it.
    backend.set_adaptive_threads(previous[2] and neighbours is not None)
    try:  # a library call leaves the caller's thread counts as they were
        peak = backend.fma_peak_gflops()
        facts = machine_facts(threads, peak, torch)
        print(f"pyconvnet {facts['pyconvnet']} (isa {facts['isa']}) vs torch {facts['torch']}  |  {facts['cpu']}  |  "
              f"{threads} threads  |  FMA peak {peak:.1f} GFLOP/s", flush=True)

        record = {"machine": facts, "settings": {**settings, "quick": quick, "batch": batch}}
        if neighbours is not None:
            rounds = SHARING_ROUNDS["quick" if quick else "full"] if rounds is None else rounds
            record["settings"].update(neighbours=neighbours, rounds=rounds)
            record["sharing"] = sharing.run_sharing_suite(cases, threads, neighbours, rounds, settings["repeats"],
                                                          settings["warmup"], report=_report_sharing)
            print(f"\nTraining step in ms: quiet, beside {neighbours} busy-loop process(es), their ratio (x; 'fixed': "
                  f"pyconvnet's thread count not adapting) and quiet on 1 thread; medians of {rounds} alternating rounds")
            print(sharing.sharing_table(record["sharing"]))
            _write(record, json_path, facts["cpu"])
            return record
        record["models"] = model_suite.run_model_suite(cases, threads, peak, report=_report_model, **settings)
        print("\nTraining step (ratio = torch time / pyconvnet time; above 1: pyconvnet is faster)")
        print(model_table(record["models"]))
        if layers:
            layer_settings = {key: settings[key] for key in ("repeats", "warmup")}
            record["layers"] = layer_suite.run_layer_suite(cases, peak, layer_suite.GEMM_CASES, report=_report_layer,
                                                           **layer_settings)
            print("\nLayers (ratio = their time / pyconvnet time; conv GFLOP/s count direct-convolution FLOPs)")
            print(layer_table(record["layers"]))
        if profile:
            record["profile"] = profile_suite.run_profile_suite(cases, threads, steps=5 if quick else 20)
            print("\nWhere pyconvnet's step goes: inside the kernels and outside them (Python, autograd, dispatch)")
            print(profile_suite.profile_table(record["profile"]))
        _write(record, json_path, facts["cpu"])
        return record
    finally:
        backend.set_num_threads(previous[0])
        torch.set_num_threads(previous[1])
        backend.set_adaptive_threads(previous[2])


def _run_gpu(device, model_names, quick, threads, repeats, batch, json_path):
    from . import gpu

    if threads is not None:
        backend.set_num_threads(threads)
    record = gpu.run(device, model_names, quick, repeats, batch, git_commit(), report=_report_model)
    print(f"\nTraining step on {record['machine']['gpu']} (ratio = torch time / pyconvnet time; above 1: "
          "pyconvnet is faster; MiB: each allocator's peak)")
    print(model_table(record["models"]))
    _write(record, json_path, record["machine"]["gpu"])
    return record


def _write(record, json_path, processor):
    """The record as JSON at ``json_path`` (default ``default_json_path``) and, when the OUT
    environment variable names a directory (the GPU check script's), under the same name there."""
    path = Path(json_path) if json_path is not None else default_json_path(processor, datetime.datetime.now())
    text = json.dumps(record, indent=1) + "\n"
    paths = [path] + ([Path(os.environ["OUT"]) / path.name] if os.environ.get("OUT") else [])
    for target in paths:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"\nwrote {target}")
