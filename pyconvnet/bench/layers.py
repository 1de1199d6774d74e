"""Layer suite: every distinct convolution, max-pool and batch-norm layer of the training-step
suite's models, at the suite's batch sizes, pyconvnet against torch; and the SGEMM (backend.sgemm on
its plan's ISA) against numpy's matmul on square and convolution-shaped sizes.

The layers are found by running each model once (one sample, no_grad) with forward hooks on its
Conv2d, MaxPool2d and BatchNorm2d modules, so the list follows the models as they change.
Convolutions time the kernels alone (forward, backward-data, backward-weight, no bias);
max-pool and batch-norm (training mode) time forward + backward through each library's
functional API. GFLOP/s counts direct-convolution FLOPs (2 per multiply-add), whatever
algorithm a kernel uses. Convolutions run the plans measured kernel selection picks
(pyconvnet.plans; the first call of each pass tunes it, outside the timed runs); each row's
``plan`` says which ISA and algorithm ran ("heuristic" with selection off), as does each SGEMM
row's.
"""

from collections import namedtuple

import numpy as np

from .. import nn, no_grad, plans, tensor, zeros
from ..nn import functional
from .timing import OPENBLAS_SETTLE_SECONDS, SETTLE_SECONDS, compare, require_torch

ConvShape = namedtuple("ConvShape", ["input", "out_channels", "kernel", "stride", "padding", "dilation", "groups"])
PoolShape = namedtuple("PoolShape", ["input", "kernel", "stride", "padding", "dilation", "ceil_mode"])
NormShape = namedtuple("NormShape", ["input", "eps"])

# (name, m, n, k) for C (m x n) = A (m x k) B (k x n): square sizes, then the GEMMs that
# convolutions and classifiers produce (out_channels x output pixels x patch size, and back).
GEMM_CASES = [
    ("square 256", 256, 256, 256),
    ("square 512", 512, 512, 512),
    ("square 1024", 1024, 1024, 1024),
    ("square 2048", 2048, 2048, 2048),
    ("lenet5 conv2 fwd", 16, 100, 150),
    ("resnet20 3x3x16 fwd", 16, 1024, 144),
    ("resnet20 3x3x64 fwd", 64, 64, 576),
    ("resnet18 3x3x64 fwd", 64, 3136, 576),
    ("resnet18 3x3x256 fwd", 256, 196, 2304),
    ("resnet18 3x3x64 bwd-weight", 64, 576, 3136),
    ("alexnet fc6 b16", 16, 4096, 9216),
]


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _conv_shape(conv, input_shape):
    return ConvShape(input_shape, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                     conv.groups)


def _pool_shape(pool, input_shape):
    return PoolShape(input_shape, _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding),
                     _pair(pool.dilation), pool.ceil_mode)


def _norm_shape(norm, input_shape):
    return NormShape(input_shape, norm.eps)


_SHAPE_OF = {nn.Conv2d: _conv_shape, nn.MaxPool2d: _pool_shape, nn.BatchNorm2d: _norm_shape}


def collect_layers(cases):
    """{shape: [case names using it, one entry per use]} for the conv, pool and norm layers of
    ``cases`` (ModelCase), each shape with the case's batch size."""
    layers = {}

    def recorder(case, shape_of):
        def hook(module, args, output):
            shape = shape_of(module, (case.batch, *args[0].shape[1:]))
            layers.setdefault(shape, []).append(case.name)

        return hook

    for case in cases:
        model = case.build().eval()
        for module in model.modules():
            for kind, shape_of in _SHAPE_OF.items():
                if isinstance(module, kind):
                    module.register_forward_hook(recorder(case, shape_of))
        with no_grad():
            model(zeros(1, *case.input_shape))
    return layers


def _used_by(names):
    counts = {name: names.count(name) for name in dict.fromkeys(names)}
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in counts.items())


def _time_conv(shape, used_by, rng, torch, compare_sides):
    x = rng.standard_normal(shape.input, dtype=np.float32)
    w = rng.standard_normal((shape.out_channels, shape.input[1] // shape.groups, *shape.kernel), dtype=np.float32)
    geometry = (shape.stride, shape.padding, shape.dilation, shape.groups)
    y = plans.conv2d("forward", x, w, None, *geometry)
    gy = rng.standard_normal(y.shape, dtype=np.float32)
    tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
    flops = 2.0 * y.size * w[0].size
    label = (f"{'x'.join(map(str, shape.input))} -> {shape.out_channels} k{'x'.join(map(str, shape.kernel))} "
             f"s{shape.stride[0]} p{shape.padding[0]}" + (f" g{shape.groups}" if shape.groups > 1 else ""))
    torch_geometry = (list(shape.stride), list(shape.padding), list(shape.dilation), False, [0, 0], shape.groups)

    def torch_backward(mask):
        return torch.ops.aten.convolution_backward(tgy, tx, tw, None, *torch_geometry, mask)

    def ours(pass_, a, b, c):
        """The timed call of a pass and the plan it runs, tuned by a first call outside the timing."""
        plans.conv2d(pass_, a, b, c, *geometry)
        plan = plans.plan_of(pass_, x.shape, w.shape, *geometry)
        return (lambda: plans.conv2d(pass_, a, b, c, *geometry),
                "heuristic" if plan is None else f"{plan['isa']}/{plan['algorithm']}")

    with torch.no_grad():
        for op, pass_, operands, theirs in (
                ("fwd", "forward", (x, w, None), lambda: torch.nn.functional.conv2d(tx, tw, None, *geometry)),
                ("bwd-data", "backward_data", (gy, w, list(x.shape)), lambda: torch_backward([True, False, False])),
                ("bwd-weight", "backward_weight", (gy, x, list(w.shape)),
                 lambda: torch_backward([False, True, False]))):
            timed, plan = ours(pass_, *operands)
            compare_sides("conv", op, label, used_by, flops, timed, theirs, plan=plan)


def _time_pool(shape, used_by, rng, torch, compare_sides):
    x = rng.standard_normal(shape.input, dtype=np.float32)
    ours_x, torch_x = tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    window = {"kernel_size": shape.kernel, "stride": shape.stride, "padding": shape.padding,
              "dilation": shape.dilation, "ceil_mode": shape.ceil_mode}
    label = (f"{'x'.join(map(str, shape.input))} k{shape.kernel[0]} s{shape.stride[0]} p{shape.padding[0]}"
             + (" ceil" if shape.ceil_mode else ""))
    compare_sides("max_pool", "fwd+bwd", label, used_by, None,
                  lambda: functional.max_pool2d(ours_x, **window).sum().backward(),
                  lambda: torch.nn.functional.max_pool2d(torch_x, **window).sum().backward())


def _time_norm(shape, used_by, rng, torch, compare_sides):
    channels = shape.input[1]
    x = rng.standard_normal(shape.input, dtype=np.float32)
    ours = [tensor(x, requires_grad=True), zeros(channels), tensor(np.ones(channels, np.float32)),
            tensor(np.ones(channels, np.float32), requires_grad=True), zeros(channels, requires_grad=True)]
    theirs = [torch.tensor(x, requires_grad=True), torch.zeros(channels), torch.ones(channels),
              torch.ones(channels, requires_grad=True), torch.zeros(channels, requires_grad=True)]
    compare_sides("batch_norm", "fwd+bwd", "x".join(map(str, shape.input)), used_by, None,
                  lambda: functional.batch_norm(*ours, training=True, eps=shape.eps).sum().backward(),
                  lambda: torch.nn.functional.batch_norm(*theirs, training=True, eps=shape.eps).sum().backward())


def _time_gemm(case, rng, compare_sides):
    name, m, n, k = case
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    plans.sgemm(a, b)  # tunes the size on its first call
    plan = plans.sgemm_plan_of(m, n, k)
    compare_sides("sgemm", name, f"{m}x{n}x{k}", "", 2.0 * m * n * k, lambda: plans.sgemm(a, b), lambda: a @ b,
                  baseline="numpy", plan="heuristic" if plan is None else f"{plan['isa']}/{plan['algorithm']}",
                  settle_seconds=OPENBLAS_SETTLE_SECONDS)


def run_layer_suite(cases, peak_gflops, gemm_cases=GEMM_CASES, repeats=7, warmup=2, report=print):
    """Times the layers of ``cases`` (ModelCase) and the ``gemm_cases``; returns one dict per
    timed op and passes each to ``report`` as soon as it is done."""
    torch = require_torch()
    rng = np.random.default_rng(0)
    rows = []

    def compare_sides(kind, op, shape, used_by, flops, ours, theirs, baseline="torch", plan=None,
                      settle_seconds=SETTLE_SECONDS):
        timing = compare(ours, theirs, repeats=repeats, warmup=warmup, settle_seconds=settle_seconds)
        row = {"kind": kind, "op": op, "shape": shape, "plan": plan, "models": used_by, "baseline": baseline,
               "pyconvnet_ms": timing.ours_ms, "baseline_ms": timing.theirs_ms, "ratio": timing.ratio,
               "gflop": None if flops is None else flops / 1e9}
        for side, ms in (("pyconvnet", timing.ours_ms), ("baseline", timing.theirs_ms)):
            gflops = None if flops is None else flops / ms / 1e6
            row[f"{side}_gflops"] = gflops
            row[f"{side}_peak_percent"] = None if gflops is None else 100.0 * gflops / peak_gflops
        rows.append(row)
        report(row)

    timers = {ConvShape: _time_conv, PoolShape: _time_pool, NormShape: _time_norm}
    layers = collect_layers(cases)
    for kind in (ConvShape, PoolShape, NormShape):  # all convolutions first, then pools, then norms
        for shape, names in layers.items():
            if isinstance(shape, kind):
                timers[kind](shape, _used_by(names), rng, torch, compare_sides)
    for case in gemm_cases:
        _time_gemm(case, rng, compare_sides)
    return rows
