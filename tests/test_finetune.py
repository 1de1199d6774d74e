"""Fine-tuning from the command line and ``pyconvnet predict``: end to end on a generated image folder
(three clearly coloured classes), flat and ImageNet-style layouts, with a weights file written by
torch.save in torchvision's names."""

import json
import os
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

import pyconvnet as pcn  # noqa: E402
from pyconvnet import backend, cli, finetune, models, predict  # noqa: E402

_COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}
_PER_CLASS = 12
_SIZE = 64  # the crops trained on: small enough for seconds on one thread


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = backend.get_num_threads()
    yield
    backend.set_num_threads(threads)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """root/<colour>/<i>.png: noisy 40x48 images of one colour per class."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, rgb in _COLOURS.items():
        (root / name).mkdir()
        for i in range(_PER_CLASS):
            pixels = np.clip(np.array(rgb) + rng.integers(-30, 30, (40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def imagenet_layout(folder, tmp_path_factory):
    """The same images as root/train/<class> (the first 9 of each) and root/val/<class> (the rest)."""
    root = tmp_path_factory.mktemp("imagenet")
    for name in _COLOURS:
        for i in range(_PER_CLASS):
            split = root / ("train" if i < 9 else "val") / name
            split.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / name / f"{i}.png", split / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def weights(folder, tmp_path_factory):
    """A torchvision-shaped resnet18 weight file (1000-class head, int64 num_batches_tracked) standing in
    for ImageNet weights: random convolutions whose batch-norm statistics are those of these images, as a
    pretrained network's fit natural images."""
    pcn.manual_seed(0)
    model = models.resnet18()
    train_set, _, _ = finetune.image_folder_splits(str(folder), _SIZE, augment=False)
    batch = pcn.from_numpy(np.stack([image.numpy() for image, _ in train_set]))
    model.train()
    with pcn.no_grad():
        for _ in range(30):  # momentum 0.1: the running statistics converge to the batch's
            model(batch)
    path = tmp_path_factory.mktemp("weights") / "resnet18-test.pth"
    torch.save({key: torch.from_numpy(value.numpy().copy()) for key, value in model.state_dict().items()}, path)
    return path


def _run(capsys, *args):
    status = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _fine_tune(capsys, data, weights, out, *extra):
    return _run(capsys, "train", "--model", "resnet18", "--weights", weights, "--data", f"imagefolder:{data}",
                "--num-classes", "auto", "--image-size", _SIZE, "--batch-size", 9, "--threads", 1, "--out", out,
                *extra)


def test_frozen_fine_tune_then_predict_names_every_images_class(capsys, folder, weights, tmp_path):
    status, out, err = _fine_tune(capsys, folder, weights, tmp_path / "run", "--freeze-backbone", "--epochs", 6,
                                  "--lr", 0.03, "--val-split", 0.25)
    assert status == 0, err
    assert "27 train / 9 test images" in out and "the rest frozen" in out
    state = pcn.load(tmp_path / "run" / "last.safetensors")
    assert state["classes"] == ["blue", "green", "red"]
    assert state["preprocess"]["crop_size"] == _SIZE and state["model_kwargs"]["num_classes"] == 3
    assert state["config"]["folder"] == str(folder) and state["config"]["freeze_backbone"] is True
    # The optimizer holds the head alone; the frozen convolutions are the weight file's.
    assert [len(group["params"]) for group in state["optimizer"]["param_groups"]] == [2]
    loaded = torch.load(weights)
    for key in ("conv1.weight", "layer3.1.conv2.weight", "layer4.0.bn1.weight"):
        np.testing.assert_array_equal(state["model"][key].numpy(), loaded[key].numpy())
    assert state["model"]["fc.weight"].shape == (3, 512)
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["test_acc"] == 1.0
    assert (tmp_path / "run" / "confusion.png").is_file()  # the run's pictures draw an image folder's split

    status, out, err = _run(capsys, "predict", tmp_path / "run" / "best.safetensors", folder, "--top-k", 2)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 * len(_COLOURS) * _PER_CLASS
    for i in range(0, len(lines), 3):
        path, best, second = lines[i], lines[i + 1].split(), lines[i + 2].split()
        assert best[0] == os.path.basename(os.path.dirname(path)), lines[i:i + 3]
        assert float(best[1]) > float(second[1])

    images = [folder / name / "11.png" for name in _COLOURS]
    status, out, err = _run(capsys, "predict", tmp_path / "run" / "best.safetensors", *images, "--json")
    assert status == 0, err
    results = json.loads(out)
    assert [result["path"] for result in results] == [str(path) for path in images]
    assert [result["top"][0]["class"] for result in results] == list(_COLOURS)
    for result in results:
        assert len(result["top"]) == 3
        assert sum(entry["probability"] for entry in result["top"]) == pytest.approx(1.0)

    # The same through Python, on PIL images.
    classifier = predict.Classifier(tmp_path / "run" / "best.safetensors")
    pictures = [Image.open(path).convert("RGB") for path in images]
    assert [top[0][0] for top in classifier.predict(pictures, top_k=1)] == list(_COLOURS)
    assert tuple(classifier.transform(pictures[0]).shape) == (3, _SIZE, _SIZE)


def test_imagenet_layout_fine_tunes_every_layer_and_validates_on_val(capsys, imagenet_layout, weights, tmp_path):
    status, out, err = _fine_tune(capsys, imagenet_layout, weights, tmp_path / "run", "--epochs", 1)
    assert status == 0, err
    assert "27 train / 9 test images" in out
    state = pcn.load(tmp_path / "run" / "last.safetensors")
    assert state["classes"] == ["blue", "green", "red"]
    assert state["config"]["lr"] == 0.01  # the fine-tuning recipe, not resnet18's from-scratch one
    assert [len(group["params"]) for group in state["optimizer"]["param_groups"]] == [62]
    loaded = torch.load(weights)
    assert not np.array_equal(state["model"]["conv1.weight"].numpy(), loaded["conv1.weight"].numpy())
    status, out, err = _run(capsys, "eval", tmp_path / "run" / "last.safetensors", "--threads", 1)
    assert status == 0, err
    assert "test accuracy" in out
    onnx = pytest.importorskip("onnx")
    status, _, err = _run(capsys, "export", tmp_path / "run" / "last.safetensors", "--onnx", tmp_path / "m.onnx")
    assert status == 0, err
    dims = onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [dim.dim_value for dim in dims[1:]] == [3, _SIZE, _SIZE]  # the run's crops


def test_a_folder_without_two_images_per_class_or_val_cannot_be_split(capsys, weights, tmp_path):
    for name in _COLOURS:
        (tmp_path / "one" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), _COLOURS[name]).save(tmp_path / "one" / name / "0.png")
    status, _, err = _fine_tune(capsys, tmp_path / "one", weights, tmp_path / "run")
    assert status == 1 and "no validation split" in err


@pytest.mark.parametrize("extra, message", [
    (("--num-classes", 5), "--num-classes 5: the data has 3 classes"),
    (("--dataset", "cifar10"), "either --dataset or --data"),
])
def test_bad_fine_tuning_settings_are_refused(capsys, folder, weights, tmp_path, extra, message):
    status, _, err = _fine_tune(capsys, folder, weights, tmp_path / "run", *extra)
    assert status == 1 and message in err and len(err.splitlines()) == 1


def test_image_folder_settings_need_an_image_folder(capsys, tmp_path):
    status, _, err = _run(capsys, "train", "--freeze-backbone", "--image-size", 32, "--out", tmp_path / "run")
    assert status == 1 and "--freeze-backbone, --image-size need --data imagefolder:DIR" in err


def test_weights_of_another_architecture_are_refused(capsys, folder, tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save({key: torch.from_numpy(value.numpy().copy()) for key, value in models.resnet34().state_dict().items()},
               path)
    status, _, err = _fine_tune(capsys, folder, path, tmp_path / "run")
    assert status == 1 and len(err.splitlines()) == 1
    assert "does not fit ResNet" in err and "0 missing keys; 96 unexpected keys: layer1.2.conv1.weight, " in err


def test_predict_reports_a_missing_file_or_non_image_in_one_line(capsys, folder, weights, tmp_path):
    status, _, err = _fine_tune(capsys, folder, weights, tmp_path / "run", "--freeze-backbone", "--epochs", 1)
    assert status == 0, err
    checkpoint = tmp_path / "run" / "last.safetensors"
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    cases = [(tmp_path / "missing.png", "missing.png: no such file or directory"),
             (tmp_path / "notes.txt", "cannot decode"),
             (tmp_path / "empty", "no image files")]
    for path, message in cases:
        status, out, err = _run(capsys, "predict", checkpoint, path)
        assert status == 1 and out == ""
        assert err.startswith("pyconvnet predict: error: ") and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("builder, head", [("resnet18", "fc"), ("vgg11", "classifier.6"), ("alexnet", "classifier.6"),
                                           ("googlenet", "fc")])
def test_the_classifier_head_is_the_last_linear_layer(builder, head):
    model = models.get_model(builder, num_classes=4)
    name, layer = finetune.classifier_head(model)
    assert name == head and layer.out_features == 4
    finetune.freeze_backbone(model)
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert trainable == [f"{head}.weight", f"{head}.bias"]


def test_load_backbone_skips_the_heads_a_model_leaves_out(tmp_path):
    pcn.manual_seed(0)
    pretrained = models.googlenet(aux_logits=True).state_dict()  # torchvision's googlenet file keeps aux1/aux2
    path = tmp_path / "googlenet.pth"
    torch.save({key: torch.from_numpy(value.numpy().copy()) for key, value in pretrained.items()}, path)
    model = models.googlenet(num_classes=3)
    head = model.fc.weight.detach().numpy().copy()
    finetune.load_backbone(model, path)
    state = model.state_dict()
    assert not any(key.startswith("aux") for key in state)
    np.testing.assert_array_equal(state["inception5b.branch4.1.conv.weight"].numpy(),
                                  pretrained["inception5b.branch4.1.conv.weight"].numpy())
    np.testing.assert_array_equal(model.fc.weight.detach().numpy(), head)


def test_the_held_out_split_is_stratified_disjoint_and_the_same_whatever_the_train_limit(folder):
    train_set, test_set, classes = finetune.image_folder_splits(str(folder), _SIZE, val_split=0.25, seed=3)
    train, held_out = set(train_set.indices.tolist()), set(test_set.indices.tolist())
    assert classes == list(_COLOURS) and not train & held_out and len(train | held_out) == 3 * _PER_CLASS
    assert sorted(test_set.dataset.targets[i] for i in held_out) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    _, again, _ = finetune.image_folder_splits(str(folder), _SIZE, val_split=0.25, seed=3, limit_train=5)
    assert set(again.indices.tolist()) == held_out
    _, other_seed, _ = finetune.image_folder_splits(str(folder), _SIZE, val_split=0.25, seed=4)
    assert set(other_seed.indices.tolist()) != held_out
    image, label = test_set[0]
    assert tuple(image.shape) == (3, _SIZE, _SIZE) and label == test_set.dataset.targets[test_set.indices[0]]
