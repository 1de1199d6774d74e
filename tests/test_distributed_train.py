"""``mpiexec -n 2 pyconvnet train``: one set of outputs written by rank 0, resume on the same number
of ranks bit for bit and on another number at all, a global batch that does not split is the same
error on every rank. On the real Fashion-MNIST, a few hundred images."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pyconvnet
from mpi_support import MPIEXEC, TIME_LIMIT, needs_mpi

pytestmark = needs_mpi

COMMON = ("--limit-train", "768", "--limit-test", "200", "--batch-size", "32", "--lr", "0.01", "--scheduler", "none",
          "--augment")


def _pyconvnet(*args, ranks=2):
    """Runs the pyconvnet command line on ``ranks`` ranks (plain Python for 0); returns the process."""
    command = [sys.executable, "-m", "pyconvnet", *map(str, args)]
    if ranks:
        command = [MPIEXEC, "-n", str(ranks), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _metrics(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def _weights(path):
    return {name: tensor.numpy().tobytes() for name, tensor in pyconvnet.load(path)["model"].items()}


def test_two_ranks_train_write_once_and_resume_bit_for_bit(tmp_path, real_fashion_mnist):
    straight = _pyconvnet("train", "--out", tmp_path / "straight", "--epochs", 2, *COMMON)
    assert straight.returncode == 0, straight.stderr
    assert straight.stdout.count("training lenet5 on fashion-mnist (768 train / 200 test images, 2 ranks x") == 1
    assert straight.stdout.count("final test accuracy") == 1  # rank 0 alone prints
    records = _metrics(tmp_path / "straight")
    assert [record["epoch"] for record in records] == [1, 2]
    assert records[-1]["test_loss"] < math.log(10) - 0.05  # learning: below chance, on all 200 test images
    assert {"last.safetensors", "best.safetensors"} <= set(os.listdir(tmp_path / "straight"))

    split = _pyconvnet("train", "--out", tmp_path / "split", "--epochs", 1, *COMMON)
    assert split.returncode == 0, split.stderr
    resumed = _pyconvnet("train", "--resume", tmp_path / "split" / "last.safetensors", "--epochs", 2)
    assert resumed.returncode == 0, resumed.stderr
    assert _weights(tmp_path / "straight" / "last.safetensors") == _weights(tmp_path / "split" / "last.safetensors")
    assert [(r["train_loss"], r["test_acc"]) for r in _metrics(tmp_path / "split")] == \
        [(r["train_loss"], r["test_acc"]) for r in records]

    # A checkpoint of 2 ranks continues in one process (not bit for bit: another sampler order).
    single = _pyconvnet("train", "--resume", tmp_path / "split" / "best.safetensors", "--epochs", 3, "--threads", 1,
                        "--out", tmp_path / "single", ranks=0)
    assert single.returncode == 0, single.stderr
    assert [record["epoch"] for record in _metrics(tmp_path / "single")] == [1, 2, 3]


def test_a_global_batch_that_does_not_split_is_refused_on_every_rank(tmp_path, real_fashion_mnist):
    result = _pyconvnet("train", "--out", tmp_path / "run", "--epochs", 1, "--limit-train", 64, "--batch-size", 33)
    assert result.returncode != 0
    assert result.stderr.count("--batch-size 33 (the global batch) does not split evenly over 2 ranks") == 2
