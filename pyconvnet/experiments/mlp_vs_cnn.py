"""Weight sharing: LeNet-5 against fully connected networks on Fashion-MNIST.

Three networks train with LeNet-5's recipe on the same images: LeNet-5, an MLP with one hidden
layer sized to LeNet-5's parameter count, and a large MLP (784-1024-1024-10, thirty times as
many). Reported per network: parameters and mult-adds (``pyconvnet.summary``), test accuracy,
and test accuracy on the test images shifted by 2 and 4 pixels (the mean over left, right, up
and down, the vacated border filled with background). ``assess`` checks the textbook claims:
LeNet-5 is at least as accurate as the MLP of its size, and it loses less accuracy under
translation than either MLP.

The trainer (``pyconvnet.train``) trains the zoo's models by name, with checkpoints and resume;
these MLPs are not zoo models, so they train here with the trainer's optimiser, schedule,
datasets and evaluation, in one short loop that LeNet-5 goes through as well.
"""

import time

import numpy as np

from .. import data, models, nn
from .. import random as _random
from .. import train as trainer
from .._runs import DATASETS, build_dataset
from ..creation import from_numpy
from ..summary import summary
from . import _common

NAME = "mlp-vs-cnn"
SHIFTS = (2, 4)  # pixels
LARGE_HIDDEN = (1024, 1024)
# (train images, test images, epochs, batch size); full: LeNet-5's recipe.
SIZES = {
    "full": (None, None, None, None),
    # every image, a quarter of the recipe's epochs: 134 s measured (one thread, shared machine)
    "medium": (None, None, 10, None),
    "quick": (None, None, 5, None),
    "tiny": (256, 128, 1, 32),
}
MARGIN = 0.005  # accuracy differences below half a point are not read as an effect
# Below twice chance (10 classes) a network has hardly learned: how much it loses under a shift
# says nothing about invariance.
LEARNED = 0.2


def mlp(hidden, inputs=28 * 28, classes=10):
    """Flatten, then Linear+ReLU for each width in ``hidden``, then Linear to ``classes``."""
    layers, width = [nn.Flatten()], inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, classes))


def _matched_hidden(parameters, inputs=28 * 28, classes=10):
    """The one hidden width whose MLP comes nearest ``parameters``: (inputs + 1) h + (h + 1) classes."""
    return round((parameters - classes) / (inputs + 1 + classes))


def build_networks():
    """{name: model}: LeNet-5, the MLP of its size, the large MLP (drawn from the global generator)."""
    lenet = models.lenet5(num_classes=10, in_channels=1)
    size = sum(p.numel() for p in lenet.parameters())
    hidden = _matched_hidden(size)
    return {"lenet5": lenet, f"mlp-{hidden}": mlp((hidden,)),
            f"mlp-{'-'.join(map(str, LARGE_HIDDEN))}": mlp(LARGE_HIDDEN)}


def shift_images(images, dy, dx, fill):
    """(N, C, H, W) ``images`` moved down ``dy`` and right ``dx`` pixels (negative: up, left),
    the vacated border set to ``fill``."""
    shifted = np.full_like(images, fill)
    height, width = images.shape[2:]
    shifted[:, :, max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        images[:, :, max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
    return shifted


def _fit(model, config, train_set, test_set, bar, name):
    """Train ``model`` with ``config``'s optimiser and schedule; per-epoch metrics."""
    loader = data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True, num_workers=1,
                             generator=np.random.Generator(np.random.PCG64(config.seed)))
    optimizer = trainer.build_optimizer(config, model.parameters())
    scheduler = trainer.build_scheduler(config, optimizer, len(loader))
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    metrics = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        started, loss_sum, correct = time.perf_counter(), 0.0, 0
        for images, labels in loader:
            logits = model(images)
            loss = criterion(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(labels)
            correct += int((logits.detach().numpy().argmax(1) == labels.numpy()).sum())
            if bar is not None:
                bar.update(1)
        train_seconds = time.perf_counter() - started
        test_loss, test_acc = trainer.evaluate(model, test_set)
        metrics.append({"epoch": epoch, "train_loss": loss_sum / len(train_set), "train_acc": correct / len(train_set),
                        "test_loss": test_loss, "test_acc": test_acc, "seconds": time.perf_counter() - started,
                        "images_per_s": len(train_set) / train_seconds})
        _common.say(bar, f"{name}: epoch {epoch}/{config.epochs}  train acc {metrics[-1]['train_acc']:.4f}  "
                         f"test acc {test_acc:.4f}")
    return metrics


def _shifted_accuracies(model, images, labels, fill):
    """{shift: mean test accuracy over the four directions}, shift 0 included."""
    accuracies = {0: trainer.evaluate(model, data.TensorDataset(from_numpy(images), labels))[1]}
    for distance in SHIFTS:
        moved = [shift_images(images, dy, dx, fill) for dy, dx in
                 ((0, distance), (0, -distance), (distance, 0), (-distance, 0))]
        accuracies[distance] = float(np.mean([
            trainer.evaluate(model, data.TensorDataset(from_numpy(array), labels))[1] for array in moved]))
    return accuracies


def assess(rows, margin=MARGIN):
    """The claims on ``rows`` ({name: {"params", "accuracy": {shift: acc}}}, LeNet-5 as "lenet5"):
    per MLP, whether LeNet-5 is as accurate at equal or larger size and whether it loses less
    under the largest shift, each "holds", "reversed" or "too close" ("untrained" for the shift
    when either network is below ``LEARNED`` accuracy)."""
    largest = max(SHIFTS)
    lenet = rows["lenet5"]
    lenet_drop = lenet["accuracy"][0] - lenet["accuracy"][largest]
    verdicts = {}
    for name, row in rows.items():
        if name == "lenet5":
            continue
        accuracy_gap = lenet["accuracy"][0] - row["accuracy"][0]
        drop_gap = (row["accuracy"][0] - row["accuracy"][largest]) - lenet_drop
        learned = min(row["accuracy"][0], lenet["accuracy"][0]) >= LEARNED
        verdicts[name] = {"params_ratio": row["params"] / lenet["params"],
                          "accuracy_gap": accuracy_gap, "accuracy": _verdict(accuracy_gap, margin),
                          "shift_drop_gap": drop_gap,
                          "translation": _verdict(drop_gap, margin) if learned else "untrained"}
    return verdicts


def _verdict(gap, margin):
    return "too close" if abs(gap) <= margin else ("holds" if gap > 0 else "reversed")


def describe(verdicts, rows):
    largest = max(SHIFTS)
    lines = []
    for name, verdict in verdicts.items():
        ratio = verdict["params_ratio"]
        accuracy = {"holds": f"LeNet-5 is more accurate than {name}",
                    "too close": f"LeNet-5 and {name} are equally accurate (within {100 * MARGIN:.1f} points)",
                    "reversed": f"{name} is more accurate than LeNet-5"}[verdict["accuracy"]]
        translation = {"holds": "LeNet-5 loses less accuracy under a shift",
                       "too close": "both lose about as much under a shift",
                       "reversed": f"{name} loses less accuracy under a shift than LeNet-5 (the claim does not show)",
                       "untrained": f"one of them is below {LEARNED:.0%} accuracy, so the shift comparison says "
                                    "nothing (train longer)"}
        lines.append(
            f"- {name} ({ratio:.1f}x LeNet-5's parameters): {accuracy} "
            f"({_common.percent(rows['lenet5']['accuracy'][0])} vs {_common.percent(rows[name]['accuracy'][0])}); "
            f"{translation[verdict['translation']]} (at {largest} px: LeNet-5 drops "
            f"{100 * (rows['lenet5']['accuracy'][0] - rows['lenet5']['accuracy'][largest]):.2f} points, {name} "
            f"{100 * (rows[name]['accuracy'][0] - rows[name]['accuracy'][largest]):.2f}).")
    return "\n".join(lines)


def plot(rows, path):
    """Test accuracy against shift, one line per network."""
    fig = _common.figure(6, 4)
    axes = fig.subplots()
    shifts = (0, *SHIFTS)
    for name, row in rows.items():
        axes.plot(shifts, [100 * row["accuracy"][shift] for shift in shifts], "o-",
                  label=f"{name} ({row['params']:,} params)")
    axes.set_xlabel("test images shifted by (pixels)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_xticks(shifts)
    axes.set_title("Translation: weight sharing vs fully connected", fontsize=9)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return _common.save(fig, path)


def run(options):
    """Train the three networks, measure them, write results.json, report.md and
    mlp_vs_cnn.png; returns the results.json path."""
    out = _common.prepare(NAME, options)
    limit_train, limit_test, epochs, batch_size = SIZES[options.size]
    config = trainer.resolve_config(model="lenet5", seed=options.seed, epochs=epochs, batch_size=batch_size,
                                    limit_train=limit_train, limit_test=limit_test)
    train_set = build_dataset(config.dataset, True, config.augment, options.data_dir, config.limit_train)
    test_set = build_dataset(config.dataset, False, False, options.data_dir, config.limit_test)
    images, labels = next(iter(data.DataLoader(test_set, batch_size=len(test_set))))
    spec = DATASETS[config.dataset]
    background = (0.0 - spec.mean[0]) / spec.std[0]  # a black pixel, normalised
    _random.manual_seed(options.seed)
    networks = build_networks()
    steps = -(-len(train_set) // config.batch_size) * config.epochs
    bar = _common.progress(len(networks) * steps, "mlp-vs-cnn (steps)")
    rows, timing = {}, {}
    try:
        for name, model in networks.items():
            table = summary(model, (1, 28, 28))
            metrics = _fit(model, config, train_set, test_set, bar, name)
            rows[name] = {"params": table.total_params, "mult_adds": table.total_mult_adds,
                          "accuracy": _shifted_accuracies(model, images.numpy(), labels, background),
                          "curve": metrics}
            timing[name] = {"seconds": sum(r["seconds"] for r in metrics), "images_per_s": metrics[-1]["images_per_s"]}
            for record in metrics:
                del record["seconds"], record["images_per_s"]
    finally:
        if bar is not None:
            bar.close()
    verdicts = assess(rows)
    header = ("network", "params", "mult-adds", "test acc", *(f"shift {s}px" for s in SHIFTS))
    table_rows = [(name, f"{row['params']:,}", f"{row['mult_adds']:,}",
                   *(_common.percent(row["accuracy"][s]) for s in (0, *SHIFTS))) for name, row in rows.items()]
    notes = []
    figures = _common.draw(out, [("mlp_vs_cnn.png", lambda path: plot(rows, path))], notes)
    settings = {"dataset": config.dataset, "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
                "weight_decay": config.weight_decay, "scheduler": config.scheduler, "limit_train": config.limit_train,
                "limit_test": config.limit_test, "shifts": list(SHIFTS)}
    report = "\n".join([
        "# MLP vs CNN: parameters, accuracy, translation",
        "",
        f"Three networks trained with LeNet-5's recipe (SGD lr {config.lr}, weight decay {config.weight_decay}, "
        f"{config.scheduler} schedule, batch {config.batch_size}, {config.epochs} epochs) on "
        f"{len(train_set):,} Fashion-MNIST training images, tested on {len(test_set):,}; seed {options.seed}, "
        f"size `{options.size}`. Shifted accuracy: the mean over the four directions, border filled with black.",
        "",
        _common.markdown_table(header, table_rows),
        "",
        describe(verdicts, rows),
        "",
        "LeNet-5's invariance comes from weight sharing and from its max-pooling; an MLP has neither.",
        f"\nMeasured wall time: {sum(t['seconds'] for t in timing.values()):.1f} s on this machine.",
        *[f"\n![mlp vs cnn]({name})" for name in figures], *notes,
    ]) + "\n"
    return _common.write_outputs(out, NAME, options, settings, {"networks": rows, "assessment": verdicts}, timing,
                                 report, _common.format_table(header, table_rows) + "\n\n" + describe(verdicts, rows))
