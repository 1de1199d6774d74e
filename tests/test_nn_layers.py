"""Layers and losses against torch.nn: defaults, attributes, parameter shapes, initialisation
bounds, forward and backward with torch's weights copied in; plus a small training run."""

import math

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import nn

from support import assert_close

torch = pytest.importorskip("torch")
tnn = torch.nn

RTOL_GRAD = 1e-4


def copy_weights(module, reference):
    """Load ``reference``'s state_dict (as numpy arrays) into ``module``."""
    module.load_state_dict({name: value.detach().numpy() for name, value in reference.state_dict().items()})


def run_both(module, reference, *inputs, target=None):
    """Forward both with the same float inputs (and optional target), backward a random
    upstream gradient (or the scalar loss); returns (ours, theirs) outputs and input grads."""
    ours_in = [pcn.tensor(x, requires_grad=True) for x in inputs]
    theirs_in = [torch.tensor(x, requires_grad=True) for x in inputs]
    extra = () if target is None else (pcn.tensor(target),)
    extra_t = () if target is None else (torch.tensor(target),)
    ours, theirs = module(*ours_in, *extra), reference(*theirs_in, *extra_t)
    upstream = np.random.default_rng(12345).standard_normal(tuple(theirs.shape)).astype(np.float32)
    ours.backward(pcn.tensor(upstream))
    theirs.backward(torch.tensor(upstream))
    return ours, theirs, ours_in, theirs_in


def check_parity(module, reference, *inputs, target=None, rtol=1e-4):
    """Outputs, input gradients and parameter gradients agree with torch's."""
    ours, theirs, ours_in, theirs_in = run_both(module, reference, *inputs, target=target)
    assert_close(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, what="output")
    for mine, ref in zip(ours_in, theirs_in):
        assert_close(mine.grad.numpy(), ref.grad.numpy(), rtol=RTOL_GRAD, what="input grad")
    reference_params = dict(reference.named_parameters())
    for name, param in module.named_parameters():
        assert_close(param.grad.numpy(), reference_params[name].grad.numpy(), rtol=RTOL_GRAD, what=f"{name} grad")


def check_structure(module, reference, attributes):
    """Same repr, attribute values, parameter and buffer names, shapes and dtypes as torch."""
    assert repr(module) == repr(reference)
    for attribute in attributes:
        assert getattr(module, attribute) == getattr(reference, attribute), attribute
    ours = {name: (tuple(v.shape), str(v.dtype)) for name, v in module.state_dict().items()}
    theirs = {name: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for name, v in reference.state_dict().items()}
    assert ours == theirs
    assert [n for n, _ in module.named_parameters()] == [n for n, _ in reference.named_parameters()]


def random_input(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------- Conv2d, Linear
CONV_CASES = [
    dict(args=(3, 8, 3)),
    dict(args=(4, 6, (3, 5)), kwargs=dict(stride=2, padding=(1, 2), bias=False)),
    dict(args=(4, 8, 3), kwargs=dict(padding="same", dilation=2, groups=2)),
    dict(args=(2, 4, 4), kwargs=dict(padding="same")),  # even kernel: extra padding bottom/right
    dict(args=(3, 5, 3), kwargs=dict(padding="valid", stride=(1, 2))),
    dict(args=(6, 6, 3), kwargs=dict(padding=1, groups=6)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note about its own copy
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: repr(c))
def test_conv2d_matches_torch(case):
    args, kwargs = case["args"], case.get("kwargs", {})
    module, reference = nn.Conv2d(*args, **kwargs), tnn.Conv2d(*args, **kwargs)
    check_structure(module, reference, ["in_channels", "out_channels", "kernel_size", "stride", "padding",
                                        "dilation", "groups", "padding_mode", "transposed", "output_padding"])
    copy_weights(module, reference)
    check_parity(module, reference, random_input(2, args[0], 9, 8))


def test_conv2d_takes_unbatched_input():
    module, reference = nn.Conv2d(3, 4, 3), tnn.Conv2d(3, 4, 3)
    copy_weights(module, reference)
    check_parity(module, reference, random_input(3, 6, 6))


def test_conv2d_rejects_bad_arguments():
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'valid', 'same'"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="positive"):
        nn.Conv2d(3, 4, 3, groups=0)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    module, reference = nn.Linear(7, 5, bias=bias), tnn.Linear(7, 5, bias=bias)
    check_structure(module, reference, ["in_features", "out_features"])
    copy_weights(module, reference)
    check_parity(module, reference, random_input(4, 7))


def test_linear_takes_extra_leading_dims():
    module, reference = nn.Linear(3, 2), tnn.Linear(3, 2)
    copy_weights(module, reference)
    check_parity(module, reference, random_input(2, 4, 3))


@pytest.mark.parametrize("make", [
    lambda lib: lib.Conv2d(6, 10, 5),
    lambda lib: lib.Conv2d(8, 4, 3, groups=4, bias=True),
    lambda lib: lib.Linear(50, 30),
])
def test_default_initialisation_follows_torch_bounds(make):
    """kaiming_uniform_(a=sqrt(5)) gives weight bound 1/sqrt(fan_in); the bias bound is the same."""
    pcn.manual_seed(3)
    module = make(nn)
    weight = module.weight.detach().numpy()
    fan_in = math.prod(weight.shape[1:])
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(module.bias.detach().numpy()).max() <= bound
    assert np.abs(weight).max() <= bound
    assert np.abs(weight).max() > 0.9 * bound  # spread over the range, not collapsed
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.15 * bound
    # pcn.manual_seed makes it reproducible.
    pcn.manual_seed(3)
    np.testing.assert_array_equal(make(nn).weight.detach().numpy(), weight)


# ----------------------------------------------------------------------------- activations
@pytest.mark.parametrize("make, attributes", [
    (lambda lib: lib.ReLU(), ["inplace"]),
    (lambda lib: lib.LeakyReLU(), ["negative_slope", "inplace"]),
    (lambda lib: lib.LeakyReLU(0.2), ["negative_slope", "inplace"]),
    (lambda lib: lib.Sigmoid(), []),
    (lambda lib: lib.Tanh(), []),
    (lambda lib: lib.Identity(5, unused=True), []),
    (lambda lib: lib.Flatten(), ["start_dim", "end_dim"]),
    (lambda lib: lib.Flatten(0, 2), ["start_dim", "end_dim"]),
])
def test_parameter_free_layers_match_torch(make, attributes):
    module, reference = make(nn), make(tnn)
    check_structure(module, reference, attributes)
    check_parity(module, reference, random_input(2, 3, 4, 5))


def test_inplace_relu_overwrites_a_tensor_without_grad():
    x = pcn.tensor([-1.0, 2.0])
    out = nn.ReLU(inplace=True)(x)
    np.testing.assert_array_equal(x.numpy(), [0.0, 2.0])
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"
    assert out.numpy().tolist() == [0.0, 2.0]


# ----------------------------------------------------------------------------- pooling
POOL_CASES = [
    (lambda lib: lib.MaxPool2d(2), ["kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"]),
    (lambda lib: lib.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), ["kernel_size", "stride", "ceil_mode"]),
    (lambda lib: lib.MaxPool2d((2, 3), dilation=2), ["kernel_size", "stride", "dilation"]),
    (lambda lib: lib.AvgPool2d(2), ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                    "divisor_override"]),
    (lambda lib: lib.AvgPool2d(3, 2, 1, count_include_pad=False), ["count_include_pad"]),
    (lambda lib: lib.AvgPool2d(3, 1, 1, divisor_override=5), ["divisor_override"]),
    (lambda lib: lib.AdaptiveAvgPool2d((3, 2)), ["output_size"]),
    (lambda lib: lib.AdaptiveAvgPool2d(1), ["output_size"]),
    (lambda lib: lib.AdaptiveMaxPool2d((2, None)), ["output_size", "return_indices"]),
]


@pytest.mark.parametrize("make, attributes", POOL_CASES)
def test_pooling_layers_match_torch(make, attributes):
    module, reference = make(nn), make(tnn)
    check_structure(module, reference, attributes)
    check_parity(module, reference, random_input(2, 3, 9, 7))


@pytest.mark.parametrize("name", ["MaxPool2d", "AdaptiveMaxPool2d"])
def test_max_pooling_return_indices(name):
    arg = 2 if name == "MaxPool2d" else (3, 3)
    module = getattr(nn, name)(arg, return_indices=True)
    reference = getattr(tnn, name)(arg, return_indices=True)
    x = random_input(1, 2, 6, 6)
    output, indices = module(pcn.tensor(x))
    expected, expected_indices = reference(torch.tensor(x))
    assert_close(output.numpy(), expected.numpy())
    np.testing.assert_array_equal(indices.numpy(), expected_indices.numpy())


# ----------------------------------------------------------------------------- normalisation
BN_CASES = [
    dict(),
    dict(momentum=None),
    dict(momentum=0.3, eps=1e-3),
    dict(affine=False),
    dict(track_running_stats=False),
    dict(bias=False),
]


def _check_batch_norm(module, reference, shape, steps=3):
    """Several training steps (running statistics and num_batches_tracked), then eval."""
    check_structure(module, reference, ["num_features", "eps", "momentum", "affine", "track_running_stats"])
    copy_weights(module, reference)
    for step in range(steps):
        x = random_input(*shape, seed=step) * (step + 1) + step
        check_parity(module, reference, x)
        for name, buffer in reference.named_buffers():
            assert_close(module.get_buffer(name).numpy(), buffer.numpy(), what=name)
    module.eval()
    reference.eval()
    for param in list(module.parameters()) + list(reference.parameters()):
        param.grad = None
    check_parity(module, reference, random_input(*shape, seed=10))


@pytest.mark.parametrize("kwargs", BN_CASES, ids=repr)
def test_batch_norm_2d_matches_torch_in_train_and_eval(kwargs):
    _check_batch_norm(nn.BatchNorm2d(4, **kwargs), tnn.BatchNorm2d(4, **kwargs), (3, 4, 5, 6))


@pytest.mark.parametrize("kwargs", BN_CASES, ids=repr)
@pytest.mark.parametrize("shape", [(8, 5), (4, 5, 3)])
def test_batch_norm_1d_matches_torch_in_train_and_eval(kwargs, shape):
    _check_batch_norm(nn.BatchNorm1d(5, **kwargs), tnn.BatchNorm1d(5, **kwargs), shape)


def test_batch_norm_buffers_and_defaults():
    module = nn.BatchNorm2d(3)
    assert module.num_batches_tracked.dtype == pcn.int64 and module.num_batches_tracked.shape == ()
    assert module.running_var.numpy().tolist() == [1.0, 1.0, 1.0]
    module(pcn.randn(2, 3, 2, 2))
    module(pcn.randn(2, 3, 2, 2))
    assert module.num_batches_tracked.item() == 2
    module.reset_running_stats()
    assert module.num_batches_tracked.item() == 0 and not module.running_mean.numpy().any()
    untracked = nn.BatchNorm2d(3, track_running_stats=False, affine=False)
    assert untracked.running_mean is None and untracked.weight is None
    assert list(untracked.state_dict()) == []


@pytest.mark.parametrize("layer, shape, message", [
    (nn.BatchNorm2d(3), (2, 3, 4), r"BatchNorm2d\(3, .*\(2, 3, 4\).*expected 4D input \(got 3D input\)"),
    (nn.BatchNorm1d(3), (2, 3, 4, 4), r"BatchNorm1d\(3, .*\(2, 3, 4, 4\).*expected 2D or 3D input"),
    (nn.BatchNorm2d(3), (2, 5, 4, 4), r"BatchNorm2d\(3, .*\(2, 5, 4, 4\).*3 channels"),
])
def test_batch_norm_rejects_bad_input_naming_the_layer(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(pcn.randn(*shape))


def test_local_response_norm_matches_torch():
    module, reference = nn.LocalResponseNorm(5, alpha=1e-3, beta=0.75, k=2.0), tnn.LocalResponseNorm(5, 1e-3, 0.75, 2.0)
    check_structure(module, reference, ["size", "alpha", "beta", "k"])
    check_structure(nn.LocalResponseNorm(3), tnn.LocalResponseNorm(3), ["size", "alpha", "beta", "k"])
    check_parity(module, reference, random_input(2, 7, 4, 4))


# ----------------------------------------------------------------------------- dropout
def test_dropout_is_identity_in_eval_and_scales_in_training():
    module, reference = nn.Dropout(0.4), tnn.Dropout(0.4)
    check_structure(module, reference, ["p", "inplace"])
    module.eval()
    reference.eval()
    check_parity(module, reference, random_input(3, 4))
    module.train()
    x = pcn.ones(200, 100)
    out = module(x).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / 0.6, rtol=1e-6)
    assert abs(kept.mean() - 0.6) < 0.02
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


# ----------------------------------------------------------------------------- losses
def _logits_and_targets(ignore_index=-100, n=6, classes=4):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((n, classes)).astype(np.float32)
    targets = rng.integers(0, classes, n)
    targets[1] = ignore_index
    return logits, targets


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(label_smoothing=0.1),
    dict(ignore_index=2),
    dict(weight=np.array([1.0, 2.0, 0.5, 1.5], np.float32)),
    dict(weight=np.array([1.0, 2.0, 0.5, 1.5], np.float32), label_smoothing=0.2, reduction="sum"),
])
def test_cross_entropy_loss_matches_torch(kwargs):
    weight = kwargs.pop("weight", None)
    module = nn.CrossEntropyLoss(None if weight is None else pcn.tensor(weight), **kwargs)
    reference = tnn.CrossEntropyLoss(None if weight is None else torch.tensor(weight), **kwargs)
    check_structure(module, reference, ["reduction", "ignore_index", "label_smoothing"])
    logits, targets = _logits_and_targets(kwargs.get("ignore_index", -100))
    check_parity(module, reference, logits, target=targets)


@pytest.mark.parametrize("kwargs", [dict(), dict(reduction="sum"), dict(reduction="none"), dict(ignore_index=-100)])
def test_nll_loss_matches_torch(kwargs):
    weight = np.array([0.5, 1.0, 2.0, 1.0], np.float32)
    module, reference = nn.NLLLoss(pcn.tensor(weight), **kwargs), tnn.NLLLoss(torch.tensor(weight), **kwargs)
    check_structure(module, reference, ["reduction", "ignore_index"])
    logits, targets = _logits_and_targets()
    log_probs = torch.log_softmax(torch.tensor(logits), 1).numpy()
    check_parity(module, reference, log_probs, target=targets)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    module, reference = nn.MSELoss(reduction=reduction), tnn.MSELoss(reduction=reduction)
    check_structure(module, reference, ["reduction"])
    check_parity(module, reference, random_input(3, 4), random_input(3, 4, seed=1))


def test_loss_arguments_are_checked():
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="weight"):
        nn.CrossEntropyLoss([1.0, 2.0])
    loss = nn.CrossEntropyLoss(pcn.ones(3))
    assert list(loss.state_dict()) == ["weight"]


# ----------------------------------------------------------------------------- a whole network
def _torch_cnn():
    return tnn.Sequential(
        tnn.Conv2d(3, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(inplace=True), tnn.MaxPool2d(2),
        tnn.Conv2d(8, 16, 3), tnn.LocalResponseNorm(3), tnn.LeakyReLU(0.1), tnn.AdaptiveAvgPool2d(2),
        tnn.Flatten(), tnn.Dropout(0.5), tnn.Linear(64, 10),
    )


def _pcn_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.LocalResponseNorm(3), nn.LeakyReLU(0.1), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10),
    )


def test_small_cnn_matches_torch_in_eval_and_training_without_dropout():
    module, reference = _pcn_cnn(), _torch_cnn()
    check_structure(module, reference, [])
    copy_weights(module, reference)
    module.eval()
    reference.eval()
    check_parity(module, reference, random_input(4, 3, 12, 12))
    module.train()
    reference.train()
    module[9].p = reference[9].p = 0.0
    check_parity(module, reference, random_input(4, 3, 12, 12, seed=1))
    assert_close(module[1].running_mean.numpy(), reference[1].running_mean.numpy())


def _separable_blobs(n, dim, classes, seed):
    """Gaussian blobs around well separated random centres; returns (x, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32) * 4
    labels = rng.integers(0, classes, n)
    return (centres[labels] + rng.standard_normal((n, dim)).astype(np.float32) * 0.5), labels


def _train(model, x, labels, steps, lr):
    loss_fn = nn.CrossEntropyLoss()
    inputs, targets = pcn.tensor(x), pcn.tensor(labels)
    for _ in range(steps):
        loss = loss_fn(model(inputs), targets)
        model.zero_grad()
        loss.backward()
        with pcn.no_grad():
            for param in model.parameters():
                param -= lr * param.grad
    model.eval()
    with pcn.no_grad():
        predictions = model(inputs).argmax(1).numpy()
    return float(loss.item()), float((predictions == labels).mean())


def test_mlp_learns_a_separable_task():
    pcn.manual_seed(0)
    x, labels = _separable_blobs(256, 8, 4, seed=0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))
    loss, accuracy = _train(model, x, labels, steps=300, lr=0.1)
    assert accuracy >= 0.99, (loss, accuracy)


def test_cnn_learns_a_separable_task():
    pcn.manual_seed(1)
    rng = np.random.default_rng(1)
    # Class 0: a bright vertical bar, class 1: a bright horizontal bar, at random positions.
    n = 128
    labels = rng.integers(0, 2, n)
    images = rng.standard_normal((n, 1, 8, 8)).astype(np.float32) * 0.3
    for i, (label, position) in enumerate(zip(labels, rng.integers(1, 7, n))):
        if label == 0:
            images[i, 0, :, position] += 2.0
        else:
            images[i, 0, position, :] += 2.0
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    )
    loss, accuracy = _train(model, images, labels, steps=200, lr=0.1)
    assert accuracy >= 0.99, (loss, accuracy)
