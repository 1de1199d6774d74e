"""Pictures of a training run (``pyconvnet plot RUN_DIR``; also written by ``pyconvnet train``).

``plot_run`` reads a run directory left by ``pyconvnet train`` and writes four PNG files into it:
``curves.png`` (loss, accuracy and learning rate per epoch), ``kernels.png`` (the first
convolution's learned kernels), ``feature_maps.png`` (one test image's activations after each
stage, from the first layer's edge detectors to the last stage's part detectors) and
``confusion.png`` (the confusion matrix on the test split).

Needs matplotlib, an optional extra (``pip install 'pyconvnet[viz]'``); it is imported only when
a picture is drawn, and only its Agg canvas is used, so no display is ever opened.
"""

import importlib.util
import json
import math
import os

import numpy as np

from . import data, nn
from ._runs import build_test_split, load_model
from .autograd import no_grad
from .creation import from_numpy

__all__ = ["available", "plot_run", "plot_curves", "plot_kernels", "plot_feature_maps", "plot_confusion",
           "confusion_matrix", "stage_activations"]

PICTURES = ("curves.png", "kernels.png", "feature_maps.png", "confusion.png")
_MAX_MAPS_PER_STAGE = 32  # channels drawn per stage in feature_maps.png
_DPI = 100


def available():
    """True when matplotlib can be imported (the ``viz`` extra is installed)."""
    return importlib.util.find_spec("matplotlib") is not None


def new_figure(width, height):
    """A matplotlib Figure on an Agg canvas (no pyplot, no display)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("pyconvnet's pictures need matplotlib: pip install 'pyconvnet[viz]'") from error
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path):
    figure.savefig(path, dpi=_DPI)
    return path


# ----------------------------------------------------------------------------- the pictures


def plot_curves(metrics, path):
    """Train/test loss, train/test accuracy and the learning rate per epoch, from ``metrics``
    (the records of ``metrics.jsonl``), as three panels in ``path``."""
    if not metrics:
        raise ValueError("metrics is empty: no epoch has finished")
    epochs = [record["epoch"] for record in metrics]
    figure = new_figure(12, 3.6)
    loss, accuracy, rate = figure.subplots(1, 3)
    for axes, key, title in ((loss, "loss", "cross-entropy loss"), (accuracy, "acc", "accuracy")):
        for split in ("train", "test"):
            axes.plot(epochs, [record[f"{split}_{key}"] for record in metrics], marker="o", label=split)
        axes.set_title(title)
        axes.legend()
    best = max(metrics, key=lambda record: record["test_acc"])
    accuracy.annotate(f"best test {best['test_acc']:.4f}", (best["epoch"], best["test_acc"]),
                      textcoords="offset points", xytext=(0, -14), ha="center", fontsize=8)
    rate.plot(epochs, [record["lr"] for record in metrics], marker="o", color="tab:green")
    rate.set_title("learning rate (last step of the epoch)")
    for axes in (loss, accuracy, rate):
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    return save_figure(figure, path)


def _first_conv(model):
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no Conv2d layer")


def _normalise(tiles, axes):
    """``tiles`` scaled to [0, 1] over ``axes`` (each tile on its own; a constant tile -> 0.5)."""
    low = tiles.min(axis=axes, keepdims=True)
    span = tiles.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.5)


def _mosaic(tiles, columns, gap=1, fill=1.0):
    """(N, H, W[, 3]) tiles laid out ``columns`` wide, separated by ``gap`` pixels of ``fill``."""
    count, height, width = tiles.shape[:3]
    rows = math.ceil(count / columns)
    shape = (rows * (height + gap) - gap, columns * (width + gap) - gap) + tiles.shape[3:]
    out = np.full(shape, fill, dtype=np.float32)
    for index, tile in enumerate(tiles):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        out[top : top + height, left : left + width] = tile
    return out


def plot_kernels(model, path):
    """The first Conv2d's kernels as a grid, each normalised to its own range: colour images
    when it reads 3 channels, otherwise one grayscale tile per input channel side by side."""
    name, conv = _first_conv(model)
    weight = conv.weight.detach().numpy()  # (out, in, kh, kw)
    out_channels, in_channels = weight.shape[:2]
    if in_channels == 3:
        tiles, cmap = _normalise(weight.transpose(0, 2, 3, 1), (1, 2, 3)), None
    else:
        kernels = _normalise(weight, (1, 2, 3))
        tiles, cmap = np.stack([_mosaic(kernel, in_channels, fill=0.5) for kernel in kernels]), "gray"
    columns = math.ceil(math.sqrt(out_channels))
    image = _mosaic(tiles, columns)
    figure = new_figure(max(4.0, image.shape[1] / image.shape[0] * 4.0), 4.4)
    axes = figure.subplots()
    axes.imshow(image, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    axes.set_axis_off()
    axes.set_title(f"{name}: {out_channels} kernels {weight.shape[2]}x{weight.shape[3]}, {in_channels} input "
                   f"channel{'s' if in_channels > 1 else ''}", fontsize=9)
    return save_figure(figure, path)


def stage_activations(model, image):
    """[(label, activation (C, H, W)), ...] for one ``image`` (C, H, W): the first Conv2d's
    output, then at each spatial size the last 4-D output any module produced at that size (so
    a composite stage, a residual layer or an Inception block, wins over its insides). Taken
    with forward hooks, in eval mode without autograd."""
    first_conv = _first_conv(model)[1]
    recorded = []  # (name, array), in the order the modules finished

    def hook_for(name):
        def hook(module, args, output):
            # A copy: an in-place ReLU would otherwise rewrite the recorded conv output.
            if output.dim() == 4 and output.shape[2] * output.shape[3] > 1:
                label = f"{name} ({type(module).__name__})"
                recorded.append((label, output.numpy()[0].copy(), module is first_conv))
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in model.named_modules() if name]
    model.eval()
    try:
        with no_grad():
            model(from_numpy(np.ascontiguousarray(image[None], dtype=np.float32)))
    finally:
        for handle in handles:
            handle.remove()
    stages = [next((name, array) for name, array, is_first in recorded if is_first)]
    for position, (name, array, _) in enumerate(recorded):
        later = recorded[position + 1 :]
        if not any(other.shape[1:] == array.shape[1:] for _, other, _ in later):
            stages.append((name, array))
    return [(f"{name}: {array.shape[0]}@{array.shape[1]}x{array.shape[2]}", array) for name, array in stages]


def plot_feature_maps(model, image, path, label=None):
    """One test ``image`` (C, H, W, as the model sees it) and its activations after each stage
    (see ``stage_activations``), each channel normalised to its own range; at most 32 channels
    a stage."""
    stages = stage_activations(model, image)
    panels = [(f"input{'' if label is None else ': ' + label}", image)] + stages
    figure = new_figure(8, 2.4 * len(panels))
    for index, (axes, (title, maps)) in enumerate(zip(figure.subplots(len(panels), 1, squeeze=False)[:, 0], panels)):
        if index == 0 and maps.shape[0] == 3:  # a colour input image
            picture = _normalise(maps.transpose(1, 2, 0), (0, 1, 2))
        else:
            shown = maps[:_MAX_MAPS_PER_STAGE]
            # NaN gaps: drawn in the colour map's transparent "bad" colour.
            picture = _mosaic(_normalise(shown, (1, 2)), min(len(shown), 8), fill=np.nan)
            if len(maps) > len(shown):
                title += f" (first {len(shown)} channels)"
        axes.imshow(picture, cmap=None if picture.ndim == 3 else "viridis", vmin=0, vmax=1, interpolation="nearest")
        axes.set_title(title, fontsize=9)
        axes.set_axis_off()
    return save_figure(figure, path)


def confusion_matrix(model, dataset, num_classes, batch_size=500):
    """(num_classes, num_classes) int64 counts: row = true label, column = predicted."""
    model.eval()
    loader = data.DataLoader(dataset, batch_size=batch_size, generator=np.random.Generator(np.random.PCG64(0)))
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    with no_grad():
        for images, labels in loader:
            predicted = model(images).numpy().argmax(1)
            np.add.at(counts, (labels.numpy(), predicted), 1)
    return counts


def plot_confusion(counts, classes, path):
    """``counts`` (true x predicted) coloured by each row's share, annotated with the counts."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(classes):
        raise ValueError(f"counts must be square with one row per class ({len(classes)}), got shape {counts.shape}")
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = len(classes)
    figure = new_figure(1.0 + 0.65 * size, 0.6 + 0.6 * size)
    axes = figure.subplots()
    shown = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for true in range(size):
        for predicted in range(size):
            axes.text(predicted, true, str(counts[true, predicted]), ha="center", va="center", fontsize=8,
                      color="white" if shares[true, predicted] > 0.5 else "black")
    axes.set_xticks(range(size), classes, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(size), classes, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axes.set_title(f"test confusion matrix ({counts.sum()} images, accuracy {accuracy:.4f})", fontsize=9)
    figure.colorbar(shown, ax=axes, label="share of the true class")
    return save_figure(figure, path)


# ----------------------------------------------------------------------------- a run directory


def plot_run(run_dir, data_dir=None, limit_test=None):
    """Write ``PICTURES`` into ``run_dir`` from its ``metrics.jsonl`` and its best checkpoint
    (``last.safetensors`` when there is no ``best``); the test split is that of the run's
    dataset, limited as the run was unless ``limit_test`` is given. Returns the paths written."""
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(metrics_path):
        raise FileNotFoundError(f"{run_dir} is not a training run directory: no metrics.jsonl")
    checkpoints = [os.path.join(run_dir, name) for name in ("best.safetensors", "last.safetensors")]
    checkpoint_path = next((path for path in checkpoints if os.path.isfile(path)), None)
    if checkpoint_path is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint (best.safetensors or last.safetensors)")
    with open(metrics_path) as file:
        metrics = [json.loads(line) for line in file if line.strip()]
    model, state = load_model(checkpoint_path)
    test_set, classes = build_test_split(state["config"], data_dir, limit_test)
    image, label = test_set[0]  # a normalised (C, H, W) Tensor, as the model sees it
    image = image.numpy()
    paths = [os.path.join(run_dir, name) for name in PICTURES]
    plot_curves(metrics, paths[0])
    plot_kernels(model, paths[1])
    plot_feature_maps(model, image, paths[2], label=classes[label])
    plot_confusion(confusion_matrix(model, test_set, len(classes)), classes, paths[3])
    return paths
