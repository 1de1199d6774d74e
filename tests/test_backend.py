"""Run-time dispatch, thread control, how OpenMP threads wait, and `pyconvnet info`."""

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import backend
from pyconvnet.bench import sharing
from pyconvnet.cli import _cuda_line


def _run_python(code, **env):
    environment = dict(os.environ, **env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_newest_available_isa_is_chosen_at_import():
    available = backend.available_isas()
    assert available[:2] == ["reference", "generic"]
    env = {k: v for k, v in os.environ.items() if k != "PYCONVNET_ISA"}
    chosen = subprocess.run([sys.executable, "-c", "from pyconvnet import backend; print(backend.isa())"],
                            capture_output=True, text=True, env=env, timeout=120).stdout.strip()
    assert chosen == available[-1]


@pytest.mark.parametrize("name", backend.available_isas())
def test_environment_variable_forces_an_isa(name):
    out = _run_python("from pyconvnet import backend; print(backend.isa(), '|', backend.isa_choice_reason())", PYCONVNET_ISA=name)
    isa, reason = out.split(" | ")
    assert isa == name
    assert "PYCONVNET_ISA" in reason


def test_unknown_isa_in_environment_falls_back_and_says_why():
    out = _run_python("from pyconvnet import backend; print(backend.isa(), '|', backend.isa_choice_reason())", PYCONVNET_ISA="sse9")
    isa, reason = out.split(" | ")
    assert isa == backend.available_isas()[-1]
    assert "sse9" in reason


def test_set_isa_switches_kernels_and_rejects_unknown_or_unavailable():
    previous = backend.isa()
    try:
        for name in backend.available_isas():
            backend.set_isa(name)
            assert backend.isa() == name
    finally:
        backend.set_isa(previous)
    with pytest.raises(ValueError, match="unknown ISA"):
        backend.set_isa("avx1024")
    missing = [n for n in ("generic", "avx2", "avx512", "avx512bf16", "amx") if n not in backend.available_isas()]
    for name in missing:
        with pytest.raises(ValueError, match="not available"):
            backend.set_isa(name)
    with pytest.raises(TypeError):
        backend.set_isa(2)


def test_threads_default_follows_omp_num_threads_and_can_be_set():
    assert _run_python("from pyconvnet import backend; print(backend.get_num_threads())", OMP_NUM_THREADS="1") == "1"
    previous = backend.get_num_threads()
    try:
        backend.set_num_threads(1)
        assert backend.get_num_threads() == 1
        x = np.random.default_rng(0).standard_normal((4, 3, 9, 9)).astype(np.float32)
        w = np.ones((2, 3, 3, 3), np.float32)
        one = pcn.nn.functional.conv2d(pcn.tensor(x), pcn.tensor(w)).numpy()
        backend.set_num_threads(3)
        three = pcn.nn.functional.conv2d(pcn.tensor(x), pcn.tensor(w)).numpy()
        np.testing.assert_allclose(one, three, rtol=1e-6, atol=1e-6)
    finally:
        backend.set_num_threads(previous)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        backend.set_num_threads(0)
    with pytest.raises(TypeError):
        backend.set_num_threads(1.5)


@pytest.mark.parametrize("taken, others, expected", [
    (0, 0.0, 0), (0, 0.39, 0), (0, 0.4, 1), (0, 0.7, 1), (0, 1.45, 2),  # up from 0.4 of a CPU over the count
    (1, 1.3, 1), (1, 0.76, 1), (1, 0.74, 0), (1, 0.0, 0), (2, 1.2, 1),  # down below 0.75 under it
])
def test_cpus_taken_by_others_rounds_with_a_margin_each_way(taken, others, expected):
    assert pcn._C._cpus_taken_by_others(taken, others) == expected


def test_adaptive_threads_is_a_setting_that_deterministic_mode_suspends():
    assert pcn._C.adaptive_threads() is False and backend.adaptive_threads() is False  # conftest
    environment = {k: v for k, v in os.environ.items() if k != "PYCONVNET_ADAPTIVE_THREADS"}
    code = "from pyconvnet import backend; print(backend.adaptive_threads())"
    for env, expected in (({}, "True"), ({"PYCONVNET_ADAPTIVE_THREADS": "0"}, "False")):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env={**environment, **env}, timeout=120)
        assert result.returncode == 0 and result.stdout.strip() == expected, result.stderr
    try:
        backend.set_adaptive_threads(True)
        assert backend.adaptive_threads() and pcn._C.adaptive_threads()
        backend.use_deterministic_algorithms(True)
        assert backend.adaptive_threads() and not pcn._C.adaptive_threads()
        assert backend.threads_in_use() == backend.get_num_threads()
        backend.use_deterministic_algorithms(False)
        assert pcn._C.adaptive_threads()
    finally:
        backend.use_deterministic_algorithms(False)
        backend.set_adaptive_threads(False)
    with pytest.raises(TypeError, match="set_adaptive_threads: enabled must be a bool"):
        backend.set_adaptive_threads(1)


def _threads_in_use_when(condition, seconds=10.0):
    """Polls ``threads_in_use`` (each call may measure the load) until ``condition`` holds or time is up."""
    deadline = time.monotonic() + seconds
    while not condition(backend.threads_in_use()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return backend.threads_in_use()


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the load is measured from /proc/stat (Linux)")
def test_threads_step_aside_for_a_busy_process_and_come_back_when_it_stops():
    cpus = len(os.sched_getaffinity(0))
    configured, previous = max(2, cpus), backend.get_num_threads()
    try:
        backend.set_num_threads(configured)
        backend.set_adaptive_threads(True)
        with sharing.busy_neighbours(1):
            # A busy loop takes a whole CPU, or two thirds of one beside our team: always counted.
            lowered = _threads_in_use_when(lambda threads: threads < configured)
            assert 1 <= lowered <= max(1, cpus - 1), pcn._C.cpu_share()
        back = _threads_in_use_when(lambda threads: threads == configured)
        # Unless something else on this machine has kept a CPU busy since, the count is back.
        assert back == configured or pcn._C.cpu_share()["others_cpus"] >= 0.25
        backend.set_num_threads(1)
        assert backend.threads_in_use() == 1
    finally:
        backend.set_adaptive_threads(False)
        backend.set_num_threads(previous)


@pytest.mark.parametrize("env, policy", [
    ({}, "OpenMP's default (GNU: spin about 300,000 turns, then sleep)"),
    ({"OMP_WAIT_POLICY": "passive"}, "from the environment: OMP_WAIT_POLICY=passive"),
    ({"GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": "active"},
     "from the environment: OMP_WAIT_POLICY=active GOMP_SPINCOUNT=1000"),
])
def test_wait_policy_reports_what_openmp_read(env, policy):
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run([sys.executable, "-c", "import pyconvnet; print(pyconvnet.backend.wait_policy())"],
                            capture_output=True, text=True, env={**environment, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == policy


def test_info_command_tells_the_truth():
    out = subprocess.run([sys.executable, "-m", "pyconvnet", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.stdout.splitlines())
    assert fields["pyconvnet"] == pcn.__version__
    assert fields["isa"] == f"{backend.isa()} ({backend.isa_choice_reason()})"
    assert fields["available isas"] == ", ".join(backend.available_isas())
    assert fields["threads"] == f"{backend.get_num_threads()}, fixed"  # conftest: PYCONVNET_ADAPTIVE_THREADS=0
    assert fields["openmp waiting"] == backend.wait_policy()
    plans_line = fields["kernel plans"]  # the suite runs with selection off
    assert backend.plan_cache_info()["path"] in plans_line and "off: fixed heuristics" in plans_line
    cuda = backend.cuda_info()
    assert cuda["reason"] == pcn.cuda.unavailable_reason() and bool(cuda["devices"]) == pcn.cuda.is_available()
    if not cuda["built"]:
        assert fields["cuda"] == cuda["reason"] and "built without" in cuda["reason"]
    elif cuda["reason"]:
        assert fields["cuda"].startswith("built for ") and fields["cuda"].endswith(f"; unavailable: {cuda['reason']}")
    else:
        assert fields["cuda"].startswith("built for ") and fields["cuda"].endswith(", ".join(cuda["devices"]))


@pytest.mark.parametrize("facts, line", [
    ({"architectures": "75-real 80-real 90", "devices": ["NVIDIA H200"], "reason": ""},
     "built for sm_75/80/90 (+PTX 90), 1 device: NVIDIA H200"),
    ({"architectures": "90-real 90-virtual", "devices": ["A", "B"], "reason": ""}, "built for sm_90 (+PTX 90), 2 devices: A, B"),
    ({"architectures": "80-real", "devices": [], "reason": "no CUDA device found"},
     "built for sm_80; unavailable: no CUDA device found"),
    ({"architectures": "native", "devices": [], "reason": "no NVIDIA driver found"},
     "built for native; unavailable: no NVIDIA driver found"),
])
def test_info_names_the_gpu_architectures_and_devices(facts, line):
    assert _cuda_line({"built": True, **facts}) == line


def test_large_outputs_reuse_cached_buffers():
    backend.empty_buffer_cache()
    x = pcn.tensor(np.linspace(-1.0, 1.0, 1 << 17, dtype=np.float32).reshape(2, 4, 128, 128))  # 512 KiB
    first = pcn.nn.functional.relu(x)
    address = first.numpy().ctypes.data
    assert backend.buffer_cache_stats()["cached_bytes"] == 0
    view = first.numpy()[1]
    del first
    assert backend.buffer_cache_stats()["cached_bytes"] == 0, "a live view keeps the buffer"
    expected = np.maximum(x.numpy()[1], 0)
    np.testing.assert_array_equal(view, expected)
    del view
    stats = backend.buffer_cache_stats()
    assert stats["cached_bytes"] >= x.numpy().nbytes
    second = pcn.nn.functional.relu(x)  # same size: the same memory, refilled
    assert second.numpy().ctypes.data == address
    np.testing.assert_array_equal(second.numpy(), np.maximum(x.numpy(), 0))
    assert second.numpy().flags.writeable and second.numpy().ctypes.data % 64 == 0
    assert backend.buffer_cache_stats()["hits"] == stats["hits"] + 1
    del second
    backend.empty_buffer_cache()
    assert backend.buffer_cache_stats()["cached_bytes"] == 0


def test_huge_outputs_on_huge_page_blocks_are_written_read_and_reused():
    """Blocks of 64 MiB and more are 2 MiB aligned and advised to use huge pages: the kernel's
    output must still be right to its last element, 64-byte aligned, and come back from the cache."""
    backend.empty_buffer_cache()
    x = pcn.tensor(np.linspace(-1.0, 1.0, 17 << 20, dtype=np.float32).reshape(17, 1024, 1024))  # 68 MiB
    expected = np.maximum(x.numpy(), 0)
    first = pcn.nn.functional.relu(x)
    address = first.numpy().ctypes.data
    assert address % 64 == 0
    np.testing.assert_array_equal(first.numpy(), expected)
    del first
    second = pcn.nn.functional.relu(x)
    assert second.numpy().ctypes.data == address
    np.testing.assert_array_equal(second.numpy(), expected)
    del second
    backend.empty_buffer_cache()
    assert backend.buffer_cache_stats()["cached_bytes"] == 0


def test_small_outputs_bypass_the_cache():
    backend.empty_buffer_cache()
    before = backend.buffer_cache_stats()
    small = pcn.nn.functional.relu(pcn.ones(4, 4))  # 64 bytes
    del small
    after = backend.buffer_cache_stats()
    assert (after["cached_bytes"], after["hits"], after["misses"]) == (0, before["hits"], before["misses"])


def test_a_cache_miss_frees_cached_blocks_past_twice_the_most_in_use():
    """Heap blocks (under 4 MiB) stay cached while cached and live ones together hold at most twice
    the most ever live at once; past that a miss frees the oldest."""
    backend.empty_buffer_cache()
    for floats in (MIB_FLOATS, 3 * MIB_FLOATS // 2):  # 1 MiB, then 1.5 MiB: a miss that keeps the first
        out = _relu_of(floats, 1.0)
        del out
    assert backend.buffer_cache_stats()["cached_bytes"] == 5 << 19
    last = _relu_of(2 * MIB_FLOATS, 2.0)  # 2 MiB live, 4.5 held: the oldest, 1 MiB, goes
    assert backend.buffer_cache_stats()["cached_bytes"] == 3 << 19
    np.testing.assert_array_equal(last.numpy(), 2.0)
    del last
    backend.empty_buffer_cache()
    assert backend.buffer_cache_stats()["cached_bytes"] == 0


def test_a_training_step_finds_all_its_buffers_cached():
    pcn.manual_seed(0)
    model = pcn.models.lenet5()
    optimizer = pcn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = pcn.randn(64, 1, 28, 28), pcn.tensor(np.arange(64) % 10)

    def step():
        optimizer.zero_grad()
        pcn.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    backend.empty_buffer_cache()
    step()
    before = backend.buffer_cache_stats()
    step()
    after = backend.buffer_cache_stats()
    assert after["misses"] == before["misses"] and after["hits"] > before["hits"]


def _relu_of(floats, value):
    return pcn.nn.functional.relu(pcn.tensor(np.full(floats, value, dtype=np.float32)))


MIB_FLOATS = 1 << 18  # floats in 1 MiB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pages move between mappings with Linux's mremap")
def test_a_cache_miss_takes_the_pages_of_cached_blocks_of_other_sizes():
    """From 4 MiB a miss is served by the oldest cached blocks' pages, moved into one contiguous
    output: the output is whole and right, and the moved pages come out of the cache."""
    backend.empty_buffer_cache()
    olds = [_relu_of(6 * MIB_FLOATS, float(i)) for i in range(3)]
    del olds
    before = backend.buffer_cache_stats()
    assert before["cached_bytes"] == 18 << 20
    out = _relu_of(14 * MIB_FLOATS, 7.0)  # the first two blocks and a third of the last
    after = backend.buffer_cache_stats()
    assert after["misses"] == before["misses"] + 1
    assert after["recycled_bytes"] - before["recycled_bytes"] == 14 << 20
    assert after["cached_bytes"] == 4 << 20
    np.testing.assert_array_equal(out.numpy(), 7.0)
    rest = _relu_of(4 * MIB_FLOATS, 3.0)  # the last block's other 4 MiB, exactly: a hit
    assert backend.buffer_cache_stats()["hits"] == after["hits"] + 1
    np.testing.assert_array_equal(rest.numpy(), 3.0)
    out.numpy()[:] = -1.0  # the two outputs share no page
    np.testing.assert_array_equal(rest.numpy(), 3.0)
    del out, rest
    # A remainder under 1 MiB is not kept: 6 + 6 + 5.5 MiB leave half a MiB, which goes back.
    olds = [_relu_of(6 * MIB_FLOATS, 1.0) for _ in range(3)]
    del olds
    out = _relu_of(35 * MIB_FLOATS // 2, 2.0)
    assert backend.buffer_cache_stats()["cached_bytes"] == 0
    np.testing.assert_array_equal(out.numpy(), 2.0)
    del out
    backend.empty_buffer_cache()
    assert backend.buffer_cache_stats()["cached_bytes"] == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="counts the process's mappings in /proc/self/maps")
def test_recycling_pages_keeps_the_number_of_mappings_bounded():
    """Every moved piece may stay a kernel mapping of its own, and a process may hold only so many
    (vm.max_map_count): misses of ever-changing sizes must not split the cache's pages without end."""
    backend.empty_buffer_cache()

    def mappings():
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)

    start = mappings()
    rng = np.random.default_rng(0)
    live = []
    for _ in range(2000):  # 12 live outputs of 4-6 MiB, a random one dying at each step
        live.append(_relu_of(int(rng.integers(4 * MIB_FLOATS, 6 * MIB_FLOATS)), 1.0))
        if len(live) > 12:
            live.pop(int(rng.integers(0, len(live))))
    assert backend.buffer_cache_stats()["recycled_bytes"] > 0
    # No piece is under 1 MiB: about one mapping per MiB held, whatever the history.
    assert mappings() - start < 200
    for output in live:
        np.testing.assert_array_equal(output.numpy(), 1.0)
    del live
    backend.empty_buffer_cache()


@pytest.mark.parametrize("floats", [16, 1 << 17, 1 << 21], ids=["small", "cached", "mapped"])
def test_live_bytes_count_what_outputs_hold(floats):
    """``live_bytes`` rises by an output's block (its size rounded up to 64 bytes, or to a page
    from 256 KiB) while it lives, however it is viewed, and falls back when the last view dies."""
    backend.empty_buffer_cache()
    before = backend.buffer_cache_stats()["live_bytes"]
    output = _relu_of(floats, 1.0)
    unit = 4096 if floats * 4 >= 256 * 1024 else 64
    block = -(-floats * 4 // unit) * unit
    assert backend.buffer_cache_stats()["live_bytes"] == before + block
    view = output.numpy()[1:]
    del output
    assert backend.buffer_cache_stats()["live_bytes"] == before + block
    del view
    assert backend.buffer_cache_stats()["live_bytes"] == before
    backend.empty_buffer_cache()
