"""The degradation problem (He et al. 2016, Figure 1): plain networks of 20 and 56 layers and
their residual twins, trained by ``pyconvnet.train`` with one recipe (the ResNets') on
Fashion-MNIST. Deeper plain networks should train *worse* (higher training error), deeper
residual networks better; ``assess`` checks both on the measured numbers and says which held.

Training error is the running error over each epoch's batches, with the recipe's augmentation
on (as the paper's curves); test error is measured after each epoch.
"""

from .. import backend
from .. import train as trainer
from . import _common

NAME = "degradation"
MODELS = ("plain20", "plain56", "resnet20", "resnet56")
FULL_TRAIN_IMAGES, FULL_TEST_IMAGES = 60_000, 10_000
# (train images, test images, epochs, batch size); full: the recipe's own epochs and batch.
SIZES = {
    "full": (None, None, None, None),
    "medium": (8000, 2000, 8, None),
    "quick": (1280, 500, 4, None),  # 139 s measured, one thread on a shared (loaded) 2-core machine
    "tiny": (64, 32, 1, 32),
}
# Gaps of training error smaller than this (half a percentage point) are not read as an effect.
MARGIN = 0.005


def assess(final_train_error, margin=MARGIN):
    """The verdict on final training errors ``{model: error}``: a dict with each comparison's
    gap (deeper minus shallower) and ``"holds"``/``"reversed"``/``"too close"``, and whether the
    whole degradation effect showed."""
    def compare(shallow, deep, deeper_should):
        gap = final_train_error[deep] - final_train_error[shallow]
        if abs(gap) <= margin:
            verdict = "too close"
        else:
            verdict = "holds" if (gap > 0) == (deeper_should == "worse") else "reversed"
        return {"shallow": shallow, "deep": deep, "gap": gap, "verdict": verdict}

    plain = compare("plain20", "plain56", "worse")
    residual = compare("resnet20", "resnet56", "better")
    return {"plain": plain, "residual": residual,
            "shown": plain["verdict"] == "holds" and residual["verdict"] == "holds"}


def describe(assessment, final_train_error):
    """The report's conclusion in words, from ``assess``'s result."""
    def sentence(part, expectation):
        shallow, deep = part["shallow"], part["deep"]
        numbers = (f"{deep} ends at {_common.percent(final_train_error[deep])} training error, {shallow} at "
                   f"{_common.percent(final_train_error[shallow])} ({100 * part['gap']:+.2f} points)")
        if part["verdict"] == "holds":
            return f"- As expected, {deep} trains {expectation} than {shallow}: {numbers}."
        if part["verdict"] == "too close":
            return (f"- Not shown: {deep} and {shallow} are within {100 * MARGIN:.1f} points of each other "
                    f"({numbers}); this size does not separate them.")
        return f"- Not shown: {deep} trains {'better' if expectation == 'worse' else 'worse'} than {shallow}, " \
               f"the opposite of the paper: {numbers}."

    lines = [sentence(assessment["plain"], "worse"), sentence(assessment["residual"], "better")]
    if assessment["shown"]:
        lines.append("\nThe degradation problem shows: depth hurt the plain network and helped the residual one.")
    else:
        lines.append("\nThe degradation problem does not fully show at this size (see above); the numbers are "
                     "reported as measured, not tuned until they agree with the paper.")
    return "\n".join(lines)


def _full_size_estimate(config, metrics, full_epochs):
    """Seconds a full-size run of this model would take, from this run's per-epoch times:
    training scaled by images/s, evaluation by the test images it covered."""
    train_images = FULL_TRAIN_IMAGES if config.limit_train is None else min(config.limit_train, FULL_TRAIN_IMAGES)
    test_images = FULL_TEST_IMAGES if config.limit_test is None else min(config.limit_test, FULL_TEST_IMAGES)
    per_epoch = []
    for record in metrics:
        train_seconds = train_images / record["images_per_s"]
        eval_seconds = max(record["seconds"] - train_seconds, 0.0)
        per_epoch.append(FULL_TRAIN_IMAGES / record["images_per_s"] + eval_seconds * FULL_TEST_IMAGES / test_images)
    return full_epochs * sum(per_epoch) / len(per_epoch)


def plot(curves, path):
    """Training (thin) and test (thick) error per epoch of every model, on one axis."""
    fig = _common.figure(7, 4.5)
    axes = fig.subplots()
    colours = {"plain20": "tab:blue", "plain56": "tab:red", "resnet20": "tab:cyan", "resnet56": "tab:orange"}
    for model, records in curves.items():
        epochs = [record["epoch"] for record in records]
        style = "--" if model.startswith("plain") else "-"
        axes.plot(epochs, [100 * record["train_error"] for record in records], style, color=colours[model],
                  linewidth=1, label=f"{model} train")
        axes.plot(epochs, [100 * record["test_error"] for record in records], style, color=colours[model],
                  linewidth=2.5, label=f"{model} test")
    axes.set_xlabel("epoch")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("error (%)")
    axes.set_title("Plain vs residual networks on Fashion-MNIST (thin: training, thick: test)", fontsize=9)
    axes.legend(fontsize=7, ncol=2)
    axes.grid(alpha=0.3)
    return _common.save(fig, path)


def run(options):
    """Train the four networks, write results.json, report.md and degradation.png into the
    output directory and print the table; returns the results.json path."""
    out = _common.prepare(NAME, options)
    size = SIZES[options.size]
    full_epochs = trainer.recipe_for("resnet56")["epochs"]
    epochs = size[2] or full_epochs
    bar = _common.progress(len(MODELS) * epochs, "degradation (epochs)")
    curves, timing, configs = {}, {}, {}
    try:
        for model in MODELS:
            config, metrics, _ = _common.train_model(model, options, size, out, bar)
            configs[model] = config
            curves[model] = [{"epoch": r["epoch"], "train_error": 1 - r["train_acc"], "test_error": 1 - r["test_acc"],
                              "train_loss": r["train_loss"], "test_loss": r["test_loss"]} for r in metrics]
            timing[model] = {"seconds": sum(r["seconds"] for r in metrics),
                             "images_per_s": metrics[-1]["images_per_s"],
                             "full_size_estimate_seconds": _full_size_estimate(config, metrics, full_epochs)}
    finally:
        if bar is not None:
            bar.close()
    final_train = {model: records[-1]["train_error"] for model, records in curves.items()}
    final_test = {model: records[-1]["test_error"] for model, records in curves.items()}
    assessment = assess(final_train)
    timing["total_seconds"] = sum(timing[model]["seconds"] for model in MODELS)
    timing["full_size_estimate_seconds"] = sum(timing[model]["full_size_estimate_seconds"] for model in MODELS)
    config = configs[MODELS[0]]
    settings = {key: getattr(config, key) for key in ("dataset", "epochs", "batch_size", "lr", "optimizer", "scheduler",
                                                        "weight_decay", "momentum", "augment", "limit_train",
                                                        "limit_test")}
    results = {"curves": curves, "final_train_error": final_train, "final_test_error": final_test,
               "assessment": assessment}
    rows = [(model, _common.percent(final_train[model]), _common.percent(final_test[model]),
             f"{timing[model]['seconds']:.0f}") for model in MODELS]
    header = ("model", "train error", "test error", "seconds")
    notes = []
    figures = _common.draw(out, [("degradation.png", lambda path: plot(curves, path))], notes)
    report = _report(settings, rows, header, assessment, final_train, timing, figures, notes, options)
    path = _common.write_outputs(out, NAME, options, settings, results, timing, report,
                                 _common.format_table(header, rows) + "\n\n" + describe(assessment, final_train))
    return path


def _report(settings, rows, header, assessment, final_train, timing, figures, notes, options):
    images = "all 60,000" if settings["limit_train"] is None else f"the first {settings['limit_train']:,}"
    lines = [
        "# Degradation: plain vs residual networks",
        "",
        f"plain20, plain56, resnet20 and resnet56 trained on {images} Fashion-MNIST training images for "
        f"{settings['epochs']} epochs with one recipe (SGD lr {settings['lr']}, momentum {settings['momentum']}, "
        f"weight decay {settings['weight_decay']}, {settings['scheduler']} schedule, batch {settings['batch_size']}, "
        f"augmentation {'on' if settings['augment'] else 'off'}), seed {options.seed}, size `{options.size}`.",
        "Training error is the running error over each epoch (augmented images); test error is measured after it.",
        "",
        _common.markdown_table(header, rows),
        "",
        describe(assessment, final_train),
        "",
        f"Measured wall time: {timing['total_seconds']:.1f} s on this machine with {backend.get_num_threads()} "
        f"kernel thread(s). Full size (60,000 images, "
        f"{trainer.recipe_for('resnet56')['epochs']} epochs, all four networks), **estimated** by scaling the "
        f"per-epoch times measured here: {timing['full_size_estimate_seconds'] / 3600:.1f} hours.",
    ]
    lines += [""] + [f"![degradation]({name})" for name in figures] + notes
    return "\n".join(lines) + "\n"
