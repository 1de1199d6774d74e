"""Control of the compiled backend: which ISA's kernels run, how many threads, build facts.

The newest instruction set the CPU supports is chosen at import (``amx`` > ``avx512bf16`` >
``avx512`` > ``avx2`` > ``generic``; ``avx512bf16`` and ``amx`` run the ``avx512`` float32 kernels
and multiply bfloat16 panels under ``autocast``, with ``vdpbf16ps`` and with AMX tiles);
``PYCONVNET_ISA=generic`` in the environment or ``set_isa("generic")`` at run time
forces a lower one, and ``"reference"`` selects the plain-loop kernels of ``csrc/ref`` (slow; for
tests and debugging). Threads default to OpenMP's default, which honours ``OMP_NUM_THREADS``, and
adapt to other processes' load (``set_adaptive_threads``).
Each convolution's ISA and algorithm are chosen by measurement and remembered (``pyconvnet.plans``:
``set_autotune``, ``set_conv_algorithm``, ``plan_cache_info``).
"""

import importlib
import os
import time

from . import _C, plans

__all__ = [
    "isa",
    "set_isa",
    "available_isas",
    "isa_choice_reason",
    "get_num_threads",
    "use_deterministic_algorithms",
    "are_deterministic_algorithms_enabled",
    "winograd_enabled",
    "set_winograd",
    "set_autotune",
    "autotune_enabled",
    "set_conv_algorithm",
    "conv_algorithm",
    "plan_cache_info",
    "buffer_cache_stats",
    "empty_buffer_cache",
    "set_num_threads",
    "threads_in_use",
    "set_adaptive_threads",
    "adaptive_threads",
    "wait_policy",
    "sgemm",
    "fma_peak_gflops",
    "info",
]

sgemm = _C.sgemm
set_autotune = plans.set_autotune
autotune_enabled = plans.autotune_enabled
set_conv_algorithm = plans.set_conv_algorithm
conv_algorithm = plans.conv_algorithm
plan_cache_info = plans.cache_info


def isa():
    """Name of the instruction set whose kernels are in use."""
    return _C.isa()


def available_isas():
    """ISAs this build contains and this CPU can run, oldest first (``reference`` first)."""
    return list(_C.available_isas())


def set_isa(name):
    """Use the kernels compiled for ``name``; ValueError if this build or CPU cannot run them.
    From then on measured kernel selection times only this ISA's kernels."""
    if not isinstance(name, str):
        raise TypeError(f"set_isa: name must be a str, got {type(name).__name__}")
    _C.set_isa(name)
    plans.note_isa_forced()


def isa_choice_reason():
    """Why the ISA in use at import was chosen."""
    return _C.isa_choice_reason()


# What GNU OpenMP read when the extension loaded it (it reads these once, at load).
_WAIT_SETTINGS = tuple(f"{name}={os.environ[name]}" for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                       if name in os.environ)


def wait_policy():
    """How idle OpenMP threads wait, as the environment set it when pyconvnet loaded. Without a
    setting GNU OpenMP spins 300,000 turns (about 8 ms on a Zen 4 core) before it sleeps: fastest on
    an idle machine, but beside another busy process a team can slow down far more than the share of
    the CPU it lost. Adaptive threading (``set_adaptive_threads``, on by default) gives such CPUs up;
    with it off, ``GOMP_SPINCOUNT=1000`` or ``OMP_WAIT_POLICY=passive`` in the environment before the
    first import of pyconvnet or torch (they share one libgomp) trades idle speed for that
    (bench/NOTES.md, "Sharing the machine")."""
    if _WAIT_SETTINGS:
        return f"from the environment: {' '.join(_WAIT_SETTINGS)}"
    return "OpenMP's default (GNU: spin about 300,000 turns, then sleep)"


def get_num_threads():
    """The thread count set: what every kernel uses unless other processes keep CPUs busy
    (``threads_in_use``)."""
    return _C.get_num_threads()


def set_num_threads(threads):
    """Set the threads every kernel uses (>= 1); applies to calls from any Python thread. While
    adaptive threading is on, kernels run on fewer when other processes keep CPUs busy.

    A process forked after kernels ran on several threads (``os.fork``, multiprocessing's
    ``fork`` start method) runs every kernel on one thread whatever is set here
    (``threads_in_use()`` is 1 there): GNU OpenMP's thread pool does not survive fork, and using it
    in the child would hang.
    """
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"set_num_threads: threads must be an int, got {type(threads).__name__}")
    _C.set_num_threads(threads)


def threads_in_use():
    """Threads the next kernel runs on: ``get_num_threads()``, less one for each whole CPU that
    other processes kept busy over the last 0.3 s while adaptive threading is on."""
    return _C.threads_in_use()


_adaptive_threads = _C.adaptive_threads()  # PYCONVNET_ADAPTIVE_THREADS=0 turns it off


def set_adaptive_threads(enabled):
    """Turn adaptive threading on or off (on by default; ``PYCONVNET_ADAPTIVE_THREADS=0`` in the
    environment starts with it off). While on, the kernels measure every 0.3 s how much CPU other
    processes use on this process's CPUs and run on one thread fewer for each CPU they keep busy,
    back up to ``get_num_threads()`` when they stop: an OpenMP team beside a busy process waits at
    every barrier for the thread the scheduler set aside. It stays off while deterministic
    algorithms are on, since a reduction split over fewer threads rounds differently."""
    global _adaptive_threads
    if not isinstance(enabled, bool):
        raise TypeError(f"set_adaptive_threads: enabled must be a bool, got {type(enabled).__name__}")
    _adaptive_threads = enabled
    _apply_thread_settings()


def adaptive_threads():
    """Whether adaptive threading is set on (``set_adaptive_threads``); deterministic algorithms
    suspend it while they are on."""
    return _adaptive_threads


_deterministic_algorithms = False


def use_deterministic_algorithms(mode, *, warn_only=False):
    """torch's switch for reproducible results. Every pyconvnet kernel is already deterministic for a
    fixed thread count (no atomics; partial sums reduced in a fixed order); what can change bits
    between runs is which kernel measured selection picks for a convolution, and the thread count
    when it adapts to load. With ``mode`` True nothing is timed: a convolution with a plan in the
    cache (``pyconvnet.plans``) runs it, one without runs the fixed heuristic, so the result no
    longer depends on this run's timings; and threads stay at ``get_num_threads()``."""
    global _deterministic_algorithms
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms: mode must be a bool, got {type(mode).__name__}")
    _deterministic_algorithms = mode
    _apply_thread_settings()


def _apply_thread_settings():
    _C.set_adaptive_threads(_adaptive_threads and not _deterministic_algorithms)


def are_deterministic_algorithms_enabled():
    return _deterministic_algorithms


def winograd_enabled():
    """Whether 3x3 stride-1 convolutions with 16 or more channels on both sides run forward and
    backward-data (and, from 32 to 256 channels, the weight gradient) by Winograd's F(4x4, 3x3)
    algorithm: a quarter of the multiply-adds in the sums over channels. The result differs from
    the direct sum by a few rounding steps, and an infinite input spreads NaN over the 4x4 outputs
    its 6x6 window feeds. On by default; ``PYCONVNET_WINOGRAD=0`` in the environment turns it off
    at import."""
    return _C.winograd_enabled()


def set_winograd(enabled):
    """Allow (True) or forbid (False) the Winograd convolutions; applies to calls from any Python
    thread. With it off every convolution takes the direct kernels, e.g. to compare the two."""
    if not isinstance(enabled, bool):
        raise TypeError(f"set_winograd: enabled must be a bool, got {type(enabled).__name__}")
    _C.set_winograd(enabled)


def buffer_cache_stats():
    """Kernel outputs of 256 KiB or more come from a cache that keeps their memory when the
    array dies and hands it to the next output of the same size (a training step allocates the
    same shapes every step, and fresh memory costs a page fault per 4 KiB on first write); an
    output of 4 MiB or more that finds no block of its size gets the oldest cached blocks' pages
    moved into it (on Linux).
    Returns a dict: ``cached_bytes`` (free memory held now), ``limit_bytes`` (the cap on it, a
    quarter of physical memory), ``hits`` and ``misses`` (cacheable requests served by a cached
    block of their size / not), ``recycled_bytes`` (cached pages moved into misses so far),
    ``live_bytes`` (memory that kernel outputs of every size hold now: a leak check's measure)."""
    return dict(_C.buffer_cache_stats())


def empty_buffer_cache():
    """Return every free buffer the cache holds to the system (``buffer_cache_stats``)."""
    _C.empty_buffer_cache()


def fma_peak_gflops(repeats=5, seconds=0.05):
    """The float32 multiply-add rate the kernels in use reach on ``threads_in_use()`` threads,
    in GFLOP/s (a multiply-add counts 2): the best of ``repeats`` runs of independent vector FMA
    chains on every thread, each run lasting at least ``seconds / 2``. The ``reference`` ISA runs
    scalar chains on one thread."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"fma_peak_gflops: repeats must be an int >= 1, got {repeats!r}")
    if not seconds > 0:
        raise ValueError(f"fma_peak_gflops: seconds must be positive, got {seconds!r}")
    iterations, best, timed = 1 << 12, 0.0, 0
    while timed < repeats:
        start = time.perf_counter()
        flops, _checksum = _C.fma_peak(iterations)
        elapsed = time.perf_counter() - start
        # Short runs only size the next one (and warm the cores up): on a busy machine a thread
        # descheduled for a time slice would make a short run's rate meaningless.
        if elapsed >= seconds / 2:
            best = max(best, flops / elapsed / 1e9)
            timed += 1
        iterations = max(iterations, min(16 * iterations, int(iterations * seconds / max(elapsed, 1e-9))))
    return best


def info():
    """Build and run-time facts as a dict (what ``pyconvnet info`` prints)."""
    build = dict(_C.build_info)
    return {
        "version": build["version"],
        "isa": isa(),
        "isa_reason": isa_choice_reason(),
        "available_isas": available_isas(),
        "isa_flags": {name: _C.isa_flags(name) for name in available_isas()},
        "threads": get_num_threads(),
        "adaptive_threads": adaptive_threads(),
        "winograd": winograd_enabled(),
        "plans": plan_cache_info(),
        "compiler": build["compiler"],
        "build_flags": build["flags"],
        "openmp": build["openmp"],
        "openmp_wait": wait_policy(),
        "cuda": cuda_info(),
    }


def cuda_info():
    """The optional GPU module's facts: ``built`` (whether ``pyconvnet._C_cuda`` exists),
    ``architectures`` (CMake's CUDA architectures it was compiled for, e.g. "75-real 80-real 90";
    None when not built), ``devices`` (the names of the GPUs it can use) and ``reason`` (why it
    cannot use any; "" when it can)."""
    from . import cuda

    reason = cuda.unavailable_reason()
    try:
        module = importlib.import_module("pyconvnet._C_cuda")
    except ImportError:
        return {"built": False, "architectures": None, "devices": [], "reason": reason}
    names = [cuda.get_device_name(index) for index in range(cuda.device_count())]
    return {"built": True, "architectures": module.built_architectures(), "devices": names, "reason": reason}
