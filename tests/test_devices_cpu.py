"""The device API where no GPU can be used (this build or this machine): ``pcn.cuda`` answers as torch
does without CUDA and says why, asking for cuda storage raises with that reason, ``import pyconvnet``
loads nothing of the GPU side, ``kernels.<name>`` is the CPU kernel's behaviour, and a checkpoint
written from a GPU run loads on the CPU."""

import json
import subprocess
import sys

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import _C, checkpoint, devices, kernels

pytestmark = pytest.mark.skipif(pcn.cuda.is_available(), reason="these check a machine without a usable GPU")


def test_cuda_queries_answer_without_a_gpu():
    reason = pcn.cuda.unavailable_reason()
    assert isinstance(reason, str) and reason
    assert pcn.cuda.is_available() is False and pcn.cuda.device_count() == 0
    assert pcn.cuda.memory_allocated() == 0 and pcn.cuda.max_memory_allocated() == 0
    assert pcn.cuda.memory_reserved() == 0 and pcn.cuda.max_memory_reserved() == 0
    pcn.cuda.reset_peak_memory_stats()
    pcn.cuda.empty_cache()
    pcn.cuda.manual_seed(3)
    pcn.cuda.manual_seed_all(3)
    for query in (pcn.cuda.synchronize, pcn.cuda.get_device_name, pcn.cuda.get_device_capability,
                  pcn.cuda.current_device):
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            query()


def test_asking_for_cuda_storage_raises_with_the_reason():
    reason = pcn.cuda.unavailable_reason()
    for make in (lambda: devices.resolve("cuda"), lambda: devices.resolve(pcn.device("cuda", 1)),
                 lambda: pcn.zeros(2, device="cuda"), lambda: pcn.randn(2, device="cuda:0"),
                 lambda: pcn.tensor([1.0], device="cuda"), lambda: pcn.ones(2).to("cuda"),
                 lambda: pcn.ones(2).cuda(), lambda: pcn.nn.Linear(2, 2).cuda()):
        with pytest.raises(RuntimeError) as error:
            make()
        assert "cuda" in str(error.value) and reason in str(error.value)
    with pytest.raises(RuntimeError, match="'mps'"):
        devices.resolve("mps")


def test_cpu_tensors_report_the_cpu():
    t = pcn.arange(6).reshape(2, 3)
    assert t.device == pcn.device("cpu") and not t.is_cuda and t.is_cpu and t.get_device() == -1
    assert t.cpu() is t and t.to("cpu") is t and t.to(pcn.device("cpu"), pcn.int64) is t
    assert pcn.zeros_like(t).device == t.device
    assert "device=" not in repr(t)


def test_module_to_cpu_keeps_the_parameter_objects():
    model = pcn.nn.Sequential(pcn.nn.Conv2d(1, 2, 3), pcn.nn.BatchNorm2d(2))
    params, buffers = list(model.parameters()), list(model.buffers())
    assert model.to("cpu") is model and model.cpu() is model
    assert all(a is b for a, b in zip(params, model.parameters()))
    assert all(a is b for a, b in zip(buffers, model.buffers()))


def test_import_loads_no_gpu_code():
    code = ("import sys, pyconvnet as pcn; x = pcn.ones(2, requires_grad=True); (x * x).sum().backward(); "
            "print(sorted(m for m in sys.modules if m in ('pyconvnet._C_cuda', 'pyconvnet.cuda.array')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_kernels_dispatch_to_the_cpu_module_unchanged():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.ones((3, 4), np.float32)
    assert kernels.gpu_array_type is None  # no GPU array was ever made
    np.testing.assert_array_equal(kernels.add(a, b), _C.add(a, b))
    np.testing.assert_array_equal(kernels.sgemm(a, b, trans_b=True), _C.sgemm(a, b, trans_b=True))
    assert kernels.add is kernels.add  # built once, then found in the module
    assert kernels.add.__name__ == "add" and kernels.add.__doc__ == _C.add.__doc__
    with pytest.raises(AttributeError):
        kernels.no_such_kernel  # noqa: B018
    with pytest.raises(ValueError) as ours:
        kernels.add(a, b[:2])
    with pytest.raises(ValueError) as theirs:
        _C.add(a, b[:2])
    assert str(ours.value) == str(theirs.value)


def _as_if_saved_on_gpu(path):
    """Rewrite a checkpoint so that its tensors say they were saved from cuda:0 (what ``save`` writes
    for GPU tensors), with a valid checksum."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), "np") as handle:
        metadata = dict(handle.metadata())
        arrays = {key: handle.get_tensor(key) for key in handle.keys()}

    def mark(node):
        if isinstance(node, list):
            return [mark(item) for item in node]
        if isinstance(node, dict):
            if "tensor" in node:
                return {**node, "device": "cuda:0"}
            return {key: mark(value) for key, value in node.items()}
        return node

    metadata["tree"] = json.dumps(mark(json.loads(metadata["tree"])), separators=(",", ":"))
    metadata["crc32"] = checkpoint._checksum(metadata["tree"], arrays)
    save_file(arrays, str(path), metadata=metadata)


def test_a_checkpoint_saved_on_a_gpu_loads_on_the_cpu(tmp_path):
    model = pcn.nn.Linear(3, 2)
    path = tmp_path / "gpu.ckpt"
    pcn.save({"model": model.state_dict(), "step": 7}, path)
    _as_if_saved_on_gpu(path)
    for map_location in (None, "cpu", {"cuda:0": "cpu"}):
        loaded = pcn.load(path, map_location=map_location)
        assert loaded["step"] == 7
        for key, value in model.state_dict().items():
            assert loaded["model"][key].device == pcn.device("cpu")
            np.testing.assert_array_equal(loaded["model"][key].numpy(), value.numpy())
    seen = []
    pcn.load(path, map_location=lambda tensor, location: seen.append(location))
    assert seen == ["cuda:0", "cuda:0"]
    with pytest.raises(RuntimeError, match="no GPU backend"):
        pcn.load(path, map_location={"cuda:0": "cuda:0"})
    fresh = pcn.nn.Linear(3, 2)
    fresh.load_state_dict(pcn.load(path)["model"])
    np.testing.assert_array_equal(fresh.weight.detach().numpy(), model.weight.detach().numpy())
