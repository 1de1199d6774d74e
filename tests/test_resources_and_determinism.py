"""Training-level guarantees: the same seed and thread count give bit-identical weights, and
memory stays flat over thousands of steps (workspaces are reused, graphs are freed)."""

import numpy as np

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import backend, nn, optim


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


def test_memory_stays_flat_over_two_thousand_lenet5_steps():
    threads = backend.get_num_threads()
    pcn.manual_seed(0)
    model = pcn.models.lenet5()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    images = pcn.tensor(rng.random((4, 1, 28, 28), dtype=np.float32))
    labels = pcn.tensor(rng.integers(0, 10, 4))

    def run(steps):
        for _ in range(steps):
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()

    backend.set_num_threads(1)  # per-step cost is what matters here, not speed-up
    try:
        run(200)  # warm-up: workspaces, optimiser state and allocator pools reach their size
        before = _resident_bytes()
        run(1800)
        growth = _resident_bytes() - before
    finally:
        backend.set_num_threads(threads)
    assert growth < 16 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over 1800 steps"
