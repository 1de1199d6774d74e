"""The fused SGD, Adam/AdamW, RMSprop, Adagrad and Adadelta update kernels against torch.optim
(foreach=False) over several steps for every flag combination, and against a float64 numpy
reference, on every ISA."""

import itertools

import numpy as np
import pytest

from pyconvnet.ops.optimizer import (adadelta_update_, adagrad_update_, adam_update_, rmsprop_update_, sgd_update_,
                                     sgd_update_many_)
from support import assert_close

STEPS = 6
SHAPES = [(37,), (3, 5, 7), (41000,)]  # odd, multi-dimensional, several parallel chunks


def gradients(rng, shape):
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(STEPS)]


def assert_param_close(actual, expected, scale_of, rtol, what):
    scale = max(float(np.abs(scale_of).max(initial=0.0)), 1e-6)
    error = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0)) / scale
    assert error <= rtol, f"{what}: error {error:.3g} relative to the parameter scale > {rtol:g}"


# ------------------------------------------------------------------ SGD
SGD_FLAGS = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
    for m, d, n, w, x in itertools.product((0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.05), (False, True))
    if not (n and (m == 0.0 or d != 0.0))  # torch: nesterov needs momentum and zero dampening
]


def sgd_reference(param, grads, lr, momentum, dampening, nesterov, weight_decay, maximize):
    p = param.astype(np.float64)
    buf = None
    for grad in grads:
        g = -grad.astype(np.float64) if maximize else grad.astype(np.float64)
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("flags", SGD_FLAGS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_sgd_update_matches_torch_and_reference(isa, flags, shape):
    rng = np.random.default_rng(0)
    param0 = rng.standard_normal(shape).astype(np.float32)
    grads = gradients(rng, shape)
    lr = 0.05
    param = param0.copy()
    buf = np.zeros_like(param) if flags["momentum"] else None
    for step, grad in enumerate(grads):
        sgd_update_(param, grad, buf, lr=lr, first_step=step == 0, **flags)
    assert_param_close(param, sgd_reference(param0, grads, lr, **flags), param0, 1e-4, "param vs float64")
    torch = pytest.importorskip("torch")
    tp = torch.nn.Parameter(torch.tensor(param0))
    opt = torch.optim.SGD([tp], lr=lr, foreach=False, **flags)
    for grad in grads:
        tp.grad = torch.tensor(grad)
        opt.step()
    assert_param_close(param, tp.detach().numpy(), param0, 1e-6, "param vs torch")
    if buf is not None:
        assert_param_close(buf, opt.state[tp]["momentum_buffer"].numpy(), buf, 1e-6, "momentum_buffer vs torch")


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_update_many_equals_one_call_per_parameter(isa, momentum):
    """An optimiser group's parameters in one call, some on their first step: the same bits as
    sgd_update_ on each."""
    rng = np.random.default_rng(5)
    shapes, first_steps = [(37,), (3, 5, 7), (41000,), (0,)], [True, False, True, False]
    params = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    buffers = [rng.standard_normal(shape).astype(np.float32) if momentum else None for shape in shapes]
    options = dict(lr=0.05, momentum=momentum, weight_decay=0.01, nesterov=momentum != 0.0)
    expected = [(p.copy(), None if b is None else b.copy()) for p, b in zip(params, buffers)]
    for (param, buf), grad, first in zip(expected, grads, first_steps):
        sgd_update_(param, grad, buf, first_step=first, **options)
    sgd_update_many_(params, grads, buffers, first_steps=first_steps, **options)
    for param, buf, (param_expected, buf_expected) in zip(params, buffers, expected):
        assert np.array_equal(param, param_expected)
        assert buf is None or np.array_equal(buf, buf_expected)


def test_sgd_update_many_rejects_bad_lists():
    one = [np.zeros(4, np.float32)]
    with pytest.raises(ValueError, match=r"sgd_update_many: params, grads, momentum_buffers and first_steps must "
                                         r"have the same length, got 1, 2, 1 and 1"):
        sgd_update_many_(one, one * 2, one, first_steps=[True], lr=0.1)
    with pytest.raises(ValueError, match=r"sgd_update_many: .*grad"):
        sgd_update_many_(one, [np.zeros(5, np.float32)], [None], first_steps=[True], lr=0.1)
    with pytest.raises(ValueError, match=r"sgd_update_many: momentum_buffer"):
        sgd_update_many_(one, one, [None], first_steps=[True], lr=0.1, momentum=0.9)


# ------------------------------------------------------------------ Adam / AdamW
ADAM_FLAGS = [
    dict(amsgrad=a, maximize=m, weight_decay=w, decoupled_weight_decay=d)
    for a, m, w, d in itertools.product((False, True), (False, True), (0.0, 0.1), (False, True))
]


def adam_reference(param, grads, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay):
    p = param.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    v_max = np.zeros_like(p)
    for step, grad in enumerate(grads, start=1):
        g = -grad.astype(np.float64) if maximize else grad.astype(np.float64)
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = np.maximum(v_max, v)
        denom = np.sqrt(v_max if amsgrad else v) / np.sqrt(1 - beta2**step) + eps
        p = p - lr / (1 - beta1**step) * m / denom
    return p


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("flags", ADAM_FLAGS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_adam_update_matches_torch_and_reference(isa, flags, shape):
    rng = np.random.default_rng(1)
    param0 = rng.standard_normal(shape).astype(np.float32)
    grads = gradients(rng, shape)
    hyper = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    param = param0.copy()
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    max_sq = np.zeros_like(param) if flags["amsgrad"] else None
    for step, grad in enumerate(grads, start=1):
        adam_update_(param, grad, exp_avg, exp_avg_sq, max_sq, step=step, **hyper, **flags)
    assert_param_close(param, adam_reference(param0, grads, **hyper, **flags), param0, 1e-4, "param vs float64")
    torch = pytest.importorskip("torch")
    tp = torch.nn.Parameter(torch.tensor(param0))
    cls = torch.optim.AdamW if flags["decoupled_weight_decay"] else torch.optim.Adam
    opt = cls([tp], lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"],
              weight_decay=flags["weight_decay"], amsgrad=flags["amsgrad"], maximize=flags["maximize"], foreach=False)
    for grad in grads:
        tp.grad = torch.tensor(grad)
        opt.step()
    state = opt.state[tp]
    assert_param_close(param, tp.detach().numpy(), param0, 1e-6, "param vs torch")
    assert_close(exp_avg, state["exp_avg"].numpy(), rtol=1e-6, what="exp_avg vs torch")
    assert_close(exp_avg_sq, state["exp_avg_sq"].numpy(), rtol=1e-6, what="exp_avg_sq vs torch")
    if max_sq is not None:
        assert_close(max_sq, state["max_exp_avg_sq"].numpy(), rtol=1e-6, what="max_exp_avg_sq vs torch")


def torch_steps(torch, cls, param0, grads, **options):
    """torch's parameter and state (as numpy arrays) after one step per gradient."""
    tp = torch.nn.Parameter(torch.tensor(param0))
    opt = cls([tp], foreach=False, **options)
    for grad in grads:
        tp.grad = torch.tensor(grad)
        opt.step()
    return tp.detach().numpy(), {k: v.numpy() for k, v in opt.state[tp].items() if k != "step"}


def small_parameter(rng, shape):
    """A parameter whose float32 rounding stays far below the size of its updates, so that
    assert_update_close measures the update itself."""
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def assert_update_close(param, expected, param0, rtol, what):
    """The change param - param0 against the expected change, relative to that change's scale."""
    change = expected.astype(np.float64) - param0
    assert_param_close(param - param0.astype(np.float64), change, change, rtol, what)


# ------------------------------------------------------------------ RMSprop
RMSPROP_FLAGS = [
    dict(centered=c, momentum=m, weight_decay=w, maximize=x)
    for c, m, w, x in itertools.product((False, True), (0.0, 0.9), (0.0, 0.1), (False, True))
]


def rmsprop_reference(param, grads, lr, alpha, eps, centered, momentum, weight_decay, maximize):
    p = param.astype(np.float64)
    square_avg, grad_avg, buf = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for grad in grads:
        g = (-1.0 if maximize else 1.0) * grad.astype(np.float64) + weight_decay * p
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        grad_avg = alpha * grad_avg + (1 - alpha) * g
        variance = square_avg - grad_avg**2 if centered else square_avg
        buf = momentum * buf + g / (np.sqrt(variance) + eps)
        p = p - lr * buf
    return p


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("flags", RMSPROP_FLAGS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_rmsprop_update_matches_torch_and_reference(isa, flags, shape):
    rng = np.random.default_rng(3)
    param0 = small_parameter(rng, shape)
    grads = gradients(rng, shape)
    hyper = dict(lr=0.01, alpha=0.9, eps=1e-8)
    param, square_avg = param0.copy(), np.zeros_like(param0)
    grad_avg = np.zeros_like(param0) if flags["centered"] else None
    buf = np.zeros_like(param0) if flags["momentum"] else None
    for grad in grads:
        rmsprop_update_(param, grad, square_avg, grad_avg, buf, **hyper, **flags)
    expected = rmsprop_reference(param0, grads, **hyper, **flags)
    assert_update_close(param, expected, param0, 1e-4, "param vs float64")
    torch = pytest.importorskip("torch")
    torch_param, state = torch_steps(torch, torch.optim.RMSprop, param0, grads, **hyper, **flags)
    assert_update_close(param, torch_param, param0, 1e-5, "param vs torch")
    assert_close(square_avg, state["square_avg"], rtol=1e-6, what="square_avg vs torch")
    if grad_avg is not None:
        assert_close(grad_avg, state["grad_avg"], rtol=1e-6, what="grad_avg vs torch")
    if buf is not None:
        assert_close(buf, state["momentum_buffer"], rtol=1e-5, what="momentum_buffer vs torch")


# ------------------------------------------------------------------ Adagrad
ADAGRAD_FLAGS = [
    dict(lr_decay=d, weight_decay=w, initial_accumulator_value=a, maximize=x)
    for d, w, a, x in itertools.product((0.0, 0.3), (0.0, 0.1), (0.0, 0.1), (False, True))
]


def adagrad_reference(param, grads, lr, eps, lr_decay, weight_decay, initial_accumulator_value, maximize):
    p = param.astype(np.float64)
    state_sum = np.full_like(p, initial_accumulator_value)
    for step, grad in enumerate(grads, start=1):
        g = (-1.0 if maximize else 1.0) * grad.astype(np.float64) + weight_decay * p
        state_sum = state_sum + g * g
        p = p - lr / (1 + (step - 1) * lr_decay) * g / (np.sqrt(state_sum) + eps)
    return p


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("flags", ADAGRAD_FLAGS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_adagrad_update_matches_torch_and_reference(isa, flags, shape):
    rng = np.random.default_rng(4)
    param0 = small_parameter(rng, shape)
    grads = gradients(rng, shape)
    hyper = dict(lr=0.1, eps=1e-10)
    options = {k: v for k, v in flags.items() if k != "initial_accumulator_value"}
    param = param0.copy()
    state_sum = np.full_like(param0, flags["initial_accumulator_value"])
    for step, grad in enumerate(grads, start=1):
        adagrad_update_(param, grad, state_sum, step=step, **hyper, **options)
    expected = adagrad_reference(param0, grads, **hyper, **flags)
    assert_update_close(param, expected, param0, 1e-4, "param vs float64")
    torch = pytest.importorskip("torch")
    torch_param, state = torch_steps(torch, torch.optim.Adagrad, param0, grads, **hyper, **flags)
    assert_update_close(param, torch_param, param0, 1e-5, "param vs torch")
    assert_close(state_sum, state["sum"], rtol=1e-6, what="sum vs torch")


# ------------------------------------------------------------------ Adadelta
ADADELTA_FLAGS = [
    dict(weight_decay=w, maximize=x, rho=r) for w, x, r in itertools.product((0.0, 0.1), (False, True), (0.9, 0.5))
]


def adadelta_reference(param, grads, lr, eps, rho, weight_decay, maximize):
    p = param.astype(np.float64)
    square_avg, acc_delta = np.zeros_like(p), np.zeros_like(p)
    for grad in grads:
        g = (-1.0 if maximize else 1.0) * grad.astype(np.float64) + weight_decay * p
        square_avg = rho * square_avg + (1 - rho) * g * g
        delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
        acc_delta = rho * acc_delta + (1 - rho) * delta * delta
        p = p - lr * delta
    return p


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("flags", ADADELTA_FLAGS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_adadelta_update_matches_torch_and_reference(isa, flags, shape):
    rng = np.random.default_rng(5)
    param0 = small_parameter(rng, shape)
    grads = gradients(rng, shape)
    hyper = dict(lr=1.0, eps=1e-6)
    param, square_avg, acc_delta = param0.copy(), np.zeros_like(param0), np.zeros_like(param0)
    for grad in grads:
        adadelta_update_(param, grad, square_avg, acc_delta, **hyper, **flags)
    expected = adadelta_reference(param0, grads, **hyper, **flags)
    assert_update_close(param, expected, param0, 1e-4, "param vs float64")
    torch = pytest.importorskip("torch")
    torch_param, state = torch_steps(torch, torch.optim.Adadelta, param0, grads, **hyper, **flags)
    assert_update_close(param, torch_param, param0, 1e-5, "param vs torch")
    assert_close(square_avg, state["square_avg"], rtol=1e-6, what="square_avg vs torch")
    assert_close(acc_delta, state["acc_delta"], rtol=1e-5, what="acc_delta vs torch")


def test_updates_are_deterministic_and_handle_empty_parameters():
    rng = np.random.default_rng(2)
    param0, grad = rng.standard_normal(50000).astype(np.float32), rng.standard_normal(50000).astype(np.float32)
    results = []
    for _ in range(2):
        p, m, v = param0.copy(), np.zeros_like(param0), np.zeros_like(param0)
        adam_update_(p, grad, m, v, None, step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.0,
                     amsgrad=False, maximize=False, decoupled_weight_decay=False)
        results.append(p)
    assert np.array_equal(results[0], results[1])
    empty = np.zeros(0, np.float32)
    sgd_update_(empty, empty, empty.copy(), lr=0.1, momentum=0.9, first_step=True)
    adam_update_(empty, empty, empty.copy(), empty.copy(), empty.copy(), step=1, lr=0.1, beta1=0.9, beta2=0.99,
                 eps=1e-8, weight_decay=0.0, amsgrad=True, maximize=False, decoupled_weight_decay=False)
    rmsprop_update_(empty, empty, empty.copy(), empty.copy(), empty.copy(), lr=0.1, alpha=0.9, eps=1e-8,
                    weight_decay=0.0, momentum=0.9, centered=True, maximize=False)
    adagrad_update_(empty, empty, empty.copy(), step=1, lr=0.1, lr_decay=0.0, eps=1e-10, weight_decay=0.0,
                    maximize=False)
    adadelta_update_(empty, empty, empty.copy(), empty.copy(), lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0,
                     maximize=False)


# ------------------------------------------------------------------ bad input
def _sgd(param=None, grad=None, buf=None, **kw):
    param = np.zeros(4, np.float32) if param is None else param
    grad = np.zeros(4, np.float32) if grad is None else grad
    options = dict(lr=0.1, momentum=0.9, first_step=True)
    options.update(kw)
    sgd_update_(param, grad, np.zeros(4, np.float32) if buf is None else buf, **options)


def _adam(param=None, max_sq=None, **kw):
    param = np.zeros(4, np.float32) if param is None else param
    options = dict(step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                   decoupled_weight_decay=False)
    options.update(kw)
    adam_update_(param, np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32), max_sq, **options)


def _rmsprop(grad_avg=None, buf=None, square_avg=None, **kw):
    param = np.zeros(4, np.float32)
    options = dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False)
    options.update(kw)
    square_avg = np.zeros(4, np.float32) if square_avg is None else square_avg
    rmsprop_update_(param, np.zeros(4, np.float32), square_avg, grad_avg, buf, **options)


def _adagrad(state_sum=None, **kw):
    options = dict(step=1, lr=0.01, lr_decay=0.0, eps=1e-10, weight_decay=0.0, maximize=False)
    options.update(kw)
    state_sum = np.zeros(4, np.float32) if state_sum is None else state_sum
    adagrad_update_(np.zeros(4, np.float32), np.zeros(4, np.float32), state_sum, **options)


def _adadelta(acc_delta=None, **kw):
    options = dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False)
    options.update(kw)
    acc_delta = np.zeros(4, np.float32) if acc_delta is None else acc_delta
    adadelta_update_(np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32), acc_delta, **options)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: _sgd(param=np.zeros(4)), TypeError, "param must be a float32"),
        (lambda: _sgd(grad=np.zeros(5, np.float32)), ValueError, r"grad must have shape \[4\], got \[5\]"),
        (lambda: _sgd(buf=np.zeros(3, np.float32)), ValueError, r"momentum_buffer must have shape \[4\], got \[3\]"),
        (lambda: _sgd(param=np.zeros((4, 2), np.float32)[:, 0]), ValueError, "param must be a C-contiguous"),
        (lambda: _sgd(lr=-1.0), ValueError, "lr must be >= 0"),
        (lambda: _sgd(nesterov=True, dampening=0.5), ValueError, "nesterov"),
        (lambda: _adam(beta1=1.0), ValueError, r"betas must lie in \[0, 1\)"),
        (lambda: _adam(step=0), ValueError, "step must be >= 1"),
        (lambda: _adam(amsgrad=True), ValueError, "max_exp_avg_sq is required"),
        (lambda: _adam(eps=-1.0), ValueError, "eps must be >= 0"),
        (lambda: _rmsprop(centered=True), ValueError, "grad_avg is required when centered=True"),
        (lambda: _rmsprop(momentum=0.9), ValueError, "momentum_buffer is required when momentum > 0"),
        (lambda: _rmsprop(alpha=-0.5), ValueError, "alpha must be >= 0"),
        (lambda: _rmsprop(square_avg=np.zeros(3, np.float32)), ValueError,
         r"square_avg must have shape \[4\], got \[3\]"),
        (lambda: _rmsprop(square_avg=np.zeros(4, np.float64)), TypeError, "square_avg must be a float32"),
        (lambda: _adagrad(step=0), ValueError, "step must be >= 1"),
        (lambda: _adagrad(lr_decay=-0.1), ValueError, "lr_decay must be >= 0"),
        (lambda: _adagrad(state_sum=np.zeros((4, 2), np.float32)[:, 0]), ValueError,
         "state_sum must be a C-contiguous"),
        (lambda: _adadelta(rho=1.5), ValueError, r"rho must lie in \[0, 1\]"),
        (lambda: _adadelta(weight_decay=-1.0), ValueError, "weight_decay must be >= 0"),
        (lambda: _adadelta(acc_delta=np.zeros(5, np.float32)), ValueError,
         r"acc_delta must have shape \[4\], got \[5\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_read_only_parameter_is_rejected():
    param = np.zeros(4, np.float32)
    param.setflags(write=False)
    with pytest.raises(ValueError, match="param must be writable"):
        _sgd(param=param)
