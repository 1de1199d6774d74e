"""Element-wise arithmetic and matmul on storage arrays (the Tensor operators): add, sub, mul,
div, neg, pow, matmul, exp, log, sqrt, abs, clamp, and the comparisons and dtype casts (not
differentiable, but Functions so that ONNX export's tracing records them). Same-shape float32
operands run on the OpenMP kernels; broadcasting and other dtypes are numpy's job, and the engine
sums broadcast gradients back to each input's shape."""

import numpy as np

from .. import _array, kernels, plans
from ..autograd import Function, sum_to_shape

__all__ = ["Add", "Sub", "Mul", "Div", "Neg", "Pow", "MatMul", "Exp", "Log", "Sqrt", "Abs", "Clamp", "Compare",
           "Cast"]

float32 = np.dtype(np.float32)
bool_ = np.dtype(np.bool_)


def _same_shape_float32(a, b):
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == float32
            and b.dtype == float32 and a.shape == b.shape and a.ndim > 0)


# Same-shape float32 operands (residual adds, gradient products) run on the OpenMP kernels;
# broadcasting and other dtypes are numpy's job.
def add_arrays(a, b):
    return kernels.add(a, b) if _same_shape_float32(a, b) else np.add(a, b)


def multiply_arrays(a, b):
    return kernels.mul(a, b) if _same_shape_float32(a, b) else np.multiply(a, b)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return add_arrays(a, b)

    @staticmethod
    def backward(ctx, grad):
        needs_a, needs_b = ctx.needs_input_grad
        return (grad if needs_a else None), (grad if needs_b else None)


def _refuse_bool(operation, *operands):
    """torch refuses arithmetic negation and subtraction on bool tensors (numpy would compute them)."""
    if any(isinstance(operand, (bool, np.bool_)) or getattr(operand, "dtype", None) == bool_ for operand in operands):
        raise TypeError(f"{operation} on a bool tensor is not supported; use logical_not() or ~ instead")


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        _refuse_bool("subtraction (the - operator)", a, b)
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx, grad):
        needs_a, needs_b = ctx.needs_input_grad
        return (grad if needs_a else None), (-grad if needs_b else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return multiply_arrays(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        return (multiply_arrays(grad, b) if needs_a else None), (multiply_arrays(grad, a) if needs_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.true_divide(a, b)
        ctx.save_for_backward(b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        b, out = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        with np.errstate(divide="ignore", invalid="ignore"):
            grad_a = grad / b if needs_a else None
            grad_b = -grad * out / b if needs_b else None
        return grad_a, grad_b


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        _refuse_bool("negation (the - operator)", a)
        return np.negative(a)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    @staticmethod
    def forward(ctx, base, exponent):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = np.power(base, exponent)
        ctx.save_for_backward(base, exponent, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        base, exponent, out = ctx.saved_tensors
        needs_base, needs_exponent = ctx.needs_input_grad
        grad_base = grad_exponent = None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if needs_base:
                # d/db b**e = e * b**(e-1), defined as 0 where e == 0 (as torch does).
                local = np.where(exponent == 0, 0.0, exponent * np.power(base, exponent - 1))
                grad_base = grad * local.astype(float32, copy=False)
            if needs_exponent:
                # d/de b**e = b**e * log(b), defined as 0 where b == 0 and e >= 0.
                local = np.where((base == 0) & (exponent >= 0), 0.0, out * np.log(base))
                grad_exponent = grad * local.astype(float32, copy=False)
        return grad_base, grad_exponent


def _matmul(a, b, transpose_a=False, transpose_b=False):
    """op(a) @ op(b): 2-D float32 products run on the library's packed SGEMM (multi-threaded,
    deterministic); batched, 1-D and integer products fall back to numpy."""
    if a.ndim == 2 and b.ndim == 2 and a.dtype == float32 and b.dtype == float32:
        return plans.sgemm(_array.ascontiguous(a), _array.ascontiguous(b), trans_a=transpose_a, trans_b=transpose_b)
    return np.matmul(np.swapaxes(a, -1, -2) if transpose_a else a, np.swapaxes(b, -1, -2) if transpose_b else b)


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        if np.ndim(a) == 0 or np.ndim(b) == 0:
            raise ValueError(
                f"both arguments to matmul need to be at least 1D, but they are "
                f"{np.ndim(a)}D and {np.ndim(b)}D"
            )
        if np.shape(a)[-1] != np.shape(b)[0 if np.ndim(b) == 1 else -2]:
            raise ValueError(f"matmul: shapes {np.shape(a)} and {np.shape(b)} cannot be multiplied")
        ctx.save_for_backward(a, b)
        return _matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad
        # Treat 1-D operands as (1, K) and (K, 1) matrices, as matmul itself does.
        a2 = a[np.newaxis, :] if a.ndim == 1 else a
        b2 = b[:, np.newaxis] if b.ndim == 1 else b
        if b.ndim == 1:
            grad = grad[..., np.newaxis]
        if a.ndim == 1:
            grad = grad[..., np.newaxis, :]
        grad_a = grad_b = None
        if needs_a:
            grad_a = sum_to_shape(_matmul(grad, b2, transpose_b=True), a2.shape)
            grad_a = grad_a.reshape(a.shape)
        if needs_b:
            grad_b = sum_to_shape(_matmul(a2, grad, transpose_a=True), b2.shape)
            grad_b = grad_b.reshape(b.shape)
        return grad_a, grad_b


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        with np.errstate(over="ignore"):
            out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        with np.errstate(invalid="ignore"):
            out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad * np.sign(a)


class Clamp(Function):
    @staticmethod
    def forward(ctx, a, min, max):
        ctx.save_for_backward(a)
        ctx.bounds = (min, max)
        return np.clip(a, min, max)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        low, high = ctx.bounds
        # Strictly inside: a value clamped onto a bound gets no gradient (torch 2.14's rule).
        inside = _array.ones(a.shape, bool, a)
        if low is not None:
            inside &= a > low
        if high is not None:
            inside &= a < high
        return grad * inside, None, None


class Compare(Function):
    """``comparison(a, b)``, a numpy comparison ufunc (np.less, np.equal, ...): a bool array."""

    @staticmethod
    def forward(ctx, a, b, comparison):
        return _array.asarray(comparison(a, b))


class Cast(Function):
    """``a`` as ``dtype``, another storage dtype than its own (only one float dtype exists, so the
    result is never differentiable)."""

    @staticmethod
    def forward(ctx, a, dtype):
        with np.errstate(invalid="ignore"):  # NaN -> int casts are undefined in torch too
            return a.astype(dtype)
