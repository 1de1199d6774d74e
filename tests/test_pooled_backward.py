"""conv2d -> ReLU -> max-pool's sparse backward (``_C.conv2d_relu_max_pool2d_backward``, Note [sparse
pooled backward]): PyTorch's input, weight and bias gradients on every ISA, over strides, paddings,
wide kernels and overlapping pools; bad input is a ValueError."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from support import random_array

torch = pytest.importorskip("torch")

# (batch, in_channels, in_h, in_w, out_channels, kernel (h, w), stride, padding, pool kernel, pool stride,
#  pool padding, ceil_mode)
CASES = [
    (4, 1, 28, 28, 6, (5, 5), (1, 1), (2, 2), 2, 2, 0, False),     # LeNet-5's conv1
    (3, 6, 14, 14, 16, (5, 5), (1, 1), (0, 0), 2, 2, 0, False),    # LeNet-5's conv2
    (2, 3, 40, 37, 5, (11, 11), (4, 3), (2, 1), 3, 2, 0, False),   # AlexNet-like: two vectors a kernel row
    (2, 4, 13, 13, 7, (3, 3), (1, 1), (1, 1), 3, 2, 1, True),      # overlapping windows, padding, ceil_mode
    (1, 2, 9, 20, 3, (2, 9), (2, 1), (0, 4), 2, 1, 0, False),      # a 9-wide kernel, pool stride 1
    (5, 12, 8, 8, 3, (1, 1), (1, 1), (0, 0), 2, 2, 0, False),      # 12 rows: more than a register chunk
]


def _torch_gradients(case, rng):
    n, cin, h, w, cout, kernel, stride, padding, pool, pool_stride, pool_padding, ceil_mode = case
    x, weight, bias = random_array(rng, n, cin, h, w), random_array(rng, cout, cin, *kernel), random_array(rng, cout)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    conv = torch.nn.functional.conv2d(xt, wt, bt, stride, padding)
    pooled, indices = torch.nn.functional.max_pool2d(conv, pool, pool_stride, pool_padding, ceil_mode=ceil_mode,
                                                     return_indices=True)
    output = torch.relu(pooled)
    gy = random_array(rng, *output.shape)
    output.backward(torch.tensor(gy))
    return x, weight, gy, output.detach().numpy(), indices.numpy(), (xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_input_weight_and_bias_gradients_match_torch(isa, case):
    rng = np.random.default_rng(4)
    x, weight, gy, output, indices, torch_grads = _torch_gradients(case, rng)
    stride, padding = case[6], case[7]
    grads = _C.conv2d_relu_max_pool2d_backward(gy, output, indices, x, weight, stride, padding, input_grad=True,
                                               bias_grad=True)
    for grad, reference in zip(grads, torch_grads):
        np.testing.assert_allclose(grad, reference, rtol=1e-4, atol=1e-4)
    none, dw, none_too = _C.conv2d_relu_max_pool2d_backward(gy, output, indices, x, weight, stride, padding,
                                                            input_grad=False, bias_grad=False)
    assert none is None and none_too is None and np.array_equal(dw, grads[1])


def test_gradients_that_relu_or_the_windows_drop_add_nothing(isa):
    rng = np.random.default_rng(5)
    case = CASES[1]
    x, weight, gy, output, indices, _ = _torch_gradients(case, rng)

    def call(gy, output, indices):
        return _C.conv2d_relu_max_pool2d_backward(gy, output, indices, x, weight, (1, 1), (0, 0), input_grad=True,
                                                  bias_grad=True)

    for grads in (call(np.zeros_like(gy), output, indices),
                  call(gy, -np.abs(output), indices),  # ReLU's zeros: no gradient passes
                  call(gy, output, np.full_like(indices, -1))):  # -1: a window that held no input
        assert not any(np.any(grad) for grad in grads)


def test_bad_input_is_a_value_error_naming_the_argument():
    rng = np.random.default_rng(6)
    case = CASES[1]
    x, weight, gy, output, indices, _ = _torch_gradients(case, rng)

    def call(gy=gy, output=output, indices=indices, x=x, weight=weight):
        return _C.conv2d_relu_max_pool2d_backward(gy, output, indices, x, weight, (1, 1), (0, 0), input_grad=True,
                                                  bias_grad=True)

    bad = indices.copy()
    bad[1, 2, 3, 4] = 100  # past the 10x10 convolution output
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 100\).*got 100 at flat position"):
        call(indices=bad)
    with pytest.raises(ValueError, match="output"):
        call(output=output[:, :, :4])
    with pytest.raises(ValueError, match="indices"):
        call(indices=indices[:2])
    with pytest.raises(ValueError, match=r"grad_output must have shape \(3, 16, H, W\)"):
        call(gy=gy[:, :8])
    with pytest.raises(ValueError, match="weight"):
        call(weight=weight[..., 0])
    with pytest.raises(ValueError, match="input"):
        call(x=x[:, :5])


@pytest.mark.parametrize("kernel", [5, 3])  # the heuristic: sparse for 5x5, dense for 3x3 stride 1
def test_the_fused_op_trains_the_same_through_either_route(kernel):
    rng = np.random.default_rng(7)
    x, weight, bias = random_array(rng, 4, 3, 16, 16), random_array(rng, 8, 3, kernel, kernel), random_array(rng, 8)
    tensors = [pcn.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    out = F.conv2d_relu_max_pool2d(*tensors, 1, 1, kernel_size=2)
    gy = random_array(rng, *out.shape)
    out.backward(pcn.tensor(gy))
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    torch_out = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(*theirs, 1, 1)), 2)
    torch_out.backward(torch.tensor(gy))
    for mine, reference in zip(tensors, theirs):
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), rtol=1e-4, atol=1e-4)
