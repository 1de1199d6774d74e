"""What every experiment shares: its sizes, its output directory, results.json and report.md,
the printed table, the progress bar and the optional figures.

``results.json`` holds ``{"experiment", "size", "seed", "settings", "results", "timing"}``: all
but ``timing`` (wall-clock seconds, images/s) is determined by the seed and the thread count.
"""

import dataclasses
import datetime
import json
import os
import sys

from .. import backend, viz
from .. import train as trainer
from ..viz import new_figure as figure, save_figure as save  # noqa: F401  (the pictures' Agg canvas, for the experiments)

SIZES = ("full", "medium", "quick", "tiny")  # tiny: the tests' size, a few hundred images and one epoch


@dataclasses.dataclass(frozen=True)
class Options:
    """The options every experiment takes (``pyconvnet experiment NAME --help``)."""

    out: str | None = None
    seed: int = 0
    size: str = "full"
    threads: int | None = None
    data_dir: str | None = None
    checkpoint: str | None = None  # kernels only: a trained LeNet-5 instead of training one
    runs: str = "runs"  # timeline only: where to look for recorded training runs

    def __post_init__(self):
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")


def prepare(name, options):
    """Sets the thread count; returns the output directory (created), by default
    runs/experiment-NAME-TIMESTAMP."""
    if options.threads is not None:
        backend.set_num_threads(options.threads)
    out = options.out
    if out is None:
        out = os.path.join("runs", f"experiment-{name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out, exist_ok=True)
    return out


def write_outputs(out, name, options, settings, results, timing, report, table):
    """results.json and report.md into ``out``; the table printed. Returns the results.json path."""
    document = {"experiment": name, "size": options.size, "seed": options.seed, "threads": backend.get_num_threads(),
                "settings": settings, "results": results, "timing": timing}
    path = os.path.join(out, "results.json")
    with open(path, "w") as file:
        json.dump(document, file, indent=2)
        file.write("\n")
    with open(os.path.join(out, "report.md"), "w") as file:
        file.write(report)
    print(table)
    print(f"wrote {path}, {os.path.join(out, 'report.md')}")
    return path


def train_model(model, options, size, out, bar):
    """Train zoo ``model`` on Fashion-MNIST with ``pyconvnet.train`` into OUT/runs/MODEL, its
    recipe cut to ``size`` (train images, test images, epochs, batch size; None keeps the
    recipe's), each epoch's line printed through ``bar`` (and counted on it). Returns
    (config, per-epoch metrics, run directory); KeyboardInterrupt when Ctrl-C stopped it."""
    limit_train, limit_test, epochs, batch_size = size
    settings = {"model": model, "dataset": "fashion-mnist", "seed": options.seed, "epochs": epochs,
                "batch_size": batch_size, "limit_train": limit_train, "limit_test": limit_test}
    run_dir = os.path.join(out, "runs", model)

    def log(line):
        if line.startswith("epoch "):
            say(bar, f"{model}: {line}")
            if bar is not None:
                bar.update(1)

    if trainer.train(settings, out_dir=run_dir, data_dir=options.data_dir, log=log, pictures=False) is None:
        raise KeyboardInterrupt(f"{model}'s run was interrupted; its checkpoint is in {run_dir}")
    with open(os.path.join(run_dir, "metrics.jsonl")) as file:
        metrics = [json.loads(line) for line in file if line.strip()]
    return trainer.resolve_config(**settings), metrics, run_dir


def format_table(header, rows):
    """A plain-text table (first column left-aligned, the others right-aligned)."""
    cells = [list(map(str, header))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def markdown_table(header, rows):
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def progress(total, description):
    """A tqdm bar on a terminal (as the trainer's); None otherwise. Callers ``update`` it and
    print through ``say``."""
    if not sys.stdout.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stdout, unit="step", dynamic_ncols=True)


def say(bar, line):
    """Print ``line`` without tearing the progress bar."""
    if bar is None:
        print(line)
    else:
        bar.write(line)


def draw(out, figures, note_lines):
    """Calls each ``(filename, function(path))`` in ``figures`` when matplotlib is installed and
    returns the names written; otherwise appends a note to ``note_lines`` and returns []."""
    if not viz.available():
        note_lines.append("Figures skipped: matplotlib is not installed (pip install 'pyconvnet[viz]').")
        print("figures skipped: matplotlib is not installed (pip install 'pyconvnet[viz]')")
        return []
    for filename, function in figures:
        function(os.path.join(out, filename))
    return [filename for filename, _ in figures]


def percent(share):
    return f"{100 * share:.2f}%"
