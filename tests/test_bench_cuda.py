"""``pyconvnet bench --device cuda`` on a GPU: the suite's plumbing on two tiny cases (the record, its
copy in $OUT, each allocator's peak, TF32 at PyTorch's defaults on both sides). Timing itself is never
asserted: .ci/gpu runs the suite (argument handling without a GPU: test_bench.py)."""

import json

import pytest

import pyconvnet as pcn
from pyconvnet import cli

pytestmark = pytest.mark.cuda

# LeNet-5's and ResNet-20's weights, each held three times: the weights, their gradients, the momentum.
_AT_LEAST_MIB = {"lenet5": 3 * 61_706 * 4 / 2**20, "resnet20": 3 * 269_722 * 4 / 2**20}


def test_the_gpu_suite_writes_its_record(tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    monkeypatch.setenv("OUT", str(tmp_path / "collected"))
    argv = ["bench", "--device", "cuda", "--quick", "--models", "lenet5", "resnet20", "--batch", "4", "--repeats", "1",
            "--json", str(path)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert pcn.cuda.get_device_name() in printed and f"wrote {path}" in printed
    assert (tmp_path / "collected" / "bench.json").read_text() == path.read_text()
    record = json.loads(path.read_text())
    assert record["machine"]["gpu"] == pcn.cuda.get_device_name()
    assert record["machine"]["tf32"] == {"convolution": True, "matmul": False}
    assert torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert pcn.backends.cudnn.allow_tf32 and not pcn.backends.cuda.matmul.allow_tf32
    assert record["settings"]["device"] == f"cuda:{pcn.cuda.current_device()}" and record["settings"]["quick"]
    assert [(row["name"], row["batch"]) for row in record["models"]] == [("lenet5", 4), ("resnet20", 4)]
    for row in record["models"]:
        for side in ("pyconvnet", "torch"):
            assert row[f"{side}_ms"] > 0 and row[f"{side}_images_per_s"] > 0 and row[f"{side}_peak_percent"] is None
            assert row[f"{side}_memory_mib"] >= _AT_LEAST_MIB[row["name"]], (side, row)
