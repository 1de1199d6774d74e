"""ONNX export: every model of ``list_models()`` (and the variants with their own code paths) and
user-defined models export, pass the ONNX checker and give pyconvnet's eval-mode logits in
onnxruntime, for batch 1 and 3 through one file; the op converters' options; what tracing refuses;
the errors; ``pyconvnet export``.

Speed: the models are built in their small-input variant where they have one (``cifar=True``)
at the smallest input that reaches every layer; the ImageNet heads (AlexNet's and VGG's 6x6 /
7x7 adaptive pool and 4096-wide classifier, the ImageNet stems of ResNet and GoogLeNet) are
checked once per family rather than for every depth."""

import inspect

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import pyconvnet  # noqa: E402
from pyconvnet import models, nn  # noqa: E402
from pyconvnet import onnx as onnx_export  # noqa: E402
from pyconvnet.nn import functional as F  # noqa: E402
from pyconvnet.train import load_model  # noqa: E402
from test_train import _args, _train, data_dir  # noqa: E402, F401 (data_dir is a fixture)

# One sample's shape per model: the smallest that every layer accepts.
SMALL_INPUT = {
    "lenet5": (1, 28, 28),
    **{name: (3, 8, 8) for name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")},
    **{name: (3, 8, 8) for name in ("plain20", "plain32", "plain44", "plain56")},
    **{name: (3, 16, 16) for name in ("resnet18", "resnet34", "resnet50", "googlenet", "alexnet")},
    **{name: (3, 8, 8) for name in ("resnet101", "resnet152")},  # small-input stem: 8 -> 4 -> 2 -> 1
    **{name: (3, 32, 32) for name in models.list_models() if name.startswith("vgg")},  # five pools
}

# Variants with code paths list_models()'s defaults do not reach: (name, builder kwargs, input).
VARIANTS = [
    pytest.param("lenet5", {"classic": True}, (1, 28, 28), id="lenet5-classic"),
    pytest.param("lenet5", {}, (1, 32, 32), id="lenet5-32x32"),
    pytest.param("alexnet", {"lrn": True}, (3, 64, 64), id="alexnet-imagenet-lrn"),
    pytest.param("vgg11_bn", {}, (3, 32, 32), id="vgg11_bn-imagenet", marks=pytest.mark.slow),  # 133M parameters
    pytest.param("vgg11_bn", {"cifar": True, "in_channels": 1}, (1, 28, 28), id="vgg11_bn-28x28-padded"),
    pytest.param("resnet18", {}, (3, 64, 64), id="resnet18-imagenet"),
    pytest.param("googlenet", {"transform_input": True, "init_weights": False}, (3, 64, 64),
                 id="googlenet-imagenet-transform_input"),
]


def _randomise_batch_norm(model):
    """Running statistics and affine parameters away from their identity defaults, so the
    export's batch norm is really checked."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(module.running_mean, 0.0, 0.2)
            nn.init.uniform_(module.running_var, 0.5, 2.0)
            if module.affine:
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.normal_(module.bias, 0.0, 0.2)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_runs_like_pyconvnet(model, input_shape, path, batches=(1, 3)):
    """``model`` exported to ``path`` passes the checker and matches pyconvnet's eval-mode
    logits in onnxruntime for each batch size, within 1e-4 of the logits' scale."""
    onnx_export.export(model, input_shape, path)
    onnx.checker.check_model(str(path))
    session = _session(path)
    rng = np.random.default_rng(0)
    model.eval()
    for batch in batches:
        x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
        with pyconvnet.no_grad():
            expected = model(pyconvnet.from_numpy(x)).numpy()
        (got,) = session.run(["logits"], {"input": x})
        scale = np.abs(expected).max()
        assert scale > 1e-3, f"logits too small ({scale}) for the comparison to mean anything"
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)


def _model(name, **kwargs):
    pyconvnet.manual_seed(0)
    model = models.get_model(name, **kwargs)
    _randomise_batch_norm(model)
    return model


def test_every_listed_model_has_a_small_input():
    assert sorted(SMALL_INPUT) == models.list_models()


@pytest.mark.parametrize("name", models.list_models())
def test_every_model_runs_in_onnxruntime_with_pyconvnets_logits(name, tmp_path):
    small = {"cifar": True} if "cifar" in inspect.signature(getattr(models, name)).parameters else {}
    model = _model(name, **small)
    _assert_runs_like_pyconvnet(model, SMALL_INPUT[name], tmp_path / f"{name}.onnx")


@pytest.mark.parametrize(("name", "kwargs", "input_shape"), VARIANTS)
def test_model_variants_run_in_onnxruntime_with_pyconvnets_logits(name, kwargs, input_shape, tmp_path):
    _assert_runs_like_pyconvnet(_model(name, **kwargs), input_shape, tmp_path / "model.onnx")


def test_the_file_declares_opset_ir_version_names_and_a_dynamic_batch(tmp_path):
    model = _model("lenet5")
    onnx_export.export(model, (1, 28, 28), tmp_path / "lenet5.onnx")
    proto = onnx.load(str(tmp_path / "lenet5.onnx"))
    assert proto.ir_version == onnx_export.IR_VERSION
    assert [(opset.domain, opset.version) for opset in proto.opset_import] == [("", 17)]
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert (graph_input.name, dims(graph_input)) == ("input", ["batch", 1, 28, 28])
    assert (graph_output.name, dims(graph_output)) == ("logits", ["batch", 10])
    assert "features.0.weight" in {tensor.name for tensor in proto.graph.initializer}


def test_export_uses_eval_mode_and_restores_the_models_mode(tmp_path):
    model = _model("resnet20")
    model.train()
    model.layer2.eval()
    _assert_runs_like_pyconvnet(model, (3, 8, 8), tmp_path / "a.onnx", batches=(2,))  # dropout/bn in eval
    model.train()
    model.layer2.eval()
    onnx_export.export(model, (3, 8, 8), tmp_path / "b.onnx")
    assert model.training and model.layer1.training and not model.layer2.training
    assert not model.layer2[0].bn1.training


def _layer_zoo():
    """Every leaf converter's less common options in one network."""
    return nn.Sequential(
        nn.Conv2d(4, 8, kernel_size=3, padding=2, dilation=2, groups=2),
        nn.BatchNorm2d(8, affine=False),
        nn.LeakyReLU(0.1),
        nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
        nn.Conv2d(8, 8, kernel_size=(3, 2), stride=(1, 2), padding="valid", bias=False),
        nn.Sigmoid(),
        nn.Conv2d(8, 6, kernel_size=4, padding="same"),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.Tanh(),
        nn.AdaptiveAvgPool2d((3, None)),
        nn.LocalResponseNorm(3, alpha=0.01, beta=0.5, k=1.5),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(6 * 3 * 2, 10),
        nn.BatchNorm1d(10),
        nn.Identity(),
    )


def test_layer_options_run_in_onnxruntime_with_pyconvnets_logits(tmp_path):
    pyconvnet.manual_seed(0)
    model = _layer_zoo()
    _randomise_batch_norm(model)
    _assert_runs_like_pyconvnet(model, (4, 13, 11), tmp_path / "zoo.onnx")


@pytest.mark.parametrize(("size", "output_size"), [(5, 1), (6, 3), (2, 7), (5, 3), (7, (2, None))])
def test_adaptive_average_pooling_any_sizes(size, output_size, tmp_path):
    model = nn.Sequential(nn.AdaptiveAvgPool2d(output_size), nn.Flatten())
    _assert_runs_like_pyconvnet(model, (3, size, size), tmp_path / "pool.onnx")


def test_flatten_of_inner_dimensions_keeps_the_batch_dynamic(tmp_path):
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.Flatten(2, 3), nn.Linear(20, 4))
    _assert_runs_like_pyconvnet(model, (2, 4, 5), tmp_path / "flatten.onnx")


class _UserNet(nn.Module):
    """A model written the way users write them: two branches, a residual ``+=`` after an in-place
    ReLU, a concat, a functional relu and a flatten through ``view(x.size(0), -1)``."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.left = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 1))
        self.right = nn.Conv2d(8, 4, 1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(12 * 4 * 4, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        out = self.left(x)
        out += x  # the residual add, in place as torchvision writes it
        out = F.relu(out)
        x = F.cat([out, F.sigmoid(self.right(x)) * 2.0], 1)
        x = self.pool(x)
        return self.head(x.view(x.size(0), -1))


class _Swish(nn.Module):
    def forward(self, x):
        return x * F.sigmoid(x)


class _ShapesNet(nn.Module):
    """Shape ops, reductions, softmax, matmul, slicing and the other activations."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.norm = nn.GroupNorm(3, 6)
        self.mix = nn.Parameter(pyconvnet.randn(5, 5))
        self.swish = _Swish()

    def forward(self, x):
        x = F.interpolate(self.norm(self.conv(x)), scale_factor=2, mode="nearest")  # (N, 6, 10, 10)
        x = F.pad(F.gelu(x), (1, 0, 0, 1))[:, 1:, :10, 1:]  # (N, 5, 10, 10)
        x = F.interpolate(self.swish(x), size=(5, 5), mode="bilinear", align_corners=False)
        rows = x.permute(0, 2, 3, 1) @ self.mix  # (N, 5, 5, 5)
        rows = F.layer_norm(rows, (5,)) + F.hardswish(rows).clamp(min=-1.0, max=2.0)
        weights = F.softmax(rows.mean(dim=3), dim=-1)  # (N, 5, 5)
        pooled = (rows * weights.unsqueeze(-1)).sum(2).transpose(1, 2) + rows[:, None, 2, ::-1].sum(1)  # (N, 5, 5)
        logits = pooled.flatten(1) - pooled.flatten(1).exp().sum(1, keepdim=True).log()
        return F.log_softmax(logits[..., ::2], dim=1) + F.relu6(logits).max(dim=1, keepdim=True).values


class _MoreOpsNet(nn.Module):
    """A transposed convolution, adaptive max pooling, a Linear on 4-D input, numbers on either side
    of an op, gather by traced indices, where with a constant and a traced mask, comparisons, a
    cast, expand and clamp."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)
        self.pool = nn.AdaptiveMaxPool2d(4)
        self.proj = nn.Linear(4, 6)
        self.register_buffer("mask", pyconvnet.from_numpy(np.arange(6) % 2 == 0))

    def forward(self, x):
        x = F.leaky_relu(self.up(x), 0.2)  # (N, 4, 8, 8)
        x = self.proj(self.pool(x).permute(0, 2, 3, 1))  # (N, 4, 4, 6)
        x = F.hardsigmoid(x) + F.gelu(x, approximate="tanh") - 1.0 / (2.0 + x.abs()) + x ** 2
        top = x.max(dim=-1, keepdim=True)
        x = pyconvnet.where(self.mask, x, top.values.expand(-1, -1, -1, 6)) * x.gather(-1, top.indices)
        x = pyconvnet.where(x > 0.5, x, -x) + (x <= 0.2).float() - x.ne(1.0).float() + x.minimum(x * 0.3)
        return x.flatten(1).clamp(max=3.0)


@pytest.mark.parametrize(("model", "input_shape"), [(_UserNet, (3, 8, 8)), (_ShapesNet, (4, 5, 5)),
                                                    (_MoreOpsNet, (3, 4, 4))],
                         ids=["branches-residual-concat-view", "shape-ops-reductions-activations", "more-ops"])
def test_a_user_defined_model_runs_in_onnxruntime_with_pyconvnets_logits(model, input_shape, tmp_path):
    pyconvnet.manual_seed(0)
    model = model()
    _randomise_batch_norm(model)
    _assert_runs_like_pyconvnet(model, input_shape, tmp_path / "user.onnx")


class _Cube(pyconvnet.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class _CubeModule(nn.Module):
    def forward(self, x):
        return _Cube.apply(x)


def test_an_op_without_onnx_mapping_is_named_with_its_module(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), _CubeModule()))
    with pytest.raises(TypeError, match=r"no ONNX mapping for op _Cube .* in '1\.1'"):
        onnx_export.export(model, (1, 8, 8), tmp_path / "cube.onnx")
    assert not (tmp_path / "cube.onnx").exists()


class _Lambda(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


def _in_place_add(x):
    y = F.relu(x)
    y.add_(1.0)
    return y


@pytest.mark.parametrize(("function", "message"), [
    (_in_place_add, r"in-place op add_ .* use the out-of-place form"),
    (lambda x: x * pyconvnet.from_numpy(x.numpy() > 0).float(), r"op Mul .* changes with the input"),
    (lambda x: x + pyconvnet.zeros(x.size(0), 1, 4, 4), r"op Add .* batch size baked"),
    (lambda x: x.view(-1), r"merges the batch dimension"),
    (lambda x: x[:1], r"slicing the batch dimension"),
    (lambda x: x if x.size(0) % 2 == 0 else -x, r"depend on the input"),  # control flow
    (lambda x: F.max_pool2d(x, 2, return_indices=True)[1].float(), r"no value for the indices of MaxPool2dFunction"),
    (lambda x: (x, x), r"must return one Tensor, got tuple"),
])
def test_what_tracing_cannot_express_is_refused(function, message, tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 1, 1), _Lambda(function))
    with pytest.raises(TypeError, match=message):
        onnx_export.export(model, (1, 4, 4), tmp_path / "bad.onnx")
    assert pyconvnet.autograd.tracer is None  # tracing ended with the error
    assert not any(module._forward_pre_hooks or module._forward_hooks for module in model.modules())


@pytest.mark.parametrize(("module", "message"), [
    (nn.LocalResponseNorm(4), "even size"),
    (nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
    (nn.BatchNorm2d(1, track_running_stats=False), "track_running_stats=False"),
])
def test_settings_onnx_cannot_express_are_refused(module, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        onnx_export.export(nn.Sequential(module), (1, 4, 4), tmp_path / "bad.onnx")


@pytest.mark.parametrize("input_shape", [(), (1, 0, 4), "1x4x4", (1.0, 4, 4)])
def test_bad_input_shapes_are_refused(input_shape, tmp_path):
    with pytest.raises(ValueError, match="input_shape"):
        onnx_export.export(nn.Sequential(nn.ReLU()), input_shape, tmp_path / "bad.onnx")


def test_a_non_module_is_refused(tmp_path):
    with pytest.raises(TypeError, match="nn.Module"):
        onnx_export.export(lambda x: x, (1, 4, 4), tmp_path / "bad.onnx")


def test_cli_exports_a_checkpoint(capsys, data_dir, tmp_path):  # noqa: F811 (the fixture)
    status, _, _ = _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 1, "--limit-train", 32))
    assert status == 0
    checkpoint = tmp_path / "run" / "last.safetensors"
    status, out, err = _train(capsys, "export", str(checkpoint), "--onnx", str(tmp_path / "lenet5.onnx"))
    assert (status, err) == (0, "")
    assert out.strip() == f"wrote {tmp_path / 'lenet5.onnx'}"
    model, _ = load_model(checkpoint)
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)
    model.eval()
    with pyconvnet.no_grad():
        expected = model(pyconvnet.from_numpy(x)).numpy()
    (got,) = _session(tmp_path / "lenet5.onnx").run(["logits"], {"input": x})
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_cli_reports_a_missing_checkpoint(capsys, tmp_path):
    status, _, err = _train(capsys, "export", str(tmp_path / "none.safetensors"), "--onnx", str(tmp_path / "x.onnx"))
    assert status == 1
    assert "pyconvnet export: error:" in err and "none.safetensors" in err
