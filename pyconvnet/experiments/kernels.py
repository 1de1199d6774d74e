"""Hand-made kernels beside learned ones: Sobel x/y, a Laplacian and a Gaussian blur applied with
``F.conv2d`` to a Fashion-MNIST test image, next to the first-layer kernels of a LeNet-5
(trained here by ``pyconvnet.train``, or loaded with ``--checkpoint``) and their feature maps.

Each hand-made 3x3 kernel is matched against every 3x3 window of each learned 5x5 kernel by
Pearson correlation; the learned kernel with the largest absolute correlation is its nearest
(a negative sign: the same detector with the opposite polarity). Taking the best of that many
windows finds sizeable correlations in random kernels too, so the report measures chance the
same way (``chance_level``: random Gaussian kernels, as untrained ones are) and calls a match a
resemblance only above it.
"""

import os

import numpy as np

from .. import train as trainer
from .._runs import build_dataset, load_model
from ..autograd import no_grad
from ..creation import from_numpy
from ..nn import Conv2d
from ..nn import functional as F
from . import _common

NAME = "kernels"
HAND_KERNELS = {
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float32),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32),
    "gaussian": np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16,
}
# (train images, test images, epochs, batch size) of the LeNet-5 trained when no checkpoint is given.
SIZES = {
    "full": (None, None, None, None),
    # every training image, 8 of the recipe's 20 epochs: 47 s measured (one thread, shared machine)
    "medium": (None, None, 12, None),
    "quick": (None, 1000, 8, None),
    "tiny": (256, 64, 1, 32),
}
IMAGE_INDEX = 0  # the test image shown (Fashion-MNIST's first: an ankle boot)
CHANCE_DRAWS, CHANCE_QUANTILE = 500, 0.95


def window_correlations(hand, learned_kernels):
    """(N, rows, columns): the Pearson correlation of ``hand`` (k x k) with each k x k window
    of each of the (N, kh, kw) ``learned_kernels`` (0 where a window is constant)."""
    windows = np.lib.stride_tricks.sliding_window_view(learned_kernels, hand.shape, axis=(1, 2))
    windows = windows - windows.mean(axis=(-2, -1), keepdims=True)
    centred = hand - hand.mean()
    norms = np.sqrt((windows ** 2).sum(axis=(-2, -1)) * (centred ** 2).sum())
    products = (windows * centred).sum(axis=(-2, -1))
    return np.divide(products, norms, out=np.zeros_like(products, dtype=np.float64), where=norms > 0)


def nearest(learned_kernels):
    """{hand kernel: {"kernel", "correlation", "offset", "all"}} for (N, kh, kw) ``learned_kernels``:
    the learned kernel (and the window's top-left corner in it) of largest absolute correlation,
    and each learned kernel's best correlation."""
    matches = {}
    for name, hand in HAND_KERNELS.items():
        correlations = window_correlations(hand, learned_kernels)
        flat = correlations.reshape(len(correlations), -1)
        best = [row[np.argmax(np.abs(row))] for row in flat]
        index = int(np.argmax(np.abs(best)))
        offset = np.unravel_index(np.argmax(np.abs(flat[index])), correlations.shape[1:])
        matches[name] = {"kernel": index, "correlation": float(best[index]), "offset": [int(i) for i in offset],
                         "all": [float(value) for value in best]}
    return matches


def chance_level(shape, draws=CHANCE_DRAWS, quantile=CHANCE_QUANTILE):
    """{hand kernel: the absolute correlation ``nearest`` finds in ``quantile`` of ``draws`` sets of
    random Gaussian kernels of ``shape`` (N, kh, kw)}: what untrained kernels reach. Its own
    fixed generator, so it is the same for every run."""
    rng = np.random.default_rng(0)
    found = {name: [] for name in HAND_KERNELS}
    for _ in range(draws):
        for name, match in nearest(rng.standard_normal(shape)).items():
            found[name].append(abs(match["correlation"]))
    return {name: float(np.quantile(values, quantile)) for name, values in found.items()}


def describe(matches, chance):
    lines = []
    for name, match in matches.items():
        strength, level = abs(match["correlation"]), chance[name]
        if strength > level:
            polarity = " with the opposite polarity" if match["correlation"] < 0 else ""
            verdict = f"it resembles the hand-made one{polarity}, beyond chance"
        else:
            verdict = "no more than random kernels do"
        lines.append(f"- {name}: nearest learned kernel #{match['kernel']}, correlation {match['correlation']:+.2f} "
                     f"(random kernels reach {level:.2f} in {CHANCE_QUANTILE:.0%} of draws): {verdict}.")
    if all(abs(match["correlation"]) <= chance[name] for name, match in matches.items()):
        lines.append("\nNone of the learned kernels resembles a hand-made one more than random kernels do at this "
                     "training size.")
    return "\n".join(lines)


def _first_conv(model):
    conv = next((module for module in model.modules() if isinstance(module, Conv2d)), None)
    if conv is None or conv.weight.shape[1] != 1:
        raise ValueError("kernels: the checkpoint's model needs a first Conv2d reading one channel (LeNet-5 on "
                         "Fashion-MNIST or MNIST)")
    return conv


def _lenet(options, out, bar):
    """The LeNet-5 whose kernels are shown, and where it came from."""
    if options.checkpoint is not None:
        return load_model(options.checkpoint)[0], options.checkpoint
    run_dir = _common.train_model("lenet5", options, SIZES[options.size], out, bar)[2]
    path = os.path.join(run_dir, "last.safetensors")
    return load_model(path)[0], path


def feature_maps(image, conv):
    """(hand maps (4, H, W), learned maps (N, H, W)) of one (1, H, W) ``image``, same size as it."""
    x = from_numpy(np.ascontiguousarray(image[None]))
    hand = from_numpy(np.stack(list(HAND_KERNELS.values()))[:, None])
    with no_grad():
        hand_maps = F.conv2d(x, hand, padding=1).numpy()[0]
        learned_maps = F.conv2d(x, conv.weight.detach(), conv.bias.detach() if conv.bias is not None else None,
                                padding=conv.weight.shape[-1] // 2).numpy()[0]
    return hand_maps, learned_maps


def plot(image, learned, hand_maps, learned_maps, matches, path):
    columns = max(len(HAND_KERNELS) + 1, len(learned))
    fig = _common.figure(1.6 * columns, 7)
    grid = fig.subplots(4, columns, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    nearest_to = {match["kernel"]: name for name, match in reversed(list(matches.items()))}
    panels = [(0, i, kernel, name, "RdBu_r") for i, (name, kernel) in enumerate(HAND_KERNELS.items())]
    panels += [(1, i, maps, f"{name} map", "gray") for i, (name, maps) in enumerate(zip(HAND_KERNELS, hand_maps))]
    panels += [(0, len(HAND_KERNELS), image[0], "input", "gray")]
    panels += [(2, i, kernel, f"learned #{i}" + (f"\n~ {nearest_to[i]}" if i in nearest_to else ""), "RdBu_r")
               for i, kernel in enumerate(learned)]
    panels += [(3, i, maps, f"#{i} map", "gray") for i, maps in enumerate(learned_maps)]
    for row, column, picture, title, cmap in panels:
        axes = grid[row, column]
        limit = np.abs(picture).max() or 1.0
        bounds = {"vmin": -limit, "vmax": limit} if cmap == "RdBu_r" else {}
        axes.imshow(picture, cmap=cmap, interpolation="nearest", **bounds)
        axes.set_title(title, fontsize=8)
    fig.suptitle("hand-made kernels (top) and LeNet-5's learned first-layer kernels (bottom), with their maps",
                 fontsize=9)
    return _common.save(fig, path)


def run(options):
    """Train (or load) LeNet-5, match its first-layer kernels to the hand-made ones, write
    results.json, report.md and kernels.png; returns the results.json path."""
    out = _common.prepare(NAME, options)
    epochs = SIZES[options.size][2] or trainer.recipe_for("lenet5")["epochs"]
    bar = None if options.checkpoint is not None else _common.progress(epochs, "kernels (LeNet-5 epochs)")
    try:
        model, source = _lenet(options, out, bar)
    finally:
        if bar is not None:
            bar.close()
    conv = _first_conv(model)
    learned = conv.weight.detach().numpy()[:, 0]
    matches = nearest(learned)
    chance = chance_level(learned.shape)
    image = build_dataset("fashion-mnist", False, False, options.data_dir, IMAGE_INDEX + 1)[IMAGE_INDEX][0].numpy()
    hand_maps, learned_maps = feature_maps(image, conv)
    header = ("hand-made", "nearest learned", "correlation", "chance", *(f"#{i}" for i in range(len(learned))))
    rows = [(name, f"#{match['kernel']}", f"{match['correlation']:+.2f}", f"{chance[name]:.2f}",
             *(f"{v:+.2f}" for v in match["all"])) for name, match in matches.items()]
    notes = []
    figures = _common.draw(out, [("kernels.png", lambda path: plot(image, learned, hand_maps, learned_maps, matches,
                                                                   path))], notes)
    settings = {"source": "checkpoint" if options.checkpoint is not None else "trained",
                "lenet_train": dict(zip(("limit_train", "limit_test", "epochs", "batch_size"), SIZES[options.size])),
                "image_index": IMAGE_INDEX}
    report = "\n".join([
        "# Hand-made vs learned kernels",
        "",
        f"LeNet-5's {len(learned)} first-layer {learned.shape[1]}x{learned.shape[2]} kernels ({source}) against "
        f"Sobel x/y, a Laplacian and a 3x3 Gaussian blur; each hand-made kernel is compared with every 3x3 window "
        f"of each learned kernel (Pearson correlation, largest absolute value); \"chance\" is what sets of "
        f"random Gaussian kernels of the same shape reach in {CHANCE_QUANTILE:.0%} of {CHANCE_DRAWS} draws. "
        f"Size `{options.size}`, seed {options.seed}.",
        "",
        _common.markdown_table(header, rows),
        "",
        describe(matches, chance),
        *[f"\n![kernels]({name})" for name in figures], *notes,
    ]) + "\n"
    results = {"learned_kernels": learned.tolist(), "matches": matches, "chance": chance}
    return _common.write_outputs(out, NAME, options, settings, results, {}, report,
                                 _common.format_table(header, rows) + "\n\n" + describe(matches, chance))
