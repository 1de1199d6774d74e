"""The fused SGD and Adam/AdamW update kernels against torch.optim (foreach=False) over several
steps for every flag combination, and against a float64 numpy reference, on every ISA."""

import itertools

import numpy as np
import pytest

from pyconvnet.ops.optimizer import adam_update_, sgd_update_
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
