"""Side-by-side timing used by every benchmark script (see DESIGN.md, "Benchmark protocol").

Both contenders run in the same process on the same inputs, alternating, after a warm-up; each
repeat times one call of each, and the ratio is taken pair by pair before the median so that
machine noise hits both sides alike.
"""

import os
import statistics
import time


def pin_threads(threads=None):
    """Gives every library the same thread count (default: all cores). Call before numpy,
    torch or pyconvnet are imported: OpenBLAS and OpenMP read these variables at load time."""
    threads = threads or os.cpu_count() or 1
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    return threads


def compare(ours, theirs, repeats=7, warmup=2, min_seconds=0.02):
    """Times two zero-argument callables. Returns (our median ms, their median ms, median ratio
    their/ours): a ratio above 1 means ours is faster. Calls are batched so each timed sample
    lasts at least ``min_seconds``."""
    for _ in range(warmup):
        ours()
        theirs()
    calls = 1
    start = time.perf_counter()
    ours()
    elapsed = time.perf_counter() - start
    if elapsed < min_seconds:
        calls = max(1, int(min_seconds / max(elapsed, 1e-7)))
    our_times, their_times, ratios = [], [], []
    for _ in range(repeats):
        a = _time(ours, calls)
        b = _time(theirs, calls)
        our_times.append(a)
        their_times.append(b)
        ratios.append(b / a)
    return 1e3 * statistics.median(our_times), 1e3 * statistics.median(their_times), statistics.median(ratios)


def _time(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def print_table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(str(h).rjust(w) for h, w in zip(headers, widths)))
    for row in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))
