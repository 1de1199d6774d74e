"""Sharing the machine (``pyconvnet bench --neighbour N``): each case's training step timed on a
quiet machine, beside N busy-loop neighbour processes, and on one thread, in alternating rounds.

A library that trains beside a data pipeline or a second job should slow down no more than the
share of the CPU it lost: with one of two cores taken, at most about twice its quiet time, ideally
close to its one-thread time. The neighbours are plain CPU spinners (no pinning, as an unrelated job
would run); they start before a loaded measurement and are killed after it, also when it fails or
is interrupted, and each exits by itself if this process dies without killing it.

Rounds alternate quiet, loaded and one-thread measurements (each a ``timing.compare`` of both
libraries) so that slow drifts of the machine's load hit all three alike; the row reports each
column's median over the rounds and the median of the per-round loaded / quiet ratios. The loaded
steps are timed from ``SETTLE_SECONDS`` after the neighbours start (a real neighbour runs for
minutes; pyconvnet's adaptive thread count needs one 0.3 s measurement to see it), first as a user
gets them, then with pyconvnet's thread count fixed (``backend.set_adaptive_threads(False)``).
"""

import contextlib
import statistics
import subprocess
import sys
import time

from .. import backend, tensor
from .models import build_pair, pyconvnet_step, random_batch, torch_step
from .timing import compare, format_table, require_torch

SETTLE_SECONDS = 1.0

# The neighbour: says it is running, then spins until killed or orphaned (its parent pid changes).
_SPINNER = """\
import os, sys
parent = os.getppid()
sys.stdout.write("spinning\\n")
sys.stdout.flush()
while os.getppid() == parent:
    for _ in range(100000):
        pass
"""


@contextlib.contextmanager
def busy_neighbours(count):
    """Runs ``count`` busy-loop processes for the duration of the ``with`` block (yields their
    ``subprocess.Popen`` objects); they are running when the block starts and gone when it ends."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"neighbours must be a non-negative int, got {count!r}")
    processes = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen([sys.executable, "-S", "-c", _SPINNER], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        for process in processes:
            if process.stdout.readline() != "spinning\n":
                raise RuntimeError(f"busy-loop neighbour {process.pid} did not start")
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()
            process.stdout.close()


def _set_threads(torch, threads):
    backend.set_num_threads(threads)
    torch.set_num_threads(threads)


def time_case(case, threads, neighbours, rounds, repeats, warmup):
    """One case's row: per side the medians over ``rounds`` of the quiet, loaded (beside
    ``neighbours`` busy loops) and one-thread quiet step times, and the median loaded / quiet ratio."""
    torch = require_torch()
    model, mirror = build_pair(case)
    images, labels = random_batch(case)
    ours = pyconvnet_step(model, tensor(images), tensor(labels))
    theirs = torch_step(mirror, torch.from_numpy(images), torch.from_numpy(labels))
    samples = {"quiet": [], "loaded": [], "one_thread": []}
    fixed_ms, threads_loaded = [], []  # pyconvnet's loaded step with its thread count fixed; threads it used
    adaptive = backend.adaptive_threads()
    try:
        for _ in range(rounds):
            samples["quiet"].append(compare(ours, theirs, repeats=repeats, warmup=warmup))
            with busy_neighbours(neighbours):
                time.sleep(SETTLE_SECONDS)
                samples["loaded"].append(compare(ours, theirs, repeats=repeats, warmup=warmup))
                threads_loaded.append(backend.threads_in_use())
                backend.set_adaptive_threads(False)
                fixed_ms.append(compare(ours, theirs, repeats=repeats, warmup=warmup).ours_ms)
                backend.set_adaptive_threads(adaptive)
            _set_threads(torch, 1)
            samples["one_thread"].append(compare(ours, theirs, repeats=repeats, warmup=warmup))
            _set_threads(torch, threads)
    finally:
        _set_threads(torch, threads)
        backend.set_adaptive_threads(adaptive)
    row = {"name": case.name, "model": case.title, "batch": case.batch, "threads": threads,
           "neighbours": neighbours, "rounds": rounds, "adaptive_threads": adaptive,
           "pyconvnet_threads_loaded": statistics.median(threads_loaded)}
    for side, field in (("pyconvnet", "ours_ms"), ("torch", "theirs_ms")):
        times = {column: [getattr(timing, field) for timing in timings] for column, timings in samples.items()}
        for column, values in times.items():
            row[f"{side}_{column}_ms"] = statistics.median(values)
        row[f"{side}_slowdown"] = statistics.median(
            loaded / quiet for loaded, quiet in zip(times["loaded"], times["quiet"]))
    row["pyconvnet_loaded_fixed_ms"] = statistics.median(fixed_ms)
    row["pyconvnet_fixed_slowdown"] = statistics.median(
        fixed / timing.ours_ms for fixed, timing in zip(fixed_ms, samples["quiet"]))
    return row


def run_sharing_suite(cases, threads, neighbours, rounds=5, repeats=7, warmup=2, report=print):
    """``time_case`` for every case; returns the rows and passes each to ``report`` when done."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    rows = []
    for case in cases:
        rows.append(time_case(case, threads, neighbours, rounds, repeats, warmup))
        report(rows[-1])
    return rows


def sharing_table(rows):
    headers = ["model", "batch", "pcn quiet", "pcn loaded", "pcn x", "pcn fixed x", "pcn 1 thr", "torch quiet",
               "torch loaded", "torch x", "torch 1 thr"]
    return format_table(headers, [
        (r["name"], r["batch"], *(f"{r[f'pyconvnet_{column}']:.2f}" for column in
                                  ("quiet_ms", "loaded_ms", "slowdown", "fixed_slowdown", "one_thread_ms")),
         *(f"{r[f'torch_{column}']:.2f}" for column in ("quiet_ms", "loaded_ms", "slowdown", "one_thread_ms")))
        for r in rows])
