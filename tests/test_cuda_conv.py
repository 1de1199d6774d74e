"""GPU conv2d (pyconvnet._C_cuda.conv2d_forward / _backward_data / _backward_weight / _backward_bias)
against the CPU kernels (_C) on the same inputs: the CPU tests' geometry sweep (tests/test_conv.py),
shapes that cross the GPU's 64x64 tiles and split the weight gradient's reduction, the model zoo's
layers, empty batches, the CPU bindings' errors with the same types and messages, and the opt-in
TF32 path."""

import numpy as np
import pytest

from pyconvnet import _C
from support import assert_close, random_array
from test_conv import CONV_CASES
from test_cuda_gemm import gpu, tf32  # noqa: F401  (fixtures)

pytestmark = pytest.mark.cuda


# (batch, in_channels, H, W, out_channels, kernel, stride, padding, dilation, groups)
GPU_CASES = [
    (2, 5, 33, 33, 70, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # more than one tile of rows and columns
    (2, 3, 10, 10, 5, (2, 2), (3, 3), (0, 0), (1, 1), 1),  # stride 3 with kernel 2: taps skip pixels
    (2, 4, 6, 6, 4, (8, 8), (1, 1), (1, 1), (1, 1), 1),  # kernel = padded input
    (2, 32, 16, 16, 32, (3, 3), (1, 1), (1, 1), (1, 1), 32),  # depthwise: 32 groups on the grid's z
    (2, 17, 9, 9, 17, (3, 3), (1, 1), (1, 1), (1, 1), 17),  # depthwise, odd channel count
    (8, 3, 64, 64, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # weight gradient's reduction split in chunks
    (1, 32, 1, 1, 32, (3, 3), (1, 1), (130, 130), (1, 1), 1),  # padding far beyond the kernel
    (2, 3, 224, 224, 64, (7, 7), (2, 2), (3, 3), (1, 1), 1),  # ResNet-18 conv1
    (2, 64, 56, 56, 64, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # ResNet-18 layer1
    (2, 64, 56, 56, 128, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # ResNet-18 layer2 downsampling
    (2, 64, 56, 56, 128, (1, 1), (2, 2), (0, 0), (1, 1), 1),  # ResNet-18 projection shortcut
    (1, 512, 7, 7, 512, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # ResNet-18 layer4: long K, few columns
    (1, 3, 224, 224, 64, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # VGG conv1_1
    (1, 128, 56, 56, 256, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # VGG conv3_1
]


def case_id(c):
    return "x".join(map(str, c[:5])) + f"-k{c[5][0]}x{c[5][1]}s{c[6][0]}p{c[7][0]}d{c[8][0]}g{c[9]}"


def assert_matches_cpu(got, expected, k, what):
    """fp32 sums of k products in two orders: the error grows with sqrt(k) on unit-variance data."""
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.sqrt(max(k, 1)), err_msg=what)


def conv_results(gpu, case, seed):
    """(what, CPU result, GPU result, reduction length) for the four conv2d kernels on the same random inputs."""
    n, c, h, w, o, kernel, stride, padding, dilation, groups = case
    geometry = (stride, padding, dilation, groups)
    rng = np.random.default_rng(seed)
    x, weight, bias = random_array(rng, n, c, h, w), random_array(rng, o, c // groups, *kernel), random_array(rng, o)
    y = _C.conv2d_forward(x, weight, bias, *geometry)
    gy = random_array(rng, *y.shape)
    dev_x, dev_w, dev_b, dev_gy = (gpu.from_numpy(a, 0) for a in (x, weight, bias, gy))
    taps, positions = kernel[0] * kernel[1], n * y.shape[2] * y.shape[3]
    return [
        ("output", y, gpu.conv2d_forward(dev_x, dev_w, dev_b, *geometry), c // groups * taps),
        ("output without bias", _C.conv2d_forward(x, weight, None, *geometry),
         gpu.conv2d_forward(dev_x, dev_w, None, *geometry), c // groups * taps),
        ("grad_input", _C.conv2d_backward_data(gy, weight, list(x.shape), *geometry),
         gpu.conv2d_backward_data(dev_gy, dev_w, list(x.shape), *geometry), o // groups * taps),
        ("grad_weight", _C.conv2d_backward_weight(gy, x, list(weight.shape), *geometry),
         gpu.conv2d_backward_weight(dev_gy, dev_x, list(weight.shape), *geometry), positions),
        ("grad_bias", _C.conv2d_backward_bias(gy), gpu.conv2d_backward_bias(dev_gy), positions),
    ]


@pytest.mark.parametrize("case", CONV_CASES + GPU_CASES, ids=case_id)
def test_conv2d_matches_cpu(gpu, case):
    for what, expected, got, k in conv_results(gpu, case, seed=0):
        assert_matches_cpu(gpu.to_numpy(got), expected, k, what)


@pytest.mark.parametrize("case", CONV_CASES[:6] + GPU_CASES[:6] + GPU_CASES[-3:], ids=case_id)
def test_conv2d_tf32_matches_cpu(gpu, tf32, case):
    """TF32 keeps 10 mantissa bits of each operand: about 1e-3 of each result's scale."""
    for what, expected, got, _ in conv_results(gpu, case, seed=2):
        assert_close(gpu.to_numpy(got), expected, rtol=1e-2, what=what)


@pytest.mark.sanitize_subset
def test_conv2d_gradients_are_deterministic(gpu):
    """The weight gradient's split reduction and the bias tree run in a fixed order: bitwise repeatable."""
    rng = np.random.default_rng(1)
    x, gy = gpu.from_numpy(random_array(rng, 8, 3, 64, 64), 0), gpu.from_numpy(random_array(rng, 8, 16, 64, 64), 0)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    first = gpu.to_numpy(gpu.conv2d_backward_weight(gy, x, [16, 3, 3, 3], *geometry))
    assert np.array_equal(first, gpu.to_numpy(gpu.conv2d_backward_weight(gy, x, [16, 3, 3, 3], *geometry)))
    assert np.array_equal(gpu.to_numpy(gpu.conv2d_backward_bias(gy)), gpu.to_numpy(gpu.conv2d_backward_bias(gy)))


def test_conv2d_with_an_empty_batch(gpu):
    x, weight = np.zeros((0, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    y = gpu.to_numpy(gpu.conv2d_forward(gpu.from_numpy(x, 0), gpu.from_numpy(weight, 0), None, *geometry))
    assert y.shape == (0, 4, 8, 8)
    gy = gpu.from_numpy(np.zeros((0, 4, 8, 8), np.float32), 0)
    dx = gpu.to_numpy(gpu.conv2d_backward_data(gy, gpu.from_numpy(weight, 0), [0, 3, 8, 8], *geometry))
    assert dx.shape == (0, 3, 8, 8)
    dw = gpu.to_numpy(gpu.conv2d_backward_weight(gy, gpu.from_numpy(x, 0), [4, 3, 3, 3], *geometry))
    assert np.array_equal(dw, np.zeros((4, 3, 3, 3), np.float32))
    assert np.array_equal(gpu.to_numpy(gpu.conv2d_backward_bias(gy)), np.zeros(4, np.float32))


def _raised(gpu, name, *args):
    """The exceptions _C.<name> and _C_cuda.<name> raise for the same arguments (arrays uploaded)."""
    raised = []
    for module, wrap in ((_C, lambda a: a), (gpu, lambda a: gpu.from_numpy(a, 0) if isinstance(a, np.ndarray) else a)):
        with pytest.raises(Exception) as info:
            getattr(module, name)(*(wrap(a) for a in args))
        raised.append(info.value)
    return raised


def _zeros(*shape):
    return np.zeros(shape, np.float32)


G = ((1, 1), (0, 0), (1, 1), 1)  # stride, padding, dilation, groups


@pytest.mark.parametrize(
    "name,args",
    [
        ("conv2d_forward", (_zeros(3, 8, 8), _zeros(4, 3, 3, 3), None, *G)),  # input not 4-D
        ("conv2d_forward", (_zeros(2, 3, 8, 8), _zeros(4, 3, 3), None, *G)),  # weight not 4-D
        ("conv2d_forward", (_zeros(2, 3, 8, 8), _zeros(4, 2, 3, 3), None, *G)),  # channels vs groups
        ("conv2d_forward", (_zeros(2, 3, 8, 8), _zeros(4, 3, 3, 3), None, (0, 1), (0, 0), (1, 1), 1)),
        ("conv2d_forward", (_zeros(2, 3, 8, 8), _zeros(4, 3, 3, 3), None, (1, 1), (-1, 0), (1, 1), 1)),
        ("conv2d_forward", (_zeros(2, 3, 8, 8), _zeros(4, 3, 3, 3), None, (1, 1), (0, 0), (0, 1), 1)),
        ("conv2d_forward", (_zeros(2, 3, 8, 8), _zeros(4, 3, 11, 3), None, *G)),  # kernel larger than the input
        ("conv2d_forward", (_zeros(2, 6, 8, 8), _zeros(5, 3, 3, 3), None, (1, 1), (0, 0), (1, 1), 2)),
        ("conv2d_forward", (_zeros(2, 3, 8, 8), _zeros(4, 3, 3, 3), None, (1, 1), (0, 0), (1, 1), 0)),
        ("conv2d_forward", (_zeros(2, 3, 8, 8), _zeros(4, 3, 3, 3), _zeros(5), *G)),  # bias shape
        ("conv2d_backward_data", (_zeros(2, 4, 5, 5), _zeros(4, 3, 3, 3), [2, 3, 8, 8], *G)),  # grad_output shape
        ("conv2d_backward_data", (_zeros(2, 4, 6, 6), _zeros(4, 3, 3, 3), [3, 8, 8], *G)),  # input_shape entries
        ("conv2d_backward_weight", (_zeros(2, 4, 6, 6), _zeros(2, 3, 8, 8), [4, 3, 3], *G)),  # weight_shape entries
        ("conv2d_backward_weight", (_zeros(2, 4, 5, 6), _zeros(2, 3, 8, 8), [4, 3, 3, 3], *G)),  # grad_output shape
        ("conv2d_backward_bias", (_zeros(2, 4, 6),)),  # grad_output not 4-D
    ],
)
def test_conv2d_value_errors_match_cpu(gpu, name, args):
    cpu_error, gpu_error = _raised(gpu, name, *args)
    assert type(cpu_error) is ValueError and type(gpu_error) is ValueError
    assert str(gpu_error) == str(cpu_error)


def test_conv2d_sizes_that_overflow_are_rejected(gpu):
    one = _zeros(1, 1, 1, 1)
    for name, args in (
        ("conv2d_backward_data", (one, one, [2**40, 2**40, 1, 1], *G)),
        ("conv2d_backward_weight", (one, one, [2**62, 1, 1, 1], *G)),
    ):
        _, gpu_error = _raised(gpu, name, *args)
        assert type(gpu_error) is ValueError and ("too large" in str(gpu_error) or "negative" in str(gpu_error))


def test_conv2d_dtype_errors(gpu):
    x, weight = gpu.from_numpy(_zeros(2, 3, 8, 8), 0), gpu.from_numpy(_zeros(4, 3, 3, 3), 0)
    as_int = lambda a: gpu.from_numpy(gpu.to_numpy(a).astype(np.int64), 0)  # noqa: E731
    for call in (
        lambda: gpu.conv2d_forward(as_int(x), weight, None, *G),
        lambda: gpu.conv2d_forward(x, as_int(weight), None, *G),
        lambda: gpu.conv2d_forward(x, weight, gpu.from_numpy(np.zeros(4, np.int64), 0), *G),
        lambda: gpu.conv2d_backward_data(as_int(gpu.from_numpy(_zeros(2, 4, 6, 6), 0)), weight, [2, 3, 8, 8], *G),
        lambda: gpu.conv2d_backward_weight(gpu.from_numpy(_zeros(2, 4, 6, 6), 0), as_int(x), [4, 3, 3, 3], *G),
        lambda: gpu.conv2d_backward_bias(as_int(x)),
    ):
        with pytest.raises(TypeError, match="float32"):
            call()
