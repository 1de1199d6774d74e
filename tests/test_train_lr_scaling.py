"""pyconvnet train's --lr-scaling and --warmup-epochs: the rate at every step of a small run,
against torch's schedulers composed the same way, and the settings' validation."""

import json
import math

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet import cli, train
from test_train import _args, _restore_threads, _train, data_dir  # noqa: F401  (fixtures)

STEPS_PER_EPOCH = 3


def _our_rates(config):
    optimizer = train.build_optimizer(config, [pcn.nn.Parameter(pcn.zeros(2))])
    scheduler = train.build_scheduler(config, optimizer, STEPS_PER_EPOCH)
    rates = []
    for _ in range(config.epochs * STEPS_PER_EPOCH):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return rates


def _torch_rates(lr, start_factor, warmup_steps, total_steps, cosine):
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr, momentum=0.9)
    schedules = torch.optim.lr_scheduler
    schedulers = []
    if warmup_steps:
        schedulers.append(schedules.LinearLR(optimizer, start_factor=start_factor, total_iters=warmup_steps))
    if cosine:
        schedulers.append(schedules.CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps))
    scheduler = schedulers[0] if len(schedulers) == 1 else schedules.SequentialLR(
        optimizer, schedulers, milestones=[warmup_steps])
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("batch_size, scaling, warmup_epochs, scheduler, lr, start_factor", [
    (512, "linear", 2, "cosine", 0.4, 1 / 4),  # Goyal et al.: from the recipe batch's rate up to 4x it
    (512, "linear", 0, "cosine", 0.4, None),  # scaled, no warm-up
    (128, "linear", 1, "cosine", 0.1, 1 / 3),  # the recipe's batch: nothing to scale, ramp from lr / 3 steps
    (256, "none", 2, "none", 0.1, 1 / 6),  # warm-up alone, then the constant rate
])
def test_rate_at_every_step_matches_torch(batch_size, scaling, warmup_epochs, scheduler, lr, start_factor):
    config = train.resolve_config(model="resnet20", epochs=5, batch_size=batch_size, lr_scaling=scaling,
                                  warmup_epochs=warmup_epochs, scheduler=scheduler)
    assert train.lr_scale(config) == (batch_size / 128 if scaling == "linear" else 1.0)
    ours = _our_rates(config)
    total, warmup = 5 * STEPS_PER_EPOCH, warmup_epochs * STEPS_PER_EPOCH
    np.testing.assert_allclose(ours, _torch_rates(lr, start_factor, warmup, total, scheduler == "cosine"), rtol=1e-12)
    if warmup:
        assert math.isclose(ours[0], lr * start_factor) and math.isclose(ours[warmup], lr)
        assert all(a < b for a, b in zip(ours[:warmup], ours[1:warmup + 1]))  # rises every step
    else:
        assert math.isclose(ours[0], lr)


def test_defaults_and_linear_scaling_of_onecycle_peak():
    config = train.resolve_config(model="lenet5")
    assert (config.lr_scaling, config.warmup_epochs) == ("none", 0)
    config = train.resolve_config(model="lenet5", batch_size=256, lr_scaling="linear", scheduler="onecycle")
    optimizer = train.build_optimizer(config, [pcn.nn.Parameter(pcn.zeros(2))])
    train.build_scheduler(config, optimizer, 2)
    assert math.isclose(optimizer.param_groups[0]["max_lr"], 0.1)  # the recipe's 0.05, doubled


@pytest.mark.parametrize("settings, match", [
    ({"lr_scaling": "sqrt"}, "lr_scaling must be one of none, linear"),
    ({"warmup_epochs": -1}, "warmup_epochs must be >= 0 and < epochs"),
    ({"warmup_epochs": 20, "epochs": 20}, "warmup_epochs must be >= 0 and < epochs"),
    ({"warmup_epochs": 1, "scheduler": "onecycle"}, "cannot be combined with scheduler onecycle"),
])
def test_bad_settings_raise(settings, match):
    with pytest.raises(ValueError, match=match):
        train.resolve_config(model="lenet5", **settings)


def test_the_flags_reach_the_settings_and_argparse_checks_the_choice(capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--lr-scaling", "linear", "--warmup-epochs", "5"])
    assert (args.lr_scaling, args.warmup_epochs) == ("linear", 5)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--lr-scaling", "square"])
    assert "invalid choice: 'square'" in capsys.readouterr().err


def test_a_run_reports_the_warmed_up_scaled_rates(capsys, data_dir, tmp_path):
    # Global batch 64 = half the recipe's 128: linear scaling halves LeNet-5's 0.05. Two steps an epoch;
    # the warm-up (nothing scaled up: from lr / 2 steps) takes the first, cosine the other two.
    status, _, err = _train(capsys, *_args(data_dir, tmp_path / "run", "--epochs", 3, "--limit-train", 128,
                                           "--batch-size", 64, "--lr-scaling", "linear", "--warmup-epochs", 1))
    assert status == 0, err
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lr = 0.025
    expected = [lr * 0.75, lr * (1 + math.cos(math.pi / 4)) / 2, lr * (1 + math.cos(3 * math.pi / 4)) / 2]
    np.testing.assert_allclose([record["lr"] for record in metrics], expected, rtol=1e-6)


@pytest.mark.parametrize("stop", [2, 6, 9])  # inside the warm-up, at its end, inside the cosine
def test_the_schedule_resumes_from_its_state_mid_run(stop):
    config = train.resolve_config(model="resnet20", epochs=5, batch_size=512, lr_scaling="linear", warmup_epochs=2)
    total = config.epochs * STEPS_PER_EPOCH
    expected = _our_rates(config)

    def fresh():
        optimizer = train.build_optimizer(config, [pcn.nn.Parameter(pcn.zeros(2))])
        return optimizer, train.build_scheduler(config, optimizer, STEPS_PER_EPOCH)

    optimizer, scheduler = fresh()
    for _ in range(stop):
        optimizer.step()
        scheduler.step()
    states = optimizer.state_dict(), scheduler.state_dict()
    optimizer, scheduler = fresh()
    optimizer.load_state_dict(states[0])
    scheduler.load_state_dict(states[1])
    rates = []
    for _ in range(total - stop):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(rates, expected[stop:], rtol=1e-12)
