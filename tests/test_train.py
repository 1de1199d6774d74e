"""``pyconvnet train`` / ``pyconvnet eval``: outputs, exact resume, Ctrl-C, NaN stop, the device choice, on tiny
generated IDX data (training on the GPU: test_cuda_train.py)."""

import json
import math
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import pyconvnet
from pyconvnet import backend, cli, viz
from pyconvnet.train import recipe_for

def _write_idx(path, array):
    """An uncompressed IDX file: magic (0, 0, 0x08 = uint8, ndim), big-endian sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A learnable Fashion-MNIST stand-in: each class lights its own horizontal band, plus noise."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 256), ("t10k", 64)):
        labels = np.arange(count) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(count, 28, 28))
        for image, label in zip(images, labels):
            image[2 + 2 * label : 4 + 2 * label, 4:24] = 230
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = backend.get_num_threads()
    yield
    backend.set_num_threads(threads)


def _args(data_dir, out, *extra):
    return ["train", "--data-dir", str(data_dir), "--out", str(out), "--threads", "1", "--batch-size", "32",
            "--limit-test", "32", *map(str, extra)]


def _train(capsys, *args):
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _weights(path):
    state = pyconvnet.load(path)
    return {name: tensor.numpy() for name, tensor in state["model"].items()}


def _assert_same_weights(path_a, path_b):
    a, b = _weights(path_a), _weights(path_b)
    assert list(a) == list(b)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), f"{name} differs"


def test_a_run_leaves_metrics_checkpoints_and_prints_the_final_accuracy(capsys, data_dir, tmp_path):
    status, out, _ = _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 3, "--limit-train", 128,
                                           "--batch-size", 16, "--optimizer", "adam", "--lr", 0.003))
    assert status == 0
    lines = out.strip().splitlines()
    final = re.fullmatch(r"final test accuracy: (\d\.\d{4})", lines[-1])
    assert final, lines[-1]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1, 2, 3]
    for record in records:
        assert set(record) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds",
                               "images_per_s", "device"}
    assert float(final.group(1)) == pytest.approx(records[-1]["test_acc"], abs=1e-4)
    assert records[-1]["test_acc"] >= 0.3  # the bands are easy to tell apart; chance is 0.1
    assert [line for line in lines if line.startswith("epoch ")][0].startswith("epoch 1/3  train loss")
    last = pyconvnet.load(tmp_path / "run" / "last.safetensors")
    assert (last["epoch"], last["step_in_epoch"], last["model_name"]) == (3, 0, "lenet5")
    assert last["metrics"] == records
    best = pyconvnet.load(tmp_path / "run" / "best.safetensors")
    assert best["metrics"][-1]["test_acc"] == max(record["test_acc"] for record in records)


def test_eval_rebuilds_the_model_from_the_checkpoint(capsys, data_dir, tmp_path):
    _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 2, "--limit-train", 64))
    records = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    status, out, _ = _train(capsys, "eval", str(tmp_path / "run" / "last.safetensors"), "--data-dir", str(data_dir),
                            "--limit-test", "32", "--threads", "1")
    assert status == 0
    assert out.splitlines()[-1] == f"test accuracy: {json.loads(records[-1])['test_acc']:.4f}"
    assert out.splitlines()[-2] == f"test loss: {json.loads(records[-1])['test_loss']:.4f}"


def test_predict_prepares_an_image_file_as_the_run_prepared_its_test_images(capsys, data_dir, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 1, "--limit-train", 64))
    raw = np.frombuffer((data_dir / "fashion-mnist" / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8)
    images = raw.reshape(-1, 28, 28)[:3]
    paths = [tmp_path / f"{i}.png" for i in range(len(images))]
    for image, path in zip(images, paths):
        Image.fromarray(image).save(path)
    checkpoint = tmp_path / "run" / "last.safetensors"
    status, out, err = _train(capsys, "predict", str(checkpoint), *map(str, paths), "--json", "--top-k", "10")
    assert status == 0, err
    model, state = pyconvnet.train.load_model(checkpoint)
    model.eval()
    spec = pyconvnet.train.DATASETS["fashion-mnist"]
    inputs = (images[:, None].astype(np.float32) / 255 - spec.mean[0]) / spec.std[0]
    with pyconvnet.no_grad():
        logits = model(pyconvnet.from_numpy(inputs)).numpy().astype(np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = list(pyconvnet.data.FashionMNIST.classes)
    assert state["classes"] == classes
    for result, row in zip(json.loads(out), expected):
        got = {entry["class"]: entry["probability"] for entry in result["top"]}
        np.testing.assert_allclose([got[name] for name in classes], row, rtol=1e-4, atol=1e-6)


def test_one_epoch_plus_resume_equals_two_epochs_bit_for_bit(capsys, data_dir, tmp_path):
    common = ("--limit-train", 96, "--scheduler", "none", "--augment")
    assert _train(capsys, *_args(data_dir, tmp_path / "straight", "--epochs", 2, *common))[0] == 0
    assert _train(capsys, *_args(data_dir, tmp_path / "split", "--epochs", 1, *common))[0] == 0
    status, out, _ = _train(capsys, "train", "--resume", str(tmp_path / "split" / "last.safetensors"),
                            "--epochs", "2", "--threads", "1", "--data-dir", str(data_dir))
    assert status == 0 and "resumed" in out
    _assert_same_weights(tmp_path / "straight" / "last.safetensors", tmp_path / "split" / "last.safetensors")
    straight = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    split = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(straight, split, strict=True):
        assert (a["train_loss"], a["test_acc"]) == (b["train_loss"], b["test_acc"])


def test_resume_refuses_to_change_what_a_step_is(capsys, data_dir, tmp_path):
    _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 1, "--limit-train", 32))
    status, _, err = _train(capsys, "train", "--resume", str(tmp_path / "run" / "last.safetensors"),
                            "--model", "resnet20", "--data-dir", str(data_dir))
    assert status == 1 and "--model" in err and "lenet5" in err


def test_a_fresh_run_does_not_overwrite_an_existing_one(capsys, data_dir, tmp_path):
    _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 1, "--limit-train", 32))
    before = (tmp_path / "run" / "last.safetensors").read_bytes()
    status, _, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 1, "--limit-train", 32))
    assert status == 1 and "--resume" in err
    assert (tmp_path / "run" / "last.safetensors").read_bytes() == before


def test_bad_settings_are_refused(capsys, data_dir, tmp_path):
    status, _, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--model", "nope"))
    assert status == 1 and "unknown model 'nope'" in err and "lenet5" in err
    status, _, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--label-smoothing", 1.5))
    assert status == 1 and "label_smoothing" in err


no_gpu = pytest.mark.skipif(pyconvnet.cuda.is_available(), reason="this machine has a usable GPU")


@pytest.mark.parametrize("device", ["cpu", pytest.param("auto", marks=no_gpu)])
def test_device_cpu_or_auto_without_a_gpu_trains_on_the_cpu_and_says_so(capsys, data_dir, tmp_path, device):
    status, out, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 1, "--limit-train", 32,
                                             "--device", device))
    assert status == 0, err
    assert re.search(r"\) on cpu into ", out), out
    (record,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert record["device"] == "cpu"


@no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_device_cuda_without_a_gpu_is_a_one_line_error(capsys, data_dir, tmp_path, device):
    status, out, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--device", device))
    assert status == 1
    reason = pyconvnet.cuda.unavailable_reason()
    assert reason and err == f"pyconvnet train: error: device {device!r}: CUDA is not available: {reason}\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device", ["gpu", "mps", "cuda:x", ""])
def test_a_device_that_is_none_is_refused(capsys, data_dir, tmp_path, device):
    status, _, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--device", device))
    assert status == 1
    assert err == f"pyconvnet train: error: device must be auto, cpu, cuda or cuda:N, got {device!r}\n"


def test_nan_loss_stops_the_run_without_writing_a_checkpoint(capsys, data_dir, tmp_path):
    status, _, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 2, "--limit-train", 128,
                                           "--lr", 1e10, "--scheduler", "none"))
    assert status == 1
    assert re.search(r"loss is (nan|inf|-inf) in epoch 1 at step \d+; no checkpoint was written", err), err
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_nan_loss_keeps_the_last_good_checkpoint(capsys, data_dir, tmp_path):
    last = tmp_path / "run" / "last.safetensors"
    _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 1, "--limit-train", 64, "--scheduler", "none"))
    good = last.read_bytes()
    status, _, err = _train(capsys, "train", "--resume", str(last), "--epochs", "3", "--lr", "1e10",
                            "--threads", "1", "--data-dir", str(data_dir))
    assert status == 1
    assert re.search(r"loss is (nan|inf|-inf) in epoch 2 at step \d+; .*last.safetensors keeps the state after "
                     r"epoch 1", err), err
    assert last.read_bytes() == good
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="needs POSIX SIGINT")
def test_ctrl_c_saves_and_a_resumed_run_matches_an_uninterrupted_one(capsys, data_dir, tmp_path):
    """SIGINT lands in epoch 2 or later of 20 (usually mid-epoch); the resumed run must end
    with the same weights as a run never interrupted."""
    args = _args(data_dir, tmp_path / "interrupted", "--epochs", 20, "--limit-train", 64, "--batch-size", 16)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-m", "pyconvnet", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in child.stdout:
            if line.startswith("epoch 1/20"):
                child.send_signal(signal.SIGINT)
                break
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert re.search(r"interrupted (in epoch \d+ after step \d+|after epoch \d+); saved .*last\.safetensors", out), out
    assert "Traceback" not in err
    saved = pyconvnet.load(tmp_path / "interrupted" / "last.safetensors")
    assert 1 <= saved["epoch"] < 20

    status, out, _ = _train(capsys, "train", "--resume", str(tmp_path / "interrupted" / "last.safetensors"),
                            "--threads", "1", "--data-dir", str(data_dir))
    assert status == 0 and out.strip().splitlines()[-1].startswith("final test accuracy:")
    status, _, _ = _train(capsys, *_args(data_dir, tmp_path / "straight", "--epochs", 20, "--limit-train", 64,
                                         "--batch-size", 16))
    assert status == 0
    _assert_same_weights(tmp_path / "straight" / "last.safetensors", tmp_path / "interrupted" / "last.safetensors")


def test_lenet5_learns_real_fashion_mnist(capsys, tmp_path, real_fashion_mnist):
    folder = str(real_fashion_mnist[0].folder)
    status, out, _ = _train(capsys, "train", "--data-dir", folder, "--out", str(tmp_path / "run"),
                            "--epochs", "2", "--batch-size", "64", "--limit-train", "5000", "--limit-test", "1000")
    assert status == 0
    accuracy = float(re.fullmatch(r"final test accuracy: (\S+)", out.strip().splitlines()[-1]).group(1))
    assert accuracy > 0.5, out  # chance is 0.1


# The deep bottleneck ResNets in their small-input variant: over ten seconds even for two steps.
_SLOW_TO_TRAIN = {"resnet101", "resnet152"}


@pytest.mark.parametrize("model", [pytest.param(name, marks=[pytest.mark.slow] * (name in _SLOW_TO_TRAIN))
                                   for name in pyconvnet.models.list_models()])
def test_every_model_trains_on_28x28_images_with_its_recipe(capsys, data_dir, tmp_path, model, monkeypatch):
    """Each recipe fits its model to Fashion-MNIST's 1x28x28 images (VGG's five pools, for one,
    need the 32x32 its small-input variant pads to); two steps of four images and the
    evaluation give finite losses. The batch is the recipe's only setting overridden; the
    pictures, seconds of matplotlib per run, are test_viz's subject and left out here."""
    monkeypatch.setattr(viz, "available", lambda: False)
    status, _, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--model", model, "--epochs", 1,
                                           "--limit-train", 8, "--batch-size", 4, "--limit-test", 4))
    assert status == 0, err
    (record,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["test_loss"]), record
    assert pyconvnet.load(tmp_path / "run" / "last.safetensors")["config"]["lr"] == recipe_for(model)["lr"]


def test_amp_bf16_trains_in_bfloat16_and_is_recorded(capsys, data_dir, tmp_path):
    runs = {}
    for amp in ("none", "bf16"):
        status, _, err = _train(capsys, *_args(data_dir, tmp_path / amp, "--epochs", 1, "--limit-train", 64,
                                               "--amp", amp))
        assert status == 0, err
        runs[amp] = _weights(tmp_path / amp / "last.safetensors")
        assert pyconvnet.load(tmp_path / amp / "last.safetensors")["config"]["amp"] == amp
    # the bf16 steps round the convolution and linear operands: the weights drift apart, a little
    differences = [np.abs(runs["bf16"][name] - runs["none"][name]).max() for name in runs["none"]]
    assert 1e-6 < max(differences) < 0.05
    with pytest.raises(SystemExit) as stopped:
        _train(capsys, *_args(data_dir, tmp_path / "bad", "--amp", "fp8"))
    assert stopped.value.code == 2 and "--amp" in capsys.readouterr().err
    assert not pyconvnet.is_autocast_enabled("cpu")
