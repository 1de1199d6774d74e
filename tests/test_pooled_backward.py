"""conv2d -> ReLU -> max-pool's sparse backward (``_C.conv2d_relu_max_pool2d_backward``, Note [sparse
pooled backward]): the float64 reference's input, weight and bias gradients on every ISA, and
PyTorch's, over strides, paddings, wide kernels and overlapping pools; bad input is a ValueError."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn.functional as F
from pyconvnet import _C
from references import conv2d_reference
from support import assert_close, random_array

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


def _forward(case, rng):
    """The case's input, weight, pooled gradient, pooled output after ReLU and argmax indices (this
    project's kernels), and the float64 reference's (dx, dw, db) from the scattered gradient."""
    n, cin, h, w, cout, kernel, stride, padding, pool, pool_stride, pool_padding, ceil_mode = case
    x, weight, bias = random_array(rng, n, cin, h, w), random_array(rng, cout, cin, *kernel), random_array(rng, cout)
    conv = _C.conv2d_forward(x, weight, bias, stride, padding, (1, 1), 1)
    output, indices = _C.max_pool2d_forward(conv, (pool, pool), (pool_stride, pool_stride),
                                            (pool_padding, pool_padding), (1, 1), ceil_mode)
    output = np.maximum(output, 0)
    gy = random_array(rng, *output.shape)
    dense = np.zeros(conv.shape, np.float64)  # the conv's output gradient: through ReLU, to the argmax
    plane = dense.reshape(n * cout, -1)
    for row, (grads, positions, kept) in enumerate(zip(gy.reshape(n * cout, -1), indices.reshape(n * cout, -1),
                                                       output.reshape(n * cout, -1) > 0)):
        np.add.at(plane[row], positions[kept], grads[kept])
    _, dx, dw, db = conv2d_reference(x, weight, None, dense, stride, padding, (1, 1), 1)
    return x, weight, bias, gy, output, indices, (dx, dw, db)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_input_weight_and_bias_gradients_match_the_reference(isa, case):
    rng = np.random.default_rng(4)
    x, weight, _, gy, output, indices, expected = _forward(case, rng)
    stride, padding = case[6], case[7]
    grads = _C.conv2d_relu_max_pool2d_backward(gy, output, indices, x, weight, stride, padding, input_grad=True,
                                               bias_grad=True)
    for grad, reference, what in zip(grads, expected, ("grad_input", "grad_weight", "grad_bias")):
        assert_close(grad, reference, what=what)
    none, dw, none_too = _C.conv2d_relu_max_pool2d_backward(gy, output, indices, x, weight, stride, padding,
                                                            input_grad=False, bias_grad=False)
    assert none is None and none_too is None and np.array_equal(dw, grads[1])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_fused_op_backward_matches_torch(case):
    torch = pytest.importorskip("torch")
    n, cin, h, w, cout, kernel, stride, padding, pool, pool_stride, pool_padding, ceil_mode = case
    rng = np.random.default_rng(9)
    arrays = [random_array(rng, n, cin, h, w), random_array(rng, cout, cin, *kernel), random_array(rng, cout)]
    tensors = [pcn.tensor(a, requires_grad=True) for a in arrays]
    out = F.conv2d_relu_max_pool2d(*tensors, stride, padding, kernel_size=pool, pool_stride=pool_stride,
                                   pool_padding=pool_padding, ceil_mode=ceil_mode)
    gy = random_array(rng, *out.shape)
    out.backward(pcn.tensor(gy))
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    conv = torch.nn.functional.conv2d(*theirs, stride, padding)
    torch_out = torch.relu(torch.nn.functional.max_pool2d(conv, pool, pool_stride, pool_padding, ceil_mode=ceil_mode))
    torch_out.backward(torch.tensor(gy))
    for mine, reference in zip(tensors, theirs):
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_gradients_that_relu_or_the_windows_drop_add_nothing(isa):
    rng = np.random.default_rng(5)
    case = CASES[1]
    x, weight, _, gy, output, indices, _ = _forward(case, rng)

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
    x, weight, _, gy, output, indices, _ = _forward(case, rng)

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
    torch = pytest.importorskip("torch")
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
