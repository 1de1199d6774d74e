"""Files written by torch.save (zip and legacy formats) read without torch: torchvision state_dicts
give torchvision's logits, malicious pickles are refused unrun, corrupt files raise ValueError,
and the builders' weights= takes a path."""

import os
import pickle
import zipfile

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import models

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

_SMALL = ["resnet18", "resnet34", "resnet50", "resnet101", "googlenet", "vgg11", "vgg11_bn"]
_BIG = ["resnet152", "alexnet", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]


def _torchvision_model(name):
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(weights=None, num_classes=10, **kwargs).eval()
    with torch.no_grad():  # non-trivial running statistics, so eval-mode batch norm is exercised
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(7)
    return model


def _check_logits(name, tmp_path, legacy):
    reference = _torchvision_model(name)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    state = pcn.load(path)
    assert next(iter(state.values())).dtype == pcn.float32  # the first convolution's weight
    if name.endswith("_bn") or name.startswith(("resnet", "googlenet")):
        tracked = next(key for key in state if key.endswith("num_batches_tracked"))
        assert state[tracked].dtype == pcn.int64 and state[tracked].item() == 7
    model = getattr(models, name)(num_classes=10, weights=path).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    with pcn.no_grad():
        actual = model(pcn.from_numpy(x)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", _SMALL)
def test_torchvision_state_dict_gives_torchvision_logits(name, legacy, tmp_path):
    _check_logits(name, tmp_path, legacy)


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", _BIG)
def test_big_torchvision_state_dict_gives_torchvision_logits(name, legacy, tmp_path):
    _check_logits(name, tmp_path, legacy)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_dtypes_views_and_plain_values(tmp_path, legacy):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    saved = {
        "net": {"w": base.t()[1:3], "h": torch.tensor([1.5, -2.25], dtype=torch.float16),
                "b": torch.tensor([0.5, 3.0], dtype=torch.bfloat16), "i": torch.tensor([3, -4], dtype=torch.int32),
                "m": torch.tensor([True, False]), "p": torch.nn.Parameter(torch.ones(2))},
        "acc": 93.1, "epoch": 7, "shape": torch.Size([2, 3]), "name": "run",
    }
    path = tmp_path / "checkpoint.pt"
    torch.save(saved, path, _use_new_zipfile_serialization=not legacy)
    loaded = pcn.load(path, map_location="cpu")
    assert loaded["acc"] == 93.1 and loaded["epoch"] == 7 and loaded["name"] == "run"
    assert tuple(loaded["shape"]) == (2, 3)
    net = loaded["net"]
    np.testing.assert_array_equal(net["w"].numpy(), base.t()[1:3].numpy().astype(np.float32))
    assert net["w"].dtype == pcn.float32
    np.testing.assert_array_equal(net["h"].numpy(), [1.5, -2.25])
    np.testing.assert_array_equal(net["b"].numpy(), [0.5, 3.0])
    assert net["i"].dtype == pcn.int64 and net["i"].tolist() == [3, -4]
    assert net["m"].dtype == pcn.bool_ and net["m"].tolist() == [True, False]
    assert net["p"].requires_grad and net["p"].tolist() == [1.0, 1.0]
    state = pcn.load_state_dict_file(path)
    assert sorted(state) == ["b", "h", "i", "m", "p", "w"]


def test_load_state_dict_file_unwraps_and_strips_module_prefix(tmp_path):
    reference = torch.nn.Linear(3, 2)
    wrapped = {f"module.{key}": value for key, value in reference.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({"model": wrapped, "epoch": 3}, path)
    state = pcn.load_state_dict_file(path)
    assert sorted(state) == ["bias", "weight"]
    np.testing.assert_array_equal(state["weight"].numpy(), reference.weight.detach().numpy())


def test_load_state_dict_file_reads_plain_safetensors(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"weight": np.ones((2, 3), np.float32), "bias": np.zeros(2, np.float64)}, str(path))
    model = pcn.nn.Linear(3, 2)
    model.load_state_dict(pcn.load_state_dict_file(path))
    assert model.weight.detach().numpy().tolist() == [[1.0] * 3] * 2


def test_load_state_dict_reports_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"weight": torch.ones(2, 3), "extra": torch.ones(1)}, path)
    model = pcn.nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "extra"') as error:
        model.load_state_dict(pcn.load_state_dict_file(path))
    assert 'Missing key(s) in state_dict: "bias"' in str(error.value)
    result = model.load_state_dict(pcn.load_state_dict_file(path), strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    assert model.weight.detach().numpy().tolist() == [[1.0] * 3] * 2


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("payload, refused", [
    (_System, "posix.system|os.system"), (_Eval, "builtins.eval|__builtin__.eval"),
    (lambda marker: {"state": {"deep": [torch.ones(1), _System(marker)]}}, "posix.system|os.system"),
], ids=["os.system", "eval", "nested"])
def test_malicious_pickle_is_refused_without_running(tmp_path, legacy, payload, refused):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save(payload(marker), path, _use_new_zipfile_serialization=not legacy)
    for read in (pcn.load, pcn.load_state_dict_file, lambda p: models.resnet18(weights=p)):
        with pytest.raises(pickle.UnpicklingError, match=f"refusing to load the global ({refused})"):
            read(path)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_or_corrupt_file_raises_value_error(tmp_path, legacy):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.ones(100)}, path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 10):
        broken = tmp_path / f"cut{cut}.pth"
        broken.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.*.pth"):
            pcn.load(broken)
    if not legacy:
        corrupt = tmp_path / "missing.pth"
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(corrupt, "w") as target:
            for entry in source.namelist():
                if "/data/" not in entry:
                    target.writestr(entry, source.read(entry))
        with pytest.raises(ValueError, match="missing.pth: truncated or corrupt"):
            pcn.load(corrupt)


def test_builder_weights_names_still_raise(tmp_path):
    with pytest.raises(ValueError, match="not bundled.*downloadable here; pass weights= the path"):
        models.resnet18(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="pretrained=True.*not bundled"):
        models.resnet18(pretrained=True)
    with pytest.raises(FileNotFoundError):
        models.resnet18(weights=tmp_path / "absent.pth")


def test_a_pickle_cannot_alter_the_allowed_globals(tmp_path):
    # GLOBAL torch.FloatStorage, then BUILD {'dtype': 'O'} on it (a legacy-format file, written by hand).
    evil = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00Os" + b"b."
    header = b"".join(pickle.dumps(value, protocol=2) for value in (0x1950A86A20F9469CFC6C, 1001, {}))
    path = tmp_path / "evil.pt"
    path.write_bytes(header + evil)
    with pytest.raises(ValueError, match="evil.pt: truncated or corrupt"):
        pcn.load(path)
    saved = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, saved)
    assert pcn.load(saved)["w"].dtype == pcn.float32


def test_load_state_dict_file_reads_pyconvnet_checkpoints_and_builders_take_str_paths(tmp_path):
    pcn.manual_seed(0)
    source = models.resnet18(num_classes=4)
    path = tmp_path / "ours.safetensors"
    pcn.save({"state_dict": source.state_dict(), "epoch": 2}, path)
    model = models.resnet18(num_classes=4, weights=str(path))
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key].detach().numpy(), value.detach().numpy())
    pcn.save({"epoch": 2}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="plain.safetensors: does not hold a state_dict"):
        pcn.load_state_dict_file(tmp_path / "plain.safetensors")


def test_a_pyconvnet_checkpoint_whose_header_size_looks_like_a_pickle_loads(tmp_path):
    # A safetensors header of 0x280 bytes starts the file with b"\x80\x02", a pickle's first bytes.
    path = tmp_path / "ours.safetensors"
    for padding in range(1000):
        pcn.save({"w": pcn.ones(2), "p" * (padding + 1): pcn.zeros(1)}, path)
        if path.read_bytes()[:2] == b"\x80\x02":
            break
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert pcn.load(path)["w"].tolist() == [1.0, 1.0]
    assert pcn.load_state_dict_file(path)["w"].tolist() == [1.0, 1.0]
