"""Kernels under concurrency: calls from several Python threads at once give the serial results,
the bindings release the GIL while a kernel runs, changing the thread count between (and during
other threads') calls is safe, and a forked child process can still run kernels.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C, backend
from support import assert_close, random_array

PYTHON_THREADS = 4
ROUNDS = 3


def _jobs():
    """name -> zero-argument callable returning the arrays one op produces (forward and every
    backward), through the public API."""
    rng = np.random.default_rng(0)
    x = random_array(rng, 4, 8, 17, 17)
    w = random_array(rng, 12, 8, 3, 3)
    b = random_array(rng, 12)
    dw_w = random_array(rng, 8, 1, 3, 3)
    a, bm = random_array(rng, 67, 45), random_array(rng, 45, 81)

    def with_grads(fn, *inputs):
        tensors = [pcn.tensor(v, requires_grad=True) for v in inputs]
        y = fn(*tensors)
        y = y[0] if isinstance(y, tuple) else y
        (y * y).sum().backward()
        return [y.detach().numpy()] + [t.grad.numpy() for t in tensors]

    def batch_norm(xt):
        running_mean, running_var = pcn.zeros(8), pcn.ones(8)
        return F.batch_norm(xt, running_mean, running_var, training=True)

    return {
        "conv2d": lambda: with_grads(lambda xt, wt, bt: F.conv2d(xt, wt, bt, padding=1), x, w, b),
        "conv2d_strided_dilated": lambda: with_grads(lambda xt, wt: F.conv2d(xt, wt, stride=2, dilation=2), x, w),
        "conv2d_depthwise": lambda: with_grads(lambda xt, wt: F.conv2d(xt, wt, padding=1, groups=8), x, dw_w),
        "max_pool2d": lambda: with_grads(lambda xt: F.max_pool2d(xt, 3, 2, 1, ceil_mode=True, return_indices=True), x),
        "avg_pool2d": lambda: with_grads(lambda xt: F.avg_pool2d(xt, 3, 2, 1, count_include_pad=False), x),
        "adaptive_avg_pool2d": lambda: with_grads(lambda xt: F.adaptive_avg_pool2d(xt, (5, 3)), x),
        "batch_norm": lambda: with_grads(batch_norm, x),
        "local_response_norm": lambda: with_grads(lambda xt: F.local_response_norm(xt, 5), x),
        "sgemm": lambda: [backend.sgemm(a, bm), backend.sgemm(bm, a, trans_a=True, trans_b=True)],
    }


JOBS = _jobs()


def _run_concurrently(calls):
    """Runs every callable in ``calls`` from its own Python thread, all released at once."""
    barrier = threading.Barrier(len(calls))

    def start(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(start, calls))


@pytest.mark.parametrize("kernel_threads", [1, 2])
def test_threads_give_the_serial_results_bitwise(kernel_threads):
    """Every op from PYTHON_THREADS threads at once (each thread running all ops in a different
    order), repeatedly: results equal the serial call's bit for bit (fixed kernel threads)."""
    previous = backend.get_num_threads()
    backend.set_num_threads(kernel_threads)
    try:
        expected = {name: job() for name, job in JOBS.items()}
        names = list(JOBS)

        def worker(shift):
            order = names[shift:] + names[:shift]
            return [(name, JOBS[name]()) for _ in range(ROUNDS) for name in order]

        for results in _run_concurrently([lambda s=s: worker(s) for s in range(PYTHON_THREADS)]):
            for name, arrays in results:
                assert len(arrays) == len(expected[name])
                for got, want in zip(arrays, expected[name]):
                    assert np.array_equal(got, want), f"{name}: concurrent result differs from the serial one"
    finally:
        backend.set_num_threads(previous)


def test_changing_thread_count_between_and_during_calls_is_safe():
    """One thread keeps changing the kernel thread count while others run every op: each result
    stays correct (equal to the serial one within float32 reduction-order tolerance)."""
    previous = backend.get_num_threads()
    try:
        backend.set_num_threads(1)
        expected = {name: job() for name, job in JOBS.items()}
        started, stop = threading.Event(), threading.Event()

        def toggler():
            counts = [1, 3, 2, 4, 1, 7, 2]
            i = 0
            while True:
                backend.set_num_threads(counts[i % len(counts)])
                i += 1
                started.set()
                if stop.is_set():
                    return i
                time.sleep(0.001)

        def worker():
            # On a loaded machine the toggler may be scheduled late: the calls start once it has run.
            started.wait()
            try:
                return [(name, job()) for _ in range(ROUNDS) for name, job in JOBS.items()]
            finally:
                stop.set()

        toggles, *results = _run_concurrently([toggler] + [worker] * (PYTHON_THREADS - 1))
        assert toggles > 0
        for per_thread in results:
            for name, arrays in per_thread:
                for got, want in zip(arrays, expected[name]):
                    assert_close(got, want, what=name)
        for threads in [3, 1, 2]:  # and plain changes between serial calls
            backend.set_num_threads(threads)
            for name, job in JOBS.items():
                for got, want in zip(job(), expected[name]):
                    assert_close(got, want, what=f"{name} at {threads} threads")
    finally:
        backend.set_num_threads(previous)


# ------------------------------------------------------------------ the GIL is released
def _sized(make_call, seconds=0.2):
    """make_call(scale) -> call; doubles scale until one call takes ``seconds`` (only to size the
    work so the check below has a wide margin; nothing is asserted about time)."""
    scale = 1
    while True:
        call = make_call(scale)
        start = time.perf_counter()
        call()
        if time.perf_counter() - start >= seconds or scale >= 1024:
            return call
        scale *= 2


def _gil_probes():
    rng = np.random.default_rng(1)
    w = random_array(rng, 32, 32, 3, 3)

    def conv_forward(scale):
        x = random_array(rng, scale, 32, 32, 32)
        return lambda: _C.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1)

    def conv_backward_weight(scale):
        x = random_array(rng, scale, 32, 32, 32)
        return lambda: _C.conv2d_backward_weight(x, x, [32, 32, 3, 3], (1, 1), (1, 1), (1, 1), 1)

    def sgemm(scale):
        a = random_array(rng, 128 * scale, 256)
        return lambda: backend.sgemm(a, a, trans_b=True)

    def max_pool(scale):
        x = random_array(rng, scale, 64, 64, 64)
        return lambda: _C.max_pool2d_forward(x, (3, 3), (1, 1), (1, 1), (1, 1), False)

    def batch_norm(scale):
        x = random_array(rng, 4 * scale, 64, 32, 32)
        return lambda: _C.batch_norm_forward_train(x, None, None, None, None, 0.1, 1e-5)

    return {"conv2d_forward": conv_forward, "conv2d_backward_weight": conv_backward_weight, "sgemm": sgemm,
            "max_pool2d_forward": max_pool, "batch_norm_forward_train": batch_norm}


@pytest.mark.parametrize("name", list(_gil_probes()))
def test_kernel_call_releases_the_gil(name):
    """Ordering proof, no timing: with a huge switch interval the interpreter never takes the GIL
    away from a running thread, so the main thread can run Python while a started worker thread
    is inside a kernel call only if that call released the GIL. If it holds the GIL, the worker
    finishes (and logs) first, deterministically; if it releases it, the main thread (already
    waiting for the GIL in Thread.start) logs first. A retry only guards against the main
    thread being descheduled for the whole (sized to >= 0.2 s) call on a loaded machine."""
    previous_threads, previous_interval = backend.get_num_threads(), sys.getswitchinterval()
    backend.set_num_threads(1)
    try:
        call = _sized(_gil_probes()[name])
        for _ in range(3):
            log = []
            worker = threading.Thread(target=lambda: (call(), log.append("kernel returned")))
            sys.setswitchinterval(100.0)
            try:
                worker.start()
                log.append("main thread ran")
                worker.join()
            finally:
                sys.setswitchinterval(previous_interval)
            if log[0] == "main thread ran":
                break
        assert log == ["main thread ran", "kernel returned"], f"{name} held the GIL for the whole call"
    finally:
        backend.set_num_threads(previous_threads)


# ------------------------------------------------------------------ fork
FORK_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import pyconvnet as pcn
    import pyconvnet.nn.functional as F
    from pyconvnet import backend

    def conv_and_grads():
        x = pcn.tensor(np.random.default_rng(0).standard_normal((4, 8, 16, 16)).astype(np.float32), requires_grad=True)
        w = pcn.tensor(np.random.default_rng(1).standard_normal((8, 8, 3, 3)).astype(np.float32), requires_grad=True)
        y = F.max_pool2d(F.conv2d(x, w, padding=1), 2)
        (y * y).sum().backward()
        return [y.detach().numpy(), x.grad.numpy(), w.grad.numpy()]

    backend.set_num_threads(2)
    expected = conv_and_grads()  # the parent's OpenMP thread pool now exists
    pid = os.fork()
    if pid == 0:
        code = 0
        for threads in (None, 2):  # as inherited, then an explicit request for more threads
            if threads:
                backend.set_num_threads(threads)
            if backend.threads_in_use() != 1:
                code = 4
            if not all(np.allclose(g, e, rtol=1e-4, atol=1e-4) for g, e in zip(conv_and_grads(), expected)):
                code = 3
        os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            sys.exit(os.waitstatus_to_exitcode(status))
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    sys.exit(124)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_runs_kernels_on_one_thread_without_hanging():
    """GNU OpenMP's thread pool does not survive fork: a child forked after the parent ran
    threaded kernels runs them on one thread (Note [fork] in csrc/core/runtime.cpp), with
    correct results, instead of hanging. Runs in its own interpreter; the parent kills a child
    that does not finish (exit 124)."""
    # Started in tests/ so that `python -c` imports the installed package, not the source tree.
    result = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=300,
                            cwd=os.path.dirname(os.path.abspath(__file__)))
    outcome = {0: "ok", 3: "wrong results", 4: "more than one thread", 124: "child hung"}
    assert result.returncode == 0, f"{outcome.get(result.returncode, result.returncode)}: {result.stderr}"
