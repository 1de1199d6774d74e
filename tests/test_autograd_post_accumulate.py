"""The engine's hook points for data-parallel training: post-accumulate-grad hooks on leaves
(against torch's ``Tensor.register_post_accumulate_grad_hook``) and ``autograd.queue_callback``."""

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import autograd

torch = pytest.importorskip("torch")


def _record(module, make_leaf, register):
    """Runs y = sum(w*x) + sum(w*w) + sum(b*x) on ``module`` (pcn or torch); returns what each hook
    saw: (name, .grad at the time) in call order, over two backward passes."""
    x = make_leaf(np.arange(1, 4, dtype=np.float32), False)
    w = make_leaf(np.array([0.5, -1.0, 2.0], dtype=np.float32), True)
    b = make_leaf(np.array([1.0, 1.0, 1.0], dtype=np.float32), True)
    seen = []
    for name, leaf in (("w", w), ("b", b)):
        register(leaf, lambda tensor, name=name: seen.append((name, tensor.grad.detach().numpy().copy())))
    for _ in range(2):
        y = (w * x).sum() + (w * w).sum() + (b * x).sum()  # w reached by two edges
        y.backward()
    return seen


def test_post_accumulate_hook_runs_once_per_pass_after_the_sum_like_torch():
    ours = _record(pcn, lambda a, rg: pcn.tensor(a, requires_grad=rg),
                   autograd.register_post_accumulate_grad_hook)
    theirs = _record(torch, lambda a, rg: torch.tensor(a, requires_grad=rg),
                     lambda leaf, hook: leaf.register_post_accumulate_grad_hook(hook))
    assert sorted(name for name, _ in ours) == sorted(name for name, _ in theirs) == ["b", "b", "w", "w"]
    for name in ("w", "b"):
        mine = [grad for n, grad in ours if n == name]
        torchs = [grad for n, grad in theirs if n == name]
        for a, b in zip(mine, torchs):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_post_accumulate_hook_skips_a_leaf_that_got_no_gradient_and_can_be_removed():
    w = pcn.tensor([1.0, 2.0], requires_grad=True)
    unused = pcn.tensor([1.0], requires_grad=True)
    calls = []
    handle = autograd.register_post_accumulate_grad_hook(w, lambda t: calls.append("w"))
    autograd.register_post_accumulate_grad_hook(unused, lambda t: calls.append("unused"))
    (w * 2).sum().backward()
    assert calls == ["w"]
    handle.remove()
    (w * 2).sum().backward()
    assert calls == ["w"]


def test_post_accumulate_hook_on_a_root_leaf():
    w = pcn.tensor([3.0], requires_grad=True)
    calls = []
    autograd.register_post_accumulate_grad_hook(w, lambda t: calls.append(t.grad.item()))
    w.backward(pcn.tensor([2.0]))
    assert calls == [2.0]


def test_post_accumulate_hook_refuses_non_leaves_and_tensors_without_grad():
    w = pcn.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        autograd.register_post_accumulate_grad_hook(w * 2, lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        autograd.register_post_accumulate_grad_hook(pcn.tensor([1.0]), lambda t: None)


def test_queue_callback_runs_once_after_every_grad_is_written():
    a = pcn.tensor([1.0, 2.0], requires_grad=True)
    b = pcn.tensor([3.0], requires_grad=True)
    events = []

    def on_a(grad):
        autograd.queue_callback(lambda: events.append(("end", a.grad.tolist(), b.grad.tolist())))
        autograd.queue_callback(lambda: autograd.queue_callback(lambda: events.append(("chained",))))

    a.register_hook(on_a)
    ((a * 2).sum() + (b * 5).sum()).backward()
    assert events == [("end", [2.0, 2.0], [5.0]), ("chained",)]
    ((a * 2).sum() + (b * 5).sum()).backward()
    assert len(events) == 4  # queued afresh in each pass, nothing left over


def test_queue_callback_outside_backward_is_an_error():
    with pytest.raises(RuntimeError, match="during the backward pass"):
        autograd.queue_callback(lambda: None)
