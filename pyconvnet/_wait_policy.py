"""How idle OpenMP threads wait: pyconvnet's default, set in the environment while the compiled
extension loads GNU OpenMP (libgomp), which reads its settings once, when it loads.

libgomp's own default is to spin: a thread waiting for the next parallel region, or at a barrier
for a teammate, polls 300,000 times (about 8 ms on a Zen 4 core) before it sleeps. On a machine
shared with another busy process that is the wrong bet: the spinning threads hold cores that a
descheduled teammate (or this process's own Python thread) needs, and a LeNet-5 step beside one
busy neighbour on two cores ran many times slower than on one thread (bench/NOTES.md, "Sharing the
machine"). pyconvnet's default is a short spin, then sleep: ``GOMP_SPINCOUNT=1000`` (about 26
microseconds of polling on a Zen 4 core, then a futex wait). Measured on a 2-core VM: with one busy
neighbour a LeNet-5 step took 1.1-1.6x its quiet time (libgomp's default: 2.2-3.7x) and ResNet-20's
1.7-1.9x (2.7-3.3x); beside other processes of any priority, libgomp's default made the "quiet" step
itself 2-7x slower. The price is on an idle VM, where waking a sleeping thread costs tens of
microseconds per parallel region: LeNet-5 (18 two-thread regions a step) up to 1.3x slower there,
ResNet-20 not measurably. ``OMP_WAIT_POLICY=passive`` (no spin) degraded least under load and cost
LeNet-5 more when idle (up to 1.5x); ``GOMP_SPINCOUNT`` of 2,000 or more kept the idle speed but not
the loaded one.

The user's choice wins: with ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in the environment nothing is
set. So do the settings of whoever loaded libgomp first: PyTorch ships its own copy under the same
name, and the process then shares it, so ``import torch`` before ``import pyconvnet`` keeps
libgomp's default for both (``wait_policy()`` says which applies).
"""

import contextlib
import os

DEFAULT = ("GOMP_SPINCOUNT", "1000")
VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

_policy = None


def _libgomp_loaded():
    """Whether GNU OpenMP is already mapped into this process (False where /proc is missing)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


@contextlib.contextmanager
def default_wait_policy():
    """Around the extension's import: the ``DEFAULT`` setting in the environment unless the user
    set a policy or libgomp is loaded already; the environment is as before afterwards."""
    global _policy
    chosen = [f"{name}={os.environ[name]}" for name in VARIABLES if name in os.environ]
    if chosen:
        _policy = f"from the environment: {' '.join(chosen)}"
    elif _libgomp_loaded():
        _policy = "libgomp's own (it was loaded before pyconvnet, e.g. by torch)"
    else:
        name, value = DEFAULT
        _policy = f"pyconvnet's default: {name}={value} (a short spin, then sleep)"
        os.environ[name] = value
        try:
            yield
        finally:
            del os.environ[name]
        return
    yield


def wait_policy():
    """How this process's OpenMP threads wait, and who chose it."""
    return _policy
