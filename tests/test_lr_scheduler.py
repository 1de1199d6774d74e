"""pyconvnet.optim.lr_scheduler against torch.optim.lr_scheduler: every scheduler's learning
rates (and OneCycleLR's and CyclicLR's momentum / beta1) step for step, SequentialLR and
ChainedScheduler chains, CosineAnnealingWarmRestarts at fractional epochs, scripts' own
scheduler subclasses, state_dict round trips (also through pcn.save / pcn.load),
ReduceLROnPlateau on scripted metrics, and bad arguments."""

import copy
import math

import pytest

import pyconvnet
from pyconvnet import optim
from pyconvnet.optim import lr_scheduler

torch = pytest.importorskip("torch")

STEPS = 30


def optimizers(kind="SGD", **options):
    """Our and torch's optimiser over two groups (lr 0.1 and 0.02) of one parameter each."""

    def groups(make):
        return [{"params": [make()]}, {"params": [make()], "lr": 0.02}]

    ours = getattr(optim, kind)(groups(lambda: pyconvnet.zeros(2, requires_grad=True)), lr=0.1, **options)
    theirs = getattr(torch.optim, kind)(groups(lambda: torch.nn.Parameter(torch.zeros(2))), lr=0.1, **options)
    return ours, theirs


def assert_same_numbers(ours, theirs, what):
    """Exactly equal: the same float operations in torch's order give the same bits, and a
    closed form where torch recurses (or the reverse) already differs in the last places."""
    assert len(ours) == len(theirs), what
    for a, b in zip(ours, theirs):
        if isinstance(a, tuple):
            assert_same_numbers(a, b, what)
        else:
            assert a == b, f"{what}: {a!r} != torch's {b!r}"


def assert_groups_match(ours, theirs, what, keys=("lr",)):
    for key in keys:
        assert_same_numbers([g[key] for g in ours.param_groups], [g[key] for g in theirs.param_groups], f"{what} {key}")


def run_both(make, kind="SGD", steps=STEPS, keys=("lr",), **options):
    """Build the same scheduler over both optimisers and compare the rates at every step."""
    our_opt, their_opt = optimizers(kind, **options)
    ours, theirs = make(lr_scheduler, our_opt), make(torch.optim.lr_scheduler, their_opt)
    assert_groups_match(our_opt, their_opt, "initial", keys)
    for step in range(steps):
        our_opt.step()
        their_opt.step()
        ours.step()
        theirs.step()
        assert_same_numbers(ours.get_last_lr(), theirs.get_last_lr(), f"step {step}: get_last_lr")
        assert_groups_match(our_opt, their_opt, f"step {step}:", keys)
    return ours, our_opt


def warmup_scheduler(module, base="_LRScheduler"):
    """A script's own scheduler, as training repositories write them: a subclass of torch's
    (former) base class with its own get_lr."""

    class WarmUpLR(getattr(module, base)):
        def __init__(self, optimizer, total_iters, last_epoch=-1):
            self.total_iters = total_iters
            super().__init__(optimizer, last_epoch)

        def get_lr(self):
            return [base_lr * self.last_epoch / (self.total_iters + 1e-8) for base_lr in self.base_lrs]

    return WarmUpLR


SCHEDULERS = {
    "step": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "step-default-gamma": lambda m, o: m.StepLR(o, 4),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9, 20], gamma=0.3),
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "cosine-long": lambda m, o: m.CosineAnnealingLR(o, T_max=25),
    "linear-default": lambda m, o: m.LinearLR(o),
    "linear-decay": lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=17),
    "sequential-warmup-cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=4), m.CosineAnnealingLR(o, T_max=10, eta_min=0.002)], [4]
    ),
    "sequential-three": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, total_iters=3), m.StepLR(o, 2, gamma=0.7), m.MultiStepLR(o, [3, 6, 12])], [3, 8]
    ),
    "sequential-cosine-first": lambda m, o: m.SequentialLR(
        o, [m.CosineAnnealingLR(o, T_max=5), m.StepLR(o, 3), m.LinearLR(o, 0.5, total_iters=6)], [6, 12]
    ),
    "own-subclass": lambda m, o: warmup_scheduler(m)(o, 10),
    "own-subclass-sequential": lambda m, o: m.SequentialLR(
        o, [warmup_scheduler(m, "LRScheduler")(o, 4), m.ExponentialLR(o, 0.9)], [4]
    ),
    "lambda": lambda m, o: m.LambdaLR(o, lambda step: 0.95**step / (1 + step % 4)),
    "lambda-per-group": lambda m, o: m.LambdaLR(o, [lambda step: 1 / (step + 1), lambda step: min(1.0, step / 7)]),
    "multiplicative": lambda m, o: m.MultiplicativeLR(o, lambda step: 0.9 if step % 3 else 1.05),
    "exponential": lambda m, o: m.ExponentialLR(o, gamma=0.87),
    "constant-default": lambda m, o: m.ConstantLR(o),
    "constant": lambda m, o: m.ConstantLR(o, factor=0.3, total_iters=11),
    "polynomial-default": lambda m, o: m.PolynomialLR(o),
    "polynomial": lambda m, o: m.PolynomialLR(o, total_iters=20, power=2.5),
    "warm-restarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=6),
    "warm-restarts-mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001),
    "chained": lambda m, o: m.ChainedScheduler(
        [m.ConstantLR(o, factor=0.5, total_iters=4), m.ExponentialLR(o, gamma=0.9), m.StepLR(o, 5, gamma=0.5)]
    ),
    "chained-with-optimizer": lambda m, o: m.ChainedScheduler(
        [m.LinearLR(o, start_factor=0.2, total_iters=6), m.CosineAnnealingWarmRestarts(o, T_0=4)], optimizer=o
    ),
    "sequential-warmup-restarts": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, factor=0.1, total_iters=3), m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2)], [3]
    ),
    "sequential-lambda-exponential-polynomial": lambda m, o: m.SequentialLR(
        o, [m.LambdaLR(o, lambda step: (step + 1) / 5), m.ExponentialLR(o, 0.8), m.PolynomialLR(o, 8, 0.5)], [5, 12]
    ),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_scheduler_matches_torch_step_for_step(name):
    run_both(SCHEDULERS[name])


def onecycle(**options):
    return lambda m, o: m.OneCycleLR(o, **options)


@pytest.mark.parametrize(
    "kind,options,keys",
    [
        ("SGD", dict(max_lr=0.5, total_steps=STEPS), ("lr", "momentum")),
        ("SGD", dict(max_lr=[0.5, 0.2], epochs=5, steps_per_epoch=6, anneal_strategy="linear"), ("lr", "momentum")),
        ("SGD", dict(max_lr=0.3, total_steps=STEPS, three_phase=True, base_momentum=[0.8, 0.7]), ("lr", "momentum")),
        ("SGD", dict(max_lr=0.3, total_steps=STEPS, cycle_momentum=False, pct_start=0.5), ("lr", "momentum")),
        ("Adam", dict(max_lr=0.01, total_steps=STEPS, div_factor=10.0, final_div_factor=100.0), ("lr", "betas")),
        ("AdamW", dict(max_lr=0.01, total_steps=STEPS, three_phase=True, anneal_strategy="linear"), ("lr", "betas")),
    ],
    ids=["sgd-cos", "sgd-linear-per-group", "sgd-three-phase", "sgd-no-momentum", "adam-beta1", "adamw-three-phase"],
)
def test_onecycle_matches_torch_including_momentum(kind, options, keys):
    momentum = dict(momentum=0.9) if kind == "SGD" else {}
    scheduler, _ = run_both(onecycle(**options), kind=kind, keys=keys, **momentum)
    with pytest.raises(ValueError, match="Tried to step 31 times"):
        scheduler.step()


class WaveScale:
    """A callable object as CyclicLR's scale_fn: its attribute is state that state_dict keeps."""

    def __init__(self):
        self.depth = 0.5

    def __call__(self, x):
        return 1.0 - self.depth * (1 + math.sin(x * math.pi / 5)) / 2


def cyclic(**options):
    return lambda m, o: m.CyclicLR(o, **options)


@pytest.mark.parametrize(
    "kind,options,keys",
    [
        ("SGD", dict(base_lr=0.01, max_lr=0.1, step_size_up=4), ("lr", "momentum")),
        ("SGD", dict(base_lr=[0.01, 0.001], max_lr=[0.1, 0.05], step_size_up=3, step_size_down=7, mode="triangular2",
                     base_momentum=[0.7, 0.8], max_momentum=0.95), ("lr", "momentum")),
        ("SGD", dict(base_lr=0.001, max_lr=0.2, step_size_up=5, mode="exp_range", gamma=0.97), ("lr", "momentum")),
        ("SGD", dict(base_lr=0.001, max_lr=0.2, step_size_up=2, scale_fn=WaveScale(), scale_mode="iterations"),
         ("lr", "momentum")),
        ("SGD", dict(base_lr=0.001, max_lr=0.2, step_size_up=6, scale_fn=lambda x: 1 / x, cycle_momentum=False),
         ("lr", "momentum")),
        ("Adam", dict(base_lr=1e-4, max_lr=1e-2, step_size_up=4, step_size_down=2), ("lr", "betas")),
    ],
    ids=["triangular", "triangular2-per-group", "exp-range", "scale-fn-iterations", "scale-fn-cycle", "adam-beta1"],
)
def test_cyclic_matches_torch_including_momentum(kind, options, keys):
    momentum = dict(momentum=0.9) if kind == "SGD" else {}
    run_both(cyclic(**options), kind=kind, keys=keys, **momentum)


@pytest.mark.parametrize("through_file", [False, True], ids=["in-memory", "pcn.save-pcn.load"])
def test_cyclic_state_dict_keeps_the_scale_objects_state(through_file, tmp_path):
    our_opt, their_opt = optimizers(momentum=0.9)
    make = cyclic(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=WaveScale(), scale_mode="iterations")
    scheduler, theirs = make(lr_scheduler, our_opt), make(torch.optim.lr_scheduler, their_opt)
    scheduler._scale_fn_custom.depth = theirs._scale_fn_custom.depth = 0.25
    for _ in range(5):
        scheduler.step()
    saved, saved_opt = scheduler.state_dict(), our_opt.state_dict()
    assert saved["_scale_fn_custom"] == theirs.state_dict()["_scale_fn_custom"] == {"depth": 0.25}
    if through_file:
        pyconvnet.save({"optimizer": saved_opt, "scheduler": saved}, tmp_path / "checkpoint")
        loaded = pyconvnet.load(tmp_path / "checkpoint")
        saved_opt, saved = loaded["optimizer"], loaded["scheduler"]
    resumed_opt, _ = optimizers(momentum=0.9)
    resumed = make(lr_scheduler, resumed_opt)
    resumed_opt.load_state_dict(saved_opt)
    resumed.load_state_dict(saved)
    assert resumed._scale_fn_custom.depth == 0.25
    for step in range(10):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr(), f"step {step}"
        assert resumed_opt.param_groups[0]["momentum"] == our_opt.param_groups[0]["momentum"]


def test_onecycle_momentum_reaches_the_optimizer_update():
    """The cycled momentum is what SGD's next update uses."""
    param = pyconvnet.zeros(1, requires_grad=True)
    opt = optim.SGD([param], lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    expected = 0.0
    buffer = None
    for _ in range(5):
        param.grad = pyconvnet.ones(1)
        lr, momentum = opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]
        buffer = 1.0 if buffer is None else momentum * buffer + 1.0
        expected -= lr * buffer
        opt.step()
        scheduler.step()
    assert param.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("through_file", [False, True], ids=["in-memory", "pcn.save-pcn.load"])
@pytest.mark.parametrize(
    "name",
    ["step", "multistep", "cosine", "linear-decay", "sequential-warmup-cosine", "lambda", "multiplicative",
     "exponential", "constant", "polynomial", "warm-restarts-mult", "chained", "sequential-three",
     "sequential-warmup-restarts"],
)
def test_state_dict_round_trip_resumes_the_schedule(name, through_file, tmp_path):
    make = SCHEDULERS[name]
    our_opt, _ = optimizers()
    scheduler = make(lr_scheduler, our_opt)
    for _ in range(7):
        our_opt.step()
        scheduler.step()
    saved_opt, saved = copy.deepcopy(our_opt.state_dict()), copy.deepcopy(scheduler.state_dict())
    assert "optimizer" not in saved
    assert saved["last_epoch"] == 7 if name != "chained" else len(saved["_schedulers"]) == 3
    if through_file:
        pyconvnet.save({"optimizer": saved_opt, "scheduler": saved}, tmp_path / "checkpoint")
        loaded = pyconvnet.load(tmp_path / "checkpoint")
        saved_opt, saved = loaded["optimizer"], loaded["scheduler"]
    resumed_opt, _ = optimizers()
    resumed = make(lr_scheduler, resumed_opt)
    resumed_opt.load_state_dict(saved_opt)
    resumed.load_state_dict(saved)
    assert resumed.get_last_lr() == scheduler.get_last_lr()
    for step in range(12):
        for opt, sched in ((our_opt, scheduler), (resumed_opt, resumed)):
            opt.step()
            sched.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr(), f"step {step}"
        assert [g["lr"] for g in resumed_opt.param_groups] == [g["lr"] for g in our_opt.param_groups]


@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_warm_restarts_at_fractional_epochs_match_torch(T_mult):
    our_opt, their_opt = optimizers()
    ours = lr_scheduler.CosineAnnealingWarmRestarts(our_opt, T_0=3, T_mult=T_mult, eta_min=0.005)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(their_opt, T_0=3, T_mult=T_mult, eta_min=0.005)
    iterations = 7
    epochs = [epoch + batch / iterations for epoch in range(25) for batch in range(iterations)]
    for epoch in epochs + [4.5, 0.25, 13, 2.0]:  # as the docs loop does, then jumps back and forth
        ours.step(epoch)
        theirs.step(epoch)
        assert_same_numbers(ours.get_last_lr(), theirs.get_last_lr(), f"epoch {epoch}")
        assert (ours.T_cur, ours.T_i, ours.last_epoch) == (theirs.T_cur, theirs.T_i, theirs.last_epoch)
    with pytest.raises(ValueError, match="non-negative epoch"):
        ours.step(-1)


class Halving:
    """A callable object as lr_lambda: its attributes are state that state_dict keeps."""

    def __init__(self):
        self.factor = 0.5

    def __call__(self, step):
        return self.factor ** (step // 3)


def test_lambda_state_dict_keeps_no_function_but_a_callable_objects_state():
    our_opt, their_opt = optimizers()
    ours = lr_scheduler.LambdaLR(our_opt, [lambda step: 1.0, Halving()])
    theirs = torch.optim.lr_scheduler.LambdaLR(their_opt, [lambda step: 1.0, Halving()])
    ours.lr_lambdas[1].factor = theirs.lr_lambdas[1].factor = 0.25
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    assert our_state["lr_lambdas"] == their_state["lr_lambdas"] == [None, {"factor": 0.25}]
    resumed = lr_scheduler.LambdaLR(optimizers()[0], [lambda step: 1.0, Halving()])
    resumed.load_state_dict(our_state)
    assert resumed.lr_lambdas[1].factor == 0.25
    assert our_state["lr_lambdas"] == [None, {"factor": 0.25}]  # loading leaves the dict as it was


def test_onecycle_state_dict_round_trip():
    our_opt, _ = optimizers("Adam")
    make = onecycle(max_lr=0.01, total_steps=STEPS)
    scheduler = make(lr_scheduler, our_opt)
    for _ in range(9):
        scheduler.step()
    resumed_opt, _ = optimizers("Adam")
    resumed = make(lr_scheduler, resumed_opt)
    resumed_opt.load_state_dict(copy.deepcopy(our_opt.state_dict()))
    resumed.load_state_dict(copy.deepcopy(scheduler.state_dict()))
    for _ in range(10):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()
        assert resumed_opt.param_groups[0]["betas"] == our_opt.param_groups[0]["betas"]


def test_scheduler_sets_initial_lr_and_base_lrs():
    our_opt, _ = optimizers()
    scheduler = lr_scheduler.StepLR(our_opt, 2)
    assert [g["initial_lr"] for g in our_opt.param_groups] == [0.1, 0.02]
    assert scheduler.base_lrs == [0.1, 0.02] and scheduler.last_epoch == 0
    resumed = lr_scheduler.StepLR(our_opt, 2, last_epoch=4)  # resuming needs initial_lr, which is there
    assert resumed.last_epoch == 5


METRICS = [1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.89999, 0.9, 0.91, 0.92, 0.93, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6,
           0.6, 0.6, 0.59, 0.6, 0.6, 0.7, 0.8, 0.6, 0.6, 0.6]


@pytest.mark.parametrize(
    "options,metrics",
    [
        (dict(patience=2), METRICS),
        (dict(patience=1, cooldown=2, factor=0.5), METRICS),
        (dict(patience=0, threshold=0.05, threshold_mode="abs", min_lr=[0.01, 0.005]), METRICS),
        (dict(mode="max", patience=1, factor=0.3), METRICS),
        (dict(mode="max", patience=2, threshold_mode="abs", threshold=0.01, min_lr=0.001), [-m for m in METRICS]),
        (dict(patience=0, factor=0.9, eps=0.005), METRICS),
    ],
    ids=["min-rel", "cooldown", "min-abs-min-lrs", "max-rel", "max-abs", "eps"],
)
def test_reduce_lr_on_plateau_matches_torch_on_a_scripted_metric(options, metrics):
    our_opt, their_opt = optimizers()
    ours = lr_scheduler.ReduceLROnPlateau(our_opt, **options)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(their_opt, **options)
    changes = 0
    for step, metric in enumerate(metrics):
        before = ours.get_last_lr()
        if step % 2:  # a 0-d float32 Tensor works too
            ours.step(pyconvnet.tensor(metric))
            theirs.step(torch.tensor(metric))
        else:
            ours.step(metric)
            theirs.step(metric)
        changes += ours.get_last_lr() != before
        assert_same_numbers(ours.get_last_lr(), theirs.get_last_lr(), f"step {step}")
        assert_groups_match(our_opt, their_opt, f"step {step}")
        assert (ours.num_bad_epochs, ours.cooldown_counter, ours.best) == (
            theirs.num_bad_epochs, theirs.cooldown_counter, theirs.best)
    assert changes > 0  # the script does trigger reductions


def test_reduce_lr_on_plateau_state_dict_round_trip():
    our_opt, _ = optimizers()
    scheduler = lr_scheduler.ReduceLROnPlateau(our_opt, patience=1, cooldown=1)
    for metric in METRICS[:12]:
        scheduler.step(metric)
    resumed_opt, _ = optimizers()
    resumed = lr_scheduler.ReduceLROnPlateau(resumed_opt, mode="max")
    resumed_opt.load_state_dict(copy.deepcopy(our_opt.state_dict()))
    resumed.load_state_dict(copy.deepcopy(scheduler.state_dict()))
    assert resumed.mode == "min" and resumed.mode_worse == math.inf
    for metric in METRICS[12:]:
        scheduler.step(metric)
        resumed.step(metric)
        assert resumed.get_last_lr() == scheduler.get_last_lr()


# ------------------------------------------------------------------ bad input
class PlainOptimizer(optim.Optimizer):
    """An optimiser with neither momentum nor betas (OneCycleLR cannot cycle its momentum)."""

    def __init__(self, params):
        super().__init__(params, dict(lr=0.1))


def _opt():
    return optimizers()[0]


@pytest.mark.parametrize(
    "build,error,match",
    [
        (lambda: lr_scheduler.StepLR(object(), 3), TypeError, "object is not an Optimizer"),
        (lambda: lr_scheduler.LinearLR(_opt(), start_factor=0.0), ValueError, "start_factor"),
        (lambda: lr_scheduler.LinearLR(_opt(), end_factor=1.5), ValueError, "end_factor"),
        (lambda: lr_scheduler.OneCycleLR(_opt(), 0.1), ValueError, "total_steps OR"),
        (lambda: lr_scheduler.OneCycleLR(_opt(), 0.1, total_steps=0), ValueError, "total_steps, but got 0"),
        (lambda: lr_scheduler.OneCycleLR(_opt(), 0.1, epochs=2, steps_per_epoch=-1), ValueError, "steps_per_epoch"),
        (lambda: lr_scheduler.OneCycleLR(_opt(), 0.1, 10, pct_start=1), ValueError, "pct_start"),
        (lambda: lr_scheduler.OneCycleLR(_opt(), 0.1, 10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
        (lambda: lr_scheduler.OneCycleLR(_opt(), [0.1], 10), ValueError, "max_lr must have the same length"),
        (lambda: lr_scheduler.OneCycleLR(PlainOptimizer([pyconvnet.zeros(1, requires_grad=True)]), 0.1, 10),
         ValueError, "momentum or beta1"),
        (lambda: lr_scheduler.CyclicLR(_opt(), 0.01, 0.1, mode="sawtooth"), ValueError, "mode 'sawtooth' is invalid"),
        (lambda: lr_scheduler.CyclicLR(_opt(), [0.01], 0.1), ValueError, "base_lr must have the same length"),
        (lambda: lr_scheduler.CyclicLR(PlainOptimizer([pyconvnet.zeros(1, requires_grad=True)]), 0.01, 0.1),
         ValueError, "momentum or beta1"),
        (lambda: lr_scheduler.ReduceLROnPlateau(_opt(), factor=1.0), ValueError, "Factor should be < 1.0"),
        (lambda: lr_scheduler.ReduceLROnPlateau(_opt(), mode="up"), ValueError, "mode"),
        (lambda: lr_scheduler.ReduceLROnPlateau(_opt(), threshold_mode="pct"), ValueError, "threshold_mode"),
        (lambda: lr_scheduler.ReduceLROnPlateau(_opt(), min_lr=[0.1]), ValueError, "expected 2 min_lrs, got 1"),
        (lambda: lr_scheduler.CosineAnnealingLR(optimizers()[0], 10, last_epoch=3), KeyError, "initial_lr"),
        (lambda: lr_scheduler.LambdaLR(_opt(), [lambda step: 1.0]), ValueError, "Expected 2 lr_lambdas, but got 1"),
        (lambda: lr_scheduler.MultiplicativeLR(_opt(), 0.9), TypeError, "lr_lambda should be a function"),
        (lambda: lr_scheduler.ConstantLR(_opt(), factor=1.5), ValueError, "between 0 and 1"),
        (lambda: lr_scheduler.CosineAnnealingWarmRestarts(_opt(), T_0=0), ValueError, "positive integer T_0"),
        (lambda: lr_scheduler.CosineAnnealingWarmRestarts(_opt(), T_0=2.5), ValueError, "positive integer T_0"),
        (lambda: lr_scheduler.CosineAnnealingWarmRestarts(_opt(), 5, T_mult=0), ValueError, "T_mult >= 1"),
        (lambda: lr_scheduler.CosineAnnealingWarmRestarts(_opt(), 5, eta_min="0"), ValueError, "eta_min"),
        (lambda: lr_scheduler.ChainedScheduler([]), ValueError, "at least one scheduler"),
    ],
)
def test_bad_arguments_raise_clear_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_sequential_lr_rejects_bad_schedulers():
    opt, other = _opt(), _opt()
    with pytest.raises(ValueError, match="at least one scheduler"):
        lr_scheduler.SequentialLR(opt, [], [])
    with pytest.raises(ValueError, match="number of milestones to be equal to 0"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2), lr_scheduler.StepLR(opt, 3)], [])
    with pytest.raises(ValueError, match="same optimizer"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2), lr_scheduler.StepLR(other, 3)], [2])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.ReduceLROnPlateau(opt)], [])
    with pytest.raises(ValueError, match="ChainedScheduler expects all schedulers to belong to the same optimizer"):
        lr_scheduler.ChainedScheduler([lr_scheduler.StepLR(opt, 2), lr_scheduler.StepLR(other, 3)])
    with pytest.raises(ValueError, match="ChainedScheduler does not support ReduceLROnPlateau"):
        lr_scheduler.ChainedScheduler([lr_scheduler.ReduceLROnPlateau(opt)])
