"""``pyconvnet train --device cuda`` on a GPU: a short run on generated images finishes and records the
GPU; its checkpoint holds host copies, so it evaluates on the CPU and resumes on the CPU and back on
the GPU (the device choice without a GPU: test_train.py)."""

import json

import pytest

import pyconvnet as pcn
from data_support import make_mnist_split
from pyconvnet import cli, viz

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_mnist_split(root / "fashion-mnist", "train", 256, seed=0)
    make_mnist_split(root / "fashion-mnist", "t10k", 64, seed=1)
    return root


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_gpu_run_finishes_and_its_checkpoint_serves_the_cpu(capsys, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(viz, "available", lambda: False)  # the pictures are drawn on the CPU: test_viz's subject
    run, gpu = tmp_path / "run", f"cuda:{pcn.cuda.current_device()} ({pcn.cuda.get_device_name()})"
    common = ["--data-dir", str(data_dir), "--threads", "2"]
    assert cli.main(["train", "--device", "cuda", "--out", str(run), "--epochs", "1", "--batch-size", "64",
                     "--limit-test", "64", *common]) == 0
    out = capsys.readouterr().out
    assert f") on {gpu} into " in out, out
    (record,) = _records(run)
    assert record["device"] == gpu and record["train_loss"] > 0 and 0 <= record["test_acc"] <= 1

    assert cli.main(["eval", str(run / "last.safetensors"), "--limit-test", "64", *common[:2]]) == 0
    loss = float(capsys.readouterr().out.splitlines()[-2].removeprefix("test loss: "))
    assert loss == pytest.approx(record["test_loss"], rel=1e-3, abs=1e-4)  # the GPU's evaluation, redone on the CPU

    for epochs, device in ((2, "cpu"), (3, "cuda")):
        assert cli.main(["train", "--resume", str(run / "last.safetensors"), "--epochs", str(epochs),
                         "--device", device, *common]) == 0
    capsys.readouterr()
    assert [record["device"] for record in _records(run)] == [gpu, "cpu", gpu]
    assert all(record["train_loss"] > 0 for record in _records(run))
