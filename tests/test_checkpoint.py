"""pyconvnet.save / pyconvnet.load: round trips (file names and file objects), torch.load's
map_location / weights_only / mmap arguments, crash safety under SIGKILL, refusal of damaged files,
and reading files written by torch.save (tests/test_torch_weights.py covers those in depth)."""

import io
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyconvnet
from pyconvnet import checkpoint


def _assert_same(actual, expected, where="obj"):
    """Equal values of equal types, recursively; arrays and Tensors compared bit for bit."""
    assert type(actual) is type(expected), f"{where}: {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert type(next(k for k in actual if k == key)) is type(key), f"{where}: key type of {key!r}"
            _assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f"{where}: length"
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, pyconvnet.Tensor):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        assert actual.requires_grad == expected.requires_grad, where
        np.testing.assert_array_equal(actual.detach().numpy(), expected.detach().numpy(), err_msg=where)
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert actual.dtype == expected.dtype and np.shape(actual) == np.shape(expected), where
        assert np.asarray(actual).tobytes() == np.asarray(expected).tobytes(), where
    elif isinstance(expected, float) and np.isnan(expected):
        assert np.isnan(actual), where
    else:
        assert actual == expected, where
        if isinstance(expected, float):
            assert np.copysign(1.0, actual) == np.copysign(1.0, expected), f"{where}: sign of zero"


def _every_kind_of_value():
    rng = np.random.default_rng(0)
    generator = np.random.Generator(np.random.PCG64(12345))
    generator.standard_normal(3)
    return {
        "none": None,
        "bools": [True, False],
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**100],
        "floats": [0.1, -0.0, 1e-308, float("inf"), float("-inf"), float("nan")],
        "text": ["", "ascii", "ünïcødé ✓", "a/b", 'quote " and \\ backslash'],
        "tuple": (1, "two", (3.0, None)),
        "empty": [[], (), {}],
        "int keys": {0: "zero", 1: {"nested": [1, 2]}, -5: None},
        "mixed keys": {1: "int", "1": "str", 1.5: "float", None: "none", False: "bool"},
        "model": {
            "features.0.weight": pyconvnet.tensor(rng.standard_normal((6, 1, 5, 5)).astype(np.float32)),
            "features.0.bias": pyconvnet.zeros(6),
            "bn.num_batches_tracked": pyconvnet.tensor(7),
        },
        "tensors": [
            pyconvnet.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True),
            pyconvnet.tensor(np.arange(-3, 3)),
            pyconvnet.tensor(np.array([True, False, True])),
            pyconvnet.tensor(2.5),
            pyconvnet.zeros(0, 3),
        ],
        "arrays": [
            np.arange(24, dtype=dtype).reshape(2, 3, 4)
            for dtype in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                          np.uint8, np.uint16, np.uint32, np.uint64)
        ] + [np.array([True, False]), np.zeros((0, 5), np.float32), np.array(3.0),
             np.asfortranarray(np.arange(6.0).reshape(2, 3))],
        "numpy scalars": [np.float32(1.5), np.int64(-7), np.uint8(255), np.bool_(True)],
        "rng": generator.bit_generator.state,
    }


def test_round_trip_of_every_kind_of_value(tmp_path):
    value = _every_kind_of_value()
    path = tmp_path / "all.safetensors"
    pyconvnet.save(value, path)
    _assert_same(pyconvnet.load(path), value)
    _assert_same(pyconvnet.load(str(path)), value)


@pytest.mark.parametrize("value", [None, 3, "text", [1, 2], pyconvnet.ones(2, 2), np.eye(3)], ids=repr)
def test_round_trip_of_top_level_values(tmp_path, value):
    pyconvnet.save(value, tmp_path / "one")
    _assert_same(pyconvnet.load(tmp_path / "one"), value)


def test_loaded_tensors_are_writable_and_independent(tmp_path):
    pyconvnet.save({"a": pyconvnet.ones(3), "b": np.ones(3)}, tmp_path / "c")
    loaded = pyconvnet.load(tmp_path / "c")
    loaded["a"].add_(1)
    loaded["b"] += 1
    np.testing.assert_array_equal(loaded["a"].numpy(), [2, 2, 2])


def test_rng_state_restores_the_generator(tmp_path):
    generator = np.random.Generator(np.random.PCG64(99))
    generator.random(5)
    pyconvnet.save({"state": generator.bit_generator.state}, tmp_path / "rng")
    expected = generator.random(4)
    restored = np.random.Generator(np.random.PCG64())
    restored.bit_generator.state = pyconvnet.load(tmp_path / "rng")["state"]
    np.testing.assert_array_equal(restored.random(4), expected)


def test_tensors_are_named_by_their_place_for_other_readers(tmp_path):
    from safetensors.numpy import load_file

    weight = pyconvnet.randn(2, 3)
    pyconvnet.save({"model": {"fc.weight": weight}, "optimizer": {"state": {0: {"momentum_buffer": weight}}}},
                   tmp_path / "c")
    arrays = load_file(tmp_path / "c")
    assert sorted(arrays) == ["model/fc.weight", "optimizer/state/0/momentum_buffer"]
    np.testing.assert_array_equal(arrays["model/fc.weight"], weight.numpy())


def test_colliding_places_keep_both_values(tmp_path):
    value = {1: np.zeros(2), "1": np.ones(2), "a/b": np.full(2, 2.0), "a": {"b": np.full(2, 3.0)}}
    pyconvnet.save(value, tmp_path / "c")
    _assert_same(pyconvnet.load(tmp_path / "c"), value)


@pytest.mark.parametrize(
    "value, where",
    [
        ({"a": object()}, "a"),
        ({"a": [1, {2, 3}]}, "a/1"),
        ({"a": b"bytes"}, "a"),
        ({(1, 2): 3}, "top level"),
        ({"a": np.array(["text"])}, "a"),
        ({"a": np.array([1 + 2j])}, "a"),
        ({"a": np.array([None], dtype=object)}, "a"),
    ],
)
def test_unstorable_values_raise_type_error_naming_the_place(tmp_path, value, where):
    with pytest.raises(TypeError, match=where):
        pyconvnet.save(value, tmp_path / "c")
    assert os.listdir(tmp_path) == []


def test_a_whole_model_or_optimizer_is_refused_with_the_state_dict_hint(tmp_path):
    net = pyconvnet.nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"cannot store Linear at the top level \(.*save its state_dict\(\)"):
        pyconvnet.save(net, tmp_path / "c")
    with pytest.raises(TypeError, match=r"cannot store SGD at optimizer \(.*state_dict\(\)"):
        pyconvnet.save({"optimizer": pyconvnet.optim.SGD(net.parameters(), lr=0.1)}, tmp_path / "c")
    assert os.listdir(tmp_path) == []


def test_round_trip_through_file_objects(tmp_path):
    value = _every_kind_of_value()
    buffer = io.BytesIO()
    pyconvnet.save(value, buffer)
    buffer.seek(0)
    _assert_same(pyconvnet.load(buffer), value)
    with open(tmp_path / "c.pt", "wb") as file:
        file.write(b"prefix")
        pyconvnet.save(value, file)
    with open(tmp_path / "c.pt", "rb") as file:
        assert file.read(6) == b"prefix"
        _assert_same(pyconvnet.load(file), value)


def test_a_training_scripts_checkpoint_resumes_the_model(tmp_path):
    net = pyconvnet.nn.Sequential(pyconvnet.nn.Conv2d(1, 3, 3), pyconvnet.nn.BatchNorm2d(3), pyconvnet.nn.Flatten(),
                                  pyconvnet.nn.Linear(12, 2))
    net(pyconvnet.randn(4, 1, 4, 4))  # moves the batch-norm statistics and its int64 counter
    path = tmp_path / "ckpt.pth"
    pyconvnet.save({"net": net.state_dict(), "acc": 93.1, "epoch": 7}, path)
    loaded = pyconvnet.load(path, map_location="cpu", weights_only=True)
    assert loaded["acc"] == 93.1 and loaded["epoch"] == 7
    counter = loaded["net"]["1.num_batches_tracked"]
    assert counter.dtype == pyconvnet.int64 and counter.item() == 1
    fresh = pyconvnet.nn.Sequential(pyconvnet.nn.Conv2d(1, 3, 3), pyconvnet.nn.BatchNorm2d(3),
                                    pyconvnet.nn.Flatten(), pyconvnet.nn.Linear(12, 2))
    fresh.load_state_dict(loaded["net"])
    net.eval()
    fresh.eval()
    x = pyconvnet.randn(2, 1, 4, 4)
    np.testing.assert_array_equal(fresh(x).detach().numpy(), net(x).detach().numpy())


def test_the_same_checkpoint_loads_like_torchs(tmp_path):
    torch = pytest.importorskip("torch")
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    steps = np.array([3, -1], dtype=np.int64)
    mask = np.array([True, False])

    def checkpoint_of(tensor):
        return {"net": {"w": tensor(weight), "steps": tensor(steps), "mask": tensor(mask)}, "acc": 93.1, "epoch": 7,
                "best": None, "name": "resnet", "history": [0.5, 0.25], "betas": (0.9, 0.999)}

    ours, theirs = io.BytesIO(), io.BytesIO()
    pyconvnet.save(checkpoint_of(pyconvnet.tensor), ours)
    torch.save(checkpoint_of(torch.tensor), theirs)
    ours.seek(0)
    theirs.seek(0)
    a = pyconvnet.load(ours, map_location="cpu", weights_only=True)
    b = torch.load(theirs, map_location="cpu", weights_only=True)
    assert {k: v for k, v in a.items() if k != "net"} == {k: v for k, v in b.items() if k != "net"}
    assert list(a["net"]) == list(b["net"])
    for key in b["net"]:
        assert str(a["net"][key].dtype) == str(b["net"][key].dtype).replace("torch.", "")
        np.testing.assert_array_equal(a["net"][key].numpy(), b["net"][key].numpy())


class _Device:
    """A device object as torch.device is seen: a ``type`` and a str form."""

    def __init__(self, name):
        self.type = name.partition(":")[0]
        self.name = name

    def __str__(self):
        return self.name


@pytest.mark.parametrize(
    "map_location",
    [None, "cpu", "cpu:0", _Device("cpu"), {"cuda:0": "cpu"}, {"cpu": "cpu"}, {"cpu": _Device("cpu")},
     lambda storage, location: storage, lambda storage, location: None],
    ids=["none", "cpu", "cpu:0", "device", "dict-other", "dict-cpu", "dict-device", "identity-fn", "none-fn"],
)
@pytest.mark.parametrize("weights_only", [None, True, False])
def test_map_location_and_weights_only_accept_torchs_forms(saved, map_location, weights_only):
    path, _ = saved
    loaded = pyconvnet.load(path, map_location=map_location, weights_only=weights_only)
    assert loaded["epoch"] == 3 and loaded["lr"] == 0.1
    np.testing.assert_array_equal(loaded["w"].numpy(), np.arange(12, dtype=np.float32).reshape(3, 4))


def test_map_location_accepts_a_torch_device(saved):
    torch = pytest.importorskip("torch")
    path, _ = saved
    assert pyconvnet.load(path, map_location=torch.device("cpu"))["epoch"] == 3
    with pytest.raises(RuntimeError, match="no GPU backend"):
        pyconvnet.load(path, map_location=torch.device("cuda", 0))


def test_map_location_function_sees_every_tensor_and_its_result_is_used(tmp_path):
    pyconvnet.save({"a": pyconvnet.ones(2), "b": [pyconvnet.zeros(3), (np.ones(2), 5)]}, tmp_path / "c")
    seen = []

    def doubled(tensor, location):
        seen.append((tuple(tensor.shape), location))
        return tensor * 2

    loaded = pyconvnet.load(tmp_path / "c", map_location=doubled)
    assert sorted(seen) == [((2,), "cpu"), ((3,), "cpu")]
    np.testing.assert_array_equal(loaded["a"].numpy(), [2.0, 2.0])
    assert isinstance(loaded["b"][1], tuple) and loaded["b"][1][1] == 5
    np.testing.assert_array_equal(loaded["b"][1][0], np.ones(2))  # arrays are not tensors: left alone


@pytest.mark.parametrize(
    "map_location,error,match",
    [
        ("cuda", RuntimeError, "no GPU backend"),
        ("cuda:1", RuntimeError, "'cuda:1'.*no GPU backend"),
        (_Device("cuda:0"), RuntimeError, "no GPU backend"),
        ({"cpu": "cuda:0"}, RuntimeError, "no GPU backend"),
        ("mps", RuntimeError, "mps device"),
        ("banana", ValueError, "not a device"),
        (3, TypeError, "map_location must be"),
        (lambda storage, location: "cpu", TypeError, "must return a Tensor or None"),
    ],
)
def test_bad_map_locations_raise_clear_errors(saved, map_location, error, match):
    path, _ = saved
    with pytest.raises(error, match=match):
        pyconvnet.load(path, map_location=map_location)


def test_mmap_needs_a_file_name(saved):
    path, data = saved
    assert pyconvnet.load(path, mmap=True)["epoch"] == 3
    with pytest.raises(ValueError, match="file name.*mmap"):
        pyconvnet.load(io.BytesIO(data), mmap=True)


def test_f_must_be_a_file_name_or_a_binary_file_object(tmp_path):
    with pytest.raises(TypeError, match="f must be a file name .* write"):
        pyconvnet.save({}, 3)
    with pytest.raises(TypeError, match="f must be a file name .* read"):
        pyconvnet.load(3)
    pyconvnet.save({}, tmp_path / "c")
    with open(tmp_path / "c", encoding="latin-1") as text, pytest.raises(TypeError, match="binary mode"):
        pyconvnet.load(text)


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy-pickle"])
def test_a_file_written_by_torch_save_loads_from_a_name_or_a_file_object(tmp_path, zipfile):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=zipfile)
    assert pyconvnet.load(path)["w"].tolist() == [1.0, 1.0]
    assert pyconvnet.load(io.BytesIO(path.read_bytes()))["w"].tolist() == [1.0, 1.0]


def test_save_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "last.safetensors"
    pyconvnet.save({"epoch": 1}, path)
    pyconvnet.save({"epoch": 2}, path)
    assert pyconvnet.load(path) == {"epoch": 2}
    assert os.listdir(tmp_path) == ["last.safetensors"]


# A child process saves a small checkpoint, then starts saving a 32 MiB one whose first write()
# stalls halfway (standing in for a crash at that moment); the parent SIGKILLs it there.
_CRASHING_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import pyconvnet

    path = sys.argv[1]
    pyconvnet.save({"epoch": 1, "weight": np.arange(10, dtype=np.float32)}, path)
    real_write = os.write

    def stalled_write(fd, data):
        written = real_write(fd, data[: len(data) // 2])
        print("mid-save", flush=True)
        time.sleep(60)
        return written

    os.write = stalled_write
    pyconvnet.save({"epoch": 2, "weight": np.ones(8 << 20, dtype=np.float32)}, path)
    print("saved", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.safetensors"
    child = subprocess.Popen([sys.executable, "-c", _CRASHING_CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().strip()
        assert line == "mid-save", f"the child never stalled inside save's write (printed {line!r})"
        temporaries = [name for name in os.listdir(tmp_path) if name != "last.safetensors"]
        assert len(temporaries) == 1 and 0 < (tmp_path / temporaries[0]).stat().st_size < 32 << 20
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    loaded = pyconvnet.load(path)
    assert loaded["epoch"] == 1
    np.testing.assert_array_equal(loaded["weight"], np.arange(10, dtype=np.float32))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    pyconvnet.save({"epoch": 3, "w": pyconvnet.tensor(np.arange(12, dtype=np.float32).reshape(3, 4)), "lr": 0.1}, path)
    return path, path.read_bytes()


def test_every_truncation_is_refused_naming_the_file(saved):
    path, data = saved
    for length in range(len(data)):
        path.write_bytes(data[:length])
        with pytest.raises(ValueError, match=str(path.name)):
            pyconvnet.load(path)


def test_every_corrupted_byte_is_refused_naming_the_file(saved):
    path, data = saved
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        path.write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match=str(path.name)):
            pyconvnet.load(path)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a pyconvnet checkpoint"):
        pyconvnet.load(tmp_path / "plain.safetensors")


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        pyconvnet.load(tmp_path / "absent.safetensors")


def test_checkpoint_module_exports():
    assert pyconvnet.save is checkpoint.save and pyconvnet.load is checkpoint.load
