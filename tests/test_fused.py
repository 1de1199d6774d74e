"""The fused layer sequences (conv2d_relu_max_pool2d, linear_relu): the same values and gradients
as the separate ops and as PyTorch's, on every ISA; LeNet-5 runs them unless a hook watches a layer."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import models
from support import random_array

# (conv stride, conv padding, pool kernel, pool stride, pool padding, ceil_mode) on a 2x3x13x11 input
CONV_POOL_CASES = [
    (1, 0, 2, 2, 0, False),  # LeNet-5's
    (1, 2, 2, 2, 0, False),
    (2, 1, 3, 2, 1, False),
    (1, 1, 3, 2, 0, True),
    (1, 0, 2, 1, 1, True),
]


def _graph_names(tensor):
    """The backward nodes' names from ``tensor`` back to the leaves, depth first."""
    names, stack = [], [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or not hasattr(node, "next_functions"):
            continue
        names.append(node.name())
        stack.extend(function for function, _ in node.next_functions)
    return names


def _run(fn, arrays, upstream):
    tensors = [pcn.tensor(a, requires_grad=True) if a is not None else None for a in arrays]
    out = fn(*tensors)
    out.backward(pcn.tensor(upstream))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors if t is not None]


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("case", CONV_POOL_CASES, ids=str)
def test_conv2d_relu_max_pool2d_equals_the_three_ops_and_torch(isa, case, with_bias):
    stride, padding, kernel, pool_stride, pool_padding, ceil_mode = case
    rng = np.random.default_rng(1)
    arrays = [random_array(rng, 2, 3, 13, 11), random_array(rng, 4, 3, 3, 3), random_array(rng, 4) if with_bias else None]

    def separate(x, w, b, functional=F):
        y = functional.relu(functional.conv2d(x, w, b, stride, padding))
        return functional.max_pool2d(y, kernel, pool_stride, pool_padding, ceil_mode=ceil_mode)

    def fused(x, w, b):
        return F.conv2d_relu_max_pool2d(x, w, b, stride, padding, kernel_size=kernel, pool_stride=pool_stride,
                                        pool_padding=pool_padding, ceil_mode=ceil_mode)

    expected = separate(*[pcn.tensor(a) if a is not None else None for a in arrays])
    upstream = random_array(rng, *expected.shape)
    out, grads = _run(fused, arrays, upstream)
    reference_out, reference_grads = _run(separate, arrays, upstream)
    assert np.array_equal(out, reference_out)
    for grad, reference in zip(grads, reference_grads):  # may be summed sparsely, in another order
        np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-5)

    torch = pytest.importorskip("torch")
    theirs = [torch.tensor(a, requires_grad=True) if a is not None else None for a in arrays]
    torch_out = separate(*theirs, functional=torch.nn.functional)
    torch_out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out, torch_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    for grad, reference in zip(grads, [t for t in theirs if t is not None]):
        np.testing.assert_allclose(grad, reference.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)], ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_relu_equals_the_two_ops_and_torch(isa, shape, with_bias):
    rng = np.random.default_rng(2)
    arrays = [random_array(rng, *shape), random_array(rng, 6, 7), random_array(rng, 6) if with_bias else None]
    upstream = random_array(rng, *shape[:-1], 6)
    out, grads = _run(F.linear_relu, arrays, upstream)
    reference_out, reference_grads = _run(lambda x, w, b: F.relu(F.linear(x, w, b)), arrays, upstream)
    assert np.array_equal(out, reference_out)
    for grad, reference in zip(grads, reference_grads):  # may be summed sparsely, in another order
        np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-5)

    torch = pytest.importorskip("torch")
    theirs = [torch.tensor(a, requires_grad=True) if a is not None else None for a in arrays]
    torch_out = torch.relu(torch.nn.functional.linear(*theirs))
    torch_out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out, torch_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    for grad, reference in zip(grads, [t for t in theirs if t is not None]):
        np.testing.assert_allclose(grad, reference.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("start_dim, in_features", [(1, 60), (-2, 20)])
def test_linear_relu_flattening_equals_flatten_then_the_two_ops_and_torch(isa, start_dim, in_features):
    rng = np.random.default_rng(4)
    arrays = [random_array(rng, 2, 3, 4, 5), random_array(rng, 6, in_features), random_array(rng, 6)]

    def separate(x, w, b, functional=F):
        return functional.relu(functional.linear(x.flatten(start_dim), w, b))

    expected = separate(*[pcn.tensor(a) for a in arrays])
    assert "ReshapeBackward" not in _graph_names(F.linear_relu(*[pcn.tensor(a, requires_grad=True) for a in arrays],
                                                               start_dim=start_dim))
    upstream = random_array(rng, *expected.shape)
    out, grads = _run(lambda x, w, b: F.linear_relu(x, w, b, start_dim=start_dim), arrays, upstream)
    reference_out, reference_grads = _run(separate, arrays, upstream)
    assert np.array_equal(out, reference_out)
    for grad, reference in zip(grads, reference_grads):  # may be summed sparsely, in another order
        np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-5)

    torch = pytest.importorskip("torch")
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    torch_out = separate(*theirs, functional=torch.nn.functional)
    torch_out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out, torch_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    for grad, reference in zip(grads, theirs):
        np.testing.assert_allclose(grad, reference.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_fused_ops_reject_bad_arguments():
    x, w = pcn.zeros(3, 8, 8), pcn.zeros(2, 3, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d_relu_max_pool2d: input must be 4-D"):
        F.conv2d_relu_max_pool2d(x, w, kernel_size=2)
    with pytest.raises(ValueError, match=r"conv2d_relu_max_pool2d: padding must be"):
        F.conv2d_relu_max_pool2d(x.unsqueeze(0), w, padding="full", kernel_size=2)
    with pytest.raises(TypeError, match=r"conv2d_relu_max_pool2d: kernel_size must be an int"):
        F.conv2d_relu_max_pool2d(x.unsqueeze(0), w, kernel_size=2.5)
    with pytest.raises(ValueError, match=r"linear_relu: input shape \(4, 5\) does not match"):
        F.linear_relu(pcn.zeros(4, 5), pcn.zeros(6, 7))
    with pytest.raises(ValueError, match=r"linear_relu: bias must have shape \(6,\)"):
        F.linear_relu(pcn.zeros(4, 7), pcn.zeros(6, 7), pcn.zeros(5))
    with pytest.raises(ValueError, match=r"linear_relu: input shape \(4, 10\) does not match"):  # as flattened
        F.linear_relu(pcn.zeros(4, 2, 5), pcn.zeros(6, 7), start_dim=1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.linear_relu(pcn.zeros(4, 7), pcn.zeros(6, 7), start_dim=2)


def _lenet_step(model, x, y):
    model.zero_grad()
    out = model(x)
    F.cross_entropy(out, y).backward()
    return out, [p.grad.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("size", [28, 32])
def test_lenet5_runs_fused_unless_a_hook_watches(size):
    pcn.manual_seed(0)
    model = models.lenet5()
    rng = np.random.default_rng(3)
    x, y = pcn.tensor(random_array(rng, 4, 1, size, size)), pcn.tensor(np.arange(4))
    out, grads = _lenet_step(model, x, y)
    names = _graph_names(out)
    assert names.count("Conv2dReluMaxPool2dFunctionBackward") == 2 and names.count("LinearReluFunctionBackward") == 2
    assert not {"ConstantPadFunctionBackward", "ReluFunctionBackward", "MaxPool2dFunctionBackward",
                "ReshapeBackward"} & set(names)  # the flatten too is inside the first linear node

    seen = []
    handle = model.features[1].register_forward_hook(lambda module, args, output: seen.append(tuple(output.shape)))
    hooked_out, hooked_grads = _lenet_step(model, x, y)
    handle.remove()
    assert seen == [(4, 6, 28, 28)]  # conv1's ReLU, on the padded input's 28x28 map
    assert "ReluFunctionBackward" in _graph_names(hooked_out)
    np.testing.assert_allclose(out.detach().numpy(), hooked_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    for grad, hooked in zip(grads, hooked_grads):
        np.testing.assert_allclose(grad, hooked, rtol=1e-5, atol=1e-6)


def test_vgg_bn_runs_batch_norm_and_relu_as_one_node_unless_a_hook_watches():
    pcn.manual_seed(0)
    model = models.vgg11_bn(num_classes=10, cifar=True)
    rng = np.random.default_rng(4)
    x, y = pcn.tensor(random_array(rng, 4, 3, 32, 32)), pcn.tensor(np.arange(4))
    out, grads = _lenet_step(model, x, y)
    names = _graph_names(out)
    assert names.count("BatchNormFunctionBackward") == 8 and "ReluFunctionBackward" not in names

    seen = []
    handle = model.features[2].register_forward_hook(lambda module, args, output: seen.append(tuple(output.shape)))
    hooked_out, hooked_grads = _lenet_step(model, x, y)
    handle.remove()
    assert seen == [(4, 64, 32, 32)]
    assert _graph_names(hooked_out).count("ReluFunctionBackward") == 1
    np.testing.assert_allclose(out.detach().numpy(), hooked_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    for grad, hooked in zip(grads, hooked_grads):
        np.testing.assert_allclose(grad, hooked, rtol=1e-5, atol=1e-6)
