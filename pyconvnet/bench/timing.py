"""Side-by-side timing shared by every suite (see DESIGN.md, "Benchmark protocol").

Both contenders run in the same process on the same inputs, alternating, after a warm-up; each
repeat times one call of each, and the ratio is taken pair by pair before the median so that
machine noise hits both sides alike. Each sample starts after a short pause and one untimed
call: thread pools keep their threads spinning for a while after a call (libgomp's for a few ms,
OpenBLAS's for 2^28 time-stamp-counter cycles: 0.13 s where the counter runs at 2.1 GHz), and on a
small machine the side timed next would otherwise share its cores with the other library's idle
spinners (a 256^3 sgemm ran 2.4x slower right after numpy's than after a pause, and 2-60x slower
after one of 0.1 s: ``OPENBLAS_SETTLE_SECONDS`` is the pause against numpy); the untimed call wakes
the side's own pool, whose threads have gone to sleep meanwhile (waking them took 10-15 ms on a 2-core VM: longer than the whole call). On a GPU, where
calls only queue kernels, each side's queue is drained before a sample's clock starts and before
it stops.
"""

import os
import platform
import statistics
import time
from collections import namedtuple

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

Timing = namedtuple("Timing", ["ours_ms", "theirs_ms", "ratio"])
Timing.__doc__ = "Median milliseconds of each side and the median of the pairwise ratios theirs / ours."


def require_torch():
    """The torch module, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "pyconvnet bench compares against PyTorch, which is not installed: pip install torch "
            "(or pip install 'pyconvnet[bench]')") from error
    return torch


def default_threads():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_environment(threads):
    """Environment variables giving OpenMP and BLAS libraries ``threads`` threads. They are read
    when a library loads, so they must be set before numpy, torch or pyconvnet is imported."""
    return {name: str(threads) for name in THREAD_VARIABLES}


# Long enough for libgomp's pools (pyconvnet's, torch's) to stop spinning on this project's 2-core VM.
SETTLE_SECONDS = 0.1
# Long enough for OpenBLAS's (numpy's matmul) on any CPU whose time-stamp counter runs at >= 1 GHz.
OPENBLAS_SETTLE_SECONDS = 0.3


def compare(ours, theirs, repeats=7, warmup=2, min_seconds=0.02, synchronize=None, settle_seconds=SETTLE_SECONDS):
    """Times two zero-argument callables; returns a ``Timing`` (a ratio above 1 means ours is
    faster). Calls are batched so that each timed sample lasts at least ``min_seconds``; each
    sample follows a pause of ``settle_seconds`` and an untimed call. ``synchronize``: for work
    queued on a GPU, a pair of zero-argument callables (ours, theirs) that wait until that side's
    queued work has finished; they run before each sample's clock starts and before it stops."""
    if repeats < 1:
        raise ValueError(f"compare: repeats must be >= 1, got {repeats}")
    our_wait, their_wait = synchronize or (_nothing, _nothing)
    for _ in range(warmup):
        ours()
        theirs()
    calls = 1
    elapsed = _seconds_per_call(ours, 1, our_wait, settle_seconds)
    if elapsed < min_seconds:
        calls = max(1, int(min_seconds / max(elapsed, 1e-7)))
    our_times, their_times, ratios = [], [], []
    for _ in range(repeats):
        our_times.append(_seconds_per_call(ours, calls, our_wait, settle_seconds))
        their_times.append(_seconds_per_call(theirs, calls, their_wait, settle_seconds))
        ratios.append(their_times[-1] / our_times[-1])
    return Timing(1e3 * statistics.median(our_times), 1e3 * statistics.median(their_times),
                  statistics.median(ratios))


def _nothing():
    pass


def _seconds_per_call(fn, calls, wait, settle_seconds):
    time.sleep(settle_seconds)
    fn()
    wait()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    wait()
    return (time.perf_counter() - start) / calls


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def format_table(headers, rows):
    """Right-aligned columns, one line per row."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)
