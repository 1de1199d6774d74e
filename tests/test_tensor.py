"""Tensor API: creation and conversion, dtype rules, properties, printing, in-place updates,
non-differentiable ops and the global random generator. Gradients live in test_autograd.py."""

import sys
import threading

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import random as pcn_random

tensor_module = sys.modules["pyconvnet.tensor"]  # `pyconvnet.tensor` is the function


# ----------------------------------------------------------------------------- tensor()
@pytest.mark.parametrize(
    "data, dtype, shape",
    [
        (1.5, pcn.float32, ()),
        (3, pcn.int64, ()),
        (True, pcn.bool, ()),
        ([1.0, 2.0], pcn.float32, (2,)),
        ([[1, 2, 3]], pcn.int64, (1, 3)),
        ([[True], [False]], pcn.bool, (2, 1)),
        ([], pcn.float32, (0,)),
    ],
)
def test_tensor_infers_dtype_from_python_data(data, dtype, shape):
    t = pcn.tensor(data)
    assert t.dtype == dtype
    assert t.shape == shape
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


@pytest.mark.parametrize(
    "np_dtype, expected",
    [
        (np.float16, pcn.float32),
        (np.float32, pcn.float32),
        (np.float64, pcn.float32),
        (np.int8, pcn.int64),
        (np.int32, pcn.int64),
        (np.uint8, pcn.int64),
        (np.uint32, pcn.int64),
        (np.int64, pcn.int64),
        (np.bool_, pcn.bool),
    ],
)
def test_tensor_converts_numpy_dtypes(np_dtype, expected):
    source = (np.arange(12).reshape(3, 4) % 5).astype(np_dtype)
    t = pcn.tensor(source)
    assert t.dtype == expected
    np.testing.assert_array_equal(t.numpy(), source.astype(expected))


def _assert_valid_storage(t):
    array = t.numpy()
    assert array.flags.c_contiguous and array.flags.writeable
    assert array.dtype.isnative


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(24, dtype=np.float32).reshape(4, 6).T,
        lambda: np.arange(24, dtype=np.float64).reshape(4, 6)[::2, 1::3],
        lambda: np.arange(24, dtype=np.int32).reshape(2, 3, 4).transpose(2, 0, 1),
        lambda: np.arange(6, dtype=">f4").reshape(2, 3),
        lambda: np.arange(6, dtype=">f8").reshape(2, 3)[:, ::-1],
        lambda: np.arange(6, dtype=">i8"),
        lambda: np.arange(6, dtype="<i2")[::2],
        lambda: np.broadcast_to(np.arange(3, dtype=np.float32), (4, 3)),
    ],
    ids=["transposed", "strided-f64", "permuted-i32", "big-f4", "big-f8-reversed", "big-i8",
         "strided-i2", "broadcast"],
)
def test_tensor_never_misreads_layout_or_byte_order(make):
    source = make()
    t = pcn.tensor(source)
    _assert_valid_storage(t)
    np.testing.assert_array_equal(t.numpy(), source)


def test_tensor_copies_its_input():
    source = np.ones(3, dtype=np.float32)
    t = pcn.tensor(source)
    source[0] = 5
    assert t.tolist() == [1.0, 1.0, 1.0]
    copy = pcn.tensor(t)
    t.numpy()[1] = 7
    assert copy.tolist() == [1.0, 1.0, 1.0]


def test_tensor_explicit_dtype_and_requires_grad():
    assert pcn.tensor([1.7, -1.7], dtype=pcn.int64).tolist() == [1, -1]
    assert pcn.tensor([1, 2], dtype=pcn.float32).dtype == pcn.float32
    t = pcn.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf
    with pytest.raises(RuntimeError, match="floating point"):
        pcn.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        pcn.tensor([1.0], dtype=np.float64)


@pytest.mark.parametrize(
    "data",
    [
        np.array([1 + 2j]),
        np.array([1, "a"], dtype=object),
        np.array(["a", "b"]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        [1, None],
    ],
    ids=["complex", "object", "str", "datetime", "list-with-None"],
)
def test_tensor_rejects_unsupported_dtypes(data):
    with pytest.raises(TypeError, match="can't convert"):
        pcn.tensor(data)


def test_tensor_rejects_uint64_overflow():
    assert pcn.tensor(np.array([5], dtype=np.uint64)).tolist() == [5]
    with pytest.raises(OverflowError):
        pcn.tensor(np.array([2**63], dtype=np.uint64))


def test_legacy_tensor_constructor():
    for t, shape in [(pcn.Tensor(2, 3), (2, 3)), (pcn.Tensor([1, 2]), (2,)), (pcn.Tensor(), (0,))]:
        assert t.shape == shape and t.dtype == pcn.float32


# ----------------------------------------------------------------------------- from_numpy
@pytest.mark.parametrize("np_dtype", [np.float32, np.int64, np.bool_])
def test_from_numpy_shares_memory(np_dtype):
    source = np.zeros((2, 3), dtype=np_dtype)
    t = pcn.from_numpy(source)
    assert t.numpy() is source
    source[0, 0] = 1
    assert t.tolist()[0][0] == 1


def test_from_numpy_copies_what_it_cannot_share():
    strided = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    t = pcn.from_numpy(strided)
    _assert_valid_storage(t)
    np.testing.assert_array_equal(t.numpy(), strided)

    doubles = np.linspace(0, 1, 5)
    t = pcn.from_numpy(doubles)
    assert t.dtype == pcn.float32
    np.testing.assert_allclose(t.numpy(), doubles, rtol=1e-7)

    big_endian = np.arange(4, dtype=">f4")
    t = pcn.from_numpy(big_endian)
    _assert_valid_storage(t)
    np.testing.assert_array_equal(t.numpy(), big_endian)


def test_from_numpy_rejects_bad_input():
    with pytest.raises(TypeError, match="expected np.ndarray"):
        pcn.from_numpy([1.0, 2.0])
    with pytest.raises(TypeError, match="complex"):
        pcn.from_numpy(np.zeros(2, dtype=np.complex64))
    with pytest.raises(TypeError, match="object"):
        pcn.from_numpy(np.array([None]))


# ----------------------------------------------------------------------------- creation
@pytest.mark.parametrize("factory, value", [(pcn.zeros, 0), (pcn.ones, 1)])
def test_filled_creation(factory, value):
    for size_args in [(2, 3), ((2, 3),), ([2, 3],), (pcn.Size([2, 3]),)]:
        t = factory(*size_args)
        assert t.shape == (2, 3) and t.dtype == pcn.float32
        assert np.all(t.numpy() == value)
    assert factory(()).shape == ()
    assert factory(0, 4).numel() == 0
    assert factory(2, dtype=pcn.int64).dtype == pcn.int64
    assert factory(2, requires_grad=True).requires_grad


def test_empty_has_shape_and_dtype():
    t = pcn.empty(4, 1, dtype=pcn.int64)
    assert t.shape == (4, 1) and t.dtype == pcn.int64
    _assert_valid_storage(t)


@pytest.mark.parametrize("factory", [pcn.zeros, pcn.ones, pcn.empty, pcn.rand, pcn.randn])
def test_creation_validates_size(factory):
    with pytest.raises(ValueError, match="negative dimension -1"):
        factory(2, -1)
    with pytest.raises(TypeError, match="sequence of ints"):
        factory(2.5)
    with pytest.raises(RuntimeError, match="cuda"):
        factory(2, device="cuda")
    with pytest.raises(TypeError, match="complex"):
        factory(2, dtype=np.complex64)


def test_like_functions_keep_shape_and_dtype():
    source = pcn.tensor([[1, 2, 3]])
    assert pcn.zeros_like(source).tolist() == [[0, 0, 0]]
    assert pcn.ones_like(source).dtype == pcn.int64
    assert pcn.ones_like(source, dtype=pcn.float32).dtype == pcn.float32
    assert pcn.zeros_like(pcn.randn(2, 2), requires_grad=True).requires_grad


def test_random_creation_is_seeded_float32():
    pcn.manual_seed(123)
    first = (pcn.randn(1000), pcn.rand(1000))
    pcn.manual_seed(123)
    second = (pcn.randn(1000), pcn.rand(1000))
    for a, b in zip(first, second):
        assert a.dtype == pcn.float32
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    normal, uniform = first
    assert abs(normal.numpy().mean()) < 0.15 and 0.85 < normal.numpy().std() < 1.15
    assert uniform.numpy().min() >= 0 and uniform.numpy().max() < 1
    with pytest.raises(TypeError, match="float32"):
        pcn.randn(2, dtype=pcn.int64)


def test_random_creation_accepts_a_generator():
    a = pcn.randn(5, generator=np.random.Generator(np.random.PCG64(7)))
    b = pcn.randn(5, generator=np.random.Generator(np.random.PCG64(7)))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


# ----------------------------------------------------------------------------- pyconvnet.random
def test_manual_seed_reseeds_in_place():
    generator = pcn_random.default_generator()
    assert isinstance(generator, np.random.Generator)
    assert isinstance(generator.bit_generator, np.random.PCG64)
    assert pcn.manual_seed(5) is generator
    assert pcn_random.initial_seed() == 5
    draws = generator.standard_normal(3)
    pcn.manual_seed(5)
    np.testing.assert_array_equal(pcn_random.default_generator().standard_normal(3), draws)


def test_next_seed_is_reproducible_uint64():
    pcn.manual_seed(9)
    seeds = [pcn_random.next_seed() for _ in range(4)]
    pcn.manual_seed(9)
    assert [pcn_random.next_seed() for _ in range(4)] == seeds
    assert len(set(seeds)) == 4
    assert all(isinstance(s, int) and 0 <= s < 2**64 for s in seeds)


def test_manual_seed_validates():
    pcn.manual_seed(-1)
    assert pcn_random.initial_seed() == 2**64 - 1
    pcn.manual_seed(np.int64(3))
    assert pcn_random.initial_seed() == 3
    with pytest.raises(ValueError):
        pcn.manual_seed(2**64)
    with pytest.raises(TypeError):
        pcn.manual_seed(1.5)


# ----------------------------------------------------------------------------- properties
def test_shape_size_and_friends():
    t = pcn.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert repr(t.shape) == "pyconvnet.Size([2, 3, 4])"
    assert t.shape.numel() == 24
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.ndim == t.dim() == 3
    assert t.numel() == 24 and len(t) == 2
    assert t.device == "cpu"
    assert t.is_leaf and not t.requires_grad and t.grad is None and t.grad_fn is None
    with pytest.raises(IndexError, match=r"range of \[-3, 2\], but got 3"):
        t.size(3)
    with pytest.raises(IndexError, match="no dimensions"):
        pcn.tensor(1.0).size(0)


def test_scalar_conversions():
    t = pcn.tensor([[2.5]])
    assert t.item() == 2.5 and float(t) == 2.5 and int(t) == 2 and bool(t)
    assert pcn.tensor(3).item() == 3 and isinstance(pcn.tensor(3).item(), int)
    assert [1, 2, 3][pcn.tensor(1)] == 2
    with pytest.raises(RuntimeError, match="with 2 elements cannot be converted"):
        pcn.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(pcn.tensor([1.0, 2.0]))
    with pytest.raises(TypeError):
        [1, 2][pcn.tensor(1.0)]
    with pytest.raises(TypeError, match="0-d"):
        len(pcn.tensor(1.0))
    with pytest.raises(TypeError, match="0-d"):
        iter(pcn.tensor(1.0))


def test_iteration_and_tolist():
    t = pcn.tensor([[1, 2], [3, 4]])
    assert [row.tolist() for row in t] == [[1, 2], [3, 4]]
    assert t.tolist() == [[1, 2], [3, 4]]


def test_numpy_shares_and_refuses_grad():
    t = pcn.zeros(3)
    t.numpy()[0] = 4
    assert t.tolist() == [4, 0, 0]
    assert np.asarray(t) is t.numpy()
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    w = pcn.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Use tensor.detach\(\).numpy\(\) instead"):
        w.numpy()
    with pytest.raises(RuntimeError):
        np.asarray(w)
    assert w.detach().numpy().shape == (3,)


def test_detach_and_data_share_storage():
    w = pcn.ones(3, requires_grad=True)
    for view in (w.detach(), w.data):
        assert not view.requires_grad and view.is_leaf
        view.numpy()[0] = 9
        assert w.detach().tolist()[0] == 9
    w.data = pcn.zeros(3)
    assert w.detach().tolist() == [0, 0, 0] and w.requires_grad


def test_requires_grad_rules():
    w = pcn.zeros(2)
    assert w.requires_grad_() is w and w.requires_grad
    w.requires_grad = False
    assert not w.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        pcn.zeros(2, dtype=pcn.int64).requires_grad_()
    y = pcn.zeros(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf variables"):
        y.requires_grad = False
    y.detach_()
    assert y.is_leaf and not y.requires_grad


def test_grad_setter_validates():
    w = pcn.zeros(2, requires_grad=True)
    w.grad = pcn.ones(2)
    assert w.grad.tolist() == [1, 1]
    w.grad = None
    with pytest.raises(ValueError, match=r"size \[3\] to a tensor of size \[2\]"):
        w.grad = pcn.ones(3)
    with pytest.raises(TypeError, match="int64"):
        w.grad = pcn.ones(2, dtype=pcn.int64)
    with pytest.raises(TypeError, match="list"):
        w.grad = [1.0, 1.0]


def test_grad_of_non_leaf_warns_like_torch():
    y = pcn.zeros(2, requires_grad=True) * 2
    with pytest.warns(UserWarning, match="not a leaf"):
        assert y.grad is None


def test_conversions_and_devices():
    t = pcn.tensor([1.9, -1.9])
    assert t.long().tolist() == [1, -1] and t.long().dtype == pcn.int64
    assert t.float() is t and t.contiguous() is t and t.cpu() is t and t.is_contiguous()
    assert t.to("cpu") is t and t.to(pcn.float32) is t
    assert t.to(pcn.int64).dtype == pcn.int64
    assert t.to(pcn.zeros(1, dtype=pcn.int64)).dtype == pcn.int64
    assert t.to("cpu", copy=True) is not t
    assert pcn.tensor([True, False]).float().tolist() == [1.0, 0.0]
    with pytest.raises(RuntimeError, match="cuda"):
        t.to("cuda:0")
    w = pcn.ones(2, requires_grad=True)
    assert not w.long().requires_grad


# ----------------------------------------------------------------------------- printing
@pytest.mark.parametrize(
    "data",
    [
        [1.5, 2.25],
        [1.0, 2.0],
        [1e-5, 1.0],
        3.0,
        [[1, 10]],
        [True, False],
        [],
        [float("nan"), 1.5, float("inf")],
        [1e9, 1.0],
        [123456.5, 1.0],
        [[-1.5, 2.0], [0.25, 100.0]],
        [1e-5, 0.0],
    ],
)
def test_repr_matches_torch(data):
    torch = pytest.importorskip("torch")
    assert repr(pcn.tensor(data)) == repr(torch.tensor(data))


def test_repr_matches_torch_for_large_and_empty_tensors():
    torch = pytest.importorskip("torch")
    values = np.arange(2000, dtype=np.float32).reshape(40, 50) / 7
    assert repr(pcn.tensor(values)) == repr(torch.tensor(values))
    assert repr(pcn.zeros(0, 3)) == repr(torch.zeros(0, 3))


def test_repr_shows_autograd_state():
    w = pcn.tensor([1.0, 2.0], requires_grad=True)
    assert repr(w) == "tensor([1., 2.], requires_grad=True)"
    assert repr(w * 2) == "tensor([2., 4.], grad_fn=<MulBackward>)"
    assert str(w.detach()) == "tensor([1., 2.])"


# ----------------------------------------------------------------------------- dtype rules
@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a**2,
        lambda a, b: a + 2.5,
        lambda a, b: 3 * a,
        lambda a, b: a / 2,
        lambda a, b: (a > b).sum(),
        lambda a, b: a.sum(),
        lambda a, b: a.max(),
    ],
)
@pytest.mark.parametrize(
    "dtypes",
    [("float32", "float32"), ("int64", "int64"), ("int64", "float32"), ("bool", "bool"),
     ("bool", "int64")],
)
def test_result_dtypes_match_torch(op, dtypes):
    torch = pytest.importorskip("torch")
    left = np.array([[1, 2], [3, 4]]).astype(dtypes[0])
    right = np.array([[2, 1], [1, 3]]).astype(dtypes[1])
    try:
        expected = op(torch.tensor(left), torch.tensor(right))
    except RuntimeError:  # e.g. subtracting bools: refused here too
        with pytest.raises((RuntimeError, TypeError)):
            op(pcn.tensor(left), pcn.tensor(right))
        return
    result = op(pcn.tensor(left), pcn.tensor(right))
    assert str(result.dtype) == str(expected.dtype).replace("torch.", "")
    np.testing.assert_allclose(result.numpy(), expected.numpy(), rtol=1e-6)


def test_float32_stays_float32_with_python_and_numpy_scalars():
    x = pcn.tensor([1.0, 2.0])
    for result in (x + 0.1, x * np.float64(3.3), 2.5 - x, x / np.float32(3), x**0.5, 2.0**x):
        assert result.dtype == pcn.float32


def test_numpy_operands_become_constants():
    x = pcn.tensor([1.0, 2.0], requires_grad=True)
    for result in (x + np.array([1.0, 2.0]), np.array([1.0, 2.0]) * x, x - [1, 1]):
        assert isinstance(result, pcn.Tensor) and result.dtype == pcn.float32
        assert result.requires_grad


# ----------------------------------------------------------------------------- non-differentiable
@pytest.mark.parametrize("name", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_match_torch(name):
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    b = np.array([2.0, 2.0, 2.0], dtype=np.float32)
    ours = getattr(pcn.tensor(a), name)(pcn.tensor(b))
    theirs = getattr(torch.tensor(a), name)(torch.tensor(b))
    assert ours.dtype == pcn.bool and not ours.requires_grad
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    operators = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__",
                 "ge": "__ge__"}
    by_operator = getattr(pcn.tensor(a), operators[name])(2.0)
    np.testing.assert_array_equal(by_operator.numpy(), getattr(a, operators[name])(2.0))


def test_accuracy_idiom():
    logits = pcn.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], requires_grad=True)
    labels = pcn.tensor([1, 0, 0])
    _, predicted = logits.max(1)
    assert (predicted == labels).sum().item() == 2
    assert logits.argmax(dim=1).eq(labels).sum().item() == 2
    assert (pcn.tensor([1, 2]) == None) is False  # noqa: E711 (torch's behaviour)


@pytest.mark.parametrize("dim, keepdim", [(None, False), (None, True), (0, False), (1, True),
                                          (-1, False)])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin_match_torch(name, dim, keepdim):
    torch = pytest.importorskip("torch")
    values = np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 7.0]], dtype=np.float32)
    ours = getattr(pcn.tensor(values), name)(dim=dim, keepdim=keepdim)
    theirs = getattr(torch.tensor(values), name)(dim=dim, keepdim=keepdim)
    assert ours.dtype == pcn.int64 and ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_scalar_tensor_reductions():
    s = pcn.tensor(3.0)
    assert s.argmax().item() == 0 and s.argmax(0).item() == 0
    values, indices = s.max(0)
    assert values.item() == 3.0 and indices.item() == 0 and values.shape == ()
    assert s.sum(0).item() == 3.0 and s.unsqueeze(0).shape == (1,) and s.flatten().shape == (1,)


# ----------------------------------------------------------------------------- shape errors
def test_shape_op_errors():
    t = pcn.zeros(2, 3)
    with pytest.raises(ValueError, match="reshape"):
        t.reshape(4, 2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.sum(2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.unsqueeze(4)
    with pytest.raises(ValueError, match="permute"):
        t.permute(0)
    with pytest.raises(ValueError, match="permute"):
        t.permute(0, 0)
    with pytest.raises(ValueError, match="3D"):
        pcn.zeros(1, 2, 3).t()
    with pytest.raises(ValueError, match="start_dim cannot come after end_dim"):
        t.flatten(1, 0)
    with pytest.raises(ValueError, match="0D and 1D"):
        pcn.tensor(1.0) @ pcn.zeros(3)
    with pytest.raises(ValueError):
        pcn.zeros(3) @ pcn.zeros(4)
    with pytest.raises(ValueError):
        pcn.ones(2).expand(3, 3)
    with pytest.raises(ValueError, match="more than once"):
        t.sum((0, -2))
    with pytest.raises(IndexError, match="long or bool"):
        t[pcn.tensor([0.0])]
    with pytest.raises(TypeError, match="floating point"):
        pcn.tensor([1, 2]).mean()
    with pytest.raises(ValueError, match="min"):
        t.clamp()
    with pytest.raises(ValueError, match="empty"):
        pcn.zeros(0).max()
    with pytest.raises(ValueError, match="non-zero size"):
        pcn.zeros(2, 0).max(1)


def test_views_share_storage_like_torch():
    base = pcn.zeros(2, 3)
    for view in (base.reshape(6), base.view(3, 2), base.flatten(), base.unsqueeze(0), base[1]):
        view.fill_(1)
        assert base.sum().item() == view.numel()
        base.zero_()


# ----------------------------------------------------------------------------- in-place updates
def test_inplace_updates():
    t = pcn.ones(2, 2)
    assert t.add_(pcn.ones(2), alpha=2) is t
    assert t.tolist() == [[3, 3], [3, 3]]
    t.sub_(1).mul_(pcn.tensor([1.0, 2.0])).div_(2)
    assert t.tolist() == [[1, 2], [1, 2]]
    t.addcmul_(pcn.tensor([1.0, 1.0]), pcn.tensor([2.0, 3.0]), value=0.5)
    assert t.tolist() == [[2, 3.5], [2, 3.5]]
    t.addcdiv_(pcn.ones(2), pcn.tensor([2.0, 4.0]))
    assert t.tolist() == [[2.5, 3.75], [2.5, 3.75]]
    t.copy_(np.array([[1, 2], [3, 4]]))
    assert t.tolist() == [[1, 2], [3, 4]]
    t[0] = 0
    t[:, 1] = pcn.tensor([5.0, 6.0])
    assert t.tolist() == [[0, 5], [3, 6]]
    t[t > 4] = -1
    assert t.tolist() == [[0, -1], [3, -1]]
    assert t.fill_(2).tolist() == [[2, 2], [2, 2]] and t.zero_().sum().item() == 0


def test_augmented_assignment_is_inplace_without_grad():
    t = pcn.ones(2)
    alias = t
    t += 1
    t *= 3
    t -= 1
    t /= 5
    assert t is alias and t.tolist() == [1, 1]
    counts = pcn.zeros(2, dtype=pcn.int64)
    with pytest.raises(TypeError):
        counts += 0.5  # like torch: a float result can't be cast into int64 storage


def test_inplace_refuses_tensors_that_need_grad():
    w = pcn.ones(2, requires_grad=True)
    for update in (lambda: w.add_(1), lambda: w.zero_(), lambda: w.__setitem__(0, 1.0),
                   lambda: w.copy_(pcn.zeros(2))):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            update()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w += 1
    y = w * 2
    with pytest.raises(RuntimeError, match="in-place"):
        y.mul_(2)
    buffer = pcn.zeros(2)
    with pytest.raises(RuntimeError, match="drop the gradient"):
        buffer.add_(w)
    with pcn.no_grad():
        w.add_(1)
        w -= 0.5
    assert w.detach().tolist() == [1.5, 1.5]


def test_augmented_assignment_with_grad_rebinds():
    w = pcn.ones(2, requires_grad=True)
    total = 0
    for _ in range(3):
        total += (w * 2).sum()
    assert total.requires_grad
    total.backward()
    assert w.grad.tolist() == [6, 6]


# ----------------------------------------------------------------------------- grad mode
def test_grad_mode_is_thread_local():
    seen = {}

    def worker():
        seen["worker"] = pcn.is_grad_enabled()

    with pcn.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert not pcn.is_grad_enabled()
    assert seen["worker"] and pcn.is_grad_enabled()


def test_from_numpy_shares_subclass_memory_as_plain_ndarray(tmp_path):
    mapped = np.memmap(tmp_path / "data.bin", dtype=np.float32, mode="w+", shape=(2, 2))
    t = pcn.from_numpy(mapped)
    assert type(t.numpy()) is np.ndarray
    mapped[0, 0] = 3
    assert t.tolist()[0][0] == 3
    del t, mapped


def test_module_level_flatten_and_cat_mirror_torch():
    x = pcn.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4), requires_grad=True)
    flat = pcn.flatten(x, 1)
    assert flat.shape == (2, 12)
    joined = pcn.cat([x, x], dim=1)
    assert joined.shape == (2, 6, 4)
    (flat.sum() + joined.sum()).backward()
    assert np.array_equal(x.grad.numpy(), np.full((2, 3, 4), 3.0, np.float32))
