"""nn.init: gains, fans, bounds (exact) and sample moments (loose) against torch's formulas."""

import math

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet.nn import init


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    cases = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
             ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0), ("selu", None)]
    for nonlinearity, param in cases:
        assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "0.1")


@pytest.mark.parametrize("shape", [(20, 30), (16, 8, 3, 3), (5, 2, 1, 7)])
def test_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(pcn.empty(*shape)) == expected


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(pcn.empty(5))


def _uniform_bound_check(values, bound):
    assert values.min() >= -bound and values.max() <= bound
    assert values.max() > 0.98 * bound and values.min() < -0.98 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.03 * bound
    assert abs(values.mean()) < 0.03 * bound


def _normal_moments_check(values, std, mean=0.0):
    assert abs(values.mean() - mean) < 0.03 * std
    assert abs(values.std() - std) < 0.03 * std


SHAPE = (64, 32, 3, 3)  # fan_in 288, fan_out 576
FAN_IN, FAN_OUT = 32 * 9, 64 * 9


@pytest.mark.parametrize("a, mode, nonlinearity, fan", [
    (0, "fan_in", "leaky_relu", FAN_IN),
    (math.sqrt(5), "fan_in", "leaky_relu", FAN_IN),
    (0, "fan_out", "relu", FAN_OUT),
    (0.1, "FAN_OUT", "leaky_relu", FAN_OUT),
])
def test_kaiming(a, mode, nonlinearity, fan):
    gain = init.calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    tensor = pcn.empty(*SHAPE)
    assert init.kaiming_uniform_(tensor, a=a, mode=mode, nonlinearity=nonlinearity) is tensor
    _uniform_bound_check(tensor.numpy(), math.sqrt(3) * std)
    init.kaiming_normal_(tensor, a=a, mode=mode, nonlinearity=nonlinearity)
    _normal_moments_check(tensor.numpy(), std)


def test_kaiming_rejects_bad_mode_and_skips_empty_tensors():
    with pytest.raises(ValueError, match="fan_avg"):
        init.kaiming_uniform_(pcn.empty(3, 3), mode="fan_avg")
    with pytest.warns(UserWarning, match="no-op"):
        init.kaiming_normal_(pcn.empty(0, 3))


@pytest.mark.parametrize("gain", [1.0, math.sqrt(2)])
def test_xavier(gain):
    std = gain * math.sqrt(2.0 / (FAN_IN + FAN_OUT))
    tensor = pcn.empty(*SHAPE)
    init.xavier_uniform_(tensor, gain=gain)
    _uniform_bound_check(tensor.numpy(), math.sqrt(3) * std)
    init.xavier_normal_(tensor, gain=gain)
    _normal_moments_check(tensor.numpy(), std)


def test_uniform_normal_constant():
    tensor = pcn.empty(200, 100)
    init.uniform_(tensor, -2.0, 3.0)
    values = tensor.numpy()
    assert values.min() >= -2.0 and values.max() <= 3.0
    assert abs(values.mean() - 0.5) < 0.05
    init.normal_(tensor, 1.5, 0.2)
    _normal_moments_check(tensor.numpy(), 0.2, mean=1.5)
    assert (init.constant_(tensor, 0.25).numpy() == 0.25).all()
    assert (init.ones_(tensor).numpy() == 1).all()
    assert (init.zeros_(tensor).numpy() == 0).all()


@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1.0, -2.0, 2.0), (0.0, 0.01, -2.0, 2.0), (1.0, 2.0, 0.5, 1.5),
                                             (0.0, 1.0, 1.0, 3.0)])
def test_trunc_normal_matches_the_truncated_distribution(mean, std, a, b):
    tensor = pcn.empty(200, 200)
    assert init.trunc_normal_(tensor, mean, std, a, b) is tensor
    values = tensor.numpy()
    assert values.min() >= a and values.max() <= b
    expected_mean, expected_std = _truncated_normal_moments(mean, std, a, b)
    assert abs(values.mean() - expected_mean) < 0.02 * expected_std + 1e-7
    assert abs(values.std() - expected_std) < 0.02 * expected_std


def _truncated_normal_moments(mean, std, a, b):
    """Mean and std of N(mean, std**2) restricted to [a, b] (closed form)."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    mass = cdf(beta) - cdf(alpha)
    shift = (pdf(alpha) - pdf(beta)) / mass
    variance = 1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - shift**2
    return mean + std * shift, std * math.sqrt(variance)


def test_trunc_normal_refuses_a_vanishing_interval():
    with pytest.raises(ValueError, match="mass"):
        with pytest.warns(UserWarning, match="2 std"):
            init.trunc_normal_(pcn.empty(4), mean=0.0, std=1.0, a=8.0, b=9.0)
    with pytest.raises(ValueError, match="a < b"):
        init.trunc_normal_(pcn.empty(4), a=1.0, b=1.0)


def test_global_seed_and_generator_argument_make_draws_reproducible():
    first, second = pcn.empty(10, 10), pcn.empty(10, 10)
    pcn.manual_seed(42)
    init.kaiming_uniform_(first)
    pcn.manual_seed(42)
    init.kaiming_uniform_(second)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    init.normal_(first, generator=np.random.default_rng(7))
    init.normal_(second, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(first.numpy(), second.numpy())


def test_initialisers_work_on_parameters_without_recording_a_graph():
    weight = pcn.nn.Parameter(pcn.empty(4, 3))
    init.xavier_normal_(weight)
    assert weight.is_leaf and weight.requires_grad and weight.grad_fn is None
    with pytest.raises(TypeError, match="Tensor"):
        init.zeros_(np.zeros(3))
    with pytest.raises(TypeError, match="float32"):
        init.ones_(pcn.zeros(3, dtype=pcn.int64))
