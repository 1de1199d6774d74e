"""pyconvnet.optim against torch.optim: every optimiser (SGD, Adam, AdamW, RMSprop, Adagrad,
Adadelta) and option combination step for step on a small quadratic loss, param groups,
state_dict round trips (ours, through pcn.save/pcn.load, and torch's), zero_grad, closures,
in-place updates and bad arguments."""

import copy
import itertools

import numpy as np
import pytest

import pyconvnet
from pyconvnet import optim
from support import assert_close

torch = pytest.importorskip("torch")

STEPS = 20
SHAPES = [(3, 4), (5,), (2, 3, 2)]


def problem(seed=0):
    """Initial parameters and the loss sum(weight * (p - target)**2) per parameter."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    targets = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    weights = [rng.uniform(0.2, 2.0, shape).astype(np.float32) for shape in SHAPES]
    return initial, targets, weights


class Pair:
    """The same parameters and loss in pyconvnet and torch."""

    def __init__(self, seed=0):
        initial, targets, weights = problem(seed)
        self.ours = [pyconvnet.tensor(a, requires_grad=True) for a in initial]
        self.theirs = [torch.nn.Parameter(torch.tensor(a)) for a in initial]
        self.our_terms = [(pyconvnet.tensor(t), pyconvnet.tensor(w)) for t, w in zip(targets, weights)]
        self.their_terms = [(torch.tensor(t), torch.tensor(w)) for t, w in zip(targets, weights)]

    def our_loss(self, params=None):
        params = self.ours if params is None else params
        return sum(((p - t) ** 2 * w).sum() for p, (t, w) in zip(params, self.our_terms))

    def their_loss(self):
        return sum(((p - t) ** 2 * w).sum() for p, (t, w) in zip(self.theirs, self.their_terms))

    def step_both(self, ours, theirs, params=None):
        ours.zero_grad()
        self.our_loss(params).backward()
        ours.step()
        theirs.zero_grad()
        self.their_loss().backward()
        theirs.step()

    def assert_params_close(self, what, params=None, rtol=2e-6):
        for index, (p, q) in enumerate(zip(self.ours if params is None else params, self.theirs)):
            assert_close(p.detach().numpy(), q.detach().numpy(), rtol=rtol, what=f"{what}: param {index}")


def assert_state_close(ours, theirs, what):
    """Our optimiser state equals torch's: same parameter indices, keys and values."""
    our_state = ours.state_dict()["state"]
    their_state = theirs.state_dict()["state"]
    assert sorted(our_state) == sorted(their_state), what
    for index, values in their_state.items():
        assert sorted(our_state[index]) == sorted(values), f"{what}: state[{index}] keys"
        for key, value in values.items():
            assert_close(our_state[index][key].numpy(), value.numpy(), rtol=2e-6, what=f"{what}: state[{index}][{key}]")


SGD_OPTIONS = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
    for m, d, n, w, x in itertools.product((0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.01), (False, True))
    if not (n and (m == 0.0 or d != 0.0))
]
ADAM_OPTIONS = [
    dict(amsgrad=a, maximize=m, weight_decay=w) for a, m, w in itertools.product((False, True), (False, True), (0.0, 0.1))
]
RMSPROP_OPTIONS = [
    dict(momentum=m, centered=c, weight_decay=w, maximize=x)
    for m, c, w, x in itertools.product((0.0, 0.9), (False, True), (0.0, 0.1), (False, True))
]
ADAGRAD_OPTIONS = [
    dict(lr_decay=d, initial_accumulator_value=a, weight_decay=w, maximize=x)
    for d, a, w, x in itertools.product((0.0, 0.1), (0.0, 0.5), (0.0, 0.1), (False, True))
]
ADADELTA_OPTIONS = [dict(weight_decay=w, maximize=x) for w, x in itertools.product((0.0, 0.1), (False, True))]
CASES = (
    [("SGD", dict(lr=0.05, **o)) for o in SGD_OPTIONS]
    + [("Adam", dict(lr=0.05, **o)) for o in ADAM_OPTIONS]
    + [("AdamW", dict(lr=0.05, **o)) for o in ADAM_OPTIONS]
    + [("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)), ("AdamW", dict())]
    + [("RMSprop", dict(lr=0.01, **o)) for o in RMSPROP_OPTIONS]
    + [("RMSprop", dict()), ("RMSprop", dict(alpha=0.5, eps=1e-3))]
    + [("Adagrad", dict(lr=0.1, **o)) for o in ADAGRAD_OPTIONS]
    + [("Adagrad", dict()), ("Adagrad", dict(eps=1e-3))]
    + [("Adadelta", o) for o in ADADELTA_OPTIONS]
    + [("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4))]
)


def case_id(case):
    name, options = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_optimizer_matches_torch_step_for_step(case):
    name, options = case
    pair = Pair()
    ours = getattr(optim, name)(pair.ours, **options)
    theirs = getattr(torch.optim, name)(pair.theirs, **options)
    for step in range(STEPS):
        pair.step_both(ours, theirs)
        pair.assert_params_close(f"step {step}")
    assert_state_close(ours, theirs, "after 20 steps")


GROUP_OPTIONS = {
    "SGD": dict(momentum=0.5, nesterov=True),
    "Adam": dict(betas=(0.5, 0.9)),
    "AdamW": dict(betas=(0.5, 0.9)),
    "RMSprop": dict(momentum=0.5, centered=True, alpha=0.9),
    "Adagrad": dict(lr_decay=0.2, eps=1e-3),
    "Adadelta": dict(rho=0.5, eps=1e-4),
}


@pytest.mark.parametrize("name", list(GROUP_OPTIONS))
def test_param_groups_with_their_own_options_match_torch(name):
    pair = Pair(seed=1)
    extra = GROUP_OPTIONS[name]

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.003, **extra}]

    ours = getattr(optim, name)(groups(pair.ours), lr=0.05, weight_decay=0.01)
    theirs = getattr(torch.optim, name)(groups(pair.theirs), lr=0.05, weight_decay=0.01)
    assert ours.param_groups[1]["lr"] == 0.003 and ours.param_groups[0]["lr"] == 0.05
    for step in range(STEPS):
        pair.step_both(ours, theirs)
        pair.assert_params_close(f"step {step}")
    assert_state_close(ours, theirs, "after 20 steps")


@pytest.mark.parametrize(
    "name,options",
    [("SGD", dict(momentum=0.9)), ("RMSprop", dict(momentum=0.9, centered=True)),
     ("Adagrad", dict(initial_accumulator_value=0.5)), ("Adadelta", dict(rho=0.8))],
    ids=["SGD", "RMSprop", "Adagrad", "Adadelta"],
)
def test_add_param_group_takes_defaults_and_matches_torch(name, options):
    pair = Pair(seed=2)
    ours = getattr(optim, name)(pair.ours[:1], lr=0.05, **options)
    theirs = getattr(torch.optim, name)(pair.theirs[:1], lr=0.05, **options)
    for _ in range(3):
        pair.step_both(ours, theirs)
    # Adagrad's new group asks for another accumulator start; torch keeps the constructor's.
    ours.add_param_group({"params": pair.ours[1:], "lr": 0.1, "initial_accumulator_value": 2.0})
    theirs.add_param_group({"params": pair.theirs[1:], "lr": 0.1, "initial_accumulator_value": 2.0})
    for key, value in options.items():
        if key != "initial_accumulator_value":
            assert ours.param_groups[1][key] == value
    for step in range(STEPS):
        pair.step_both(ours, theirs)
        pair.assert_params_close(f"step {step}")
    assert_state_close(ours, theirs, "after add_param_group")


def test_parameters_without_gradient_are_skipped_and_get_no_state():
    pair = Pair(seed=3)
    frozen = pyconvnet.ones(4)  # requires_grad=False: never gets a gradient, like torch's frozen weights
    ours = optim.Adam([*pair.ours, frozen], lr=0.1)
    their_frozen = torch.ones(4)
    theirs = torch.optim.Adam([*pair.theirs, their_frozen], lr=0.1)
    pair.ours[1].requires_grad_(False)
    pair.theirs[1].requires_grad_(False)
    for _ in range(5):
        pair.step_both(ours, theirs)
    pair.assert_params_close("after 5 steps")
    assert np.array_equal(frozen.numpy(), np.ones(4, np.float32))
    assert sorted(ours.state_dict()["state"]) == sorted(theirs.state_dict()["state"]) == [0, 2]


@pytest.mark.parametrize(
    "name,options",
    [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)), ("SGD", dict(lr=0.05)),
     ("Adam", dict(lr=0.05, amsgrad=True)), ("AdamW", dict(lr=0.05)),
     ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)), ("Adagrad", dict(lr=0.1, lr_decay=0.1)),
     ("Adadelta", dict(lr=0.5))],
    ids=["sgd-nesterov", "sgd-plain", "adam-amsgrad", "adamw", "rmsprop", "adagrad", "adadelta"],
)
@pytest.mark.parametrize("through_file", [False, True], ids=["in-memory", "pcn.save-pcn.load"])
def test_state_dict_round_trip_resumes_exactly(name, options, through_file, tmp_path):
    pair = Pair(seed=4)
    ours = getattr(optim, name)(pair.ours, **options)
    theirs = getattr(torch.optim, name)(pair.theirs, **options)
    for _ in range(10):
        pair.step_both(ours, theirs)
    saved = ours.state_dict()
    if through_file:
        pyconvnet.save({"optimizer": saved, "epoch": 10}, tmp_path / "checkpoint.pt")
        saved = pyconvnet.load(tmp_path / "checkpoint.pt")["optimizer"]
    resumed_params = [pyconvnet.tensor(p.detach().numpy(), requires_grad=True) for p in pair.ours]
    resumed = getattr(optim, name)(resumed_params, lr=123.0)  # options come from the state dict
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == options["lr"]
    assert resumed.param_groups[0]["params"][0] is resumed_params[0]
    for step in range(10):
        pair.step_both(ours, theirs)
        resumed.zero_grad()
        pair.our_loss(resumed_params).backward()
        resumed.step()
        for index, (p, q) in enumerate(zip(resumed_params, pair.ours)):
            assert np.array_equal(p.detach().numpy(), q.detach().numpy()), f"step {step}: param {index}"
    pair.assert_params_close("uninterrupted run vs torch")


def test_state_dict_has_torchs_layout_and_loads_torchs_state():
    pair = Pair(seed=5)
    named = [(f"w{i}", p) for i, p in enumerate(pair.ours)]
    their_named = [(f"w{i}", p) for i, p in enumerate(pair.theirs)]
    ours = optim.Adam([{"params": named[:1]}, {"params": named[1:], "lr": 0.01}], lr=0.05, amsgrad=True)
    theirs = torch.optim.Adam([{"params": their_named[:1]}, {"params": their_named[1:], "lr": 0.01}], lr=0.05,
                              amsgrad=True)
    for _ in range(4):
        pair.step_both(ours, theirs)
    our_sd, their_sd = ours.state_dict(), theirs.state_dict()
    for our_group, their_group in zip(our_sd["param_groups"], their_sd["param_groups"]):
        assert our_group["params"] == their_group["params"]
        assert our_group["param_names"] == their_group["param_names"]
        assert set(our_group) <= set(their_group)
        assert {k: our_group[k] for k in our_group} == {k: their_group[k] for k in our_group}
    step = our_sd["state"][0]["step"]
    assert isinstance(step, pyconvnet.Tensor) and step.shape == () and step.item() == 4.0
    # torch's state (its tensors as numpy arrays) loads into ours and both continue alike.
    converted = copy.deepcopy(their_sd)
    converted["state"] = {i: {k: v.numpy() for k, v in s.items()} for i, s in converted["state"].items()}
    fresh = [pyconvnet.tensor(p.detach().numpy(), requires_grad=True) for p in pair.theirs]
    ours = optim.Adam([{"params": fresh[:1]}, {"params": fresh[1:]}])
    ours.load_state_dict(converted)
    for step in range(10):
        pair.step_both(ours, theirs, params=fresh)
        pair.assert_params_close(f"step {step} after loading torch's state", params=fresh)


@pytest.mark.parametrize(
    "name,options",
    [("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)), ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1)),
     ("Adadelta", dict(lr=0.5, rho=0.8))],
    ids=["RMSprop", "Adagrad", "Adadelta"],
)
def test_new_optimizers_state_dicts_match_torchs_and_load_torchs(name, options):
    pair = Pair(seed=5)
    ours = getattr(optim, name)([{"params": pair.ours[:1]}, {"params": pair.ours[1:], "lr": 0.02}], **options)
    theirs = getattr(torch.optim, name)([{"params": pair.theirs[:1]}, {"params": pair.theirs[1:], "lr": 0.02}],
                                        **options)
    for _ in range(4):
        pair.step_both(ours, theirs)
    our_sd, their_sd = ours.state_dict(), theirs.state_dict()
    for our_group, their_group in zip(our_sd["param_groups"], their_sd["param_groups"]):
        assert set(our_group) <= set(their_group)
        assert {k: our_group[k] for k in our_group} == {k: their_group[k] for k in our_group}
    assert_state_close(ours, theirs, "after 4 steps")
    converted = copy.deepcopy(their_sd)
    converted["state"] = {i: {k: v.numpy() for k, v in s.items()} for i, s in converted["state"].items()}
    fresh = [pyconvnet.tensor(p.detach().numpy(), requires_grad=True) for p in pair.theirs]
    ours = getattr(optim, name)([{"params": fresh[:1]}, {"params": fresh[1:]}])
    ours.load_state_dict(converted)
    for step in range(10):
        pair.step_both(ours, theirs, params=fresh)
        pair.assert_params_close(f"step {step} after loading torch's state", params=fresh)


def test_loaded_state_is_a_copy():
    pair = Pair(seed=6)
    ours = optim.SGD(pair.ours, lr=0.1, momentum=0.9)
    pair.our_loss().backward()
    ours.step()
    saved = ours.state_dict()
    other = optim.SGD(pair.ours, lr=0.1, momentum=0.9)
    other.load_state_dict(saved)
    buffer = other.state[pair.ours[0]]["momentum_buffer"]
    assert np.array_equal(buffer.numpy(), saved["state"][0]["momentum_buffer"].numpy())
    assert not np.shares_memory(buffer.numpy(), saved["state"][0]["momentum_buffer"].numpy())


def test_updates_are_in_place_in_the_parameter_storage():
    pair = Pair(seed=7)
    storage = [p._array for p in pair.ours]
    views = [p.detach().numpy() for p in pair.ours]
    before = [v.copy() for v in views]
    ours = optim.SGD(pair.ours, lr=0.1)
    pair.our_loss().backward()
    ours.step()
    for p, array, view, old in zip(pair.ours, storage, views, before):
        assert p._array is array
        assert not np.array_equal(view, old)
        assert p.is_leaf and p.requires_grad and p.grad_fn is None


def test_zero_grad_sets_none_or_zeroes_in_place():
    pair = Pair(seed=8)
    ours = optim.SGD(pair.ours, lr=0.1)
    pair.our_loss().backward()
    grads = [p.grad for p in pair.ours]
    ours.zero_grad(set_to_none=False)
    for p, g in zip(pair.ours, grads):
        assert p.grad is g and not g.requires_grad
        assert np.array_equal(g.numpy(), np.zeros(p.shape, np.float32))
    ours.zero_grad()
    assert all(p.grad is None for p in pair.ours)
    ours.zero_grad()  # no gradients: nothing to do


def test_step_returns_the_closures_loss_with_grad_mode_on():
    pair = Pair(seed=9)
    ours = optim.SGD(pair.ours, lr=0.05, momentum=0.9)
    theirs = torch.optim.SGD(pair.theirs, lr=0.05, momentum=0.9)

    def our_closure():
        ours.zero_grad()
        loss = pair.our_loss()
        loss.backward()
        return loss

    def their_closure():
        theirs.zero_grad()
        loss = pair.their_loss()
        loss.backward()
        return loss

    with pyconvnet.no_grad():
        for step in range(5):
            our_loss = ours.step(our_closure)
            their_loss = theirs.step(their_closure)
            assert our_loss.item() == pytest.approx(their_loss.item(), rel=1e-5)
    pair.assert_params_close("after 5 closure steps")
    assert ours.step() is None


def test_duplicate_parameter_in_a_group_warns():
    param = pyconvnet.zeros(3, requires_grad=True)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([param, param])


# ------------------------------------------------------------------ bad input
def _param():
    return pyconvnet.zeros(3, requires_grad=True)


@pytest.mark.parametrize(
    "build,error,match",
    [
        (lambda: optim.SGD([_param()], lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
        (lambda: optim.SGD([_param()], momentum=-0.5), ValueError, "Invalid momentum value"),
        (lambda: optim.SGD([_param()], weight_decay=-1), ValueError, "Invalid weight_decay value"),
        (lambda: optim.SGD([_param()], nesterov=True), ValueError, "Nesterov momentum requires"),
        (lambda: optim.SGD([_param()], momentum=0.9, dampening=0.1, nesterov=True), ValueError, "zero dampening"),
        (lambda: optim.Adam([_param()], lr=-1.0), ValueError, "Invalid learning rate"),
        (lambda: optim.Adam([_param()], eps=-1e-8), ValueError, "Invalid epsilon value"),
        (lambda: optim.Adam([_param()], betas=(1.0, 0.999)), ValueError, "beta parameter at index 0"),
        (lambda: optim.AdamW([_param()], betas=(0.9, -0.1)), ValueError, "beta parameter at index 1"),
        (lambda: optim.AdamW([_param()], weight_decay=-0.1), ValueError, "Invalid weight_decay value"),
        (lambda: optim.RMSprop([_param()], lr=-1.0), ValueError, "Invalid learning rate"),
        (lambda: optim.RMSprop([_param()], alpha=-0.1), ValueError, "Invalid alpha value"),
        (lambda: optim.RMSprop([_param()], momentum=-0.1), ValueError, "Invalid momentum value"),
        (lambda: optim.RMSprop([_param()], eps=-1.0), ValueError, "Invalid epsilon value"),
        (lambda: optim.Adagrad([_param()], lr_decay=-0.1), ValueError, "Invalid lr_decay value"),
        (lambda: optim.Adagrad([_param()], initial_accumulator_value=-1), ValueError,
         "Invalid initial_accumulator_value value"),
        (lambda: optim.Adagrad([_param()], weight_decay=-1), ValueError, "Invalid weight_decay value"),
        (lambda: optim.Adadelta([_param()], rho=1.5), ValueError, "Invalid rho value"),
        (lambda: optim.Adadelta([_param()], eps=-1.0), ValueError, "Invalid epsilon value"),
        (lambda: optim.SGD(_param()), TypeError, "iterable of Tensors or dicts"),
        (lambda: optim.SGD([]), ValueError, "empty parameter list"),
        (lambda: optim.SGD([np.zeros(3, np.float32)]), TypeError, "can only optimize Tensors"),
        (lambda: optim.SGD([_param() * 2]), ValueError, "can't optimize a non-leaf Tensor"),
        (lambda: optim.SGD([pyconvnet.zeros(3, dtype=pyconvnet.int64)]), TypeError, "float32"),
        (lambda: optim.SGD([{"params": {_param()}}]), TypeError, "ordered collections"),
        (lambda: optim.SGD([{"params": [_param()]}, {"params": [("w", _param())]}]), ValueError, "with/without names"),
    ],
)
def test_bad_arguments_raise_like_torch(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_parameter_in_two_groups_is_rejected():
    param = _param()
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [param]}, {"params": [_param(), param]}])
    opt = optim.SGD([param])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": param})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([param])


def test_load_state_dict_rejects_mismatched_groups_and_shapes():
    params = [_param(), _param()]
    opt = optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1, momentum=0.9)
    for p in params:
        p.grad = pyconvnet.ones(3)
    opt.step()
    saved = opt.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD(params, momentum=0.9).load_state_dict(saved)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD([{"params": params}, {"params": [_param()]}], momentum=0.9).load_state_dict(saved)
    other = [pyconvnet.zeros(4, requires_grad=True), _param()]
    with pytest.raises(ValueError, match=r"state\[0\]\['momentum_buffer'\] has shape \[3\].*shape \[4\]"):
        optim.SGD([{"params": other[:1]}, {"params": other[1:]}], momentum=0.9).load_state_dict(saved)


def test_step_count_saved_as_a_number_loads_as_a_tensor():
    param = _param()
    opt = optim.Adam([param], lr=0.1)
    param.grad = pyconvnet.ones(3)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    saved["state"][0]["step"] = 1  # as older checkpoints store it
    resumed = optim.Adam([pyconvnet.tensor(param.detach().numpy(), requires_grad=True)])
    resumed.load_state_dict(saved)
    resumed.param_groups[0]["params"][0].grad = pyconvnet.ones(3)
    resumed.step()
    opt.step()
    assert resumed.state_dict()["state"][0]["step"].item() == 2.0
    assert np.array_equal(resumed.param_groups[0]["params"][0].detach().numpy(), param.detach().numpy())


@pytest.mark.parametrize("as_stored", [lambda step: step, lambda step: np.int64(step.item()),
                                       lambda step: np.float32(step.item()), lambda step: int(step.item())],
                         ids=["tensor", "numpy-int64", "numpy-float32", "python-int"])
def test_state_saved_and_loaded_by_pcn_save_resumes_bit_for_bit(tmp_path, as_stored):
    pair = Pair(seed=5)
    ours = optim.Adam(pair.ours, lr=0.05, amsgrad=True)
    for _ in range(3):
        ours.zero_grad()
        pair.our_loss().backward()
        ours.step()
    saved = ours.state_dict()
    saved["state"] = {index: {**values, "step": as_stored(values["step"])} for index, values in saved["state"].items()}
    pyconvnet.save(saved, tmp_path / "optimizer.pcn")
    resumed_params = [pyconvnet.tensor(p.detach().numpy(), requires_grad=True) for p in pair.ours]
    resumed = optim.Adam(resumed_params)
    resumed.load_state_dict(pyconvnet.load(tmp_path / "optimizer.pcn"))
    for step in range(3):
        for optimizer, params in ((ours, pair.ours), (resumed, resumed_params)):
            optimizer.zero_grad()
            pair.our_loss(params).backward()
            optimizer.step()
        for index, (p, q) in enumerate(zip(resumed_params, pair.ours)):
            assert np.array_equal(p.detach().numpy(), q.detach().numpy()), f"step {step}: param {index}"
    assert resumed.state_dict()["state"][0]["step"].shape == ()
    assert resumed.state_dict()["state"][0]["step"].item() == 6.0
