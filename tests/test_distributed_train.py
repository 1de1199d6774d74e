"""``mpiexec -n 2 pyconvnet train``: one set of outputs written by rank 0, resume on the same number
of ranks bit for bit and on another number at all, an error ends every rank. On the real
Fashion-MNIST, a few hundred images."""

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pyconvnet
from mpi_support import MPIEXEC, TIME_LIMIT, needs_mpi

COMMON = ("--limit-train", "768", "--limit-test", "200", "--batch-size", "32", "--lr", "0.01", "--scheduler", "none",
          "--augment")


def _pyconvnet(*args, ranks=2, env=None):
    """Runs the pyconvnet command line on ``ranks`` ranks (plain Python for 0) with one thread each
    unless ``env`` says otherwise; returns the finished process."""
    command = [sys.executable, "-m", "pyconvnet", *map(str, args)]
    if ranks:
        command = [MPIEXEC, "-n", str(ranks), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT,
                          env=env or {**os.environ, "OMP_NUM_THREADS": "1"})


def _metrics(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def _weights(path):
    return {name: tensor.numpy().tobytes() for name, tensor in pyconvnet.load(path)["model"].items()}


@needs_mpi
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


@needs_mpi
def test_ranks_share_the_cores_by_default(tmp_path, real_fashion_mnist):
    env = {name: value for name, value in os.environ.items() if name != "OMP_NUM_THREADS"}
    result = _pyconvnet("train", "--out", tmp_path / "run", "--epochs", 1, "--limit-train", 64, "--limit-test", 20,
                        env=env)
    assert result.returncode == 0, result.stderr
    threads = max(1, os.cpu_count() // 2)
    assert f"2 ranks x {threads} thread{'' if threads == 1 else 's'})" in result.stdout


@needs_mpi
def test_an_error_ends_the_whole_job(tmp_path, real_fashion_mnist):
    # Every rank stops on it and aborts the job: the first abort may end the others before they print.
    result = _pyconvnet("train", "--out", tmp_path / "run", "--epochs", 1, "--limit-train", 64, "--batch-size", 33)
    assert result.returncode != 0
    message = "pyconvnet train: error: --batch-size 33 (the global batch) does not split evenly over 2 ranks"
    assert message in result.stderr


def test_an_mpi_launch_without_mpi4py_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None; from pyconvnet import cli; "
            f"sys.exit(cli.main(['train', '--out', {str(tmp_path)!r}, '--limit-train', '64']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIME_LIMIT,
                            env={**os.environ, "PMI_RANK": "0", "PMI_SIZE": "1"})  # what mpiexec would set
    assert result.returncode == 1
    assert "pyconvnet train: error: pyconvnet.distributed needs mpi4py" in result.stderr
    assert "pip install 'pyconvnet[mpi]'" in result.stderr


@needs_mpi
def test_ctrl_c_stops_every_rank_at_the_same_step_and_the_run_resumes_bit_for_bit(tmp_path, real_fashion_mnist):
    """mpiexec passes SIGINT to every rank; the ranks stop together (they agree each step), rank 0
    saves, and the resumed 2-rank run ends with the weights of a run never interrupted."""
    args = ("train", "--epochs", 20, "--limit-train", 64, "--limit-test", 20, "--batch-size", 16)
    command = [MPIEXEC, "-n", "2", sys.executable, "-m", "pyconvnet", *map(str, args), "--out", tmp_path / "stopped"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    try:
        for line in job.stdout:
            if line.startswith("epoch 1/20"):
                job.send_signal(signal.SIGINT)
                break
        out, err = job.communicate(timeout=TIME_LIMIT)
    finally:
        job.kill()
    assert job.returncode == 130, err
    assert re.search(r"interrupted (in epoch \d+ after step \d+|after epoch \d+); saved .*last\.safetensors", out), out
    assert "Traceback" not in err
    assert 1 <= pyconvnet.load(tmp_path / "stopped" / "last.safetensors")["epoch"] < 20

    resumed = _pyconvnet("train", "--resume", tmp_path / "stopped" / "last.safetensors")
    assert resumed.returncode == 0, resumed.stderr
    straight = _pyconvnet(*args, "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    assert _weights(tmp_path / "straight" / "last.safetensors") == _weights(tmp_path / "stopped" / "last.safetensors")
