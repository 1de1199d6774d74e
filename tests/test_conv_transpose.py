"""conv_transpose2d and ConvTranspose2d (built on the conv2d kernels): forward and the input,
weight and bias gradients against a float64 numpy reference (the adjoint of the conv2d reference)
and PyTorch on every ISA, over edge geometries."""

import numpy as np
import pytest

import pyconvnet as pcn
import pyconvnet.nn as nn
import pyconvnet.nn.functional as F
from references import conv2d_reference
from support import assert_close, random_array


def conv_transpose2d_reference(x, w, b, gy, stride, padding, output_padding, dilation, groups):
    """conv_transpose2d is the adjoint of conv2d from the output's channels to the input's: its output
    is conv2d's input gradient for grad_output x, and its input gradient is conv2d of gy."""
    n, _, h, wd = x.shape
    cout = w.shape[1] * groups
    oh = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (w.shape[2] - 1) + output_padding[0] + 1
    ow = (wd - 1) * stride[1] - 2 * padding[1] + dilation[1] * (w.shape[3] - 1) + output_padding[1] + 1
    # conv2d(z) for z (n, cout, oh, ow) with weight w gives (n, cin, h, wd); its data gradient at gy_conv = x is y.
    zeros = np.zeros((n, cout, oh, ow))
    _, y, _, _ = conv2d_reference(zeros, w, None, x, stride, padding, dilation, groups)
    dx, _, dw_t, _ = conv2d_reference(gy, w, None, x, stride, padding, dilation, groups)
    if b is not None:
        y = y + b[None, :, None, None]
    return y, dx, dw_t, gy.sum(axis=(0, 2, 3))


# (N, C_in, H, W, C_out, kernel, stride, padding, output_padding, dilation, groups)
CASES = [
    (2, 4, 5, 6, 6, 3, 2, 1, 1, 1, 2),  # the usual 2x upsampling layer, grouped
    (1, 3, 4, 4, 2, 3, 1, 0, 0, 1, 1),  # batch 1, stride 1
    (2, 2, 3, 3, 4, 2, 3, 1, 2, 2, 1),  # stride > kernel, dilation, output_padding
    (1, 1, 1, 1, 3, 4, 2, 1, 0, 1, 1),  # 1x1 input (DCGAN's first layer shape)
    (2, 6, 5, 4, 6, 3, 1, 1, 0, 1, 6),  # depthwise
    (3, 5, 7, 3, 9, (3, 1), (2, 1), (1, 0), (1, 0), 1, 1),  # rectangular kernel and strides
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_transpose2d_matches_reference_and_torch(isa, case, with_bias):
    torch = pytest.importorskip("torch")
    n, cin, h, w_, cout, kernel, stride, padding, output_padding, dilation, groups = case
    k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    rng = np.random.default_rng(0)
    x, w = random_array(rng, n, cin, h, w_), random_array(rng, cin, cout // groups, *k)
    b = random_array(rng, cout) if with_bias else None
    args = (stride, padding, output_padding, groups, dilation)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if with_bias else None
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, *args)
    gy = random_array(rng, *ty.shape)
    ty.backward(torch.tensor(gy))
    xt, wt = pcn.tensor(x, requires_grad=True), pcn.tensor(w, requires_grad=True)
    bt = pcn.tensor(b, requires_grad=True) if with_bias else None
    y = F.conv_transpose2d(xt, wt, bt, *args)
    (y * pcn.tensor(gy)).sum().backward()
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    ref = conv_transpose2d_reference(f64(x), f64(w), f64(b), f64(gy), pair(stride), pair(padding), pair(output_padding),
                                     pair(dilation), groups)
    ours = [y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()] + ([bt.grad.numpy()] if with_bias else [])
    theirs = [ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()] + ([tb.grad.numpy()] if with_bias else [])
    for what, got, expected, torch_value in zip(["output", "grad_input", "grad_weight", "grad_bias"], ours, ref, theirs):
        assert_close(got, expected, what=what)
        assert_close(got, torch_value, what=f"{what} vs torch")


def test_module_matches_torch_with_output_size_and_unbatched_input():
    torch = pytest.importorskip("torch")
    ours = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2)
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2)
    assert repr(ours) == repr(theirs)
    assert ours.weight.shape == tuple(theirs.weight.shape) == (4, 3, 3, 3)
    bound = 1 / np.sqrt(3 * 3 * 3)  # torch's fan_in of the (in, out / groups, kH, kW) layout
    assert np.abs(ours.bias.detach().numpy()).max() <= bound and np.abs(ours.weight.detach().numpy()).max() <= bound
    ours.load_state_dict({k: pcn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    x = random_array(np.random.default_rng(1), 2, 4, 5, 5)
    for output_size in (None, (10, 10), [2, 6, 9, 10]):
        y = ours(pcn.tensor(x), output_size=output_size)
        ty = theirs(torch.tensor(x), output_size=output_size)
        assert_close(y.detach().numpy(), ty.detach().numpy(), what=f"output_size={output_size}")
    assert_close(ours(pcn.tensor(x[0])).detach().numpy(), theirs(torch.tensor(x[0])).detach().numpy(), what="unbatched")
    with pytest.raises(ValueError, match="valid sizes range from 9 to 10"):
        ours(pcn.tensor(x), output_size=(12, 12))
    assert repr(nn.ConvTranspose2d(2, 2, 4, 2, 1, output_padding=1, bias=False)) == repr(
        torch.nn.ConvTranspose2d(2, 2, 4, 2, 1, output_padding=1, bias=False))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.conv_transpose2d(pcn.zeros(1, 3, 4, 4), pcn.zeros(2, 2, 3, 3)), ValueError,
         r"weight of shape \[2, 2, 3, 3\] expects 2 input channels, got input of shape \[1, 3, 4, 4\]"),
        (lambda: F.conv_transpose2d(pcn.zeros(1, 2, 4, 4), pcn.zeros(2, 2, 3, 3), output_padding=1), ValueError,
         "output_padding"),
        (lambda: F.conv_transpose2d(pcn.zeros(1, 2, 4, 4), pcn.zeros(2, 2, 3, 3), pcn.zeros(3)), ValueError, "bias"),
        (lambda: F.conv_transpose2d(pcn.zeros(1, 3, 4, 4), pcn.zeros(3, 2, 3, 3), groups=2), ValueError, "groups=2"),
        (lambda: F.conv_transpose2d(pcn.zeros(1, 2, 1, 1), pcn.zeros(2, 2, 1, 1), padding=1), ValueError,
         "output size"),
        (lambda: F.conv_transpose2d(pcn.zeros(1, 2, 4, 4).long(), pcn.zeros(2, 2, 3, 3)), TypeError, "float32"),
        (lambda: F.conv_transpose2d(pcn.zeros(2, 4, 4), pcn.zeros(2, 4, 3, 3), groups=1.0), TypeError, "groups"),
        (lambda: nn.ConvTranspose2d(3, 4, 3, groups=2), ValueError, "divisible by groups"),
        (lambda: nn.ConvTranspose2d(2, 4, 3, padding_mode="reflect"), ValueError, "zeros"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
