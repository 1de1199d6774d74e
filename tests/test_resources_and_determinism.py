"""Training-level guarantees: the same seed and thread count give bit-identical weights, and
memory stays flat over hundreds of steps (graphs are freed: not one byte of kernel outputs is
kept) and over hundreds of calls that fail after allocating (what was allocated is freed)."""

import gc
import tracemalloc

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C, backend, nn, optim


def _small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.3), nn.Linear(16, 10))


def _train(seed, steps, batch=16):
    pcn.manual_seed(seed)
    model = _small_cnn()
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(seed)
    images = pcn.tensor(rng.random((batch, 1, 12, 12), dtype=np.float32))
    labels = pcn.tensor(rng.integers(0, 10, batch))
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return {name: value.numpy().copy() for name, value in model.state_dict().items()}


def test_same_seed_and_threads_give_bit_identical_weights():
    first, second = _train(3, 25), _train(3, 25)
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name
    other = _train(4, 25)
    assert not np.array_equal(first["0.weight"], other["0.weight"])


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _lenet5_step(batch=4):
    """One SGD step of LeNet-5 on a fixed batch, as a function."""
    pcn.manual_seed(0)
    model = pcn.models.lenet5()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    images = pcn.tensor(rng.random((batch, 1, 28, 28), dtype=np.float32))
    labels = pcn.tensor(rng.integers(0, 10, batch))

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    return step


# Over MEASURED_STEPS after the warm-up, what a leak-free step may add: no byte of kernel
# outputs (they come from the C++ buffer cache, whose live_bytes counts every one, and a step
# frees all it allocates) and MAX_TRACED_GROWTH of memory tracemalloc sees (numpy's own arrays
# and Python objects: measured at 0.1-4 KiB on Python 3.11-3.13; a leak of 64 bytes a step passes
# it, but a leaked loss Tensor or a 1 KiB array a step does not).
WARM_UP_STEPS, MEASURED_STEPS = 500, 500
MAX_TRACED_GROWTH = 32 * 2**10


def _memory_in_use():
    """(bytes kernel outputs hold, bytes tracemalloc sees) after a full collection."""
    gc.collect()
    return backend.buffer_cache_stats()["live_bytes"], tracemalloc.get_traced_memory()[0]


def _memory_growth(step, leak=None):
    """(kernel-output bytes, tracemalloc bytes) that MEASURED_STEPS calls of ``step`` add after
    WARM_UP_STEPS; ``leak(result)``, if given, runs after each measured step. Each reading
    follows a full collection, which empties the interpreter's free lists: they hold freed
    objects that tracemalloc still counts, and fill for a thousand steps."""
    threads = backend.get_num_threads()
    backend.set_num_threads(1)  # per-step cost is what matters here, not speed-up
    tracemalloc.start()
    try:
        for _ in range(WARM_UP_STEPS):
            step()
        before = _memory_in_use()
        keep = leak if leak is not None else (lambda result: None)
        for _ in range(MEASURED_STEPS):
            keep(step())
        return tuple(after - start for after, start in zip(_memory_in_use(), before))
    finally:
        tracemalloc.stop()
        backend.set_num_threads(threads)


def test_memory_stays_flat_over_lenet5_steps():
    kernel_bytes, traced_bytes = _memory_growth(_lenet5_step())
    assert kernel_bytes == 0, f"kernel outputs grew by {kernel_bytes} bytes over {MEASURED_STEPS} steps"
    assert traced_bytes < MAX_TRACED_GROWTH, f"tracemalloc saw {traced_bytes / 2**10:.1f} KiB more after {MEASURED_STEPS} steps"


def test_the_memory_checks_catch_a_small_leak():
    """Holding one small result per step shows: a loss Tensor (a 4-byte kernel output and its
    graph's nodes) in both measures, a 1 KiB numpy array in tracemalloc's."""
    held = []
    kernel_bytes, traced_bytes = _memory_growth(_lenet5_step(), leak=held.append)
    assert kernel_bytes == 64 * MEASURED_STEPS  # one 64-byte block per loss
    assert traced_bytes > MAX_TRACED_GROWTH
    held.clear()
    _, traced_bytes = _memory_growth(_lenet5_step(), leak=lambda loss: held.append(np.zeros(256, np.float32)))
    assert traced_bytes > MAX_TRACED_GROWTH


# Calls that raise after memory was allocated for them, each holding about 1 MiB or more when it
# fails (so a leak of any of it shows within a few hundred calls). No kernel raises once it has
# started: arguments are validated first, so the failures come after inputs were copied, outputs
# allocated or earlier ops of a graph ran. name -> () -> (call, expected exception type).
def _bad_label_after_a_forward_pass():
    pcn.manual_seed(0)
    model = pcn.models.lenet5()
    images = pcn.randn(64, 1, 28, 28)
    labels = pcn.tensor(np.r_[np.zeros(63, np.int64), 10])  # class 10 of 10: found by the loss binding
    return lambda: F.cross_entropy(model(images), labels), ValueError


def _layer_failing_mid_forward():
    pcn.manual_seed(0)
    layers = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                           nn.MaxPool2d(64))  # the pool's window is larger than the 32x32 maps it gets
    images = pcn.randn(16, 3, 32, 32)
    return lambda: layers(images), ValueError


def _binding_failing_after_its_output():
    """conv2d_backward_data allocates grad_input (1 MiB) before it finds grad_output's shape wrong."""
    grad_output, weight = np.ones((16, 8, 32, 32), np.float32), np.ones((8, 16, 3, 3), np.float32)
    return lambda: _C.conv2d_backward_data(grad_output, weight, [16, 16, 30, 30], (1, 1), (1, 1), (1, 1), 1), ValueError


def _binding_failing_after_an_input_copy():
    """A Fortran-ordered input is copied to C order (2 MiB) before the weight's channels are found wrong."""
    images, weight = pcn.tensor(np.asfortranarray(np.ones((32, 16, 32, 32), np.float32))), pcn.ones(8, 4, 3, 3)
    return lambda: F.conv2d(images, weight), ValueError


def _output_larger_than_memory():
    images = pcn.randn(1, 16, 32, 32)
    return lambda: F.adaptive_avg_pool2d(images, (2**20, 2**21)), MemoryError  # 128 TiB


FAILING_CALLS = {
    "bad label after a forward pass": _bad_label_after_a_forward_pass,
    "layer failing mid-forward": _layer_failing_mid_forward,
    "binding failing after its output": _binding_failing_after_its_output,
    "binding failing after an input copy": _binding_failing_after_an_input_copy,
    "output larger than memory": _output_larger_than_memory,
}


@pytest.mark.parametrize("name", sorted(FAILING_CALLS))
def test_failing_calls_free_what_they_allocated(name):
    """Resident memory stays flat over 500 failing calls; of 100 more, nothing is still held by
    kernel outputs (the buffer cache's ``live_bytes``) or where tracemalloc looks (numpy's own
    arrays, such as input copies, and Python objects; kernel outputs come from the C++ cache,
    which tracemalloc does not see)."""
    call, error = FAILING_CALLS[name]()

    def fail(times):
        for _ in range(times):
            with pytest.raises(error):
                call()

    fail(20)  # warm-up: workspaces and allocator pools reach their size
    before = _resident_bytes()
    fail(500)
    growth = _resident_bytes() - before
    assert growth < 16 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over 500 failing calls"
    live = backend.buffer_cache_stats()["live_bytes"]
    tracemalloc.start()
    try:
        fail(100)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert backend.buffer_cache_stats()["live_bytes"] == live, "kernel outputs of failing calls are still held"
    assert held < 256 * 2**10, f"{held / 2**10:.0f} KiB allocated by 100 failing calls is still held"
