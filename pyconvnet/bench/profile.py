"""Where a training step's time goes (``pyconvnet bench --profile``): inside the C++ kernels, per
kernel, and outside them (Python, autograd bookkeeping, dispatch and plan look-ups), with the
system time and page faults the step costs.

Every public function of ``pyconvnet._C`` is wrapped for the measurement by one that adds its
elapsed time to a tally: the Python layer looks kernels up on the module at each call, so each
call is counted once. The wrapper's own cost (well under a microsecond a call) lands in "outside".
With one thread the clock is the process's CPU time, which a busy neighbour does not inflate;
with more it is the wall clock (kernels run on several cores at once).
"""

import collections
import contextlib
import resource
import time

from .. import _C, backend, tensor
from . import models as model_suite


@contextlib.contextmanager
def kernel_tally(clock):
    """Within the block every public ``_C`` function adds its ``clock`` time and one call to the
    yielded ``{name: [seconds, calls]}``; the originals are restored on exit."""
    tally = collections.defaultdict(lambda: [0.0, 0])
    originals = {name: value for name, value in vars(_C).items()
                 if not name.startswith("_") and callable(value) and not isinstance(value, type)}

    def timed(name, function):
        def call(*args, **kwargs):
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                entry = tally[name]
                entry[0] += clock() - started
                entry[1] += 1
        return call

    try:
        for name, function in originals.items():
            setattr(_C, name, timed(name, function))
        yield tally
    finally:
        for name, function in originals.items():
            setattr(_C, name, function)


def profile_step(step, steps, clock):
    """Runs ``step`` ``steps`` times untallied, then ``steps`` times tallied; returns the per-step
    milliseconds of both runs, the kernels' share and the process's system time and minor page
    faults per step (of the tallied run)."""
    started = clock()
    for _ in range(steps):
        step()
    plain_ms = (clock() - started) * 1e3 / steps
    with kernel_tally(clock) as tally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = clock()
        for _ in range(steps):
            step()
        tallied_ms = (clock() - started) * 1e3 / steps
        after = resource.getrusage(resource.RUSAGE_SELF)
    kernels = {name: {"ms": seconds * 1e3 / steps, "calls": calls / steps} for name, (seconds, calls) in tally.items()}
    kernel_ms = sum(entry["ms"] for entry in kernels.values())
    calls = sum(entry["calls"] for entry in kernels.values())
    return {"step_ms": plain_ms, "tallied_step_ms": tallied_ms, "kernel_ms": kernel_ms,
            "outside_ms": tallied_ms - kernel_ms, "kernel_calls": calls,
            "outside_us_per_call": 1e3 * (tallied_ms - kernel_ms) / calls if calls else None,
            "system_ms": (after.ru_stime - usage.ru_stime) * 1e3 / steps,
            "minor_faults": (after.ru_minflt - usage.ru_minflt) / steps,
            "kernels": dict(sorted(kernels.items(), key=lambda item: -item[1]["ms"]))}


def run_profile_suite(cases, threads, steps=20, warmup=3, report=None):
    """``profile_step`` of each case's pyconvnet training step (rows of dicts, ``report(row)``
    called as each finishes)."""
    backend.set_num_threads(threads)
    clock = time.process_time if threads == 1 else time.perf_counter
    rows = []
    for case in cases:
        images, labels = model_suite.random_batch(case)
        step = model_suite.pyconvnet_step(case.build(), tensor(images), tensor(labels))
        for _ in range(warmup):
            step()
        row = {"model": case.name, "batch": case.batch, "threads": threads,
               "clock": "process CPU time" if threads == 1 else "wall", **profile_step(step, steps, clock)}
        rows.append(row)
        if report is not None:
            report(row)
    return rows


def profile_table(rows, top=6):
    """One block per model: the step split into kernels and the rest, then its costliest kernels."""
    lines = []
    for row in rows:
        per_call = row["outside_us_per_call"]
        lines.append(f"{row['model']} (batch {row['batch']}, {row['threads']} thread(s), {row['clock']}): step "
                     f"{row['step_ms']:.2f} ms ({row['tallied_step_ms']:.2f} tallied) = kernels {row['kernel_ms']:.2f} "
                     f"+ outside {row['outside_ms']:.2f} ms over {row['kernel_calls']:.0f} kernel calls "
                     f"({'-' if per_call is None else f'{per_call:.1f}'} us a call); system {row['system_ms']:.2f} ms, "
                     f"{row['minor_faults']:.0f} minor page faults a step")
        for name, entry in list(row["kernels"].items())[:top]:
            share = entry["ms"] / row["tallied_step_ms"] if row["tallied_step_ms"] else 0.0
            lines.append(f"    {name:34s} {entry['ms']:8.3f} ms {100 * share:5.1f} %  x{entry['calls']:.0f}")
    return "\n".join(lines)
