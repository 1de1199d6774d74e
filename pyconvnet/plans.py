"""Measured kernel selection: which ISA's kernels and which algorithm (``gemm``, ``pointwise``,
``window``, ``direct`` (the window path's unpacked kernels where it would pack), ``winograd``,
``dense`` (the whole of a tiny map as one matrix product), and for autocast's bfloat16 operands in
the amx build ``tiles``) compute
each pass of each convolution, which ISA's SGEMM each matrix product of linear layers and matmul,
and whether the fused conv -> ReLU -> max-pool node's backward
pass starts from the pooled gradient (``sparse``) or the dense one (the ops with several
implementations).

The first call of a pass (forward, backward_data, backward_weight) with a given geometry times
every candidate on the call's own arrays and keeps the fastest as that shape's *plan*; the call
returns the chosen candidate's result. Plans are keyed by the CPU model, the ISAs tried, the
thread count, the pass, the geometry and the precision (float32, or autocast's bfloat16 operands,
where the avx512bf16 and amx GEMMs multiply bfloat16 panels and the other paths float32 products), and
persisted as JSON in ``$XDG_CACHE_HOME/pyconvnet/plans-<cpu>.json`` (default
``~/.cache/pyconvnet``), so later runs start with them; a file written by another build of the
kernels (another version, or the extension rebuilt) is set aside without a warning and its shapes
timed again. The ISAs tried are every SIMD ISA the CPU runs, unless ``backend.set_isa`` or
``PYCONVNET_ISA`` chose one (then only that one). Timing a shape costs each candidate a warm-up
run and (within 3x of the fastest) a timed one, then further rounds of the close contenders
within a time budget (``set_autotune``); the heuristic's choice stays unless another candidate is
more than 5 % faster.

Switches: ``backend.set_autotune(False)`` or ``PYCONVNET_AUTOTUNE=0`` run the fixed heuristics
of csrc/kernels/conv.cpp; ``backend.set_conv_algorithm(name)`` forces an algorithm wherever it
can compute the pass (tests, comparisons); ``backend.use_deterministic_algorithms(True)`` times
nothing: shapes with a plan use it, the others the heuristic (docs/api.md, "Kernel plans").
"""

import functools
import json
import os
import platform
import re
import tempfile
import time
import warnings

from . import _C, kernels

__all__ = ["ALGORITHMS", "PASSES", "conv2d", "pooled_backward", "sgemm", "sgemm_plan_of", "cache_path", "cache_info", "set_autotune", "autotune_enabled",
           "set_conv_algorithm", "conv_algorithm", "plan_of"]

ALGORITHMS = ("gemm", "pointwise", "window", "winograd", "tiles", "direct", "dense")
PASSES = ("forward", "backward_data", "backward_weight")
FORMAT, VERSION = "pyconvnet-plans", 1

_enabled = os.environ.get("PYCONVNET_AUTOTUNE", "1") != "0"
# Timing a new shape: one warm-up run of every candidate, one timed run of those within 3x of the
# fastest, then rounds of those within 1.5x while the budget lasts (at most _max_rounds in all).
# On a shared machine a descheduled thread can make one run several times slower, so a candidate
# replaces the heuristic's choice only when it is faster by more than _margin; single-threaded
# runs are timed in CPU time.
_budget_s = 0.5
_max_rounds = 5
_margin = 0.05
_forced_algorithm = None
_isa_forced = "PYCONVNET_ISA" in os.environ
# Test hook: (isa, algorithm) -> seconds that candidate's timed region takes at least (spinning).
_test_delay = {}

_plans = {}              # in-memory key tuple -> plan dict (this process)
_file = {"path": None, "plans": {}}   # the loaded cache file's plans by string key


def set_autotune(enabled, budget_s=None):
    """Turn measured selection on (the default) or off (fixed heuristics); ``budget_s`` bounds the
    timing rounds per pass and shape after the first two (0.5 s by default)."""
    global _enabled, _budget_s
    if not isinstance(enabled, bool):
        raise TypeError(f"set_autotune: enabled must be a bool, got {type(enabled).__name__}")
    if budget_s is not None:
        if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s >= 0:
            raise ValueError(f"set_autotune: budget_s must be a number >= 0, got {budget_s!r}")
        _budget_s = float(budget_s)
    _enabled = enabled


def autotune_enabled():
    return _enabled


def set_conv_algorithm(name):
    """Force conv2d's algorithm (one of ``ALGORITHMS``) wherever it can compute the pass, with the
    ISA in use; elsewhere the heuristic runs. ``None`` ends the forcing."""
    global _forced_algorithm
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"set_conv_algorithm: name must be None or one of {', '.join(ALGORITHMS)}, got {name!r}")
    _forced_algorithm = name


def conv_algorithm():
    """The forced algorithm, or None."""
    return _forced_algorithm


def note_isa_forced():
    """backend.set_isa calls this: from then on only the chosen ISA is timed."""
    global _isa_forced
    _isa_forced = True


@functools.cache
def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


@functools.cache
def build_id():
    """The kernels' build: the package version and the extension file's size and modification
    time, so that plans measured for other kernels (an upgrade, a rebuild) are not reused."""
    stat = os.stat(_C.__file__)
    return f"{_C.build_info['version']}:{stat.st_size}:{stat.st_mtime_ns}"


def cache_path():
    """The plan cache file for this CPU (the folder may not exist yet)."""
    return _cache_path_for(os.environ.get("XDG_CACHE_HOME"), os.environ.get("HOME"))


@functools.lru_cache(maxsize=8)  # asked on every conv and GEMM call; HOME is in the key for expanduser
def _cache_path_for(xdg_cache_home, home):
    base = xdg_cache_home or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyconvnet", f"plans-{_cpu_slug()}.json")


@functools.cache
def _cpu_slug():
    return re.sub(r"[^a-z0-9]+", "-", cpu_model().lower()).strip("-")[:64] or "unknown-cpu"


def _read(path):
    """The file's plans (string key -> plan), or {} with a warning when it is unreadable, corrupt,
    another format or version, or written for another CPU."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):  # no cache yet
        return {}
    except (OSError, ValueError) as error:
        warnings.warn(f"pyconvnet: ignoring the kernel plan cache {path}: {error}", RuntimeWarning, stacklevel=4)
        return {}
    problem = None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        problem = f"not a {FORMAT} file of version {VERSION}"
    elif data.get("cpu") != cpu_model():
        problem = f"written for CPU {data.get('cpu')!r}, this is {cpu_model()!r}"
    elif not isinstance(data.get("plans"), dict):
        problem = "no plans table"
    if problem:
        warnings.warn(f"pyconvnet: ignoring the kernel plan cache {path}: {problem}", RuntimeWarning, stacklevel=4)
        return {}
    if data.get("build") != build_id():  # measured for other kernels: time this build's again
        return {}
    return {key: plan for key, plan in data["plans"].items() if _valid_plan(plan)}


def _valid_plan(plan):
    return (isinstance(plan, dict) and plan.get("algorithm") in ALGORITHMS
            and plan.get("isa") in _C.available_isas())


def _file_plans():
    path = cache_path()
    if _file["path"] != path:
        _file.update(path=path, plans=_read(path))
        _plans.clear()
    return _file["plans"]


def _save(key, plan):
    """Adds one plan to the file: re-read (another process may have added plans), merged, written
    to a temporary file and renamed over it. A cache that cannot be written costs a warning."""
    path = cache_path()
    known = _file_plans()
    known[key] = plan
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a broken file was reported when it was first read
            merged = {**_read(path), **known}
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".plans-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as f:
                json.dump({"format": FORMAT, "version": VERSION, "cpu": cpu_model(), "build": build_id(),
                           "plans": merged}, f, indent=1,
                          sort_keys=True)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as error:
        warnings.warn(f"pyconvnet: could not write the kernel plan cache {path}: {error}", RuntimeWarning,
                      stacklevel=4)


def cache_info():
    """``path`` of this CPU's plan file and its ``entries`` (number of plans in it)."""
    path = cache_path()
    return {"path": path, "exists": os.path.exists(path), "entries": len(_file_plans()),
            "autotune": _enabled, "budget_s": _budget_s}


def _isas():
    """The ISAs timed: the one in use when it was chosen by hand (or is reference/generic),
    otherwise every SIMD ISA available."""
    current = _C.isa()
    if _isa_forced or current in ("reference", "generic"):
        return (current,)
    return _simd_isas()


@functools.cache
def _simd_isas():
    return tuple(isa for isa in _C.available_isas() if isa not in ("reference", "generic"))


def _conv_key(pass_, input_shape, weight_shape, stride, padding, dilation, groups, bf16, isas):
    """A conv2d pass's plan key in memory: the pass, its geometry, the precision, the ISAs timed,
    the threads in use and whether Winograd is on."""
    return (pass_, input_shape, weight_shape, tuple(stride), tuple(padding), tuple(dilation), groups, bf16, isas,
            _C.threads_in_use(), _C.winograd_enabled())


def _convolution_text(isas, threads, winograd, what, input_shape, weight_shape, stride, padding):
    """The start of a convolution plan's key in the cache file, up to its padding."""
    return (f"{'+'.join(isas)}|threads={threads}|{'winograd' if winograd else 'no-winograd'}|{what}|"
            f"in={'x'.join(map(str, input_shape))}|w={'x'.join(map(str, weight_shape))}|"
            f"stride={stride[0]}x{stride[1]}|pad={padding[0]}x{padding[1]}")


def _string_key(key):
    """A conv2d plan's key in the cache file, from its key in memory."""
    pass_, input_shape, weight_shape, stride, padding, dilation, groups, bf16, isas, threads, winograd = key
    return (_convolution_text(isas, threads, winograd, pass_, input_shape, weight_shape, stride, padding) +
            f"|dilation={dilation[0]}x{dilation[1]}|groups={groups}{'|bf16' if bf16 else ''}")


def _conv_usable(key, plan):
    """Whether the plan's algorithm can compute the pass (an edited file may name one that cannot)."""
    pass_, input_shape, weight_shape, stride, padding, dilation, groups, bf16 = key[:8]
    names, _ = _C.conv2d_algorithms(pass_, input_shape, weight_shape, stride, padding, dilation, groups,
                                    isa=plan["isa"], bf16=bf16)
    return plan["algorithm"] in names


def _shapes(pass_, a, b, c):
    """(input shape, weight shape) of the convolution from a pass's arguments."""
    if pass_ == "forward":
        return a.shape, b.shape
    if pass_ == "backward_data":
        return tuple(c), b.shape
    return b.shape, tuple(c)


def _lookup(key, isas, file_key, usable):
    """The plan under ``key`` in memory, else the file's under ``file_key(key)`` when its ISA is one
    of ``isas`` and ``usable(key, plan)``; None when there is none. The cache folder is read from
    the environment on a miss in memory (a hit costs no look-up of it, as every conv and GEMM call
    asks): a folder other than the one read last drops the plans in memory."""
    plan = _plans.get(key)
    if plan is not None and _file["path"] is not None:
        return plan
    from_file = _file_plans()
    plan = _plans.get(key)
    if plan is None:
        plan = from_file.get(file_key(key))
        if plan is None or plan["isa"] not in isas or not usable(key, plan):
            return None
        _plans[key] = plan
    return plan


def _remember(key, string_key, plan):
    _plans[key] = plan
    _save(string_key, plan)


def _tuning():
    """Whether a call without a plan times its candidates (deterministic mode times nothing)."""
    from .backend import are_deterministic_algorithms_enabled

    return not are_deterministic_algorithms_enabled()


def plan_of(pass_, input_shape, weight_shape, stride, padding, dilation, groups, bf16=False):
    """The plan this process would use for a conv2d pass of this geometry (on bfloat16 operands
    with ``bf16``), as a dict (``isa``, ``algorithm``, ``ms`` per candidate, ``heuristic``), or None
    when there is none."""
    isas = _isas()
    key = _conv_key(pass_, tuple(input_shape), tuple(weight_shape), stride, padding, dilation, groups, bf16, isas)
    return _lookup(key, isas, _string_key, _conv_usable)


def conv2d(pass_, a, b, c, stride, padding, dilation, groups, bf16=False):
    """``_C.conv2d_<pass_>(a, b, c, stride, padding, dilation, groups)`` with the plan for its
    geometry (GPU arrays go to the GPU kernels unchanged). ``bf16``: the operands are autocast's
    bfloat16 values, which have plans of their own."""
    gpu = kernels.gpu_array_type
    if gpu is not None and (isinstance(a, gpu) or isinstance(b, gpu)):
        return getattr(kernels, "conv2d_" + pass_)(a, b, c, stride, padding, dilation, groups)
    function = getattr(_C, "conv2d_" + pass_)
    if bf16:
        function = functools.partial(function, bf16=True)
    args = (a, b, c, stride, padding, dilation, groups)
    if _forced_algorithm is not None:
        input_shape, weight_shape = _shapes(pass_, a, b, c)
        names, _ = _C.conv2d_algorithms(pass_, input_shape, weight_shape, stride, padding, dilation, groups,
                                        bf16=bf16)
        return function(*args, algorithm=_forced_algorithm if _forced_algorithm in names else "auto")
    if not _enabled:
        return function(*args)
    input_shape, weight_shape = _shapes(pass_, a, b, c)
    isas = _isas()
    key = _conv_key(pass_, input_shape, weight_shape, stride, padding, dilation, groups, bf16, isas)
    plan = _lookup(key, isas, _string_key, _conv_usable)
    if plan is not None:
        return function(*args, algorithm=plan["algorithm"], isa=plan["isa"])
    if not _tuning():
        return function(*args)
    winograd = key[-1]
    candidates, heuristic = [], None
    for isa in isas:
        names, chosen = _C.conv2d_algorithms(pass_, input_shape, weight_shape, stride, padding, dilation, groups,
                                             isa=isa, bf16=bf16)
        if isa == _C.isa():
            heuristic = (isa, chosen)
        candidates += [(isa, name) for name in names if winograd or name != "winograd"]
    if not candidates:  # the reference ISA: one way only
        return function(*args)
    plan, result = _select(candidates, heuristic, lambda isa, name: function(*args, algorithm=name, isa=isa))
    if plan is not None:
        _remember(key, _string_key(key), plan)
    return result


def pooled_backward(grad, output, indices, input, weight, stride, padding, input_grad, bias_grad, dense):
    """(input gradient or None, weight gradient, bias gradient or None) of conv2d (dilation 1, one
    group) -> ReLU -> max_pool2d from the pooled gradient, by this geometry's plan: ``sparse``, the
    kernel that takes each non-zero pooled gradient once (Note [sparse pooled backward]), or
    ``dense``, the zero-argument callable ``dense`` that scatters the gradient back and runs conv2d's
    backward passes. Without a plan or tuning the heuristic takes ``dense`` for 3x3 stride-1 kernels
    (Winograd's layers: AlexNet's last took 2x as long sparse) and ``sparse`` for the others (1.3-1.7x
    faster on LeNet-5's and AlexNet's 5x5 and 11x11 layers; bench/NOTES.md)."""
    def call(isa, name):
        if name == "dense":
            return dense()
        return _C.conv2d_relu_max_pool2d_backward(grad, output, indices, input, weight, stride, padding,
                                                  input_grad=input_grad, bias_grad=bias_grad, isa=isa)

    heuristic = (_C.isa(), "dense" if weight.shape[2:] == (3, 3) and tuple(stride) == (1, 1) else "sparse")
    if not _enabled or _forced_algorithm is not None:
        return call(*heuristic)
    isas = _isas()
    key = ("pooled_backward", tuple(input.shape), tuple(weight.shape), tuple(stride), tuple(padding),
           tuple(grad.shape), input_grad, bias_grad, isas, _C.threads_in_use(), _C.winograd_enabled())
    plan = _lookup(key, isas, _pooled_string_key, _is_pooled)
    if plan is not None:
        return call(plan["isa"], plan["algorithm"])
    if not _tuning():
        return call(*heuristic)
    plan, result = _select([(isa, "sparse") for isa in isas] + [(_C.isa(), "dense")], heuristic, call)
    if plan is not None:
        _remember(key, _pooled_string_key(key), plan)
    return result


def _pooled_string_key(key):
    _, input_shape, weight_shape, stride, padding, pooled, input_grad, bias_grad, isas, threads, winograd = key
    return (_convolution_text(isas, threads, winograd, "pooled_backward", input_shape, weight_shape, stride, padding) +
            f"|pooled={'x'.join(map(str, pooled))}|input_grad={input_grad}|bias_grad={bias_grad}")


def _is_pooled(key, plan):
    return plan["algorithm"] in ("sparse", "dense")


def sgemm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None, bf16=False):
    """``backend.sgemm`` on the ISA measured fastest for its sizes (one plan per m, n, k and
    transposes; GPU arrays go to the GPU kernel unchanged). With ``out`` and ``beta`` != 0 the
    candidates are timed on copies of ``out``. ``bf16``: the operands are autocast's bfloat16
    values, which have plans of their own."""
    gpu = kernels.gpu_array_type
    if gpu is not None and (isinstance(a, gpu) or isinstance(b, gpu)):
        return kernels.sgemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, out=out)
    isas = _isas()
    if not _enabled or len(isas) == 1 or a.ndim != 2 or b.ndim != 2:
        return _C.sgemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, out=out, bf16=bf16)
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    n = b.shape[0] if trans_b else b.shape[1]
    key = _sgemm_key(m, n, k, trans_a, trans_b, bf16, isas)
    plan = _lookup(key, isas, _sgemm_string_key, _is_gemm)
    if plan is not None:
        return _C.sgemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, out=out, bf16=bf16,
                        isa=plan["isa"])
    if not _tuning():
        return _C.sgemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, out=out, bf16=bf16)

    def call(isa, _name):
        return _C.sgemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta,
                        out=None if out is None else out.copy(), bf16=bf16, isa=isa)

    plan, result = _select([(isa, "gemm") for isa in isas], (_C.isa(), "gemm"), call)
    if plan is not None:
        _remember(key, _sgemm_string_key(key), plan)
    if out is None:
        return result
    out[...] = result
    return out


def _sgemm_key(m, n, k, trans_a, trans_b, bf16, isas):
    return ("sgemm", m, n, k, trans_a, trans_b, bf16, isas, _C.threads_in_use())


def _sgemm_string_key(key):
    _, m, n, k, trans_a, trans_b, bf16, isas, threads = key
    return (f"{'+'.join(isas)}|threads={threads}|sgemm|m={m}|n={n}|k={k}|trans_a={trans_a}|trans_b={trans_b}"
            f"{'|bf16' if bf16 else ''}")


def _is_gemm(key, plan):
    return plan["algorithm"] == "gemm"


def sgemm_plan_of(m, n, k, trans_a=False, trans_b=False, bf16=False):
    """The plan this process would use for an SGEMM of op(a) m x k times op(b) k x n (on bfloat16
    operands with ``bf16``), or None."""
    isas = _isas()
    return _lookup(_sgemm_key(m, n, k, trans_a, trans_b, bf16, isas), isas, _sgemm_string_key, _is_gemm)


def _select(candidates, heuristic, call):
    """Times ``call(isa, algorithm)`` for each (isa, algorithm) candidate (the heuristic's first)
    and returns the plan and the chosen candidate's result. The plan is None when the threads in
    use changed meanwhile (adaptive threading): candidates timed on different counts compare
    nothing, so the next call with the shape measures again."""
    threads = _C.threads_in_use()
    if heuristic in candidates:  # timed first, as the yardstick
        candidates = [heuristic] + [c for c in candidates if c != heuristic]
    ms, outputs = {}, {}  # fastest run per candidate; the outputs of the heuristic's and the leader's

    # One thread runs the kernel on this one: its CPU time, which a busy machine does not inflate by
    # descheduling it. A team's time is the wall clock's.
    clock = time.thread_time if threads == 1 else time.perf_counter

    def run(candidate):
        begin = clock()
        out = call(*candidate)
        if candidate in _test_delay:
            while clock() - begin < _test_delay[candidate]:
                pass
        elapsed = (clock() - begin) * 1e3
        ms[candidate] = min(elapsed, ms.get(candidate, elapsed))
        outputs[candidate] = out
        leader = min(ms, key=ms.get)
        for kept in [c for c in outputs if c not in (heuristic, leader)]:
            del outputs[kept]

    for candidate in candidates:  # warm-up: a first run also sizes the scratch buffers
        run(candidate)
    deadline = time.perf_counter() + _budget_s
    for round_ in range(_max_rounds - 1):
        if len(candidates) == 1 or (round_ > 0 and time.perf_counter() >= deadline):
            break
        fastest = min(ms.values())
        for candidate in [c for c in candidates if ms[c] <= (3.0 if round_ == 0 else 1.5) * fastest]:
            run(candidate)
    best = min(ms, key=ms.get)
    if heuristic in ms and ms[best] > (1.0 - _margin) * ms[heuristic]:
        best = heuristic
    if _C.threads_in_use() != threads:
        return None, outputs[best]
    plan = {"isa": best[0], "algorithm": best[1], "heuristic": "/".join(heuristic) if heuristic else None,
            "ms": {f"{isa}/{name}": round(t, 4) for (isa, name), t in ms.items()}}
    return plan, outputs[best]
