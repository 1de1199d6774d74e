"""The torch names that ported scripts call: devices and the GPU queries, DataParallel, and the
Tensor methods and top-level functions, each against torch (values, dtypes and gradients)."""

import pickle

import numpy as np
import pytest

import pyconvnet as pcn
from support import check_against_torch

torch = pytest.importorskip("torch")


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- devices
def test_device_objects_parse_and_compare_as_torch():
    for spec in ["cpu", "cuda", "cuda:1", "mps"]:
        ours, theirs = pcn.device(spec), torch.device(spec)
        assert (ours.type, ours.index, str(ours)) == (theirs.type, theirs.index, str(theirs))
        assert repr(ours) == repr(theirs)
    assert pcn.device("cuda", 2) == pcn.device("cuda:2") and str(pcn.device(0)) == "cuda:0"
    assert pcn.device(pcn.device("cpu")) == pcn.device("cpu") and pcn.device("cpu") == "cpu"
    assert len({pcn.device("cpu"), pcn.device("cpu")}) == 1
    assert pickle.loads(pickle.dumps(pcn.device("cuda:1"))) == pcn.device("cuda:1")
    with pytest.raises(RuntimeError, match="device type"):
        pcn.device("gpu")
    with pytest.raises(RuntimeError, match="Invalid device string"):
        pcn.device("cuda:-1")
    with pytest.raises(RuntimeError, match="non-negative"):
        pcn.device("cuda", -1)


@pytest.mark.skipif(pcn.cuda.is_available(), reason="a GPU is usable here: tests/test_cuda_device.py checks the answers")
def test_gpu_queries_answer_without_a_gpu():
    assert pcn.cuda.is_available() is False and pcn.cuda.device_count() == 0
    pcn.cuda.manual_seed(1)
    pcn.cuda.manual_seed_all(1)
    assert pcn.accelerator.is_available() is False and pcn.accelerator.current_accelerator() is None
    assert pcn.backends.mps.is_available() is False
    pcn.backends.cudnn.benchmark = True  # scripts set it; it must be accepted
    assert pcn.backends.cudnn.is_available() is False


def test_tensors_and_modules_move_to_the_cpu_and_refuse_gpus_clearly():
    device = pcn.device("cuda" if pcn.cuda.is_available() else "cpu")
    x = pcn.ones(2, 3)
    assert x.to(device) is x and x.to("cpu", pcn.int64).dtype == pcn.int64
    assert x.to(device=device, non_blocking=True) is x and x.device == pcn.device("cpu")
    assert x.device.type == "cpu" and not x.is_cuda and x.get_device() == -1
    assert pcn.zeros(2, device=device).device == device
    model = pcn.nn.Linear(3, 2)
    assert model.to(device) is model and model.to(pcn.device("cpu"), dtype=pcn.float32) is model
    for attempt in (lambda: x.cuda(), lambda: x.to("cuda:0"), lambda: model.cuda(), lambda: pcn.ones(2, device="cuda")):
        with pytest.raises(RuntimeError, match="no 'cuda' backend"):
            attempt()


def test_data_parallel_is_a_transparent_wrapper_with_torch_state_dict_keys():
    pcn.manual_seed(0)
    inner = pcn.nn.Sequential(pcn.nn.Linear(4, 3), pcn.nn.ReLU(), pcn.nn.Linear(3, 2))
    wrapped = pcn.nn.DataParallel(inner, device_ids=[0, 1])
    theirs = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)))
    assert list(wrapped.state_dict()) == list(theirs.state_dict())
    assert wrapped.module is inner
    x = pcn.randn(5, 4)
    np.testing.assert_array_equal(wrapped(x).detach().numpy(), inner(x).detach().numpy())
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in wrapped.state_dict().items()})
    np.testing.assert_allclose(wrapped(x).detach().numpy(), theirs(torch.tensor(x.numpy())).detach().numpy(), rtol=1e-6)
    with pytest.raises(TypeError, match="Module"):
        pcn.nn.DataParallel(lambda x: x)


# ----------------------------------------------------------------------------- differentiable methods
GRAD_CASES = [
    ("var", lambda t: t.var(), [(3, 4)]),
    ("var-dim", lambda t: t.var(1, keepdim=True), [(3, 4)]),
    ("var-unbiased-false", lambda t: t.var(dim=(0, 2), unbiased=False), [(2, 3, 4)]),
    ("std", lambda t: t.std(0), [(5, 3)]),
    ("std-correction0", lambda t: t.std(-1, correction=0), [(2, 6)]),
    ("gather", lambda t: t.gather(1, _long([[0, 0, 2], [1, 2, 1]], t)), [(2, 3)]),
    ("gather-smaller", lambda t: t.gather(0, _long([[1], [0]], t)), [(3, 4)]),
    ("repeat", lambda t: t.repeat(2, 3), [(2, 3)]),
    ("repeat-newdims", lambda t: t.repeat(2, 1, 2), [(3,)]),
    ("masked_fill", lambda t: t.masked_fill(t > 0, -1.5), [(3, 4)]),
    ("where", lambda a, b: _where(a, b), [(3, 4), (1, 4)]),
    ("where-scalar", lambda a: _where_scalar(a), [(3, 4)]),
    ("topk", lambda t: t.topk(2)[0], [(3, 5)]),
    ("topk-dim0-smallest", lambda t: t.topk(3, dim=0, largest=False).values, [(4, 2)]),
    ("sort", lambda t: t.sort(descending=True)[0], [(2, 5)]),
    ("chunk", lambda t: t.chunk(3, 1)[1], [(2, 7)]),
    ("split", lambda t: t.split([1, 3], dim=0)[1], [(4, 2)]),
    ("split-size", lambda t: t.split(2, dim=-1)[2], [(3, 5)]),
    ("unbind", lambda t: t.unbind(1)[2], [(2, 3)]),
    ("index_select", lambda t: t.index_select(1, _long([2, 0, 2], t)), [(2, 3)]),
    ("T", lambda t: t.T, [(2, 3)]),
    ("expand_as", lambda a, b: a.expand_as(b), [(3, 1), (3, 4)]),
    ("sigmoid", lambda t: t.sigmoid(), [(3, 4)]),
    ("tanh", lambda t: t.tanh(), [(3, 4)]),
    ("relu", lambda t: t.relu(), [(3, 4)]),
    ("softmax", lambda t: t.softmax(1), [(3, 4)]),
    ("log_softmax", lambda t: t.log_softmax(-1), [(3, 4)]),
    ("maximum", lambda a, b: a.max(b), [(3, 4), (3, 4)]),
    ("minimum-broadcast", lambda a, b: a.min(b), [(3, 4), (4,)]),
    ("stack", lambda a, b: _lib(a).stack([a, b], 1), [(2, 3), (2, 3)]),
    ("stack-last", lambda a, b: _lib(a).stack((a, b), dim=-1), [(2, 3), (2, 3)]),
    ("max-dim-values", lambda t: _lib(t).max(t, 1)[0], [(3, 4)]),
    ("clamp-function", lambda t: _lib(t).clamp(t, -0.5, 0.5), [(3, 4)]),
    ("sigmoid-function", lambda t: _lib(t).sigmoid(t), [(3, 4)]),
]


def _lib(t):
    return pcn if isinstance(t, pcn.Tensor) else torch


def _long(values, like):
    return _lib(like).tensor(values)


def _where(a, b):
    return _lib(a).where(a > b, a, b * 2)


def _where_scalar(a):
    return _lib(a).where(a > 0, a, 0.25)


@pytest.mark.parametrize("fn, shapes", [pytest.param(fn, shapes, id=name) for name, fn, shapes in GRAD_CASES])
def test_methods_and_functions_match_torch_with_gradients(fn, shapes):
    rng = _rng(len(shapes))
    check_against_torch(fn, [rng.standard_normal(shape).astype(np.float32) for shape in shapes])


# ----------------------------------------------------------------------------- non-differentiable results
def _both(values, dtype=None):
    array = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    return pcn.tensor(array), torch.tensor(array)


def _same(ours, theirs):
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
        return
    if isinstance(theirs, torch.Tensor):
        # int64 is the one integer dtype: torch's int() gives int32, pyconvnet's int64 (documented).
        expected_dtype = {torch.float32: "float32", torch.int64: "int64", torch.int32: "int64",
                          torch.bool: "bool"}[theirs.dtype]
        assert str(ours.dtype) == expected_dtype, (ours.dtype, theirs.dtype)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    else:
        assert ours == theirs


@pytest.mark.parametrize("op", [
    lambda lib, t: t.max(1),
    lambda lib, t: lib.max(t, 0, keepdim=True),
    lambda lib, t: lib.min(t, 1).indices,
    lambda lib, t: lib.argmax(t, 1),
    lambda lib, t: t.topk(2, dim=1).indices,
    lambda lib, t: t.sort(dim=0).indices,
    lambda lib, t: t.argsort(dim=1, descending=True),
    lambda lib, t: (t > 0).all(),
    lambda lib, t: (t > 0).any(1),
    lambda lib, t: (t > 0).all(dim=0, keepdim=True),
    lambda lib, t: t.int(),
    lambda lib, t: t.long().type_as(t),
    lambda lib, t: (t > 0).type_as(t),
    lambda lib, t: t.bool(),
    lambda lib, t: t.type(),
    lambda lib, t: t.long().type(),
    lambda lib, t: t.type("torch.LongTensor"),
    lambda lib, t: lib.where(t > 0),
    lambda lib, t: t.eq(t.view_as(t)).sum().item(),
    lambda lib, t: lib.numel(t),
    lambda lib, t: lib.is_tensor(t),
    lambda lib, t: lib.equal(t, t.clone()),
    lambda lib, t: lib.allclose(t, t + 1e-9),
    lambda lib, t: t.long().masked_fill(t > 0, 7),
    lambda lib, t: t.clamp_(-0.1, 0.1),
    lambda lib, t: t.masked_fill_(t < 0, 0.0),
    lambda lib, t: t.long().argsort(),
    lambda lib, t: t.chunk(4, 1),
    lambda lib, t: lib.split(t, 3, 1),
], ids=lambda op: "")
def test_non_differentiable_results_match_torch(op):
    rows = _rng(3).standard_normal((3, 5)).astype(np.float32)
    ours, theirs = _both(rows)
    _same(op(pcn, ours), op(torch, theirs))


@pytest.mark.parametrize("make", [
    lambda lib: lib.arange(5),
    lambda lib: lib.arange(1, 10, 3),
    lambda lib: lib.arange(0, 1, 0.25),
    lambda lib: lib.arange(10, 0, -3),
    lambda lib: lib.arange(2.0),
    lambda lib: lib.full((2, 3), 1.5),
    lambda lib: lib.full((2,), 7),
    lambda lib: lib.full([2, 2], True),
    lambda lib: lib.full_like(lib.zeros(2, 3), 4),
    lambda lib: lib.linspace(0, 1, 5),
    lambda lib: lib.eye(3),
    lambda lib: lib.eye(2, 4),
    lambda lib: lib.empty_like(lib.ones(2, 3)).shape,
    lambda lib: lib.randint(0, 10, (3, 4)).shape,
    lambda lib: lib.randint(5, (2,)).dtype == lib.int64,
    lambda lib: lib.randperm(6).sort().values,
    lambda lib: lib.rand_like(lib.zeros(2, 2)).shape,
    lambda lib: lib.randn_like(lib.zeros(3)).dtype == lib.float32,
], ids=lambda make: "")
def test_creation_functions_match_torch(make):
    _same(make(pcn), make(torch))


def test_random_values_have_the_right_range_and_are_seeded():
    pcn.manual_seed(3)
    first = pcn.randint(2, 5, (1000,))
    assert first.min().item() == 2 and first.max().item() == 4
    pcn.manual_seed(3)
    assert pcn.equal(first, pcn.randint(2, 5, (1000,)))
    assert sorted(pcn.randperm(50).tolist()) == list(range(50))
    mask = pcn.zeros(20000).bernoulli_(0.3)
    assert mask.dtype == pcn.float32 and set(np.unique(mask.numpy())) == {0.0, 1.0}
    assert abs(mask.mean().item() - 0.3) < 0.02
    uniform = pcn.empty(20000).uniform_(-2, 2)
    assert -2 <= uniform.min().item() and uniform.max().item() < 2 and abs(uniform.mean().item()) < 0.05
    normal = pcn.empty(20000).normal_(1.0, 3.0)
    assert abs(normal.mean().item() - 1.0) < 0.1 and abs(normal.std().item() - 3.0) < 0.1
    with pytest.raises(RuntimeError, match="leaf"):
        pcn.zeros(3, requires_grad=True).bernoulli_()


def test_inference_mode_and_set_grad_enabled_as_torch():
    x = pcn.ones(2, requires_grad=True)
    with pcn.inference_mode():
        assert not (x * 2).requires_grad
    with pcn.inference_mode(False):
        assert (x * 2).requires_grad

    @pcn.inference_mode()
    def evaluate(t):
        return t * 2

    @pcn.inference_mode
    def evaluate_bare(t):
        return t * 2

    assert not evaluate(x).requires_grad and not evaluate_bare(x).requires_grad
    assert (x * 2).requires_grad
    with pcn.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert pcn.is_grad_enabled()


@pytest.mark.parametrize("call, error, words", [
    (lambda t: t.gather(1, pcn.tensor([[3]])), IndexError, "out of range"),
    (lambda t: t.gather(1, pcn.tensor([[0.0]])), TypeError, "int64"),
    (lambda t: t.gather(0, pcn.tensor([[0, 0, 0, 0]])), ValueError, "shape"),
    (lambda t: t.repeat(2), ValueError, "repeat"),
    (lambda t: t.split([1, 1], 1), ValueError, "sum to 3"),
    (lambda t: t.split(0), ValueError, "positive"),
    (lambda t: t.chunk(0), ValueError, "positive"),
    (lambda t: t.topk(4), ValueError, "k=4"),
    (lambda t: t.masked_fill(pcn.ones(2, 3), 1.0), TypeError, "bool"),
    (lambda t: t.type("torch.HalfTensor"), TypeError, "unknown type"),
    (lambda t: pcn.stack([t, t.T]), ValueError, "same shape"),
    (lambda t: pcn.where(t > 0, t), TypeError, "both"),
    (lambda t: pcn.arange(0, 1, 0), ValueError, "nonzero"),
    (lambda t: pcn.randint(3, 3, (2,)), ValueError, "low < high"),
    (lambda t: pcn.randperm(-1), ValueError, "non-negative"),
])
def test_bad_arguments_raise_clear_errors(call, error, words):
    with pytest.raises(error, match=words):
        call(pcn.zeros(2, 3))


# ----------------------------------------------------------------------------- gradient hooks
def _hooked_graph(lib, x_array, w_array):
    """y = (x * w).tanh(); z = y * y + y; with a hook doubling y's gradient, a hook recording
    w's, retain_grad on y and on z's sum."""
    x, w = lib.tensor(x_array, requires_grad=True), lib.tensor(w_array, requires_grad=True)
    seen = []
    y = (x * w).tanh()
    y.retain_grad()
    y.register_hook(lambda grad: grad * 2)
    handle = w.register_hook(lambda grad: seen.append(grad.clone()))
    z = (y * y + y).sum()
    z.retain_grad()
    z.backward()
    handle.remove()
    (x * w).sum().backward()  # the removed hook stays silent; leaves accumulate
    return x.grad, w.grad, y.grad, z.grad, seen


def test_register_hook_and_retain_grad_match_torch():
    rng = _rng(7)
    x_array, w_array = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    ours, theirs = _hooked_graph(pcn, x_array, w_array), _hooked_graph(torch, x_array, w_array)
    for mine, reference in zip(ours[:4], theirs[:4]):
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)
    assert len(ours[4]) == len(theirs[4]) == 1
    np.testing.assert_allclose(ours[4][0].numpy(), theirs[4][0].numpy(), rtol=1e-5, atol=1e-6)


def test_hooks_refuse_what_torch_refuses():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        pcn.ones(2).register_hook(lambda grad: grad)
    x = pcn.ones(2, requires_grad=True)
    x.register_hook(lambda grad: pcn.ones(3))
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).sum().backward()
    leaf = pcn.ones(2, requires_grad=True)
    leaf.retain_grad()  # a leaf keeps its gradient anyway: nothing to do
    assert not leaf.retains_grad


# ----------------------------------------------------------------------------- generators, threads, models
def test_generator_seeds_like_torch_and_goes_where_generators_go():
    first = pcn.Generator().manual_seed(42)
    assert first.initial_seed() == 42 and first.device == pcn.device("cpu")
    again = pcn.Generator().manual_seed(42)
    assert pcn.equal(pcn.randperm(10, generator=first), pcn.randperm(10, generator=again))
    split = pcn.utils.data.random_split(range(10), [0.7, 0.3], generator=pcn.Generator().manual_seed(1))
    assert sorted(list(split[0]) + list(split[1])) == list(range(10)) and len(split[0]) == 7
    assert pcn.manual_seed(5) is pcn.random.default_generator() and pcn.initial_seed() == 5
    assert pcn.Generator().seed() != pcn.Generator().seed()
    with pytest.raises(RuntimeError, match="no 'cuda' backend"):
        pcn.Generator(device="cuda")


def test_threads_and_double_as_scripts_use_them():
    threads = pcn.get_num_threads()
    try:
        pcn.set_num_threads(1)
        assert pcn.get_num_threads() == 1
    finally:
        pcn.set_num_threads(threads)
    correct = pcn.sum(pcn.tensor([1, 2, 3]) == pcn.tensor([1, 0, 3]))
    assert correct.double().dtype == pcn.float32 and (correct.double() / 4).item() == 0.5


def test_torchvision_model_builders_take_torchvision_keywords():
    from pyconvnet.vision import models

    assert models.resnet18 is pcn.models.resnet18
    model = models.resnet18(weights=None, num_classes=3)
    assert model.fc.out_features == 3 and models.vgg11(pretrained=False).classifier[-1].out_features == 1000
    with pytest.raises(ValueError, match="not bundled"):
        models.resnet18(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="pretrained=True"):
        models.alexnet(pretrained=True)


def test_format_of_a_scalar_tensor_is_its_number():
    accuracy = pcn.tensor(3) / 4
    assert f"{accuracy:.4f}" == f"{torch.tensor(3) / 4:.4f}" == "0.7500"
    assert f"{pcn.tensor(7)}" == f"{torch.tensor(7)}" == "7"
    with pytest.raises(TypeError):
        f"{pcn.ones(2):.2f}"


# ----------------------------------------------------------------------------- idioms of GPU-era scripts
def test_one_hot_matches_torch():
    labels = np.array([[0, 2], [1, 1]])
    for num_classes in (-1, 4):
        ours = pcn.nn.functional.one_hot(pcn.tensor(labels), num_classes)
        theirs = torch.nn.functional.one_hot(torch.tensor(labels), num_classes)
        assert ours.dtype == pcn.int64 and np.array_equal(ours.numpy(), theirs.numpy())
    for bad, match in ((pcn.tensor([0.0]), "int64"), (pcn.tensor([-1]), "non-negative"), (pcn.tensor([3]), "smaller")):
        with pytest.raises((TypeError, ValueError), match=match):
            pcn.nn.functional.one_hot(bad, 3)


def test_mixed_precision_is_accepted_and_runs_in_float32():
    model = pcn.nn.Linear(3, 2)
    optimizer = pcn.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(UserWarning, match="disabling"):
        scaler = pcn.amp.GradScaler()
    with pytest.warns(UserWarning, match="float32"):
        region = pcn.autocast("cpu", dtype=pcn.float32)
    with region:
        loss = model(pcn.ones(4, 3)).sum()
    assert loss.dtype == pcn.float32
    before = model.weight.detach().clone()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    assert not pcn.equal(before, model.weight.detach()) and scaler.get_scale() == 1.0 and not scaler.is_enabled()
    from pyconvnet.cuda.amp import GradScaler, autocast

    with autocast(enabled=False):
        pass
    assert not GradScaler(enabled=False).is_enabled()
    pcn.amp.GradScaler(enabled=False).load_state_dict(pcn.amp.GradScaler(enabled=False).state_dict())


def test_deterministic_algorithms_switch_is_recorded():
    assert not pcn.are_deterministic_algorithms_enabled()
    pcn.use_deterministic_algorithms(True)
    try:
        assert pcn.are_deterministic_algorithms_enabled()
    finally:
        pcn.use_deterministic_algorithms(False)
    with pytest.raises(TypeError, match="bool"):
        pcn.use_deterministic_algorithms(1)
