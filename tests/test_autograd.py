"""Autograd: every differentiable op against torch (forward and gradients), hand-derived
float64 gradients, the Function contract the kernels rely on, and graph semantics."""

import sys
import weakref

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import autograd
from pyconvnet.autograd import Function
from support import check_against_torch


def _inputs(shapes, positive, seed):
    rng = np.random.default_rng(seed)
    if positive:
        return [rng.uniform(0.5, 2.0, size=shape).astype(np.float32) for shape in shapes]
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


# (id, fn, input shapes, positive inputs only)
OP_CASES = [
    ("add", lambda x, y: x + y, [(3, 4), (3, 4)], False),
    ("add-broadcast", lambda x, y: x + y, [(3, 1), (1, 4)], False),
    ("add-0d", lambda x, y: x + y, [(), (2, 3)], False),
    ("add-rank", lambda x, y: x + y, [(2, 3, 4), (4,)], False),
    ("add-batch1", lambda x, y: x + y, [(1, 3), (3,)], False),
    ("radd-scalar", lambda x: 2.5 + x, [(2, 3)], False),
    ("sub-broadcast", lambda x, y: x - y, [(3, 4), (3, 1)], False),
    ("rsub-scalar", lambda x: 2.0 - x, [(4,)], False),
    ("mul", lambda x, y: x * y, [(2, 3), (2, 3)], False),
    ("mul-broadcast", lambda x, y: x * y, [(1, 5), (4, 1)], False),
    ("mul-scalar", lambda x: x * 3.0, [(2, 2)], False),
    ("mul-self", lambda x: x * x, [(3,)], False),
    ("div", lambda x, y: x / y, [(3, 4), (4,)], True),
    ("rtruediv", lambda x: 1.0 / x, [(3,)], True),
    ("div-scalar", lambda x: x / 2, [(2, 3)], False),
    ("neg", lambda x: -x, [(2, 3)], False),
    ("pow-2", lambda x: x**2, [(2, 3)], False),
    ("pow-3", lambda x: x.pow(3), [(5,)], False),
    ("pow-half", lambda x: x**0.5, [(2, 3)], True),
    ("pow-negative", lambda x: x**-1.5, [(2, 3)], True),
    ("pow-0", lambda x: x**0, [(4,)], False),
    ("pow-tensor", lambda x, y: x**y, [(2, 3), (3,)], True),
    ("rpow", lambda x: 2.0**x, [(2, 3)], False),
    ("matmul", lambda a, b: a @ b, [(3, 4), (4, 5)], False),
    ("matmul-vec-mat", lambda a, b: a @ b, [(4,), (4, 5)], False),
    ("matmul-mat-vec", lambda a, b: a.matmul(b), [(3, 4), (4,)], False),
    ("matmul-dot", lambda a, b: a @ b, [(4,), (4,)], False),
    ("matmul-batched", lambda a, b: a @ b, [(2, 3, 4), (4, 5)], False),
    ("matmul-broadcast", lambda a, b: a @ b, [(2, 1, 3, 4), (5, 4, 2)], False),
    ("matmul-vec-batched", lambda a, b: a @ b, [(4,), (2, 4, 3)], False),
    ("matmul-batch1", lambda a, b: a @ b, [(1, 3, 4), (1, 4, 2)], False),
    ("sum-all", lambda x: x.sum(), [(3, 4)], False),
    ("sum-dim", lambda x: x.sum(0), [(3, 4)], False),
    ("sum-keepdim", lambda x: x.sum(-1, keepdim=True), [(2, 3, 4)], False),
    ("sum-dims", lambda x: x.sum((0, 2)), [(2, 3, 4)], False),
    ("sum-batch1", lambda x: x.sum(dim=1), [(1, 3)], False),
    ("mean-all", lambda x: x.mean(), [(3, 4)], False),
    ("mean-dim", lambda x: x.mean(1), [(3, 4)], False),
    ("mean-dims-keepdim", lambda x: x.mean([0, -1], keepdim=True), [(2, 3, 4)], False),
    ("max-all", lambda x: x.max(), [(3, 4)], False),
    ("min-all", lambda x: x.min(), [(3, 4)], False),
    ("max-dim", lambda x: x.max(1).values, [(3, 4)], False),
    ("max-dim-keepdim", lambda x: x.max(dim=0, keepdim=True)[0], [(3, 4)], False),
    ("min-dim", lambda x: x.min(-1).values, [(2, 3, 4)], False),
    ("exp", lambda x: x.exp(), [(2, 3)], False),
    ("log", lambda x: x.log(), [(2, 3)], True),
    ("sqrt", lambda x: x.sqrt(), [(2, 3)], True),
    ("abs", lambda x: x.abs(), [(2, 3)], False),
    ("abs-operator", lambda x: abs(x), [(4,)], False),
    ("clamp-min", lambda x: x.clamp(min=-0.5), [(3, 4)], False),
    ("clamp-max", lambda x: x.clamp(max=0.3), [(3, 4)], False),
    ("clamp-both", lambda x: x.clamp(-0.5, 0.5), [(3, 4)], False),
    ("reshape", lambda x: x.reshape(4, 3), [(3, 4)], False),
    ("reshape-tuple", lambda x: x.reshape((2, -1)), [(3, 4)], False),
    ("view", lambda x: x.view(-1), [(3, 4)], False),
    ("flatten", lambda x: x.flatten(), [(2, 3, 4)], False),
    ("flatten-1", lambda x: x.flatten(1), [(2, 3, 4)], False),
    ("flatten-mid", lambda x: x.flatten(1, 2), [(2, 3, 4, 5)], False),
    ("unsqueeze", lambda x: x.unsqueeze(1), [(3, 4)], False),
    ("unsqueeze-last", lambda x: x.unsqueeze(-1), [(3, 4)], False),
    ("squeeze", lambda x: x.squeeze(), [(1, 3, 1)], False),
    ("squeeze-dim", lambda x: x.squeeze(0), [(1, 3, 1)], False),
    ("squeeze-noop", lambda x: x.squeeze(1), [(1, 3, 1)], False),
    ("permute", lambda x: x.permute(2, 0, 1), [(2, 3, 4)], False),
    ("transpose", lambda x: x.transpose(0, 2), [(2, 3, 4)], False),
    ("t", lambda x: x.t(), [(3, 4)], False),
    ("expand", lambda x: x.expand(3, 4), [(3, 1)], False),
    ("expand-new-dims", lambda x: x.expand(2, -1, 4), [(3, 1)], False),
    ("index-int", lambda x: x[1], [(3, 4)], False),
    ("index-slice", lambda x: x[:, 1:3], [(3, 4)], False),
    ("index-step", lambda x: x[::2, 1], [(5, 4)], False),
    ("index-none-ellipsis", lambda x: x[..., None, 0], [(2, 3, 4)], False),
    ("index-repeated", lambda x: x[[0, 0, 2]], [(3, 4)], False),
    ("index-pairs", lambda x: x[[0, 2, 0], [1, 1, 1]], [(3, 4)], False),
    ("index-mixed", lambda x: x[1:, [3, 3, 0]], [(3, 4)], False),
    ("index-mask", lambda x: x[x > 0], [(3, 4)], False),
    ("clone", lambda x: x.clone(), [(2, 3)], False),
    ("softmax-nll", lambda x: -(x.exp() / x.exp().sum(1, keepdim=True)).log().mean(), [(4, 5)],
     False),
    ("linear-mse", lambda x, w, b: ((x @ w.t() + b) ** 2).mean(), [(8, 5), (3, 5), (3,)], False),
]


@pytest.mark.parametrize(
    "fn, shapes, positive", [c[1:] for c in OP_CASES], ids=[c[0] for c in OP_CASES]
)
def test_op_matches_torch(fn, shapes, positive):
    check_against_torch(fn, _inputs(shapes, positive, seed=len(shapes)))


def test_max_ties_share_the_gradient_like_torch():
    values = np.array([[1.0, 3.0], [3.0, 0.0]], dtype=np.float32)
    check_against_torch(lambda x: x.max() * 2, [values])
    check_against_torch(lambda x: x.max(1).values, [values])
    check_against_torch(lambda x: x.clamp(0.0, 1.0), [values])


def test_tensor_indices_match_torch():
    torch = pytest.importorskip("torch")
    x = _inputs([(4, 3)], False, seed=3)[0]
    ours, theirs = pcn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours[pcn.tensor([3, 1, 3])].sum().backward()
    theirs[torch.tensor([3, 1, 3])].sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_scalar_results_and_batch_one():
    x = pcn.tensor([[2.0, -1.0, 0.5]], requires_grad=True)
    loss = (x * x).sum()
    assert loss.shape == () and loss.requires_grad
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[4.0, -2.0, 1.0]])


# ----------------------------------------------------------------------------- float64 references
def test_gradients_match_hand_derived_float64():
    rng = np.random.default_rng(0)
    x64 = rng.uniform(0.5, 2.0, size=(3, 4))
    y64 = rng.standard_normal((3, 4))
    x = pcn.tensor(x64, requires_grad=True)
    y = pcn.tensor(y64, requires_grad=True)
    # f = sum(x*y + x**2 + log(x) * exp(y) + sqrt(x) / y**2)
    f = (x * y + x**2 + x.log() * y.exp() + x.sqrt() / y**2).sum()
    f.backward()
    x32, y32 = x64.astype(np.float32).astype(np.float64), y64.astype(np.float32).astype(np.float64)
    dx = y32 + 2 * x32 + np.exp(y32) / x32 + 0.5 / np.sqrt(x32) / y32**2
    dy = x32 + np.log(x32) * np.exp(y32) - 2 * np.sqrt(x32) / y32**3
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-5)
    np.testing.assert_allclose(y.grad.numpy(), dy, rtol=1e-4)


def test_matmul_gradient_matches_float64():
    rng = np.random.default_rng(1)
    a64, b64 = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    a, b = pcn.tensor(a64, requires_grad=True), pcn.tensor(b64, requires_grad=True)
    (a @ b).sum().backward()
    a32, b32 = a64.astype(np.float32), b64.astype(np.float32)
    ones = np.ones((5, 3))
    np.testing.assert_allclose(a.grad.numpy(), ones @ b32.T.astype(np.float64), rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), a32.T.astype(np.float64) @ ones, rtol=1e-5)


def test_mean_and_broadcast_gradients_in_float64():
    x = pcn.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = pcn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    ((x + b) * 3).mean().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 0.5))
    np.testing.assert_allclose(b.grad.numpy(), np.full(3, 1.0))


# ----------------------------------------------------------------------------- graph semantics
def test_grad_accumulates_across_backward_calls():
    x = pcn.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    grad = x.grad
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0])
    assert x.grad is grad  # accumulated in place, as torch does


def test_shared_weight_used_twice():
    check_against_torch(lambda x, w: ((x @ w) @ w).sum(), _inputs([(2, 3), (3, 3)], False, 5))
    w = pcn.tensor([2.0], requires_grad=True)
    (w * w * w).backward(pcn.tensor([1.0]))
    np.testing.assert_allclose(w.grad.numpy(), [12.0])


def test_diamond_graph():
    x = pcn.tensor([0.5, -1.0], requires_grad=True)
    a = x * 2
    left, right = a.exp(), a * 3
    (left + right).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, -2.0]) + 6, rtol=1e-6)


def test_each_node_runs_once_with_summed_gradients():
    calls = []

    class Record(Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad):
            calls.append(grad.copy())
            return grad

    x = pcn.ones(3, requires_grad=True)
    y = Record.apply(x)
    (y * 2 + y * 3 + y).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], [6.0, 6.0, 6.0])


def test_leaf_grads_do_not_alias():
    x, y = pcn.ones(2, requires_grad=True), pcn.ones(2, requires_grad=True)
    (x + y).sum().backward()
    x.grad.numpy()[0] = 100
    assert y.grad.tolist() == [1.0, 1.0]


def test_retain_graph_allows_a_second_backward():
    x = pcn.tensor([1.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 12.0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


@pytest.mark.parametrize("make", [lambda x: (x * x).sum(), lambda x: (x + 1).sum()],
                         ids=["saves-arrays", "saves-nothing"])
def test_second_backward_without_retain_raises(make):
    x = pcn.tensor([1.0, 3.0], requires_grad=True)
    y = make(x)
    y.backward()
    with pytest.raises(RuntimeError, match="Specify retain_graph=True"):
        y.backward()


def test_no_grad_blocks_graph_creation():
    x = pcn.ones(2, requires_grad=True)
    with pcn.no_grad():
        y = x * 2
        assert not pcn.is_grad_enabled()
        with pcn.enable_grad():
            z = x * 2
    assert pcn.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    assert z.requires_grad and z.grad_fn is not None


def test_no_grad_and_enable_grad_as_decorators():
    @pcn.no_grad()
    def called():
        return pcn.is_grad_enabled()

    @pcn.no_grad
    def bare():
        return pcn.is_grad_enabled()

    @pcn.enable_grad()
    def enabled():
        return pcn.is_grad_enabled()

    assert called.__name__ == "called"
    assert called() is False and bare() is False
    with pcn.no_grad():
        assert enabled() is True
        assert pcn.is_grad_enabled() is False
    assert pcn.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with pcn.no_grad():
            raise ValueError
    assert pcn.is_grad_enabled()


def test_set_grad_enabled():
    with pcn.set_grad_enabled(False):
        assert not pcn.is_grad_enabled()
    assert pcn.is_grad_enabled()
    pcn.set_grad_enabled(False)
    try:
        assert not (pcn.ones(1, requires_grad=True) * 2).requires_grad
    finally:
        pcn.set_grad_enabled(True)
    with pytest.raises(TypeError):
        pcn.set_grad_enabled("yes")


def test_backward_runs_under_no_grad():
    x = pcn.ones(2, requires_grad=True)
    y = (x * 4).sum()
    with pcn.no_grad():
        y.backward()
    assert x.grad.tolist() == [4.0, 4.0]


def test_deep_chain_needs_no_recursion():
    limit = sys.getrecursionlimit()
    x = pcn.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**10000], rtol=1e-3)
    del y  # freeing a deep graph must not overflow the stack either
    assert sys.getrecursionlimit() == limit


def test_detach_stops_gradient():
    x = pcn.tensor([2.0], requires_grad=True)
    (x.detach() * x + x.data * 3).sum().backward()
    assert x.grad.tolist() == [2.0]


def test_backward_argument_errors():
    x = pcn.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"shape of \[3\].*shape of \[2\]"):
        (x * 2).backward(pcn.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        pcn.ones(2).sum().backward()
    with pytest.raises(TypeError, match="gradient"):
        (x * 2).backward(np.array(["a", "b"]))


def test_backward_on_a_leaf_and_with_numpy_gradient():
    x = pcn.ones(2, 2, requires_grad=True)
    x.backward(np.full((2, 2), 3.0))
    assert x.grad.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert x.grad.dtype == pcn.float32


def test_autograd_backward_with_several_roots():
    x = pcn.tensor([1.0, 2.0], requires_grad=True)
    a, b = x * 2, (x * x).sum()
    autograd.backward([a, b], [pcn.ones(2), None])
    assert x.grad.tolist() == [4.0, 6.0]


def test_int_and_bool_tensors_never_require_grad():
    x = pcn.ones(3, requires_grad=True)
    assert not (x > 0).requires_grad and not x.argmax().requires_grad
    assert not x.long().requires_grad
    _, indices = x.max(0)
    assert indices.dtype == pcn.int64 and not indices.requires_grad


def test_grad_fn_structure():
    x = pcn.ones(2, requires_grad=True)
    y = x * 2
    z = y + pcn.ones(2)
    assert z.grad_fn.name() == "AddBackward" and not z.is_leaf
    (node, index), (missing, _) = z.grad_fn.next_functions
    assert node is y.grad_fn and index == 0 and missing is None
    (accumulate, _), _ = y.grad_fn.next_functions
    assert accumulate.name() == "AccumulateGrad" and accumulate.variable is x


# ----------------------------------------------------------------------------- Function contract
class Probe(Function):
    """Records what forward and backward receive."""

    seen = {}

    @staticmethod
    def forward(ctx, x, w, scale=1.0, *, offset=0.0):
        Probe.seen["forward"] = (x, w, scale, offset, ctx.needs_input_grad)
        ctx.save_for_backward(x, w)
        ctx.scale = scale
        return x * w * scale + offset

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        Probe.seen["backward"] = grad
        return grad * w * ctx.scale, grad * x * ctx.scale


def test_forward_sees_contiguous_arrays_and_plain_arguments():
    x = pcn.randn(3, 4, requires_grad=True).t()  # a transposed operand
    w = pcn.randn(4, 3)
    y = Probe.apply(x, w, 2.0, offset=1.0)
    x_array, w_array, scale, offset, needs = Probe.seen["forward"]
    assert isinstance(x_array, np.ndarray) and x_array.flags.c_contiguous
    assert x_array.dtype == np.float32 and w_array is w.numpy()
    assert (scale, offset) == (2.0, 1.0)
    assert needs == (True, False, False)
    assert y.requires_grad and y.grad_fn.name() == "ProbeBackward"
    y.backward(pcn.ones(4, 3).t().t())
    grad = Probe.seen["backward"]
    assert grad.dtype == np.float32 and grad.flags.c_contiguous


def test_backward_receives_contiguous_float32_grads():
    class Transposed(Function):
        @staticmethod
        def forward(ctx, x):
            return x.T.copy()

        @staticmethod
        def backward(ctx, grad):
            return grad.T.astype(np.float64)  # non-contiguous float64 on purpose

    x = pcn.randn(2, 3, requires_grad=True)
    Probe.apply(Transposed.apply(x), pcn.ones(3, 2)).sum().backward()
    assert Probe.seen["backward"].flags.c_contiguous
    assert x.grad.dtype == pcn.float32 and x.grad.numpy().flags.c_contiguous


def test_multiple_outputs_with_zero_substitution_and_non_differentiable():
    received = {}

    class SplitWithIndex(Function):
        @staticmethod
        def forward(ctx, x):
            first, second = x[:2].copy(), x[2:].copy()
            index = np.array([0.0, 1.0], dtype=np.float32)
            ctx.mark_non_differentiable(index)
            return first, second, index

        @staticmethod
        def backward(ctx, grad_first, grad_second, grad_index):
            received["grads"] = (grad_first, grad_second, grad_index)
            return np.concatenate([grad_first, grad_second])

    x = pcn.ones(5, requires_grad=True)
    first, second, index = SplitWithIndex.apply(x)
    assert first.requires_grad and second.requires_grad and not index.requires_grad
    (first * 3).sum().backward()
    grad_first, grad_second, grad_index = received["grads"]
    assert grad_second.shape == (3,) and not grad_second.any()
    assert grad_index.shape == (2,) and grad_index.dtype == np.float32
    assert x.grad.tolist() == [3.0, 3.0, 0.0, 0.0, 0.0]


def test_outputs_are_normalised():
    class Odd(Function):
        @staticmethod
        def forward(ctx, x):
            return x.astype(np.float64) * 2, np.arange(3, dtype=np.int32), (x > 0)[::-1]

        @staticmethod
        def backward(ctx, grad, *_):
            return grad * 2

    doubled, ints, mask = Odd.apply(pcn.ones(3, requires_grad=True))
    assert doubled.dtype == pcn.float32 and doubled.requires_grad
    assert ints.dtype == pcn.int64 and not ints.requires_grad
    assert mask.dtype == pcn.bool and mask.numpy().flags.c_contiguous


def test_short_gradient_tuple_and_broadcast_reduction():
    class Bias(Function):
        @staticmethod
        def forward(ctx, x, b, tag):
            return x + b

        @staticmethod
        def backward(ctx, grad):
            return grad, grad  # b's gradient still has x's shape; tag's is left out

    x, b = pcn.ones(4, 3, requires_grad=True), pcn.zeros(3, requires_grad=True)
    Bias.apply(x, b, "tag").sum().backward()
    assert b.grad.tolist() == [4.0, 4.0, 4.0]


def _one_off(backward_result):
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, factor):
            return x * factor

        @staticmethod
        def backward(ctx, grad):
            return backward_result(grad)

    return Bad


def test_invalid_backward_results_raise():
    x = pcn.ones(2, 3, requires_grad=True)
    invalid = r"BadBackward returned an invalid gradient at index 0 - got \[3, 2\]"
    with pytest.raises(RuntimeError, match=invalid):
        _one_off(lambda g: (g.T, None)).apply(x, 2.0).sum().backward()
    with pytest.raises(RuntimeError, match="was not a Tensor"):
        _one_off(lambda g: (g, g)).apply(x, 2.0).sum().backward()
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        _one_off(lambda g: (g, None, g)).apply(x, 2.0).sum().backward()


def test_gradient_for_a_tensor_without_requires_grad_is_ignored():
    class Both(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, grad):
            return grad, grad

    x, y = pcn.ones(2, requires_grad=True), pcn.ones(2)
    Both.apply(x, y).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0] and y.grad is None


def test_nothing_recorded_without_grad():
    class Count(Function):
        @staticmethod
        def forward(ctx, x):
            return x + 1

    plain = Count.apply(pcn.ones(2))
    with pcn.no_grad():
        blocked = Count.apply(pcn.ones(2, requires_grad=True))
    for out in (plain, blocked):
        assert not out.requires_grad and out.grad_fn is None


def test_released_node_drops_saved_state():
    x = pcn.ones(2, requires_grad=True)
    y = Probe.apply(x, pcn.ones(2), 3.0)
    node = y.grad_fn
    y.sum().backward(retain_graph=True)
    assert node.scale == 3.0 and len(node.saved_tensors) == 2
    y.sum().backward()
    assert not hasattr(node, "scale")
    with pytest.raises(RuntimeError, match="freed"):
        node.saved_tensors


def test_released_node_keeps_no_array_of_its_forward():
    """A graph kept after backward (a loss kept for logging) holds none of the arrays its
    forward made: max-pool's argmax, marked non-differentiable, once stayed alive with it."""
    x = pcn.randn(1, 1, 4, 4, requires_grad=True)
    out, indices = pcn.nn.functional.max_pool2d(x, 2, return_indices=True)
    argmax = weakref.ref(indices.numpy())
    del indices
    out.sum().backward()
    assert out.grad_fn is not None and argmax() is None


def test_missing_backward_raises():
    class ForwardOnly(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    with pytest.raises(NotImplementedError):
        ForwardOnly.apply(pcn.ones(1, requires_grad=True)).sum().backward()


def test_backward_grads_are_read_only():
    class Mutate(Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad):
            grad *= 2
            return grad

    with pytest.raises(ValueError, match="read-only"):
        Mutate.apply(pcn.ones(2, requires_grad=True)).sum().backward()


def test_empty_and_nan_reductions_are_quiet():
    empty = pcn.zeros(0, 3, requires_grad=True)
    mean = empty.mean()
    assert np.isnan(mean.item())
    mean.backward()
    assert empty.grad.shape == (0, 3)
    x = pcn.tensor([float("nan"), 1.0], requires_grad=True)
    x.max().backward()
    assert np.isnan(x.detach().max().item())


def test_manual_sgd_loop_fits_a_linear_model():
    pcn.manual_seed(0)
    true_w = pcn.tensor([[2.0, -3.0, 0.5]])
    x = pcn.randn(64, 3)
    y = x @ true_w.t() + 0.25
    w = pcn.zeros(1, 3, requires_grad=True)
    b = pcn.zeros(1, requires_grad=True)
    for _ in range(200):
        loss = ((x @ w.t() + b - y) ** 2).mean()
        w.grad = b.grad = None
        loss.backward()
        with pcn.no_grad():
            w.sub_(w.grad, alpha=0.1)
            b -= 0.1 * b.grad
    assert loss.item() < 1e-6
    np.testing.assert_allclose(w.detach().numpy(), true_w.numpy(), atol=1e-3)
    np.testing.assert_allclose(b.detach().numpy(), [0.25], atol=1e-3)


def test_scalar_outputs_receive_zero_dimensional_gradients():
    seen = []

    class Total(pcn.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return np.asarray(x.sum(), dtype=np.float32)

        @staticmethod
        def backward(ctx, grad):
            seen.append(grad.shape)
            return np.full((3,), grad, np.float32)

    x = pcn.ones(3, requires_grad=True)
    Total.apply(x).backward()
    (Total.apply(x) * 2.0).backward()
    assert seen == [(), ()]


@pytest.fixture(params=["counted", "borrowed"])
def reference_counts(request, monkeypatch):
    """``borrowed``: ``sys.getrefcount`` one lower, as Python 3.14's borrowed stack references
    make it. Gradient ownership must not depend on reference counts (the engine once did)."""
    if request.param == "borrowed":
        counted = sys.getrefcount
        # -2: one for the reference this lambda's own argument adds, one borrowed.
        monkeypatch.setattr(sys, "getrefcount", lambda obj: counted(obj) - 2)
    return request.param


def test_leaf_gradients_never_alias_arrays_someone_else_holds(reference_counts):
    """Fresh kernel outputs become .grad without a copy; anything else is copied."""
    kept = np.ones(3, dtype=np.float32)

    class Shared(pcn.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad_output):
            same = np.full(3, 2.0, dtype=np.float32)
            return same, same  # one array for both inputs

    class External(pcn.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1

        @staticmethod
        def backward(ctx, grad_output):
            return kept  # an array the caller also holds

    class SharedView(pcn.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b.reshape(3)

        @staticmethod
        def backward(ctx, grad_output):
            fresh = pcn.nn.functional.relu(pcn.tensor(grad_output)).numpy()  # a kernel output
            return fresh, fresh.reshape(1, 3)

    # d's first gradient is SharedView's kernel output; the view of it waits in e's buffer (e
    # has a second consumer) while d adds its other gradient: d must not have taken the array.
    d, w = pcn.tensor([1.0, 2.0, 3.0], requires_grad=True), pcn.ones(1, 3, requires_grad=True)
    e = w * 1.0
    ((e.reshape(3) * d).sum() + (SharedView.apply(d, e) * 3).sum()).backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(d.grad.numpy(), [4.0, 4.0, 4.0])

    a, b, c = (pcn.zeros(3, requires_grad=True) for _ in range(3))
    (Shared.apply(a, b).sum() + External.apply(c).sum()).backward()
    a.grad.numpy()[0] = 7.0
    c.grad.numpy()[0] = 7.0
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(kept, [1.0, 1.0, 1.0])
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())

    conv = pcn.nn.Conv2d(1, 2, 3)
    conv(pcn.ones(1, 1, 5, 5)).sum().backward()
    assert not conv.weight.grad.numpy().flags.owndata, "a fresh kernel output is taken as is"


def test_no_two_gradients_share_memory(reference_counts):
    """Leaves whose gradients come out of one kernel output (add_relu returns one array for
    both inputs), from several paths, from a broadcast reduction or straight from the caller:
    no .grad shares memory with another or with an array the caller passed in, and a second
    backward accumulates into each exactly."""
    F = pcn.nn.functional
    rng = np.random.default_rng(0)
    x, y, z = (pcn.tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True) for _ in range(3))
    bias = pcn.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    seed = rng.standard_normal(3).astype(np.float32)
    leaves = {"x": x, "y": y, "z": z, "bias": bias}

    def run():
        total = F.add_relu(x, y) * 2 + x * 3 + F.relu(x) + (z + bias)
        pcn.autograd.backward([total.sum(), bias], [None, pcn.from_numpy(seed)])

    run()
    first = {name: leaf.grad.numpy().copy() for name, leaf in leaves.items()}
    arrays = [leaf.grad.numpy() for leaf in leaves.values()] + [seed]
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)
    run()
    for name, leaf in leaves.items():
        np.testing.assert_array_equal(leaf.grad.numpy(), 2 * first[name], err_msg=name)
