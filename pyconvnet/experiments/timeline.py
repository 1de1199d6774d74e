"""The classic models side by side: every zoo model's parameters and mult-adds at its natural
input size (``pyconvnet.summary``), its training speed measured on this machine at the trainer's
Fashion-MNIST setting (small-input variant, 1x28x28 images, the recipe's optimiser), and its test
accuracy where ``pyconvnet train`` has run its recipe to the end on all of Fashion-MNIST (read
from the run directories under ``--runs``, never invented).
"""

import fnmatch
import json
import os
import time

import numpy as np

from .. import checkpoint, models, nn
from .. import random as _random
from .. import train as trainer
from ..creation import from_numpy
from ..summary import summary
from . import _common

NAME = "timeline"
YEARS = {"lenet5": 1998, "alexnet": 2012, "vgg*": 2014, "googlenet": 2014, "resnet*": 2015, "plain*": 2015}
CIFAR_NETS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "plain20", "plain32", "plain44", "plain56")
# (models, batch, timed steps); full and quick measure every model, tiny three small ones.
SIZES = {
    "full": (None, 32, 5),
    "medium": (None, 16, 3),
    "quick": (None, 8, 1),  # 43 s measured (one thread, shared machine)
    "tiny": (("lenet5", "plain20", "resnet20"), 2, 1),
}


def year(model):
    return next(value for pattern, value in YEARS.items() if fnmatch.fnmatchcase(model, pattern))


def natural_input(model):
    """The input a model was designed for: LeNet-5 32x32 grey, the CIFAR nets 32x32 colour,
    the ImageNet ones 224x224 colour."""
    if model == "lenet5":
        return (1, 32, 32)
    return (3, 32, 32) if model in CIFAR_NETS else (3, 224, 224)


def training_speed(model, batch, steps, seed):
    """Training images/s of ``model`` at the trainer's Fashion-MNIST setting: a warm-up step,
    then ``steps`` timed steps of its recipe's optimiser on random (batch, 1, 28, 28) images."""
    _random.manual_seed(seed)
    network = models.get_model(model, **trainer.model_kwargs(model, "fashion-mnist"))
    config = trainer.resolve_config(model=model, seed=seed)
    optimizer = trainer.build_optimizer(config, network.parameters())
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    images = from_numpy(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    labels = from_numpy(rng.integers(0, 10, batch))
    network.train()
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        optimizer.zero_grad()
        criterion(network(images), labels).backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - started)


def recorded_accuracies(runs_dir):
    """{model: (best test accuracy, run directory)} over the complete recipe runs under
    ``runs_dir``: Fashion-MNIST, every image, every epoch the run was configured for. The best
    of several runs of one model is kept."""
    found = {}
    if runs_dir is None or not os.path.isdir(runs_dir):
        return found
    for folder, _, files in sorted(os.walk(runs_dir)):
        if "metrics.jsonl" not in files or "last.safetensors" not in files:
            continue
        config = checkpoint.load(os.path.join(folder, "last.safetensors"))["config"]
        with open(os.path.join(folder, "metrics.jsonl")) as file:
            metrics = [json.loads(line) for line in file if line.strip()]
        complete = (config["dataset"] == "fashion-mnist" and config["limit_train"] is None
                    and config["limit_test"] is None and len(metrics) == config["epochs"])
        if complete:
            accuracy = max(record["test_acc"] for record in metrics)
            if accuracy > found.get(config["model"], (-1.0, None))[0]:
                found[config["model"]] = (accuracy, folder)
    return found


def plot(rows, path):
    """Measured training speed against mult-adds (log-log), one labelled point per model."""
    fig = _common.figure(7, 5)
    axes = fig.subplots()
    for row in rows:
        axes.scatter(row["mult_adds"], row["train_images_per_s"], color="tab:green" if row["accuracy"] else "tab:blue")
        label = row["model"] + (f" {100 * row['accuracy']:.1f}%" if row["accuracy"] else "")
        axes.annotate(label, (row["mult_adds"], row["train_images_per_s"]), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("mult-adds per image at the natural input size")
    axes.set_ylabel("training images/s here (Fashion-MNIST setting)")
    axes.set_title("The classic models: cost and speed (green: with a recorded accuracy)", fontsize=9)
    axes.grid(alpha=0.3, which="both")
    return _common.save(fig, path)


def run(options):
    """Measure every model, write results.json, report.md and timeline.png; returns the
    results.json path."""
    out = _common.prepare(NAME, options)
    chosen, batch, steps = SIZES[options.size]
    names = sorted(chosen or models.list_models(), key=lambda name: (year(name), name))
    accuracies = recorded_accuracies(options.runs)
    bar = _common.progress(len(names), "timeline (models)")
    rows, timing = [], {}
    try:
        for name in names:
            table = summary(models.get_model(name, in_channels=natural_input(name)[0]), natural_input(name))
            speed = training_speed(name, batch, steps, options.seed)
            accuracy, source = accuracies.get(name, (None, None))
            rows.append({"model": name, "year": year(name), "input": list(natural_input(name)),
                         "params": table.total_params, "mult_adds": table.total_mult_adds, "accuracy": accuracy,
                         "accuracy_run": source})
            timing[name] = {"train_images_per_s": speed}
            _common.say(bar, f"{name}: {table.total_params:,} params, {table.total_mult_adds:,} mult-adds, "
                             f"{speed:.1f} training images/s")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    header = ("model", "year", "input", "params", "mult-adds", "train img/s", "test acc")
    table_rows = [(row["model"], row["year"], "x".join(map(str, row["input"])), f"{row['params']:,}",
                   f"{row['mult_adds']:,}", f"{timing[row['model']]['train_images_per_s']:.1f}",
                   "not run" if row["accuracy"] is None else _common.percent(row["accuracy"])) for row in rows]
    notes = []
    figures = _common.draw(out, [("timeline.png", lambda path: plot(
        [{**row, "train_images_per_s": timing[row["model"]]["train_images_per_s"]} for row in rows], path))], notes)
    settings = {"batch": batch, "timed_steps": steps, "runs": options.runs}
    report = "\n".join([
        "# The classic models side by side",
        "",
        f"Parameters and mult-adds at each model's natural input; training images/s measured here over {steps} "
        f"step(s) of batch {batch} at the trainer's Fashion-MNIST setting (1x28x28, small-input variant, the "
        "recipe's optimiser); test accuracy from complete recipe runs on all of Fashion-MNIST found under "
        f"`{options.runs}` (\"not run\": none found). Size `{options.size}`, seed {options.seed}.",
        "",
        _common.markdown_table(header, table_rows),
        *[f"\n![timeline]({name})" for name in figures], *notes,
    ]) + "\n"
    return _common.write_outputs(out, NAME, options, settings, {"models": rows}, timing, report,
                                 _common.format_table(header, table_rows))
