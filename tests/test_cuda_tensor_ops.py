"""The GPU array primitives of pyconvnet._C_cuda (fill, arange, unary/binary/where/cast, strided copy
and assign, reductions, cumsum, gathers and scatters, nonzero, concatenate, sort/topk, random) against
the numpy expressions they stand for: broadcasting edge cases, 0-d, empty, sizes that are not block
multiples, ~1e6-element arrays, negative strides, every dtype, and the argument errors."""

import math

import numpy as np
import pytest

pytestmark = pytest.mark.cuda

DTYPES = ["float32", "int64", "bool", "uint8"]
INT64_MIN = np.iinfo(np.int64).min
BIG = 1_000_003  # ~1e6 elements, not a multiple of any block size
# Broadcasting pairs: 0-d, size-1 stretching, empty, higher rank, a dimension of size 1 on both sides.
BROADCAST = [((), ()), ((3,), ()), ((), (4,)), ((2, 3), (3,)), ((2, 1, 4), (3, 1)), ((5, 1), (1, 6)),
             ((0, 3), (1, 3)), ((1,), (0,)), ((2, 3, 4, 5), (2, 1, 4, 1)), ((257,), (257,))]


@pytest.fixture(scope="module")
def gpu():
    from pyconvnet.cuda import _module

    return _module()


@pytest.fixture(autouse=True)
def _quiet_numpy():
    with np.errstate(all="ignore"):  # the numpy references divide by zero, take log(-1), ...
        yield


def sample(rng, shape, dtype):
    if dtype == "float32":
        return rng.standard_normal(shape).astype(np.float32)
    if dtype == "int64":
        return rng.integers(-5, 6, shape).astype(np.int64)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(0, 256, shape).astype(np.uint8)


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 3.7, -3.7, np.inf, -np.inf, np.nan, 1e30, -1e-30,
                    88.0, -88.0, 100.0], dtype=np.float32)


def up(gpu, array):
    return gpu.from_numpy(np.asarray(array), 0)


def down(gpu, device_array):
    return gpu.to_numpy(device_array)


def check(actual, expected, rtol=1e-5, atol=1e-6):
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    if actual.dtype == np.float32:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(actual, expected)


def float_to_int64(x):
    """x86's float -> int64: truncation, int64 min for NaN, inf and out-of-range values."""
    x = np.asarray(x, dtype=np.float64)
    valid = (x >= -(2.0**63)) & (x < 2.0**63)
    return np.where(valid, np.trunc(np.where(valid, x, 0)), 0).astype(np.int64) + np.where(valid, 0, INT64_MIN)


def numpy_cast(x, dtype):
    x = np.asarray(x)
    if dtype == "bool":
        return x != 0
    if x.dtype == np.float32 and dtype in ("int64", "uint8"):
        as_int = float_to_int64(x)
        return as_int if dtype == "int64" else (as_int & 0xFF).astype(np.uint8)
    if dtype == "uint8":
        return (x.astype(np.int64) & 0xFF).astype(np.uint8)
    return x.astype(dtype)


# ------------------------------------------------------------------ fill / arange


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 0, 2), (2, 129, 3), (BIG,)], ids=str)
def test_fill(gpu, dtype, shape):
    for value in (2.75, -2.0, 7, True, False):
        kind = {bool: np.bool_, int: np.int64, float: np.float32}[type(value)]  # Python scalars are weakly typed
        expected = np.full(shape, numpy_cast(np.array(value, kind), dtype), dtype=dtype)
        check(down(gpu, gpu.fill(list(shape), dtype, value, 0)), expected)


def test_fill_nan_into_int64_gives_int64_min(gpu):
    check(down(gpu, gpu.fill([3], "int64", math.nan, 0)), np.full(3, INT64_MIN))
    check(down(gpu, gpu.fill([2], "float32", math.inf, 0)), np.full(2, np.inf, np.float32))


@pytest.mark.parametrize("count,start,step,dtype", [(5, 0, 1, "int64"), (7, 2, -3, "int64"), (0, 0, 1, "int64"),
                                                    (1000, 0.5, 0.25, "float32"), (BIG, 0, 1, "int64"),
                                                    (300, 1, 2, "float32"), (10, -1.5, 0.5, "int64")])
def test_arange(gpu, count, start, step, dtype):
    i = np.arange(count, dtype=np.int64)
    if isinstance(start, int) and isinstance(step, int):
        values = start + i * step
    else:  # computed in double, rounded to float32 before the store
        values = (start + i.astype(np.float64) * step).astype(np.float32)
    expected = numpy_cast(values, dtype)
    check(down(gpu, gpu.arange(count, start, step, dtype, 0)), expected)


# ------------------------------------------------------------------ unary

FLOAT_UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "reciprocal": lambda x: np.float32(1) / x, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x.astype(np.float64))), "floor": np.floor, "ceil": np.ceil,
    "round": np.rint, "trunc": np.trunc, "sin": np.sin, "cos": np.cos, "log1p": np.log1p, "expm1": np.expm1,
    "erf": np.vectorize(math.erf, otypes=[np.float64]),
}
SAME_OR_INT_UNARY = {"neg": np.negative, "abs": np.abs, "sign": np.sign, "square": np.square}
PREDICATES = {"logical_not": lambda x: x == 0, "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
              "signbit": np.signbit}


def unary_reference(op, x):
    if op in FLOAT_UNARY:
        return FLOAT_UNARY[op](x.astype(np.float32)).astype(np.float32)
    if op in SAME_OR_INT_UNARY:
        return SAME_OR_INT_UNARY[op](x if x.dtype == np.float32 else x.astype(np.int64))
    if x.dtype == np.float32:
        return PREDICATES[op](x)
    as_int = x.astype(np.int64)  # integers: never NaN or infinite
    return {"logical_not": as_int == 0, "isnan": np.zeros(x.shape, bool), "isinf": np.zeros(x.shape, bool),
            "isfinite": np.ones(x.shape, bool), "signbit": as_int < 0}[op]


@pytest.mark.parametrize("op", [*FLOAT_UNARY, *SAME_OR_INT_UNARY, *PREDICATES])
def test_unary_every_op_and_dtype(gpu, op):
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        inputs = [sample(rng, shape, dtype) for shape in [(), (0,), (7,), (3, 5), (2, 129, 3)]]
        if dtype == "float32":
            inputs.append(SPECIAL)
            inputs.append(rng.uniform(0.1, 3, (257,)).astype(np.float32))  # inside every op's domain
        for x in inputs:
            expected = unary_reference(op, x)
            rtol = 2e-6 if op not in ("sin", "cos") else 1e-5
            actual = down(gpu, gpu.unary(op, up(gpu, x)))
            # sin/cos of 1e30 differ between range reductions, exp and friends overflow differently near
            # the limit: compare these where the argument is moderate.
            if op in ("sin", "cos", "tanh", "sigmoid", "erf", "expm1", "exp") and x.dtype == np.float32:
                keep = np.abs(x) < 50
                check(actual[keep], expected[keep], rtol=rtol, atol=1e-6)
            else:
                check(actual, expected, rtol=rtol, atol=1e-6)


def test_unary_large_and_exact_rounding(gpu):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(BIG) * 10).astype(np.float32)
    check(down(gpu, gpu.unary("neg", up(gpu, x))), -x)
    halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5], dtype=np.float32)
    check(down(gpu, gpu.unary("round", up(gpu, halves))), np.array([-2, -2, -0, 0, 2, 2, 4], np.float32))


# ------------------------------------------------------------------ binary

ARITH = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "floordiv": np.floor_divide, "mod": np.mod,
         "pow": np.power, "maximum": np.maximum, "minimum": np.minimum}
COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
           "ge": np.greater_equal, "logical_and": np.logical_and, "logical_or": np.logical_or,
           "logical_xor": np.logical_xor}
FLOAT_BINARY = {"div": np.true_divide, "atan2": np.arctan2, "copysign": np.copysign}
BITWISE = {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor}
BINARY_OPS = [*ARITH, *COMPARE, *FLOAT_BINARY, *BITWISE]


def binary_reference(op, a, b):
    """The spec's result dtypes: float32 if either is float32, else int64 (bool op bool stays bool for
    add/mul/maximum/minimum); comparisons and logical ops -> bool; div/atan2/copysign -> float32."""
    is_float = np.float32 in (a.dtype, b.dtype)
    both_bool = a.dtype == b.dtype == np.bool_
    compute = np.float32 if is_float else np.int64
    if op in COMPARE:
        return COMPARE[op](a.astype(compute), b.astype(compute))
    if op in FLOAT_BINARY:
        return FLOAT_BINARY[op](a.astype(np.float32), b.astype(np.float32))
    if op in BITWISE:
        if is_float:
            return TypeError
        result = BITWISE[op](a.astype(np.int64), b.astype(np.int64))
        return result.astype(bool) if both_bool else result
    if both_bool and op == "sub":
        return TypeError
    result = ARITH[op](a.astype(compute), b.astype(compute))
    return result.astype(bool) if both_bool and op in ("add", "mul", "maximum", "minimum") else result


def binary_sample(rng, shape, dtype, op, second):
    x = sample(rng, shape, dtype)
    if op == "pow" and dtype == "int64":  # small non-negative exponents (numpy refuses negative ones)
        x = np.abs(x) % 4 if second else x
    if op == "pow" and dtype == "float32" and second:
        x = np.round(x * 2) / 2  # integral and half exponents: negative bases give NaN or a value
    return x


@pytest.mark.parametrize("op", BINARY_OPS)
def test_binary_every_op_dtype_pair_and_broadcast(gpu, op):
    rng = np.random.default_rng(3)
    for a_dtype in DTYPES:
        for b_dtype in DTYPES:
            for a_shape, b_shape in BROADCAST:
                a = binary_sample(rng, a_shape, a_dtype, op, False)
                b = binary_sample(rng, b_shape, b_dtype, op, True)
                expected = binary_reference(op, a, b)
                if expected is TypeError:
                    with pytest.raises(TypeError, match=op if op != "sub" else "bool"):
                        gpu.binary(op, up(gpu, a), up(gpu, b))
                    break
                check(down(gpu, gpu.binary(op, up(gpu, a), up(gpu, b))), expected, rtol=2e-6)


@pytest.mark.sanitize_subset
def test_binary_float_special_values(gpu):
    a = np.repeat(SPECIAL, SPECIAL.size)
    b = np.tile(SPECIAL, SPECIAL.size)
    for op in ["add", "sub", "mul", "div", "maximum", "minimum", "floordiv", "mod", "eq", "lt", "copysign", "atan2"]:
        check(down(gpu, gpu.binary(op, up(gpu, a), up(gpu, b))), binary_reference(op, a, b), rtol=2e-6)


def test_binary_integer_division_by_zero_and_sign_rules(gpu):
    a = np.array([7, -7, 7, -7, 5, 0, INT64_MIN], dtype=np.int64)
    b = np.array([2, 2, -2, -2, 0, 0, -1], dtype=np.int64)
    check(down(gpu, gpu.binary("floordiv", up(gpu, a), up(gpu, b))), np.array([3, -4, -4, 3, 0, 0, INT64_MIN]))
    check(down(gpu, gpu.binary("mod", up(gpu, a), up(gpu, b))), np.array([1, 1, -1, -1, 0, 0, 0]))


def test_binary_large(gpu):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(BIG).astype(np.float32), rng.standard_normal((BIG,)).astype(np.float32)
    check(down(gpu, gpu.binary("mul", up(gpu, a), up(gpu, b))), a * b)
    a2 = rng.standard_normal((1000, 1)).astype(np.float32)
    b2 = rng.standard_normal((1, 1001)).astype(np.float32)
    check(down(gpu, gpu.binary("sub", up(gpu, a2), up(gpu, b2))), a2 - b2)


def test_binary_errors(gpu):
    a, b = up(gpu, np.zeros((2, 3), np.float32)), up(gpu, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"broadcast.*\[2, 3\].*\[4\]"):
        gpu.binary("add", a, b)
    with pytest.raises(ValueError, match="unknown op 'plus'"):
        gpu.binary("plus", a, a)
    with pytest.raises(ValueError, match="unknown op"):
        gpu.unary("cube", a)


@pytest.mark.parametrize("op", BINARY_OPS)
def test_binary_scalar(gpu, op):
    rng = np.random.default_rng(5)
    scalar_dtype = {bool: np.bool_, int: np.int64, float: np.float32}
    for dtype in DTYPES:
        for scalar in (2, 3.5, True, 0):
            for scalar_first in (False, True):
                x = sample(rng, (3, 7), dtype)
                if op == "pow" and dtype == "int64" and not scalar_first:
                    x = np.abs(x)
                if op == "pow" and dtype == "int64" and scalar_first:
                    x = np.abs(x) % 4
                s = np.array(scalar, dtype=scalar_dtype[type(scalar)])
                expected = binary_reference(op, s, x) if scalar_first else binary_reference(op, x, s)
                if expected is TypeError:
                    with pytest.raises(TypeError):
                        gpu.binary_scalar(op, up(gpu, x), scalar, scalar_first)
                    continue
                check(down(gpu, gpu.binary_scalar(op, up(gpu, x), scalar, scalar_first)), expected, rtol=2e-6)
    with pytest.raises(TypeError, match="scalar"):
        gpu.binary_scalar(op, up(gpu, np.zeros(2, np.float32)), "2", False)


# ------------------------------------------------------------------ where / cast


def test_where(gpu):
    rng = np.random.default_rng(6)
    for dtype in DTYPES:
        for c_shape, a_shape, b_shape in [((), (), ()), ((3, 1), (1, 4), ()), ((2, 3), (3,), (2, 1)),
                                          ((0, 2), (2,), ()), ((BIG,), (BIG,), ())]:
            c = rng.random(c_shape) < 0.5
            a, b = sample(rng, a_shape, dtype), sample(rng, b_shape, dtype)
            check(down(gpu, gpu.where(up(gpu, c), up(gpu, a), up(gpu, b))), np.where(c, a, b))
    f = up(gpu, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="cond"):
        gpu.where(f, f, f)
    with pytest.raises(TypeError, match="same dtype"):
        gpu.where(up(gpu, np.ones(3, bool)), f, up(gpu, np.zeros(3, np.int64)))
    with pytest.raises(ValueError, match="broadcast"):
        gpu.where(up(gpu, np.ones(3, bool)), f, up(gpu, np.zeros(4, np.float32)))


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_cast(gpu, src, dst):
    rng = np.random.default_rng(7)
    inputs = [sample(rng, shape, src) for shape in [(), (0,), (5, 3), (BIG,)]]
    if src == "float32":
        inputs.append(np.concatenate([SPECIAL, np.float32([1e19, -1e19, 255.9, 256.0, -0.9])]))
    if src == "int64":
        inputs.append(np.array([INT64_MIN, -1, 0, 255, 256, 2**40 + 3], np.int64))
    for x in inputs:
        check(down(gpu, gpu.cast(up(gpu, x), dst)), numpy_cast(x, dst), rtol=0, atol=0)
    with pytest.raises(TypeError):
        gpu.cast(up(gpu, inputs[0]), "float64")


# ------------------------------------------------------------------ strided copy / assign


def strided_view(flat, shape, strides, offset):
    """numpy's view of flat[offset + sum(i_j * strides[j])] (strides in elements)."""
    item = flat.itemsize
    base = flat[offset:] if offset < flat.size else flat[flat.size:]
    return np.lib.stride_tricks.as_strided(base, shape=shape, strides=[s * item for s in strides])


def strided_cases(n_rows, n_cols):
    """(shape, strides, offset) views of a (n_rows, n_cols) C-contiguous array stored flat."""
    n = n_rows * n_cols
    return [
        ((n_cols, n_rows), (1, n_cols), 0),  # transpose
        ((n_rows, n_cols), (-n_cols, 1), (n_rows - 1) * n_cols),  # flipped rows
        ((n_rows, n_cols), (n_cols, -1), n_cols - 1),  # flipped columns
        ((n,), (-1,), n - 1),  # reversed flat
        ((n_rows, (n_cols + 1) // 2), (n_cols, 2), 0),  # stepped slice
        ((min(n_rows, n_cols),), (n_cols + 1,), 0),  # diagonal
        ((3, n_rows, n_cols), (0, n_cols, 1), 0),  # broadcast (expand)
        ((), (), n - 1),  # one element, 0-d
        ((0, 4), (7, 1), 0),  # empty
        ((2, 1, n_cols), (n_cols, 12345, 1), 0),  # size-1 dim with an arbitrary stride
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_copy(gpu, dtype):
    rng = np.random.default_rng(8)
    for rows, cols in [(3, 4), (5, 1), (1000, 1001)]:
        flat = sample(rng, rows * cols, dtype)
        x = up(gpu, flat)
        for shape, strides, offset in strided_cases(rows, cols):
            expected = strided_view(flat, shape, strides, offset).copy()
            check(down(gpu, gpu.strided_copy(x, list(shape), list(strides), offset)), expected)


def test_strided_copy_bounds(gpu):
    x = up(gpu, np.arange(12, dtype=np.float32))
    with pytest.raises(ValueError, match="outside x"):
        gpu.strided_copy(x, [4, 3], [3, 1], 1)
    with pytest.raises(ValueError, match="outside x"):
        gpu.strided_copy(x, [3], [-1], 1)
    with pytest.raises(ValueError, match="same length"):
        gpu.strided_copy(x, [3], [1, 1], 0)
    with pytest.raises(ValueError, match="negative"):
        gpu.strided_copy(x, [-1], [1], 0)
    check(down(gpu, gpu.strided_copy(x, [0, 5], [100, 100], 99)), np.zeros((0, 5), np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_assign(gpu, dtype):
    rng = np.random.default_rng(9)
    rows, cols = 6, 7
    for shape, strides, offset in strided_cases(rows, cols):
        if 0 in strides[:1] and shape and shape[0] > 1:
            continue  # stride-0 destinations are refused (tested below)
        for src_dtype in ("float32", dtype):
            flat = sample(rng, rows * cols, dtype)
            for src_shape in (shape, shape[1:], ()):
                src = sample(rng, src_shape, src_dtype)
                dst = up(gpu, flat)
                gpu.strided_assign(dst, list(shape), list(strides), offset, up(gpu, src))
                expected = flat.copy()
                strided_view(expected, shape, strides, offset)[...] = numpy_cast(src, dtype)
                check(down(gpu, dst), expected)


def test_strided_assign_overlapping_source_and_errors(gpu):
    values = np.arange(10, dtype=np.float32)
    x = up(gpu, values)
    gpu.strided_assign(x, [9], [1], 1, x.view([9], 0))  # x[1:] = x[:-1]
    expected = values.copy()
    expected[1:] = values[:-1]
    check(down(gpu, x), expected)
    with pytest.raises(ValueError, match="stride 0"):
        gpu.strided_assign(x, [2, 3], [0, 1], 0, up(gpu, np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="outside dst"):
        gpu.strided_assign(x, [11], [1], 0, up(gpu, np.zeros(11, np.float32)))
    with pytest.raises(ValueError, match="broadcast"):
        gpu.strided_assign(x, [5], [1], 0, up(gpu, np.zeros(4, np.float32)))


# ------------------------------------------------------------------ reductions

REDUCE_NUMPY = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "any": np.any, "all": np.all,
                "mean": np.mean}


def reduce_reference(op, x, axes, keepdims):
    axes = tuple(axes)
    if op in ("sum", "prod"):
        compute = np.float64 if x.dtype == np.float32 else np.int64
        result = REDUCE_NUMPY[op](x.astype(compute), axis=axes, keepdims=keepdims)
        return result.astype(np.float32 if x.dtype == np.float32 else np.int64)
    if op == "mean":
        return np.mean(x.astype(np.float64), axis=axes, keepdims=keepdims).astype(np.float32)
    return np.asarray(REDUCE_NUMPY[op](x, axis=axes, keepdims=keepdims))


AXES_3D = [[], [0], [1], [2], [0, 2], [2, 0], [1, 2], [0, 1, 2]]


@pytest.mark.parametrize("op", list(REDUCE_NUMPY))
def test_reduce_every_dtype_and_axes(gpu, op):
    rng = np.random.default_rng(10)
    for dtype in DTYPES:
        for shape in [(2, 3, 4), (5, 1, 300), (1, 7, 1)]:
            x = sample(rng, shape, dtype)
            if op == "prod" and dtype == "float32":
                x = rng.uniform(0.8, 1.25, shape).astype(np.float32)
            if op == "prod" and dtype == "uint8":
                x = (x % 3).astype(np.uint8)
            for axes in AXES_3D:
                for keepdims in (False, True):
                    expected = reduce_reference(op, x, axes, keepdims)
                    actual = down(gpu, gpu.reduce(op, up(gpu, x), axes, keepdims))
                    check(actual, expected, rtol=1e-5, atol=1e-5)
    x0 = sample(rng, (), "float32")
    check(down(gpu, gpu.reduce(op, up(gpu, x0), [], False)), reduce_reference(op, x0, (), False))


def test_reduce_long_rows_and_determinism(gpu):
    rng = np.random.default_rng(11)
    # One long row, few long rows (two passes), a transposed reduction, many rows (one pass), all axes.
    for shape, axes in [((BIG,), [0]), ((3, 100_000), [1]), ((100_000, 3), [0]), ((300, 5000), [1]),
                        ((40, 9000), [0, 1])]:
        x = rng.standard_normal(shape).astype(np.float32)
        n = np.prod([shape[a] for a in axes])
        for op in ("sum", "mean", "max", "min"):
            expected = reduce_reference(op, x, axes, False)
            atol = 1e-6 * math.sqrt(n) * (1 if op == "mean" else n**0.5)
            check(down(gpu, gpu.reduce(op, up(gpu, x), axes, False)), expected, rtol=1e-5, atol=atol)
    x = up(gpu, rng.standard_normal(BIG).astype(np.float32))
    first, second = down(gpu, gpu.reduce("sum", x, [0], False)), down(gpu, gpu.reduce("sum", x, [0], False))
    assert first.tobytes() == second.tobytes()
    ints = rng.integers(-(2**40), 2**40, (3, 70_000)).astype(np.int64)
    check(down(gpu, gpu.reduce("sum", up(gpu, ints), [1], False)), ints.sum(axis=1))


def test_reduce_nan_empty_and_errors(gpu):
    x = np.array([[1, np.nan, 3], [4, 5, 6]], dtype=np.float32)
    for op in ("max", "min", "sum", "any", "all"):
        check(down(gpu, gpu.reduce(op, up(gpu, x), [1], False)), reduce_reference(op, x, [1], False))
    empty = np.zeros((0, 3), np.float32)
    check(down(gpu, gpu.reduce("sum", up(gpu, empty), [0], False)), np.zeros(3, np.float32))
    check(down(gpu, gpu.reduce("prod", up(gpu, empty), [0], True)), np.ones((1, 3), np.float32))
    check(down(gpu, gpu.reduce("all", up(gpu, empty), [0, 1], False)), np.array(True))
    check(down(gpu, gpu.reduce("mean", up(gpu, empty), [0], False)), np.full(3, np.nan, np.float32))
    check(down(gpu, gpu.reduce("max", up(gpu, empty), [1], False)), np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="^zero-size array to reduction operation max which has no identity$"):
        gpu.reduce("max", up(gpu, empty), [0], False)
    with pytest.raises(ValueError, match="repeated"):
        gpu.reduce("sum", up(gpu, x), [1, 1], False)
    with pytest.raises(ValueError, match="out of range"):
        gpu.reduce("sum", up(gpu, x), [2], False)
    with pytest.raises(ValueError, match="unknown op"):
        gpu.reduce("median", up(gpu, x), [0], False)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_arg_reduce(gpu, op):
    rng = np.random.default_rng(12)
    f = getattr(np, op)
    for dtype in DTYPES:
        for shape in [(7,), (3, 4, 5), (2, 300, 3), (1, 1)]:
            x = sample(rng, shape, dtype)  # small value ranges: many ties (the first one wins)
            if dtype == "float32":
                x = np.round(x).astype(np.float32)
            for axis in [-1, *range(len(shape))]:
                for keepdims in (False, True):
                    expected = f(x, axis=None if axis == -1 else axis, keepdims=keepdims)
                    check(down(gpu, gpu.arg_reduce(op, up(gpu, x), axis, keepdims)), np.asarray(expected, np.int64))
    nan_rows = np.array([[1, np.nan, 5, np.nan], [2, 9, 9, 0]], dtype=np.float32)
    check(down(gpu, gpu.arg_reduce(op, up(gpu, nan_rows), 1, False)), f(nan_rows, axis=1))
    big = rng.standard_normal(BIG).astype(np.float32)
    check(down(gpu, gpu.arg_reduce(op, up(gpu, big), -1, False)), np.asarray(f(big), np.int64))
    check(down(gpu, gpu.arg_reduce(op, up(gpu, np.float32(3)), -1, False)), np.asarray(0, np.int64))
    with pytest.raises(ValueError, match=f"attempt to get {op} of an empty sequence"):
        gpu.arg_reduce(op, up(gpu, np.zeros((3, 0), np.float32)), 1, False)
    check(down(gpu, gpu.arg_reduce(op, up(gpu, np.zeros((0, 3), np.float32)), 1, False)), np.zeros(0, np.int64))


def test_cumsum(gpu):
    rng = np.random.default_rng(13)
    for dtype in DTYPES:
        for shape in [(1,), (7,), (3, 4, 5), (0, 3), (1000, 1000), (2, 50_000)]:
            x = sample(rng, shape, dtype)
            for axis in range(len(shape)):
                expected = np.cumsum(x, axis=axis, dtype=np.float32 if dtype == "float32" else np.int64)
                check(down(gpu, gpu.cumsum(up(gpu, x), axis)), expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="out of range"):
        gpu.cumsum(up(gpu, np.zeros(3, np.float32)), 1)


# ------------------------------------------------------------------ gathers and scatters


def along_axis_index(array_shape, index, axis):
    """numpy's fancy-index tuple that take/put_along_axis use (index broadcast against the array)."""
    ndim = len(array_shape)
    parts = []
    for d in range(ndim):
        if d == axis:
            parts.append(index)
        else:
            shape = [1] * ndim
            shape[d] = array_shape[d] if index.shape[d] == 1 else index.shape[d]
            parts.append(np.arange(shape[d]).reshape(shape) if array_shape[d] != 1 else np.zeros(shape, np.int64))
    return tuple(parts)


@pytest.mark.parametrize("dtype", DTYPES)
def test_take_along_axis(gpu, dtype):
    rng = np.random.default_rng(14)
    x = sample(rng, (4, 5, 6), dtype)
    for axis, index_shape in [(1, (4, 3, 6)), (1, (1, 3, 6)), (0, (2, 5, 1)), (2, (4, 5, 0)), (2, (4, 5, 9))]:
        index = rng.integers(-x.shape[axis], x.shape[axis], index_shape).astype(np.int64)
        expected = np.take_along_axis(x, index, axis)
        check(down(gpu, gpu.take_along_axis(up(gpu, x), up(gpu, index), axis)), expected)
    labels = rng.integers(0, 10, (BIG // 10, 1)).astype(np.int64)
    logits = rng.standard_normal((BIG // 10, 10)).astype(np.float32)
    check(down(gpu, gpu.take_along_axis(up(gpu, logits), up(gpu, labels), 1)), np.take_along_axis(logits, labels, 1))
    # Out-of-range indices read nothing (documented): the result is 0 there.
    bad = np.array([[0, 5, -6, 2]], dtype=np.int64)
    got = down(gpu, gpu.take_along_axis(up(gpu, np.arange(1, 6, dtype=np.float32)[None]), up(gpu, bad), 1))
    check(got, np.array([[1, 0, 0, 3]], np.float32))
    with pytest.raises(TypeError, match="index"):
        gpu.take_along_axis(up(gpu, x), up(gpu, index.astype(np.float32)), 2)
    with pytest.raises(ValueError, match="dimensions"):
        gpu.take_along_axis(up(gpu, x), up(gpu, index[0]), 1)
    with pytest.raises(ValueError, match="broadcast"):
        gpu.take_along_axis(up(gpu, x), up(gpu, np.zeros((3, 5, 6), np.int64)), 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_put_along_axis(gpu, dtype):
    rng = np.random.default_rng(15)
    dst = sample(rng, (4, 5, 6), dtype)
    # Without accumulate: distinct targets (a permutation along the axis), src broadcast.
    index = np.argsort(rng.random((4, 5, 6)), axis=1)[:, :3, :].astype(np.int64) - 5  # negative: wrapped
    for src_shape in [(4, 3, 6), (6,), ()]:
        src = sample(rng, src_shape, dtype)
        d = up(gpu, dst)
        gpu.put_along_axis(d, up(gpu, index), up(gpu, src), 1, False)
        expected = dst.copy()
        np.put_along_axis(expected, index, src, 1)
        check(down(gpu, d), expected)
    if dtype == "uint8":
        with pytest.raises(TypeError, match="accumulate"):
            gpu.put_along_axis(up(gpu, dst), up(gpu, index), up(gpu, dst[:, :3]), 1, True)
        return
    # With accumulate: duplicate targets sum (bool: OR), as np.add.at.
    dup = rng.integers(0, 5, (4, 7, 6)).astype(np.int64)
    src = sample(rng, (4, 7, 6), dtype)
    d = up(gpu, dst)
    gpu.put_along_axis(d, up(gpu, dup), up(gpu, src), 1, True)
    expected = dst.copy()
    if dtype == "bool":
        np.logical_or.at(expected, along_axis_index(dst.shape, dup, 1), src)
    else:
        np.add.at(expected, along_axis_index(dst.shape, dup, 1), src)
    check(down(gpu, d), expected, rtol=1e-5, atol=1e-5)
    other = "int64" if dtype != "int64" else "float32"
    with pytest.raises(TypeError, match="same dtype"):
        gpu.put_along_axis(up(gpu, dst), up(gpu, dup), up(gpu, np.zeros((4, 7, 6), other)), 1, True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_index_select(gpu, dtype):
    rng = np.random.default_rng(16)
    x = sample(rng, (5, 7, 3), dtype)
    for axis in range(3):
        n = x.shape[axis]
        for index in [rng.integers(-n, n, 4), rng.integers(-n, n, (2, 3)), np.array(n - 1), np.zeros(0)]:
            index = np.asarray(index, dtype=np.int64)
            check(down(gpu, gpu.index_select(up(gpu, x), axis, up(gpu, index))), np.take(x, index, axis))
    big = sample(rng, (1000, 1001), dtype)
    rows = rng.integers(0, 1000, 1500).astype(np.int64)
    check(down(gpu, gpu.index_select(up(gpu, big), 0, up(gpu, rows))), big[rows])
    with pytest.raises(ValueError, match="out of range"):
        gpu.index_select(up(gpu, x), 3, up(gpu, rows))


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_index_add(gpu, dtype):
    rng = np.random.default_rng(17)
    for shape, axis in [((5, 4), 0), ((3, 6, 2), 1), ((2, 3, 7), 2), ((200, 64), 0)]:
        dst = sample(rng, shape, dtype)
        n = shape[axis]
        for index in [rng.integers(-n, n, 9), rng.integers(0, n, (2, 5)), np.zeros(0)]:
            index = np.asarray(index, dtype=np.int64)
            src_shape = shape[:axis] + index.shape + shape[axis + 1:]
            src = sample(rng, src_shape, dtype)
            d = up(gpu, dst)
            gpu.index_add(d, axis, up(gpu, index), up(gpu, src))
            expected = np.moveaxis(dst.copy(), axis, 0)
            np.add.at(expected, index.reshape(-1) % n,
                      np.moveaxis(src.reshape(shape[:axis] + (index.size,) + shape[axis + 1:]), axis, 0))
            check(down(gpu, d), np.moveaxis(expected, 0, axis), rtol=1e-5, atol=1e-5)
    d = up(gpu, np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="src"):
        gpu.index_add(d, 0, up(gpu, np.zeros(3, np.int64)), up(gpu, np.zeros((2, 4), np.float32)))
    with pytest.raises(TypeError, match="same dtype"):
        gpu.index_add(d, 0, up(gpu, np.zeros(2, np.int64)), up(gpu, np.zeros((2, 4), np.int64)))
    with pytest.raises(TypeError, match="float32 or int64"):
        flags = up(gpu, np.zeros((5, 4), bool))
        gpu.index_add(flags, 0, up(gpu, np.zeros(2, np.int64)), up(gpu, np.zeros((2, 4), bool)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nonzero(gpu, dtype):
    rng = np.random.default_rng(18)
    for shape in [(), (0,), (7,), (3, 4, 5), (2, 0, 3), (1, 1, 1, 1, 1, 1, 1, 2), (BIG,), (1000, 999)]:
        x = sample(rng, shape, dtype)
        if x.size > 1000:
            x = np.where(rng.random(shape) < 0.01, x, np.zeros_like(x))  # sparse
        check(down(gpu, gpu.nonzero(up(gpu, x))), np.argwhere(x).astype(np.int64))
    check(down(gpu, gpu.nonzero(up(gpu, np.float32([0, np.nan, -0.0, 2])))), np.array([[1], [3]], np.int64))
    with pytest.raises(ValueError, match="at most 8"):
        gpu.nonzero(up(gpu, np.ones((1,) * 9, bool)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_concatenate(gpu, dtype):
    rng = np.random.default_rng(19)
    for shapes, axis in [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 0), (2, 5)], 1), ([(7,)], 0),
                         ([(3, 1, 4), (3, 2, 4), (3, 3, 4)], 1), ([(1000, 500), (1000, 501)], 1),
                         ([(0, 2), (0, 2)], 0)]:
        arrays = [sample(rng, s, dtype) for s in shapes]
        check(down(gpu, gpu.concatenate([up(gpu, a) for a in arrays], axis)), np.concatenate(arrays, axis))
    a = up(gpu, np.zeros((2, 3), dtype))
    with pytest.raises(ValueError, match="does not match"):
        gpu.concatenate([a, up(gpu, np.zeros((2, 4), dtype))], 0)
    with pytest.raises(TypeError, match="same dtype"):
        gpu.concatenate([a, up(gpu, np.zeros((2, 3), "float32" if dtype != "float32" else "int64"))], 0)
    with pytest.raises(ValueError, match="at least one"):
        gpu.concatenate([], 0)


# ------------------------------------------------------------------ sort / topk


def stable_order(x, axis, descending):
    """Stable argsort along axis; ascending puts NaN last, descending puts NaN first (torch)."""
    x = np.moveaxis(x, axis, -1)
    keys = x.astype(np.float64)
    if not descending:
        order = np.argsort(keys, axis=-1, kind="stable")
    else:
        nan_last = ~np.isnan(keys)  # False (NaN) sorts first
        rows = (math.prod(keys.shape[:-1]), keys.shape[-1])
        flat_keys, flat_nan = keys.reshape(rows), nan_last.reshape(rows)
        order = np.stack([np.lexsort((-k, n)) for k, n in zip(flat_keys, flat_nan)]) if flat_keys.size else \
            np.zeros(flat_keys.shape, np.int64)
        order = order.reshape(keys.shape)
    return np.moveaxis(order.astype(np.int64), -1, axis)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sort(gpu, dtype):
    rng = np.random.default_rng(20)
    for shape, axis in [((7,), 0), ((4, 10), 1), ((10, 4), 0), ((3, 1000), 1), ((2, 3, 5), 1), ((0, 5), 1), ((1,), 0),
                        ((5, 0), 1), ((2, 4097), 1)]:
        x = sample(rng, shape, dtype)  # small value ranges: ties test stability
        if dtype == "float32":
            x = np.round(x * 2).astype(np.float32)
            x.reshape(-1)[::7] = np.nan
        for descending in (False, True):
            values, indices = gpu.sort(up(gpu, x), axis, descending)
            order = stable_order(x, axis, descending)
            check(down(gpu, indices), order)
            check(down(gpu, values), np.take_along_axis(x, order, axis))


@pytest.mark.parametrize("largest", [True, False])
def test_topk(gpu, largest):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    for axis, k in [(1, 3), (1, 0), (1, 10), (0, 2)]:
        values, indices = gpu.topk(up(gpu, x), k, axis, largest, True)
        order = np.take(stable_order(x, axis, largest), np.arange(k), axis)
        check(down(gpu, indices), order)
        check(down(gpu, values), np.take_along_axis(x, order, axis))
    with pytest.raises(ValueError, match="k"):
        gpu.topk(up(gpu, x), 11, 1, largest, True)


# ------------------------------------------------------------------ random


def test_uniform(gpu):
    values = down(gpu, gpu.uniform([BIG], -2.0, 3.0, 1234, 0))
    assert values.dtype == np.float32 and values.shape == (BIG,)
    assert values.min() >= -2.0 and values.max() < 3.0
    assert abs(values.mean() - 0.5) < 0.01 and abs(values.std() - 5 / math.sqrt(12)) < 0.01
    assert np.array_equal(values, down(gpu, gpu.uniform([BIG], -2.0, 3.0, 1234, 0)))  # counter-based
    assert not np.array_equal(values, down(gpu, gpu.uniform([BIG], -2.0, 3.0, 1235, 0)))
    assert down(gpu, gpu.uniform([2, 0, 3], 0.0, 1.0, 1, 0)).shape == (2, 0, 3)
    prefix = down(gpu, gpu.uniform([1000], -2.0, 3.0, 1234, 0))
    check(prefix, values[:1000], rtol=0, atol=0)  # element i depends only on (seed, i)


def test_normal(gpu):
    values = down(gpu, gpu.normal([1000, 1000], 1.5, 2.0, 7, 0))
    assert values.dtype == np.float32 and values.shape == (1000, 1000)
    assert np.isfinite(values).all()
    assert abs(values.mean() - 1.5) < 0.01 and abs(values.std() - 2.0) < 0.01
    assert abs(np.mean(np.abs(values - 1.5) < 2.0) - 0.6827) < 0.005  # one sigma
    assert np.array_equal(values, down(gpu, gpu.normal([1000, 1000], 1.5, 2.0, 7, 0)))


def test_randint(gpu):
    values = down(gpu, gpu.randint([BIG], -3, 7, 99, 0))
    assert values.dtype == np.int64
    assert set(np.unique(values).tolist()) == set(range(-3, 7))
    counts = np.bincount(values + 3)
    assert counts.min() > 0.09 * BIG and counts.max() < 0.11 * BIG
    assert np.array_equal(values, down(gpu, gpu.randint([BIG], -3, 7, 99, 0)))
    wide = down(gpu, gpu.randint([1000], -(2**62), 2**62, 5, 0))
    assert wide.min() >= -(2**62) and wide.max() < 2**62 and np.unique(wide).size == 1000
    with pytest.raises(ValueError, match="greater than low"):
        gpu.randint([3], 5, 5, 0, 0)
    with pytest.raises(ValueError, match="negative"):
        gpu.uniform([-1], 0.0, 1.0, 0, 0)
