"""pyconvnet.models: parameter counts for every model, torchvision-compatible state_dict keys,
and forward logits, gradients and batch-norm statistics equal to a PyTorch model holding the
same weights (built here with torch.nn, since torchvision is not importable), in train and eval
mode; get_model/list_models; seeding; bad input."""

import contextlib
import copy
from unittest import mock

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import models
from pyconvnet.models.vgg import CONFIGS as VGG_CONFIGS  # plain lists of widths

torch = pytest.importorskip("torch")
tnn = torch.nn
TF = torch.nn.functional

from pyconvnet.bench.torch_models import (  # noqa: E402  (after the torch importorskip)
    REPLAYED_ARGMAX,
    TorchAlexNet,
    TorchBasicBlock,
    TorchBottleneck,
    TorchCifarResNet,
    TorchClassicLeNet5,
    TorchGoogLeNet,
    TorchLeNet5,
    TorchResNet,
    TorchVGG,
)


# torchvision's published counts (1000 classes) and He et al.'s / LeCun et al.'s for the rest.
PARAMETER_COUNTS = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018, "resnet110": 1_727_962,
    # option-A shortcuts hold no parameters: a plain net counts exactly what its ResNet twin does
    "plain20": 269_722, "plain32": 464_154, "plain44": 658_586, "plain56": 853_018,
}


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def skip_init(monkeypatch):
    """Leave parameters as allocated (zeros) instead of drawing them: the tests that use it
    check structure or overwrite every weight, and drawing VGG's 10^8 weights twice (layer
    default, then torchvision's scheme) takes seconds. Initialisation has its own tests."""
    from pyconvnet.nn import init

    for name in ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_"):
        monkeypatch.setattr(init, name, lambda tensor, *args, **kwargs: tensor)


@pytest.mark.parametrize("name", sorted(PARAMETER_COUNTS))
def test_parameter_count(name, skip_init):
    assert count(models.get_model(name)) == PARAMETER_COUNTS[name]


def test_parameter_count_variants(skip_init):
    assert count(models.googlenet(aux_logits=True)) == 13_004_888
    classic = models.lenet5(classic=True)
    assert sum(p.numel() for p in classic.parameters() if p.requires_grad) == 60_000
    assert [name for name, _ in classic.state_dict().items() if not name.startswith(("c", "s", "f"))] == ["output.centers"]
    assert count(models.alexnet(lrn=True)) == PARAMETER_COUNTS["alexnet"]
    # vgg11_bn's features (9,225,984) + Linear(512, 10)
    assert count(models.vgg11_bn(num_classes=10, cifar=True)) == 9_225_984 + 5_130
    # one input channel: 2 * 49 * 64 fewer stem weights; fc 512 -> 10 instead of 512 -> 1000
    assert count(models.resnet18(num_classes=10, in_channels=1)) == 11_689_512 - 2 * 49 * 64 - 990 * 513


def test_list_and_get_model():
    names = models.list_models()
    assert names == sorted(PARAMETER_COUNTS)
    assert {"lenet5", "resnet20", "vgg11_bn", "googlenet"} <= set(names)
    model = models.get_model("ResNet20", num_classes=7)
    assert isinstance(model, models.CifarResNet) and model.fc.out_features == 7
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        models.get_model("resnet19")
    with pytest.raises(TypeError, match="name must be a str"):
        models.get_model(18)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        models.resnet18(num_classes=10.0)
    with pytest.raises(ValueError, match="in_channels must be positive"):
        models.vgg11(in_channels=0)


# --------------------------------------------------------------------- parity harness
def transfer_weights(torch_model, model):
    """Give the torch model random batch-norm statistics and affine parameters, then load its
    state_dict (as numpy arrays) into ``model``: the keys and shapes must match exactly."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in torch_model.modules():
            if isinstance(module, tnn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    torch_state = torch_model.state_dict()
    if "output.centers" in torch_state:  # classic LeNet-5's fixed RBF codes
        torch_state["output.centers"].copy_(torch.from_numpy(model.state_dict()["output.centers"].numpy()))
    own = model.state_dict()
    assert list(own) == list(torch_state), "state_dict keys differ from the torch reference"
    for key, value in own.items():
        assert tuple(value.shape) == tuple(torch_state[key].shape), key
    model.load_state_dict({key: value.detach().numpy().copy() for key, value in torch_state.items()})


def relative_error(actual, expected, floor=0.0):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.abs(expected).max(initial=0.0)), floor, 1e-12)
    return float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max(initial=0.0)) / scale


# A reference gradient this far below the network's largest is rounding noise around an
# analytic zero: a convolution bias before training-mode batch norm measures ~1e-16 of the
# largest in the float64 reference, while real gradients reach down to 8e-7 (GoogLeNet's stem).
VANISHING = 1e-12


def assert_gradients_close(grads, expected, tolerance):
    """Every parameter's gradient within ``tolerance`` of the reference's relative to its own
    scale (``relative_error``), however small it is next to the others. A reference gradient
    below VANISHING of the largest has no scale of its own: ours must be as small (below
    ``tolerance`` times the largest). None (a head that did not run) must match None."""
    largest = max(float(np.abs(g).max(initial=0.0)) for g in expected.values() if g is not None)
    for name, grad in grads.items():
        if expected[name] is None or grad is None:
            assert grad is None and expected[name] is None, f"gradient of {name}: {grad is None=}"
            continue
        if float(np.abs(expected[name]).max(initial=0.0)) < VANISHING * largest:
            error = float(np.abs(grad).max(initial=0.0)) / largest
        else:
            error = relative_error(grad, expected[name])
        assert error <= tolerance, f"gradient of {name}: relative error {error:.3g}"


def test_gradient_check_holds_each_parameter_to_its_own_scale():
    """A layer whose gradient is 1e-7 of the largest (GoogLeNet's stem reaches 8e-7) is held to
    its own scale: the earlier floor at the network's largest let an all-zero one pass."""
    rng = np.random.default_rng(0)
    expected = {"fc.weight": rng.standard_normal((4, 4)), "conv.weight": rng.standard_normal(5) * 1e-7,
                "conv.bias": rng.standard_normal(5) * 1e-17, "aux.weight": None}
    grads = {name: None if g is None else (g * (1 + 1e-4)).astype(np.float32) for name, g in expected.items()}
    grads["conv.bias"] = np.full(5, 1e-7, np.float32)  # float32 noise around an analytic zero
    assert_gradients_close(grads, expected, 1e-3)
    for name, wrong in (("conv.weight", np.zeros(5, np.float32)),
                        ("conv.weight", grads["conv.weight"] * 1.01),
                        ("conv.bias", np.full(5, 1e-2, np.float32)),
                        ("aux.weight", np.zeros(1, np.float32))):
        with pytest.raises(AssertionError, match=f"gradient of {name}"):
            assert_gradients_close({**grads, name: wrong}, expected, 1e-3)


def as_tuple(output):
    return tuple(output) if isinstance(output, tuple) else (output,)


def record_argmax(module, args, output):
    with pcn.no_grad():
        _, indices = pcn.nn.functional.max_pool2d(
            args[0], module.kernel_size, module.stride, module.padding, module.dilation,
            module.ceil_mode, return_indices=True)
    REPLAYED_ARGMAX.append(indices.numpy())


# pyconvnet's ReLU decisions (output > 0), recorded in call order and replayed by the torch
# references as the max-pool argmax is. A ReLU input within float32 rounding of zero may be
# decided differently by the two libraries (each computes it with errors ~2e-5 of the layer's
# scale), and one flipped element changes the gradient of everything upstream far beyond
# float32 noise: googlenet_cifar in train mode had a batch-norm output of 5e-6 in a layer of
# scale 5.7 (exactly, in float64), -2e-6 here and 6e-6 in torch's float32, and gradient errors
# up to 6e-2 against float64 from that one element; with the decision replayed, 3e-5.
REPLAYED_RELU = []


def _recorded(output):
    REPLAYED_RELU.append(output.detach().numpy() > 0)
    return output


@contextlib.contextmanager
def recording_relu_decisions():
    """Meanwhile pyconvnet's relu, add_relu, batch_norm_relu and linear_relu (every model's ReLUs
    run through them; conv2d_relu_max_pool2d does not run while record_argmax hooks the max-pool
    layers) record."""
    functional = pcn.nn.functional
    relu, add_relu, batch_norm_relu = functional.relu, functional.add_relu, functional.batch_norm_relu
    linear_relu = functional.linear_relu
    with mock.patch.object(functional, "relu", lambda x, inplace=False: _recorded(relu(x, inplace=inplace))), \
            mock.patch.object(functional, "add_relu", lambda a, b: _recorded(add_relu(a, b))), \
            mock.patch.object(functional, "batch_norm_relu", lambda *a, **k: _recorded(batch_norm_relu(*a, **k))), \
            mock.patch.object(functional, "linear_relu", lambda *a, **k: _recorded(linear_relu(*a, **k))):
        yield


def replayed_relu(x, inplace=False):
    """torch's relu taking pyconvnet's decision for each element. Where the decisions differ
    the input must lie within rounding of zero (1e-4 of the tensor's largest magnitude, the
    forward outputs' tolerance; float32 errors there measure ~2e-5), so a wrong mask still fails."""
    decision = torch.from_numpy(REPLAYED_RELU.pop(0))
    assert tuple(decision.shape) == tuple(x.shape), "the torch reference's ReLU calls differ from pyconvnet's"
    magnitude = x.detach().abs()
    differs = decision != (x.detach() > 0)
    if differs.any():
        assert magnitude[differs].max() <= 1e-4 * magnitude.max(), (
            f"ReLU decided differently at an input of {float(magnitude[differs].max()):.3g} (tensor scale "
            f"{float(magnitude.max()):.3g})")
    return x * decision.to(x.dtype)


def run_reference(torch_model, x, weights, argmax, relu_decisions):
    """Outputs and parameter gradients of ``sum(output * weight)`` for a torch model that takes
    pyconvnet's max-pool ``argmax`` and ``relu_decisions``."""
    REPLAYED_ARGMAX[:], REPLAYED_RELU[:] = argmax, relu_decisions
    dtype = next(torch_model.parameters()).dtype
    with mock.patch.object(TF, "relu", replayed_relu):
        outputs = as_tuple(torch_model(torch.from_numpy(x).to(dtype)))
    assert not REPLAYED_ARGMAX and not REPLAYED_RELU, "the torch reference made fewer max-pool or ReLU calls"
    sum((o * torch.from_numpy(w).to(dtype)).sum() for o, w in zip(outputs, weights)).backward()
    grads = {name: None if p.grad is None else p.grad.double().numpy() for name, p in torch_model.named_parameters()}
    return [o.detach().double().numpy() for o in outputs], grads


def check_parity(model, torch_model, input_shape, train, seed=0):
    """Forward outputs (<= 1e-4), every parameter gradient (<= 1e-3) and, in train mode, the
    updated batch-norm running statistics (<= 1e-4) equal torch's, the torch model taking
    pyconvnet's decisions at ties (max-pool argmax, ReLU at zero; see REPLAYED_RELU).

    Outputs and gradients are compared with the exact ones where torch's float32 is not exact
    enough to judge: through training-mode batch norm on these two-image batches rounding is
    amplified layer after layer, so torch's own float32 result is up to 6e-5 off its float64 one
    in the outputs (resnet50) and 1e-3 in the gradients (googlenet_aux's fc.weight). Those models
    are measured against a float64 copy of the torch model at twice the tolerances, each gradient
    relative to its own scale (``assert_gradients_close``): pyconvnet's Winograd convolutions round
    about six times more per layer than a direct sum, which over resnet50's depth reaches 1.5e-4
    in the outputs."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(input_shape).astype(np.float32)
    reference = torch_model
    if train and any(isinstance(m, tnn.BatchNorm2d) for m in torch_model.modules()):
        reference = copy.deepcopy(torch_model).double()
    for m in (model, torch_model, reference):
        m.train(train)
    REPLAYED_ARGMAX.clear()
    REPLAYED_RELU.clear()
    hooks = [m.register_forward_hook(record_argmax) for m in model.modules() if isinstance(m, pcn.nn.MaxPool2d)]
    try:
        with recording_relu_decisions():
            outputs = as_tuple(model(pcn.tensor(x)))
    finally:
        for hook in hooks:
            hook.remove()
    argmax, relu_decisions = list(REPLAYED_ARGMAX), list(REPLAYED_RELU)
    weights = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in outputs]
    expected_outputs, expected = run_reference(torch_model, x, weights, argmax, relu_decisions)
    if reference is not torch_model:
        expected_outputs, expected = run_reference(reference, x, weights, argmax, relu_decisions)
    output_tolerance, grad_tolerance = (1e-4, 1e-3) if reference is torch_model else (2e-4, 2e-3)
    for out, expected_out in zip(outputs, expected_outputs, strict=True):
        assert relative_error(out.detach().numpy(), expected_out) <= output_tolerance
    sum((o * pcn.tensor(w)).sum() for o, w in zip(outputs, weights)).backward()
    grads = {name: None if param.grad is None else param.grad.numpy() for name, param in model.named_parameters()}
    assert_gradients_close(grads, expected, grad_tolerance)
    if train:
        torch_buffers = dict(torch_model.named_buffers())
        for name, buffer in model.named_buffers():
            if name in torch_buffers:
                assert relative_error(buffer.numpy(), torch_buffers[name].numpy()) <= 1e-4, name


def build_pair(builder, torch_builder):
    pcn.manual_seed(0)
    torch.manual_seed(0)
    model, torch_model = builder(), torch_builder()
    transfer_weights(torch_model, model)
    return model, torch_model


PARITY_CASES = {
    "lenet5_28": (lambda: models.lenet5(), lambda: TorchLeNet5(10), (2, 1, 28, 28)),
    "lenet5_classic": (lambda: models.lenet5(classic=True), lambda: TorchClassicLeNet5(10), (2, 1, 32, 32)),
    "alexnet": (lambda: models.alexnet(num_classes=10, dropout=0.0), lambda: TorchAlexNet(10, 0.0), (2, 3, 64, 64)),
    "alexnet_lrn_cifar": (
        lambda: models.alexnet(num_classes=10, dropout=0.0, lrn=True, cifar=True),
        lambda: TorchAlexNet(10, 0.0, lrn=True, cifar=True), (2, 3, 32, 32)),
    "vgg11_bn_cifar": (
        lambda: models.vgg11_bn(num_classes=10, cifar=True),
        lambda: TorchVGG(VGG_CONFIGS[11], True, 10, 0.0, True), (2, 3, 32, 32)),
    "googlenet_aux": (
        lambda: models.googlenet(num_classes=10, aux_logits=True, transform_input=True, dropout=0.0, dropout_aux=0.0),
        lambda: TorchGoogLeNet(10, True, True, 0.0), (2, 3, 64, 64)),
    "googlenet_cifar": (
        lambda: models.googlenet(num_classes=10, dropout=0.0, cifar=True),
        lambda: TorchGoogLeNet(10, False, False, 0.0, cifar=True), (2, 3, 16, 16)),
    "resnet18": (lambda: models.resnet18(num_classes=10), lambda: TorchResNet(TorchBasicBlock, [2, 2, 2, 2], 10), (2, 3, 64, 64)),
    "resnet18_cifar": (
        lambda: models.resnet18(num_classes=10, cifar=True),
        lambda: TorchResNet(TorchBasicBlock, [2, 2, 2, 2], 10, cifar=True), (2, 3, 16, 16)),
    "resnet50": (lambda: models.resnet50(num_classes=10), lambda: TorchResNet(TorchBottleneck, [3, 4, 6, 3], 10), (2, 3, 64, 64)),
    "resnet20": (lambda: models.resnet20(), lambda: TorchCifarResNet(3), (2, 3, 32, 32)),
}


@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_parity_with_torch(case, skip_init):
    """Eval mode, then train mode (batch statistics, running-statistics update) on one pair."""
    builder, torch_builder, input_shape = PARITY_CASES[case]
    model, torch_model = build_pair(builder, torch_builder)
    check_parity(model, torch_model, input_shape, train=False)
    model.zero_grad()
    torch_model.zero_grad()
    check_parity(model, torch_model, input_shape, train=True)


FULL_SIZE_LAYOUTS = {
    "vgg16": (lambda: models.vgg16(), lambda: TorchVGG(VGG_CONFIGS[16], False, 1000, 0.5, False)),
    "vgg19_bn": (lambda: models.vgg19_bn(), lambda: TorchVGG(VGG_CONFIGS[19], True, 1000, 0.5, False)),
    "alexnet": (lambda: models.alexnet(), lambda: TorchAlexNet(1000, 0.5)),
    "googlenet_aux": (lambda: models.googlenet(aux_logits=True), lambda: TorchGoogLeNet(1000, True, False, 0.2)),
    "resnet152": (lambda: models.resnet152(), lambda: TorchResNet(TorchBottleneck, [3, 8, 36, 3], 1000)),
    "resnet34_cifar": (lambda: models.resnet34(cifar=True), lambda: TorchResNet(TorchBasicBlock, [3, 4, 6, 3], 1000, cifar=True)),
}


@pytest.mark.parametrize("case", sorted(FULL_SIZE_LAYOUTS))
def test_full_size_state_dict_layout(case, skip_init):
    """Key order, names and shapes equal the torch reference's (built on the meta device)."""
    builder, torch_builder = FULL_SIZE_LAYOUTS[case]
    with torch.device("meta"):
        torch_state = torch_builder().state_dict()
    state = builder().state_dict()
    assert list(state) == list(torch_state)
    assert all(tuple(state[key].shape) == tuple(torch_state[key].shape) for key in state)


def test_cifar_resnet_counts_match_reference(skip_init):
    for n, name in ((3, "resnet20"), (5, "resnet32")):
        assert count(models.get_model(name)) == sum(p.numel() for p in TorchCifarResNet(n).parameters())


@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (2, 4, 8, 8)], ids=str)
def test_shortcut_a_equals_subsample_then_channel_pad(shape):
    """Option A's one-copy kernel against the slice and F.pad it replaces, odd sizes included."""
    from pyconvnet.models.resnet import ShortcutA
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    fused_input, plain_input = pcn.tensor(x, requires_grad=True), pcn.tensor(x, requires_grad=True)
    fused = ShortcutA(2, 7)(fused_input)
    plain = pcn.nn.functional.pad(plain_input[:, :, ::2, ::2], (0, 0, 0, 0, 3, 4))
    assert fused.shape == plain.shape
    assert np.array_equal(fused.detach().numpy(), plain.detach().numpy())
    grad = pcn.tensor(rng.standard_normal(fused.shape, dtype=np.float32))
    fused.backward(grad)
    plain.backward(grad)
    assert np.array_equal(fused_input.grad.numpy(), plain_input.grad.numpy())


def test_googlenet_outputs_and_aux_heads():
    pcn.manual_seed(0)
    model = models.googlenet(num_classes=5, aux_logits=True)
    x = pcn.randn(2, 3, 64, 64)
    outputs = model(x)
    assert isinstance(outputs, models.GoogLeNetOutputs)
    assert [tuple(o.shape) for o in outputs] == [(2, 5)] * 3
    model.eval()
    assert tuple(model(x).shape) == (2, 5)


# --------------------------------------------------------------------- initialisation
def test_seeded_construction_is_reproducible():
    pcn.manual_seed(3)
    first = models.resnet20().state_dict()
    pcn.manual_seed(3)
    second = models.resnet20().state_dict()
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), second[key].numpy())
    assert not np.array_equal(first["conv1.weight"].numpy(), models.resnet20().conv1.weight.detach().numpy())


def test_torchvision_initialisation():
    pcn.manual_seed(0)
    resnet = models.resnet50(zero_init_residual=True)
    conv = resnet.layer3[0].conv2.weight.detach().numpy()  # 256 -> 256, 3x3: fan_out 2304
    assert abs(conv.std() - np.sqrt(2.0 / (256 * 9))) < 0.02 * np.sqrt(2.0 / (256 * 9))
    assert np.all(resnet.layer1[0].bn3.weight.detach().numpy() == 0) and np.all(resnet.bn1.weight.detach().numpy() == 1)
    assert np.all(models.resnet18(zero_init_residual=True).layer2[1].bn2.weight.detach().numpy() == 0)
    vgg = models.vgg11_bn(num_classes=10, cifar=True)
    assert abs(vgg.classifier.weight.detach().numpy().std() - 0.01) < 0.002
    assert np.all(vgg.features[0].bias.detach().numpy() == 0)
    googlenet = models.googlenet()
    weight = googlenet.inception4a.branch2[1].conv.weight.detach().numpy()
    assert abs(weight.std() - 0.01) < 0.001  # cut at +-2 (absolute, as torchvision): no visible truncation
    classic = models.lenet5(classic=True)
    assert np.abs(classic.c1.weight.detach().numpy()).max() <= 2.4 / 25
    assert np.abs(classic.c3.weight.detach().numpy()[:6]).max() <= 2.4 / 75  # kernels of 3-input maps


# --------------------------------------------------------------------- bad input
def test_wrong_input_channels():
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\), got \(2, 1, 32, 32\)"):
        models.resnet20()(pcn.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"32x32 or 28x28.*\(1, 1, 30, 30\)"):
        models.lenet5()(pcn.zeros(1, 1, 30, 30))


def test_too_small_input_names_the_layer():
    model = models.vgg11(num_classes=10)
    with pytest.raises(ValueError, match=r"VGG: layer .features\.\d+. \(model input \(1, 3, 16, 16\)\): MaxPool2d\(.*\) got input of shape \(1, 512, 1, 1\)"):
        model(pcn.zeros(1, 3, 16, 16))
    model = models.alexnet(num_classes=10)
    with pytest.raises(ValueError, match=r"layer 'features\.\d+'.*\(1, 3, 8, 8\)"):
        model(pcn.zeros(1, 3, 8, 8))
    # A fused conv -> ReLU -> pool run names the layer that fails, not the run's first.
    with pytest.raises(ValueError, match=r"AlexNet: layer 'features\.12' \(model input \(1, 3, 40, 40\)\): "
                                         r"MaxPool2d\(.*\) got input of shape \(1, 256, 1, 1\)"):
        model(pcn.zeros(1, 3, 40, 40))


def test_naming_the_failing_layer_runs_each_layer_once():
    model = models.vgg11(num_classes=10)
    entered, left = {}, {}

    def count(counts, name):
        counts[name] = counts.get(name, 0) + 1

    for name, module in model.named_modules():
        module.register_forward_pre_hook(lambda module, args, name=name: count(entered, name))
        module.register_forward_hook(lambda module, args, output, name=name: count(left, name))
    with pytest.raises(ValueError, match=r"layer 'features\.\d+'.*MaxPool2d") as info:
        model(pcn.zeros(1, 3, 16, 16))
    failed = next(name for name, module in model.named_modules() if module is info.value.module)
    assert set(entered.values()) == {1} and set(left.values()) == {1}
    assert failed in entered and failed not in left and "features" not in left
    assert all(module.training for module in model.modules())


# --------------------------------------------------------------------- hooks see torchvision's calls
class WithReluModule:
    """Mixin for the torch reference blocks: torchvision's one ReLU module per block."""

    def __init__(self, *args):
        super().__init__(*args)
        self.relu = tnn.ReLU(inplace=True)


class TorchvisionBasicBlock(WithReluModule, TorchBasicBlock):
    """TorchBasicBlock calling its layers as torchvision does: ``relu`` twice, last on the sum."""

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TorchvisionBottleneck(WithReluModule, TorchBottleneck):
    """TorchBottleneck calling its layers as torchvision does: ``relu`` three times, last on the sum."""

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class TorchvisionResNet(TorchResNet):
    """TorchResNet with torchvision's stem ReLU and pooling modules."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.relu = tnn.ReLU(inplace=True)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def hook_log(model, watched):
    """Hooks on the modules whose names ``watched`` accepts, logging each call as (name, what,
    copies of the input and output as the hook saw them)."""
    log = []

    def snapshot(tensor):
        return tensor.detach().numpy().astype(np.float64)

    for name, module in model.named_modules():
        if watched(name):
            module.register_forward_pre_hook(
                lambda module, args, name=name: log.append((name, "pre", snapshot(args[0]))))
            module.register_forward_hook(
                lambda module, args, output, name=name: log.append((name, "post", snapshot(args[0]), snapshot(output))))
    return log


HOOKED_RESNETS = {
    "basic": (lambda: models.ResNet(models.BasicBlock, [2, 1, 1, 1], num_classes=10, cifar=True),
              lambda: TorchvisionResNet(TorchvisionBasicBlock, [2, 1, 1, 1], 10, cifar=True)),
    "bottleneck": (lambda: models.ResNet(models.Bottleneck, [2, 1, 1, 1], num_classes=10),
                   lambda: TorchvisionResNet(TorchvisionBottleneck, [2, 1, 1, 1], 10)),
}
WATCHED = {
    "relu": lambda name: name.endswith("relu"),
    "blocks": lambda name: name.count(".") == 1,
    "everything": lambda name: True,
}


@pytest.mark.parametrize("watched", sorted(WATCHED))
@pytest.mark.parametrize("case", sorted(HOOKED_RESNETS))
def test_resnet_hooks_see_what_they_see_in_torchvision(case, watched, skip_init):
    model, torch_model = build_pair(*HOOKED_RESNETS[case])
    model.eval()
    torch_model.eval()
    ours, theirs = hook_log(model, WATCHED[watched]), hook_log(torch_model, WATCHED[watched])
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    output = model(pcn.tensor(x)).detach().numpy()
    expected = torch_model(torch.from_numpy(x)).detach().numpy()
    assert relative_error(output, expected) <= 1e-4
    assert [entry[:2] for entry in ours] == [entry[:2] for entry in theirs]
    for (name, what, *seen), (_, _, *expected_seen) in zip(ours, theirs):
        for index, (value, expected_value) in enumerate(zip(seen, expected_seen, strict=True)):
            assert relative_error(value, expected_value) <= 1e-4, f"{name} {what} hook, tensor {index}"
