"""Module API: registration, naming, hooks, modes, containers, repr and state_dict loading."""

import json
from collections import OrderedDict

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import nn


class TwoLayer(nn.Module):
    """Linear -> ReLU -> Linear with a persistent and a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2)
        self.register_buffer("steps", pcn.zeros(1))
        self.register_buffer("scratch", pcn.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Tied(nn.Module):
    """Two Linear layers sharing one weight Parameter, and one submodule under two names."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3, bias=False)
        self.b = nn.Linear(3, 3, bias=False)
        self.b.weight = self.a.weight
        self.alias = self.a

    def forward(self, x):
        return self.b(self.a(x))


# ----------------------------------------------------------------------------- registration
def test_assignment_registers_parameters_buffers_and_children():
    model = TwoLayer()
    assert list(model._parameters) == []
    assert list(model._modules) == ["fc1", "act", "fc2"]
    assert list(model._buffers) == ["steps", "scratch"]
    assert isinstance(model.fc1.weight, nn.Parameter)
    assert model.fc1.weight.requires_grad and model.fc1.weight.is_leaf

    model.scale = nn.Parameter(pcn.ones(1))
    assert "scale" in model._parameters and "scale" not in model.__dict__
    model.scale = None
    assert model._parameters["scale"] is None
    with pytest.raises(TypeError, match="scale"):
        model.scale = pcn.ones(1)  # a plain Tensor cannot take a parameter's slot
    with pytest.raises(TypeError, match="steps"):
        model.steps = 3.0  # a buffer slot takes a Tensor or None
    model.steps = pcn.ones(1)
    assert model._buffers["steps"].item() == 1.0
    with pytest.raises(TypeError, match="fc2"):
        model.fc2 = 5
    model.plain = 7
    assert model.plain == 7 and "plain" in model.__dict__

    del model.fc2
    assert "fc2" not in model._modules
    with pytest.raises(AttributeError, match="fc2"):
        model.fc2


def test_register_methods_check_their_arguments():
    module = nn.Module()
    with pytest.raises(KeyError, match='"."'):
        module.register_buffer("a.b", pcn.zeros(1))
    with pytest.raises(KeyError, match="empty"):
        module.register_parameter("", None)
    with pytest.raises(TypeError):
        module.register_buffer("x", np.zeros(1))
    with pytest.raises(TypeError):
        module.register_parameter("w", pcn.ones(2))
    with pytest.raises(TypeError):
        module.add_module("child", "not a module")
    module.attr = 1
    with pytest.raises(KeyError, match="already exists"):
        module.register_buffer("attr", pcn.zeros(1))
    with pytest.raises(ValueError, match="non-leaf"):
        module.register_parameter("w", _non_leaf_parameter())
    module.register_module("child", nn.ReLU())
    assert module.child is module._modules["child"]


def _non_leaf_parameter():
    """A Parameter object carrying a grad_fn, as a buggy user computation could produce."""
    base = pcn.ones(2, requires_grad=True)
    computed = base * 2
    param = nn.Parameter(pcn.ones(2))
    param._grad_fn = computed.grad_fn
    return param


def test_assigning_before_init_is_an_attribute_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="__init__"):
        Broken()


def test_parameter_shares_storage_and_prints_like_torch():
    data = pcn.tensor([1.0, 2.0])
    param = nn.Parameter(data)
    assert np.shares_memory(param.detach().numpy(), data.numpy())
    assert param.requires_grad and param.is_leaf and isinstance(param, pcn.Tensor)
    assert repr(param) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    frozen = nn.Parameter(np.arange(3), requires_grad=False)
    assert frozen.dtype == pcn.float32 and not frozen.requires_grad


# ----------------------------------------------------------------------------- naming
def test_named_members_use_dotted_paths_in_registration_order():
    model = TwoLayer()
    assert [name for name, _ in model.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [name for name, _ in model.named_parameters(prefix="net")][0] == "net.fc1.weight"
    assert list(model.named_parameters(recurse=False)) == []
    assert [name for name, _ in model.named_buffers()] == ["steps", "scratch"]
    assert [name for name, _ in model.named_modules()] == ["", "fc1", "act", "fc2"]
    assert [name for name, _ in model.named_children()] == ["fc1", "act", "fc2"]
    assert list(model.children()) == [model.fc1, model.act, model.fc2]
    assert len(list(model.parameters())) == 4 and len(list(model.buffers())) == 2


def test_shared_parameters_and_modules_are_listed_once():
    model = Tied()
    assert [name for name, _ in model.named_parameters()] == ["a.weight"]
    assert len(list(model.parameters())) == 1
    assert [name for name, _ in model.named_modules()] == ["", "a", "b"]
    assert len(list(model.named_parameters(remove_duplicate=False))) == 3
    # state_dict keeps every name (as torch does), all sharing the one storage.
    state = model.state_dict()
    assert list(state) == ["a.weight", "b.weight", "alias.weight"]
    x = pcn.randn(2, 3)
    model(x).sum().backward()
    assert model.a.weight.grad is model.b.weight.grad


def test_get_submodule_parameter_and_buffer():
    model = nn.Sequential(OrderedDict(body=TwoLayer(), head=nn.Linear(2, 1)))
    assert model.get_submodule("") is model
    assert model.get_submodule("body.fc2") is model.body.fc2
    assert model.get_parameter("head.bias") is model.head.bias
    assert model.get_buffer("body.steps") is model.body.steps
    with pytest.raises(AttributeError, match="`missing`"):
        model.get_submodule("body.missing")
    with pytest.raises(AttributeError, match="not an nn.Module"):
        model.get_submodule("head.weight")
    with pytest.raises(AttributeError, match="`steps`"):
        model.get_parameter("body.steps")


# ----------------------------------------------------------------------------- call, hooks
def test_forward_hooks_can_replace_args_and_output_and_be_removed():
    layer = nn.Linear(2, 2)
    seen = []
    pre = layer.register_forward_pre_hook(lambda module, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda module, args, output: seen.append(module) or output + 1)
    x = pcn.ones(1, 2)
    out = layer(x)
    np.testing.assert_allclose(out.detach().numpy(), layer.bias.detach().numpy()[None] + 1, rtol=1e-6)
    assert seen == [layer]
    pre.remove()
    post.remove()
    pre.remove()  # a second remove is harmless
    np.testing.assert_allclose(layer(x).detach().numpy(), (x @ layer.weight.t() + layer.bias).detach().numpy(), rtol=1e-6)
    assert seen == [layer]


def test_forward_pre_hook_returning_a_single_value_wraps_it():
    layer = nn.Identity()
    with layer.register_forward_pre_hook(lambda module, args: args[0] * 3):
        assert layer(pcn.ones(1)).item() == 3.0
    assert layer(pcn.ones(1)).item() == 1.0


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match=r"\[ModuleList\].*forward"):
        nn.ModuleList()(pcn.ones(1))


def test_layer_errors_name_the_innermost_layer_and_the_shape():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4, kernel_size=\(3, 3\).*\(1, 5, 8, 8\)") as info:
        model(pcn.randn(1, 5, 8, 8))
    assert info.value.module is model[0]
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=2.*\(1, 4, 1, 1\)"):
        model(pcn.randn(1, 3, 3, 3))
    with pytest.raises(ValueError, match=r"Linear\(in_features=4.*\(1, 36\)"):
        model(pcn.randn(1, 3, 8, 8))


class _Raises(nn.Module):
    """Raises whatever ``make_error()`` returns."""

    def __init__(self, make_error):
        super().__init__()
        self.make_error = make_error

    def forward(self, x):
        raise self.make_error()


def test_layer_errors_keep_their_type_and_attributes():
    class UserError(ValueError):
        pass

    model = nn.Sequential(nn.Identity(), _Raises(lambda: UserError("bad value")))
    with pytest.raises(UserError, match=r"^_Raises\(\) got input of shape \(2, 3\): bad value$") as info:
        model(pcn.ones(2, 3))
    assert type(info.value) is UserError and info.value.module is model[1]

    def decode_error():
        try:
            json.loads('{"a": ')
        except json.JSONDecodeError as error:
            return error

    model = nn.Sequential(_Raises(decode_error))
    with pytest.raises(json.JSONDecodeError, match=r"_Raises\(\) got input of shape \(1,\): Expecting value") as info:
        model(pcn.ones(1))
    assert (info.value.doc, info.value.pos, info.value.lineno, info.value.colno) == ('{"a": ', 6, 1, 7)
    assert info.value.msg == "Expecting value"


# ----------------------------------------------------------------------------- modes, grads, apply
def test_train_and_eval_propagate_to_every_descendant():
    model = nn.Sequential(TwoLayer(), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)))
    assert all(module.training for module in model.modules())
    assert model.eval() is model
    assert not any(module.training for module in model.modules())
    model.train()
    assert all(module.training for module in model.modules())
    model[1].train(False)
    assert model.training and not model[1][0].training and not model[1][1].training
    with pytest.raises(ValueError, match="boolean"):
        model.train("yes")


def test_zero_grad_and_requires_grad():
    model = TwoLayer()
    model(pcn.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    model.fc2.requires_grad_()
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc2.weight", "fc2.bias"]


def test_apply_visits_children_before_parent():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    order = []
    assert model.apply(lambda module: order.append(type(module).__name__)) is model
    assert order == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]

    def zero_linear(module):
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)

    model.apply(zero_linear)
    assert not model[0].weight.detach().numpy().any() and not model[1][1].weight.detach().numpy().any()


def test_to_and_cpu_accept_the_cpu_float32_setup_only():
    model = TwoLayer()
    assert model.to("cpu") is model and model.cpu() is model and model.to(pcn.float32) is model
    with pytest.raises(RuntimeError, match="cuda"):
        model.to("cuda")
    with pytest.raises(TypeError, match="float32"):
        model.to(dtype=pcn.int64)


# ----------------------------------------------------------------------------- containers
def test_sequential_indexing_slicing_and_append():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[2]
    head = model[1:]
    assert isinstance(head, nn.Sequential) and list(head) == layers[1:]
    assert list(head._modules) == ["1", "2"]
    with pytest.raises(IndexError, match="out of range"):
        model[3]
    model.append(nn.Sigmoid())
    assert list(model._modules) == ["0", "1", "2", "3"] and isinstance(model[3], nn.Sigmoid)
    model[3] = nn.Tanh()
    assert isinstance(model[-1], nn.Tanh)
    del model[3]
    assert len(model) == 3
    x = pcn.randn(4, 2)
    expected = layers[2](layers[1](layers[0](x)))
    np.testing.assert_array_equal(model(x).detach().numpy(), expected.detach().numpy())

    named = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("act", nn.ReLU())]))
    assert list(named._modules) == ["conv", "act"] and named.conv is named[0]
    assert [name for name, _ in named.named_parameters()] == ["conv.weight", "conv.bias"]


def test_module_list_and_module_dict():
    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(blocks) == 3 and [name for name, _ in blocks.named_children()] == ["0", "1", "2"]
    blocks.append(nn.ReLU())
    blocks.insert(0, nn.Tanh())
    assert isinstance(blocks[0], nn.Tanh) and isinstance(blocks[-1], nn.ReLU)
    assert list(blocks._modules) == ["0", "1", "2", "3", "4"]
    del blocks[0]
    assert isinstance(blocks[0], nn.Linear) and list(blocks._modules) == ["0", "1", "2", "3"]
    assert isinstance(blocks[1:3], nn.ModuleList) and len(blocks[1:3]) == 2
    blocks += [nn.Sigmoid()]
    assert len(blocks) == 5
    assert len(list(blocks.parameters())) == 6

    heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 4)})
    assert list(heads) == ["cls", "box"] and "cls" in heads and len(heads) == 2
    heads["extra"] = nn.Identity()
    assert list(heads.keys()) == ["cls", "box", "extra"]
    assert heads.pop("extra").__class__ is nn.Identity
    heads.update([("score", nn.Linear(4, 1))])
    assert [name for name, _ in heads.named_parameters()][-1] == "score.bias"
    with pytest.raises(ValueError, match="pairs"):
        heads.update([nn.ReLU()])


def test_dir_lists_registered_members():
    names = dir(TwoLayer())
    assert {"fc1", "act", "steps", "forward", "state_dict"} <= set(names)


# ----------------------------------------------------------------------------- state dict
def test_state_dict_shares_storage_and_skips_non_persistent_buffers():
    model = nn.Sequential(TwoLayer(), nn.BatchNorm1d(2))
    state = model.state_dict()
    assert list(state) == [
        "0.steps", "0.fc1.weight", "0.fc1.bias", "0.fc2.weight", "0.fc2.bias",
        "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
    ]
    assert isinstance(state, OrderedDict)
    weight = state["0.fc1.weight"]
    assert not weight.requires_grad and not isinstance(weight, nn.Parameter)
    assert np.shares_memory(weight.numpy(), model[0].fc1.weight.detach().numpy())
    assert state["1.num_batches_tracked"].dtype == pcn.int64 and state["1.num_batches_tracked"].shape == ()
    assert model.state_dict(keep_vars=True)["0.fc1.weight"] is model[0].fc1.weight


def test_state_dict_round_trip_gives_identical_outputs():
    pcn.manual_seed(0)
    source = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
    source.train()
    source(pcn.randn(8, 2, 4, 4))  # move the running statistics away from their initial values
    source.eval()
    saved = {name: value.numpy().copy() for name, value in source.state_dict().items()}

    target = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
    target.eval()
    result = target.load_state_dict(saved)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    assert target[1].num_batches_tracked.item() == 1
    x = pcn.randn(5, 2, 4, 4)
    np.testing.assert_array_equal(target(x).detach().numpy(), source(x).detach().numpy())
    # Loading copies: the target does not alias the checkpoint.
    saved["4.bias"][:] = 0
    assert target[4].bias.detach().numpy().any()


def _snapshot(model):
    return {name: value.numpy().copy() for name, value in model.state_dict().items()}


def test_strict_load_lists_every_problem_and_loads_nothing():
    model = TwoLayer()
    before = _snapshot(model)
    bad = {name: np.ones_like(value) for name, value in before.items()}
    del bad["fc1.bias"]
    bad["fc3.weight"] = np.ones((2, 2), np.float32)
    bad["fc2.weight"] = np.ones((5, 5), np.float32)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    assert "Error(s) in loading state_dict for TwoLayer" in message
    assert 'Missing key(s) in state_dict: "fc1.bias"' in message
    assert 'Unexpected key(s) in state_dict: "fc3.weight"' in message
    assert "size mismatch for fc2.weight: copying a param with shape [5, 5] from checkpoint, " \
           "the shape in current model is [2, 3]" in message
    after = _snapshot(model)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_non_strict_load_returns_the_key_lists_and_loads_the_rest():
    model = TwoLayer()
    partial = {"fc1.weight": pcn.ones(3, 4), "head.weight": pcn.ones(1)}
    result = model.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["steps", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert result.unexpected_keys == ["head.weight"]
    missing, unexpected = result
    assert missing == result.missing_keys and unexpected == ["head.weight"]
    np.testing.assert_array_equal(model.fc1.weight.detach().numpy(), np.ones((3, 4), np.float32))
    # A shape mismatch is an error even when not strict, and then nothing is loaded.
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match="size mismatch for fc1.bias"):
        model.load_state_dict({"fc1.weight": np.zeros((3, 4), np.float32), "fc1.bias": np.zeros(4, np.float32)},
                              strict=False)
    np.testing.assert_array_equal(model.fc1.weight.detach().numpy(), before["fc1.weight"])


def test_load_state_dict_rejects_non_array_values():
    model = nn.Linear(2, 1)
    with pytest.raises(TypeError, match="weight"):
        model.load_state_dict({"weight": [[1.0, 2.0]], "bias": np.zeros(1, np.float32)})
    with pytest.raises(TypeError, match="dict"):
        model.load_state_dict([("weight", np.zeros((1, 2)))])


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    def build(lib):
        return lib.Sequential(
            lib.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
            lib.BatchNorm2d(8),
            lib.ReLU(inplace=True),
            lib.MaxPool2d(3, 2, 1),
            lib.Sequential(lib.Conv2d(8, 8, (1, 3), padding="same", groups=2, dilation=2), lib.LeakyReLU(0.2)),
            lib.AdaptiveAvgPool2d((1, 1)),
            lib.Flatten(),
            lib.Dropout(0.3),
            lib.Linear(8, 10),
        )

    assert repr(build(nn)) == repr(build(tnn))
