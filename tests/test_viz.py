"""``pyconvnet plot`` and ``pyconvnet.viz``: the four PNG files of a tiny run on generated IDX data."""

import subprocess
import sys

import numpy as np
import pytest

image_io = pytest.importorskip("matplotlib.image")

from pyconvnet import cli, models, train, viz  # noqa: E402
from pyconvnet._runs import build_dataset  # noqa: E402
from pyconvnet.nn import functional as F  # noqa: E402
from pyconvnet.creation import from_numpy  # noqa: E402
from test_train import _args, _restore_threads, data_dir  # noqa: E402,F401 (fixtures)

# (minimum height, minimum width) in pixels of each picture at 100 dpi.
MIN_SIZES = {"curves.png": (300, 1000), "kernels.png": (300, 300), "feature_maps.png": (800, 800),
             "confusion.png": (500, 500)}


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert cli.main(_args(data_dir, out, "--epochs", 2, "--limit-train", 64, "--optimizer", "adam",
                          "--lr", 0.003)) == 0
    return out


def _check_png(path, min_size):
    picture = image_io.imread(path)
    assert picture.ndim == 3 and picture.shape[2] in (3, 4), picture.shape
    assert picture.shape[0] >= min_size[0] and picture.shape[1] >= min_size[1], (path, picture.shape)
    assert picture[..., :3].std() > 0.05, f"{path} is blank"


def test_train_leaves_the_pictures_in_its_run_directory(run_dir):
    for name, size in MIN_SIZES.items():
        _check_png(run_dir / name, size)


def test_plot_rewrites_the_four_pictures(run_dir, data_dir, capsys):
    for name in MIN_SIZES:
        (run_dir / name).unlink()
    assert cli.main(["plot", str(run_dir), "--data-dir", str(data_dir), "--threads", "1"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(run_dir / name) for name in MIN_SIZES]
    for name, size in MIN_SIZES.items():
        _check_png(run_dir / name, size)


def test_stages_are_the_first_conv_then_the_last_output_at_each_size(run_dir):
    model, _ = train.load_model(run_dir / "best.safetensors")
    image = np.random.default_rng(1).standard_normal((1, 28, 28)).astype(np.float32)
    stages = viz.stage_activations(model, image)
    assert [label for label, _ in stages] == [
        "features.0 (Conv2d): 6@28x28", "features.1 (ReLU): 6@28x28", "features.2 (MaxPool2d): 6@14x14",
        "features.4 (ReLU): 16@10x10", "features (Sequential): 16@5x5"]
    # The first conv's output as it was, not as the in-place ReLU after it left it.
    padded = F.pad(from_numpy(image[None]), (2, 2, 2, 2))
    conv = model.features[0]
    expected = F.conv2d(padded, conv.weight, conv.bias).detach().numpy()[0]
    np.testing.assert_allclose(stages[0][1], expected, rtol=1e-5, atol=1e-5)
    assert (stages[0][1] < 0).any() and (stages[1][1] >= 0).all()


def test_confusion_matrix_counts_every_test_image_and_agrees_with_evaluate(run_dir, data_dir):
    model, _ = train.load_model(run_dir / "best.safetensors")
    test_set = build_dataset("fashion-mnist", False, False, str(data_dir), 32)
    counts = viz.confusion_matrix(model, test_set, 10)
    _, accuracy = train.evaluate(model, test_set)
    assert counts.sum() == 32
    assert counts.sum(axis=1).tolist() == np.bincount([label for _, label in test_set], minlength=10).tolist()
    assert np.trace(counts) / 32 == pytest.approx(accuracy)


def test_colour_kernels_are_drawn_as_rgb(tmp_path):
    path = viz.plot_kernels(models.lenet5(in_channels=3), str(tmp_path / "kernels.png"))
    _check_png(path, (300, 300))


def test_plot_rejects_a_directory_without_a_run(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 1
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_plot_without_matplotlib_names_the_extra(run_dir, data_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert cli.main(["plot", str(run_dir), "--data-dir", str(data_dir)]) == 1
    assert "pip install 'pyconvnet[viz]'" in capsys.readouterr().err


def test_importing_pyconvnet_does_not_import_matplotlib():
    code = "import sys, pyconvnet, pyconvnet.viz, pyconvnet.train, pyconvnet.cli; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
