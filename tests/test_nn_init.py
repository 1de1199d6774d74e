"""nn.init: gains, fans, bounds (exact) and sample moments (loose) against torch's formulas;
eye_/dirac_ equal to torch's, orthogonal_/sparse_ with torch's structure, and torch's
deprecated names (which warn)."""

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


def test_every_public_initialiser_of_torch_exists():
    torch = pytest.importorskip("torch")
    theirs = {name for name, value in vars(torch.nn.init).items()
              if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == "torch.nn.init"}
    assert theirs <= set(init.__all__) and all(callable(getattr(init, name)) for name in theirs)


@pytest.mark.parametrize("shape", [(3, 3), (4, 7), (6, 2)])
def test_eye_matches_torch(shape):
    torch = pytest.importorskip("torch")
    tensor = pcn.randn(*shape)
    assert init.eye_(tensor) is tensor
    np.testing.assert_array_equal(tensor.numpy(), torch.nn.init.eye_(torch.randn(shape)).numpy())
    with pytest.raises(ValueError, match="2 dimensions"):
        init.eye_(pcn.empty(2, 2, 2))


@pytest.mark.parametrize("shape, groups", [((4, 4, 3), 1), ((6, 3, 3, 3), 1), ((6, 2, 5, 4), 2), ((4, 5, 3, 3, 3), 1),
                                           ((8, 2, 1, 2), 4), ((2, 6, 3, 3), 1)])
def test_dirac_matches_torch(shape, groups):
    torch = pytest.importorskip("torch")
    tensor = pcn.randn(*shape)
    assert init.dirac_(tensor, groups) is tensor
    np.testing.assert_array_equal(tensor.numpy(), torch.nn.init.dirac_(torch.randn(shape), groups).numpy())


def test_dirac_rejects_bad_shapes_and_groups():
    with pytest.raises(ValueError, match="3, 4, or 5 dimensions"):
        init.dirac_(pcn.empty(3, 3))
    with pytest.raises(ValueError, match="divisible by groups"):
        init.dirac_(pcn.empty(5, 2, 3, 3), groups=2)


def test_dirac_convolution_passes_its_input_through():
    weight = init.dirac_(pcn.empty(3, 3, 3, 3))
    x = pcn.randn(2, 3, 5, 5)
    np.testing.assert_allclose(pcn.nn.functional.conv2d(x, weight, padding=1).numpy(), x.numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "shape, gain", [((20, 30), 1.0), ((30, 20), 2.0), ((16, 8, 3, 3), math.sqrt(2)), ((5, 5), 1.0)]
)
def test_orthogonal_has_torchs_structure(shape, gain):
    torch = pytest.importorskip("torch")
    tensor = pcn.empty(*shape)
    assert init.orthogonal_(tensor, gain=gain) is tensor
    rows = shape[0]
    ours = tensor.numpy().reshape(rows, -1).astype(np.float64)
    theirs = torch.nn.init.orthogonal_(torch.empty(shape), gain=gain).numpy().reshape(rows, -1)
    for matrix in (ours, theirs):
        small = matrix if matrix.shape[0] >= matrix.shape[1] else matrix.T
        np.testing.assert_allclose(small.T @ small, gain**2 * np.eye(small.shape[1]), atol=1e-5 * gain**2)
    assert np.mean(ours**2) == pytest.approx(np.mean(theirs.astype(np.float64) ** 2), rel=1e-5)


def test_orthogonal_is_uniformly_distributed():
    """Haar-distributed 2x2 rotations/reflections: the angle is uniform, and R's sign folding
    makes the diagonal entries symmetric about zero (without it numpy's QR gives them one sign)."""
    generator = np.random.default_rng(3)
    samples = np.stack([init.orthogonal_(pcn.empty(2, 2), generator=generator).numpy() for _ in range(4000)])
    angles = np.arctan2(samples[:, 1, 0], samples[:, 0, 0])
    histogram, _ = np.histogram(angles, bins=8, range=(-np.pi, np.pi))
    assert histogram.min() > 0.8 * 500 and histogram.max() < 1.2 * 500
    assert abs(np.mean(samples[:, 0, 0] > 0) - 0.5) < 0.04


def test_orthogonal_rejects_vectors_and_skips_empty_tensors():
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(pcn.empty(4))
    assert init.orthogonal_(pcn.empty(0, 3)).shape == (0, 3)


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.33])
def test_sparse_zeroes_torchs_count_per_column(sparsity):
    torch = pytest.importorskip("torch")
    rows, cols = 60, 300
    ours = init.sparse_(pcn.empty(rows, cols), sparsity, std=0.02).numpy()
    theirs = torch.nn.init.sparse_(torch.empty(rows, cols), sparsity, std=0.02).numpy()
    np.testing.assert_array_equal((ours == 0).sum(axis=0), (theirs == 0).sum(axis=0))
    assert (ours == 0).sum(axis=0)[0] == math.ceil(sparsity * rows)
    _normal_moments_check(ours[ours != 0], 0.02)
    rows_zeroed = (ours == 0).mean(axis=1)  # every row is equally likely to be zeroed
    assert abs(rows_zeroed.mean() - math.ceil(sparsity * rows) / rows) < 1e-9
    assert rows_zeroed.std() < 0.1
    with pytest.raises(ValueError, match="2 dimensions"):
        init.sparse_(pcn.empty(3, 3, 3), 0.5)


DEPRECATED = [
    ("uniform", (-1.0, 2.0)), ("normal", (0.5, 2.0)), ("constant", (0.25,)), ("eye", ()), ("xavier_uniform", ()),
    ("xavier_normal", (2.0,)), ("kaiming_uniform", ()), ("kaiming_normal", (0, "fan_out", "relu")),
    ("orthogonal", (1.5,)), ("sparse", (0.3,)),
]


@pytest.mark.parametrize("name, args", DEPRECATED, ids=[name for name, _ in DEPRECATED])
def test_deprecated_names_warn_like_torch_and_do_the_same(name, args):
    torch = pytest.importorskip("torch")
    with pytest.warns(FutureWarning, match=f"`nn.init.{name}` is now deprecated in favor of `nn.init.{name}_`"):
        getattr(torch.nn.init, name)(torch.empty(40, 50), *args)
    def same_draws():  # the random initialisers get equally seeded generators
        return {} if name in ("constant", "eye") else {"generator": np.random.default_rng(5)}

    ours, expected = pcn.empty(40, 50), pcn.empty(40, 50)
    with pytest.warns(FutureWarning, match=f"`nn.init.{name}` is now deprecated in favor of `nn.init.{name}_`"):
        assert getattr(init, name)(ours, *args, **same_draws()) is ours
    getattr(init, name + "_")(expected, *args, **same_draws())
    np.testing.assert_array_equal(ours.numpy(), expected.numpy())


def test_deprecated_dirac_warns_and_fills():
    weight = pcn.empty(4, 4, 3, 3)
    with pytest.warns(FutureWarning, match="nn.init.dirac"):
        init.dirac(weight, 2)
    np.testing.assert_array_equal(weight.numpy(), init.dirac_(pcn.empty(4, 4, 3, 3), 2).numpy())
