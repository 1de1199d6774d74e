"""plain20..plain56: the CIFAR ResNets without shortcuts. Same layers and parameter count as the
ResNet twin, no residual addition anywhere, the twin's training recipe, and parity with a torch
plain network holding the same weights."""

import types

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import models
from pyconvnet.models.resnet import BasicBlock, PlainBlock, ShortcutA
from pyconvnet.train import recipe_for

torch = pytest.importorskip("torch")

from torch.nn import functional as TF  # noqa: E402  (after the torch importorskip)

from pyconvnet.bench.torch_models import TorchCifarResNet  # noqa: E402

from test_models import build_pair, check_parity, count  # noqa: E402

DEPTHS = (20, 32, 44, 56)


@pytest.mark.parametrize("depth", DEPTHS)
def test_same_layers_and_parameters_as_the_resnet_twin(depth):
    """Option-A shortcuts hold no parameters, so the counts are equal, key for key."""
    plain, residual = models.get_model(f"plain{depth}"), models.get_model(f"resnet{depth}")
    assert count(plain) == count(residual)
    plain_state, residual_state = plain.state_dict(), residual.state_dict()
    assert list(plain_state) == list(residual_state)
    assert all(plain_state[key].shape == residual_state[key].shape for key in plain_state)
    assert not any(isinstance(module, ShortcutA) or type(module) is BasicBlock for module in plain.modules())
    assert sum(isinstance(module, PlainBlock) for module in plain.modules()) == (depth - 2) // 2


@pytest.mark.parametrize(("kwargs", "input_shape", "logits"), [
    ({}, (2, 3, 32, 32), (2, 10)),
    ({"in_channels": 1, "num_classes": 7}, (3, 1, 28, 28), (3, 7)),
])
def test_forward_shapes(kwargs, input_shape, logits):
    assert tuple(models.plain20(**kwargs)(pcn.zeros(*input_shape)).shape) == logits


def _block_outputs_and_last_norms(model, x):
    """For every block: (its output, the output of its bn2), recorded with forward hooks."""
    recorded = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (BasicBlock, PlainBlock)):
            for key, watched in (("out", module), ("bn2", module.bn2)):
                handles.append(watched.register_forward_hook(
                    lambda m, args, output, key=(name, key): recorded.__setitem__(key, output.numpy().copy())))
    model.eval()
    with pcn.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    names = sorted({name for name, _ in recorded})
    return [(recorded[name, "out"], recorded[name, "bn2"]) for name in names]


@pytest.mark.parametrize("depth", (20, 56))
def test_a_plain_block_adds_no_shortcut(depth):
    """Each block's output is exactly relu(bn2's output); in the ResNet twin it is not (the
    identity is added first), which shows the hooks would see a residual addition."""
    x = pcn.tensor(np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32))
    pcn.manual_seed(0)
    plain = _block_outputs_and_last_norms(models.get_model(f"plain{depth}", in_channels=1), x)
    assert len(plain) == (depth - 2) // 2
    assert all(np.array_equal(out, np.maximum(bn2, 0)) for out, bn2 in plain)
    pcn.manual_seed(0)
    residual = _block_outputs_and_last_norms(models.get_model(f"resnet{depth}", in_channels=1), x)
    assert not any(np.array_equal(out, np.maximum(bn2, 0)) for out, bn2 in residual)


@pytest.mark.parametrize("depth", DEPTHS)
def test_plain_nets_train_with_their_twins_recipe(depth):
    assert recipe_for(f"plain{depth}") == recipe_for(f"resnet{depth}")


def test_zero_init_residual_needs_shortcuts():
    with pytest.raises(ValueError, match="zero_init_residual needs shortcuts"):
        models.CifarResNet(3, shortcuts=False, zero_init_residual=True)


def _plain_forward(block, x):
    return TF.relu(block.bn2(block.conv2(TF.relu(block.bn1(block.conv1(x))))))


def torch_plain_net(n):
    """The reference: torch's CIFAR ResNet with every block's forward replaced by the plain one
    (bound methods, so that a deep copy's blocks run their own layers)."""
    model = TorchCifarResNet(n)
    for stage in (model.layer1, model.layer2, model.layer3):
        for block in stage:
            block.forward = types.MethodType(_plain_forward, block)
    return model


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_parity_with_torch(train):
    model, torch_model = build_pair(models.plain20, lambda: torch_plain_net(3))
    check_parity(model, torch_model, (2, 3, 16, 16), train=train)
