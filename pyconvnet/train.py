"""The trainer behind ``pyconvnet train`` and ``pyconvnet eval``: recipes, the loop, metrics, resume.

A run trains one of ``pyconvnet.models`` on one dataset and leaves in its directory
``metrics.jsonl`` (one JSON object per epoch), ``last.safetensors`` (written at every epoch's
end, and on Ctrl-C), ``best.safetensors`` (the epoch with the best test accuracy) and, with
matplotlib installed, the PNG pictures of ``pyconvnet.viz``. Both checkpoints hold everything a
resumed run needs: weights, optimiser and scheduler state, the position (epoch and step within
it), the global generator's state, the shuffling generator's state at the start of the epoch in
progress, the partial epoch's running sums and the metrics so far. So a run resumed from any
checkpoint, interrupted mid-epoch or not, continues exactly as the uninterrupted run would have:
bit-identical weights for the same thread count.

Settings left out come from the model's recipe (``RECIPES``), tuned for Fashion-MNIST. A run on a
folder of images (``dataset="imagefolder"``, ``folder=DIR``) trains the model's ImageNet-sized variant
on ``image_size`` crops (see ``pyconvnet.finetune``); with ``weights`` it fine-tunes a weight file:
everything but the classifier head is loaded, the head is sized for the folder's classes, and
``freeze_backbone`` trains the head alone (``_FINETUNE`` overrides the recipe). Checkpoints keep the
class names and the evaluation preprocessing, which ``pyconvnet predict`` applies.

Started by ``mpiexec -n N``, the run is data-parallel over the N ranks: ``batch_size`` stays the
global batch (each rank steps on batch_size / N samples of its ``DistributedSampler`` shard, the
gradients averaged by ``DistributedDataParallel``), the test set is split over the ranks and its
sums reduced, every rank decides together (a non-finite loss, Ctrl-C), and rank 0 alone prints,
writes the metrics, checkpoints and pictures. Kernel threads default (without OMP_NUM_THREADS) to
the machine's cores divided by the ranks on it. A checkpoint resumes on any number of ranks; bit for bit on the same number.

For global batches larger than the recipe's (Goyal et al., "Accurate, Large Minibatch SGD"):
``lr_scaling="linear"`` multiplies the rate by batch_size / the recipe's batch_size (the rate given
or the recipe's is the one for the recipe's batch; the number of ranks does not enter, since
batch_size is the global batch at any size), and ``warmup_epochs=W`` ramps the rate linearly, step
by step, over the first W epochs up to that rate, then runs the scheduler over the remaining steps.
The ramp starts from the unscaled rate when linear scaling raised it (Goyal et al.'s gradual
warm-up), else from the rate / the number of warm-up steps.

The run trains on one device (``device="auto"``: the GPU when ``pyconvnet.cuda.is_available()``,
else the CPU; data-parallel runs train on the CPU): the loaders stay on the host and each batch
is moved once; a step reads one number back from the device (its loss, which the non-finite
check needs), and the correct predictions add up on the device until the epoch's end (or, with a
progress bar to show, every step). Checkpoints hold host copies, so a GPU run resumes on either
device, and each epoch's record in ``metrics.jsonl`` names the device it ran on.
"""

import dataclasses
import datetime
import fnmatch
import inspect
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from . import amp, backend, checkpoint, cuda, data, devices, finetune, models, optim, viz
from . import distributed as dist
from . import nn
from . import random as _random
from ._runs import DATASETS, IMAGE_FOLDER, build_splits, build_test_split, eval_settings, load_model
from .autograd import no_grad
from .creation import zeros
from .tensor import Tensor, int64

__all__ = ["DATASETS", "RECIPES", "Config", "recipe_for", "resolve_config", "resolve_device", "train",
           "evaluate_checkpoint", "load_model"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "multistep", "cosine", "onecycle")
LR_SCALINGS = ("none", "linear")
# The schedulers step once per batch; "step" divides the rate by 10 at each third of the run,
# "multistep" at 50% and 75% of it.
_STEP_GAMMA = 0.1
_MULTISTEP_MILESTONES = (0.5, 0.75)
_EVAL_BATCH_SIZE = 500


# The defaults per model family, keyed by a shell-style name pattern (the longest matching
# pattern wins). Every model trains in its small-input variant (see ``model_kwargs``).
_BASE = {"optimizer": "sgd", "momentum": 0.9, "scheduler": "cosine", "batch_size": 128, "label_smoothing": 0.0}
_RESNET = {**_BASE, "epochs": 30, "lr": 0.1, "weight_decay": 5e-4, "augment": True}
RECIPES = {
    # LeNet-5 (61,706 weights) underfits random crops and flips in 20-30 epochs (0.910-0.911 test
    # accuracy) and without them overfits after ~10 epochs: more weight decay regularises it instead.
    "lenet5": {**_BASE, "epochs": 20, "lr": 0.05, "weight_decay": 1e-3, "augment": False},
    "resnet*": _RESNET,
    "plain*": _RESNET,  # the ResNets' plain twins: the same recipe, so that only the shortcuts differ
    "vgg*_bn": {**_BASE, "epochs": 30, "lr": 0.05, "weight_decay": 5e-4, "augment": True},
    # Without batch norm nothing rescales the 8 to 16 stacked convolutions: plain VGG's usual
    # rate, a fifth of the batch-norm one, at which it risks diverging (not measured here).
    "vgg*": {**_BASE, "epochs": 30, "lr": 0.01, "weight_decay": 5e-4, "augment": True},
    "googlenet": {**_BASE, "epochs": 30, "lr": 0.05, "weight_decay": 5e-4, "augment": True},
    # AlexNet keeps PyTorch's default initialisation, under which each of its eight layers shrinks
    # the signal about twofold: the logits start near 0 (std ~0.01) and the convolutions' gradients
    # are 3e-4 to 5e-3 of their weights. SGD at 0.01 stayed on the initial plateau (loss 2.302)
    # for all of 79 steps, at 0.05 it began to leave it after ~50; a warm-up, lowering the first
    # rates, would only lengthen that. Adam's per-weight step does not depend on the gradient's
    # scale: it left the plateau within ~20 steps.
    "alexnet": {**_BASE, "optimizer": "adam", "epochs": 30, "lr": 1e-4, "weight_decay": 5e-4, "augment": True},
}
# Fine-tuning pretrained weights: smaller steps than training from scratch, fewer epochs.
_FINETUNE = {"optimizer": "sgd", "momentum": 0.9, "scheduler": "cosine", "epochs": 10, "lr": 0.01, "batch_size": 32,
             "weight_decay": 1e-4, "augment": True}
# Settings only a run on an image folder takes.
_IMAGE_FOLDER_SETTINGS = ("weights", "num_classes", "freeze_backbone", "image_size", "val_split")
# Settings a resumed run may change: they do not alter what a step or an epoch is.
RESUME_OVERRIDABLE = ("epochs", "lr", "scheduler", "weight_decay", "momentum", "label_smoothing", "lr_scaling",
                      "warmup_epochs", "amp")
# --amp: the precision of the training steps' convolution and linear layers (evaluation runs float32).
AMP_MODES = ("none", "bf16")


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's resolved settings (what ``pyconvnet train``'s flags set; see ``cli``)."""

    model: str
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    scheduler: str
    weight_decay: float
    momentum: float
    label_smoothing: float
    augment: bool
    seed: int
    limit_train: int | None
    limit_test: int | None
    # Defaults here, so that a checkpoint saved before these settings existed still loads.
    lr_scaling: str = "none"
    warmup_epochs: int = 0
    # A run on an image folder (dataset "imagefolder"); see the module's docstring.
    folder: str | None = None
    weights: str | None = None
    num_classes: int | None = None  # None: the folder's class count
    freeze_backbone: bool = False
    image_size: int = 224
    val_split: float = 0.1  # the share held out for validation when the folder has no val/
    amp: str = "none"  # "bf16": training steps run under autocast("cpu", dtype=bfloat16)


def recipe_for(model, finetune=False):
    """The default settings for ``model`` (a name from ``models.list_models()``); with ``finetune``,
    those for fine-tuning pretrained weights."""
    patterns = [pattern for pattern in RECIPES if fnmatch.fnmatchcase(model, pattern)]
    if not patterns:
        raise ValueError(f"no training recipe for model {model!r}; recipes exist for: {', '.join(RECIPES)}")
    return {**RECIPES[max(patterns, key=len)], **(_FINETUNE if finetune else {})}


def resolve_config(**settings):
    """A Config from ``settings`` (Config field names; None or absent: not given) and the model's
    recipe; the model defaults to lenet5, the dataset to fashion-mnist, the seed to 0."""
    given = {key: value for key, value in settings.items() if value is not None}
    model = given.pop("model", "lenet5")
    dataset = given.pop("dataset", "fashion-mnist")
    if model not in models.list_models():
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(models.list_models())}")
    if dataset not in (*DATASETS, IMAGE_FOLDER):
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}, {IMAGE_FOLDER}")
    if (dataset == IMAGE_FOLDER) != ("folder" in given):
        raise ValueError(f"dataset {IMAGE_FOLDER} and folder go together (--data imagefolder:DIR)")
    only = [key for key in _IMAGE_FOLDER_SETTINGS if key in given and dataset != IMAGE_FOLDER]
    if only:
        raise ValueError(f"{', '.join('--' + key.replace('_', '-') for key in only)} need --data imagefolder:DIR")
    defaults = {"seed": 0, "limit_train": None, "limit_test": None, **recipe_for(model, "weights" in given)}
    config = Config(model=model, dataset=dataset, **{**defaults, **given})
    _check_config(config)
    return config


def _check_config(config):
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
    if config.scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {config.scheduler!r}")
    if config.lr_scaling not in LR_SCALINGS:
        raise ValueError(f"lr_scaling must be one of {', '.join(LR_SCALINGS)}, got {config.lr_scaling!r}")
    if config.amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {config.amp!r}")
    if not 0 <= config.warmup_epochs < config.epochs:
        raise ValueError(f"warmup_epochs must be >= 0 and < epochs ({config.epochs}), got {config.warmup_epochs}")
    if config.warmup_epochs and config.scheduler == "onecycle":
        raise ValueError("warmup_epochs cannot be combined with scheduler onecycle, which warms up itself")
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    for name in ("limit_train", "limit_test"):
        if getattr(config, name) is not None and getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if not config.lr > 0:
        raise ValueError(f"lr must be > 0, got {config.lr}")
    if config.weight_decay < 0 or config.momentum < 0:
        raise ValueError("weight_decay and momentum must be >= 0")
    if not 0 <= config.label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.image_size < 1 or not 0 < config.val_split < 1:
        raise ValueError(f"image_size must be >= 1 and val_split in (0, 1), got {config.image_size} and "
                         f"{config.val_split}")


DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name="auto"):
    """The device ``--device name`` means: "auto" is cuda when ``pyconvnet.cuda.is_available()``,
    else cpu; "cuda" is the current GPU, given its index ("cuda:0") so that records name it.
    ValueError, saying why, for a name that is no device or a GPU that cannot be used."""
    if name == "auto":
        name = "cuda" if cuda.is_available() else "cpu"
    try:
        device = devices.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be {DEVICE_CHOICES}, got {name!r}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"device must be {DEVICE_CHOICES}, got {name!r}")
    if not cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available: {cuda.unavailable_reason()}")
    index = cuda.current_device() if device.index is None else device.index
    if index >= cuda.device_count():
        raise ValueError(f"device {name!r}: there is no GPU {index} ({cuda.device_count()} present)")
    return devices.device("cuda", index)


def describe_device(device):
    """'cpu' or 'cuda:0 (NVIDIA H200)': for logs and records."""
    return str(device) if device.type == "cpu" else f"{device} ({cuda.get_device_name(device)})"


# ----------------------------------------------------------------------------- building blocks


def model_kwargs(model, dataset, num_classes=10):
    """The builder arguments that fit ``model`` to ``dataset``: its classes, its channel count,
    and the small-input variant where the model has one (every model but LeNet-5 and the CIFAR
    ResNets, which are small-input networks already). Each of them accepts 28x28 images. An image
    folder's run takes the ImageNet-sized variant, whose layers pretrained weights fit."""
    if dataset == IMAGE_FOLDER:
        return {"num_classes": num_classes, "in_channels": 3}
    kwargs = {"num_classes": num_classes, "in_channels": DATASETS[dataset].channels}
    if "cifar" in inspect.signature(getattr(models, model)).parameters:
        kwargs["cifar"] = True
    return kwargs


def lr_scale(config):
    """The factor ``lr_scaling`` applies to ``config.lr``: global batch / the recipe's batch when linear."""
    if config.lr_scaling == "none":
        return 1.0
    return config.batch_size / recipe_for(config.model, config.weights is not None)["batch_size"]


def build_optimizer(config, parameters):
    lr = config.lr * lr_scale(config)
    if config.optimizer == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    cls = optim.Adam if config.optimizer == "adam" else optim.AdamW
    return cls(parameters, lr=lr, weight_decay=config.weight_decay)


def build_scheduler(config, optimizer, steps_per_epoch):
    """The per-step schedule of the run: the warm-up (if any), then the recipe's scheduler."""
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = config.warmup_epochs * steps_per_epoch
    schedule = _recipe_scheduler(config, optimizer, total_steps - warmup_steps)
    if not warmup_steps:
        return schedule
    scale = lr_scale(config)
    start = 1.0 / scale if scale > 1 else 1.0 / warmup_steps
    warmup = optim.lr_scheduler.LinearLR(optimizer, start_factor=start, end_factor=1.0, total_iters=warmup_steps)
    if schedule is None:
        return warmup
    return optim.lr_scheduler.SequentialLR(optimizer, [warmup, schedule], milestones=[warmup_steps])


def _recipe_scheduler(config, optimizer, total_steps):
    schedules = optim.lr_scheduler
    if config.scheduler == "none":
        return None
    if config.scheduler == "step":
        return schedules.StepLR(optimizer, step_size=max(1, total_steps // 3), gamma=_STEP_GAMMA)
    if config.scheduler == "multistep":
        milestones = [max(1, int(total_steps * share)) for share in _MULTISTEP_MILESTONES]
        return schedules.MultiStepLR(optimizer, milestones=milestones, gamma=_STEP_GAMMA)
    if config.scheduler == "cosine":
        return schedules.CosineAnnealingLR(optimizer, T_max=total_steps)
    cycle_momentum = config.optimizer != "sgd" or config.momentum > 0
    return schedules.OneCycleLR(optimizer, max_lr=config.lr * lr_scale(config), total_steps=total_steps,
                                cycle_momentum=cycle_momentum)


class _Interrupt:
    """Turns the first SIGINT into a flag the loop checks between steps; a second one raises
    KeyboardInterrupt as usual. Installed only in the main thread."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Progress:
    """A tqdm bar with loss, accuracy, images/s and ETA on a terminal; nothing otherwise (the
    epoch's summary line is printed either way)."""

    def __init__(self, total, epoch, epochs, done, visible=True):
        self._bar = None
        self.visible = visible and sys.stdout.isatty()
        if self.visible:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, desc=f"epoch {epoch}/{epochs}", file=sys.stdout,
                             leave=False, unit="batch", dynamic_ncols=True)

    def update(self, loss, accuracy, images_per_s):
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.4f}", img_s=f"{images_per_s:.0f}", refresh=False)
            self._bar.update(1)

    def close(self):
        if self._bar is not None:
            self._bar.close()


class TrainingStopped(Exception):
    """The run stopped before its last epoch: a non-finite loss (message says where)."""


# ----------------------------------------------------------------------------- the run


class _Run:
    """One training run's state: what a checkpoint saves and restores."""

    def __init__(self, config, out_dir, data_dir, log, device, world_size=1):
        self.config = config
        self.device = device
        if config.amp != "none" and device.type != "cpu":
            raise ValueError(f"amp {config.amp} runs on the CPU only (autocast('cpu')); the run is on {device}")
        self.out_dir = out_dir
        self.log = log
        self.world_size = world_size  # > 1: one of the ranks of an MPI launch
        self.writes = world_size == 1 or dist.get_rank() == 0
        _random.manual_seed(config.seed)
        self.loader_generator = np.random.Generator(np.random.PCG64(config.seed))
        self.train_set, self.test_set, self.classes = build_splits(dataclasses.asdict(config), data_dir)
        self.model_kwargs = model_kwargs(config.model, config.dataset, _class_count(config, self.classes))
        self.model = models.get_model(config.model, **self.model_kwargs).to(device)
        if config.freeze_backbone:
            finetune.freeze_backbone(self.model)
        # One worker thread prepares the next batches while the model steps.
        if world_size == 1:
            self.sampler = None
            self.train_loader = data.DataLoader(self.train_set, batch_size=config.batch_size, shuffle=True,
                                                num_workers=1, generator=self.loader_generator)
            self.trained = self.model
        else:
            if config.batch_size % world_size:
                raise ValueError(f"--batch-size {config.batch_size} (the global batch) does not split evenly over "
                                 f"{world_size} ranks")
            self.sampler = data.DistributedSampler(self.train_set, seed=config.seed)
            self.train_loader = data.DataLoader(self.train_set, batch_size=config.batch_size // world_size,
                                                sampler=self.sampler, num_workers=1, generator=self.loader_generator)
            self.trained = nn.parallel.DistributedDataParallel(self.model)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.optimizer = build_optimizer(config, [p for p in self.model.parameters() if p.requires_grad])
        self.steps_per_epoch = len(self.train_loader)
        self.scheduler = build_scheduler(config, self.optimizer, self.steps_per_epoch)
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0  # steps completed of the epoch in progress
        self.epoch_loader_state = self.loader_generator.bit_generator.state
        self.partial = _EpochSums()
        self.metrics = []
        self.best_test_acc = -1.0
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the rate of the latest step, reported per epoch

    # -- checkpoints
    def state(self):
        return {
            "model_name": self.config.model,
            "model_kwargs": self.model_kwargs,
            "dataset": self.config.dataset,
            "config": dataclasses.asdict(self.config),
            "classes": self.classes,
            "preprocess": eval_settings(dataclasses.asdict(self.config)),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "rng": {"global": _random.default_generator().bit_generator.state, "loader": self.epoch_loader_state},
            "partial_epoch": dataclasses.asdict(self.partial),
            "metrics": self.metrics,
            "best_test_acc": self.best_test_acc,
        }

    def load_weights(self):
        """A fresh fine-tuning run: the weight file into everything but the classifier head."""
        try:
            finetune.load_backbone(self.model, self.config.weights)
        except RuntimeError as error:
            raise ValueError(f"--weights: {error}") from None
        head, _ = finetune.classifier_head(self.model)
        frozen = ", the rest frozen" if self.config.freeze_backbone else ""
        self.log(f"loaded {self.config.weights} into all but the head '{head}' ({len(self.classes)} classes{frozen})")

    def restore(self, state, schedule_changed):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.partial = _EpochSums(**state["partial_epoch"])
        self.metrics = state["metrics"]
        self.best_test_acc = state["best_test_acc"]
        _random.default_generator().bit_generator.state = state["rng"]["global"]
        self.loader_generator.bit_generator.state = state["rng"]["loader"]
        self.epoch_loader_state = state["rng"]["loader"]
        if schedule_changed:
            self._apply_new_schedule()
        elif self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])

    def _apply_new_schedule(self):
        """Settings changed on resume: the optimiser takes the new hyperparameters and the
        schedule restarts as if the run had begun with them, fast-forwarded to this step."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * lr_scale(self.config)
            group["weight_decay"] = self.config.weight_decay
            if "momentum" in group:
                group["momentum"] = self.config.momentum
            for key in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
                group.pop(key, None)
        self.scheduler = build_scheduler(self.config, self.optimizer, self.steps_per_epoch)
        if self.scheduler is not None:
            for _ in range(self.epoch * self.steps_per_epoch + self.step_in_epoch):
                self.scheduler.step()

    def save(self, name):
        if self.writes:
            checkpoint.save(self.state(), os.path.join(self.out_dir, name))

    def _on_any_rank(self, flag):
        """Whether ``flag`` holds on some rank: the ranks must take the same branch."""
        if self.world_size == 1:
            return flag
        return bool(self._summed(float(flag))[0])

    def _summed(self, *values):
        """``values`` summed over the ranks (float32 on the wire)."""
        if self.world_size == 1:
            return values
        sums = Tensor(np.array(values, dtype=np.float32))
        dist.all_reduce(sums)
        return tuple(sums.tolist())

    def _evaluate(self):
        """(mean test loss, test accuracy); with several ranks each evaluates every world_size-th image
        of rank 0's model and the sums are reduced."""
        if self.world_size == 1:
            return evaluate(self.model, self.test_set)
        for buffer in self.model.buffers():  # batch-norm statistics: rank 0's, which its checkpoint holds
            dist.broadcast(buffer, src=0)
        shard = data.Subset(self.test_set, range(dist.get_rank(), len(self.test_set), self.world_size))
        loss_sum, correct = self._summed(*_evaluation_sums(self.model, shard))
        return loss_sum / len(self.test_set), correct / len(self.test_set)

    # -- the loop
    def run(self, interrupt):
        """Train to the configured epoch count; False when stopped by Ctrl-C (after saving)."""
        while self.epoch < self.config.epochs:
            started = time.perf_counter() - self.partial.train_seconds
            if self.sampler is not None:
                self.sampler.set_epoch(self.epoch)
            if not self._train_epoch(interrupt):
                self.save("last.safetensors")
                self.log(f"interrupted in epoch {self.epoch + 1} after step {self.step_in_epoch}; saved "
                         f"{os.path.join(self.out_dir, 'last.safetensors')} (continue with --resume)")
                return False
            test_loss, test_acc = self._evaluate()
            if not math.isfinite(test_loss):
                raise TrainingStopped(f"test loss is {test_loss} after epoch {self.epoch + 1} (the last steps "
                                      f"diverged); {self._kept()}")
            self._finish_epoch(test_loss, test_acc, time.perf_counter() - started)
            if self._on_any_rank(interrupt.requested) and self.epoch < self.config.epochs:
                self.log(f"interrupted after epoch {self.epoch}; saved {os.path.join(self.out_dir, 'last.safetensors')}"
                         " (continue with --resume)")
                return False
        return True

    def _train_epoch(self, interrupt):
        """The remaining steps of the epoch in progress; False if Ctrl-C stopped it."""
        self.trained.train()
        self.loader_generator.bit_generator.state = self.epoch_loader_state
        batches = iter(self.train_loader)
        for _ in range(self.step_in_epoch):  # resuming mid-epoch: the same order, its first batches done
            next(batches)
        progress = _Progress(self.steps_per_epoch, self.epoch + 1, self.config.epochs, self.step_in_epoch, self.writes)
        # The ranks reduce their sums every step anyway, and a visible bar shows the accuracy: then
        # the correct predictions are read every step, else at the epoch's end (or on Ctrl-C).
        read_every_step = self.world_size > 1 or progress.visible
        sums = self.partial
        unread = zeros((), dtype=int64, device=self.device)  # correct predictions not yet in sums
        try:
            clock = time.perf_counter() - sums.train_seconds
            for images, labels in batches:
                if self._on_any_rank(interrupt.requested):
                    self._read_correct(unread)
                    return False
                images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
                with amp.autocast("cpu", enabled=self.config.amp == "bf16"):
                    logits = self.trained(images)
                    loss = self.criterion(logits, labels)
                unread = unread + _count_correct(logits.detach(), labels)
                loss_sum, count = self._summed(loss.item() * len(labels), len(labels))
                if not math.isfinite(loss_sum):
                    raise TrainingStopped(f"loss is {loss_sum / count} in epoch {self.epoch + 1} at step "
                                          f"{self.step_in_epoch + 1}; {self._kept()}")
                self.optimizer.zero_grad()
                loss.backward()
                self.last_lr = self.optimizer.param_groups[0]["lr"]
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                sums.add(loss_sum, int(count))
                if read_every_step:
                    unread = self._read_correct(unread)
                sums.train_seconds = time.perf_counter() - clock
                self.step_in_epoch += 1
                progress.update(sums.loss_sum / sums.seen, sums.correct / sums.seen, sums.seen / max(sums.train_seconds, 1e-9))
            self._read_correct(unread)
        finally:
            progress.close()
            batches.close()
        return True

    def _read_correct(self, unread):
        """Adds ``unread``, the correct predictions counted on the device, summed over the ranks, to
        the epoch's sums; returns a new zero count."""
        self.partial.correct += int(self._summed(unread.item())[0])
        return zeros((), dtype=int64, device=self.device)

    def _finish_epoch(self, test_loss, test_acc, seconds):
        sums = self.partial
        self.epoch += 1
        record = {
            "epoch": self.epoch,
            "train_loss": sums.loss_sum / sums.seen,
            "train_acc": sums.correct / sums.seen,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": self.last_lr,
            "seconds": seconds,
            "images_per_s": sums.seen / max(sums.train_seconds, 1e-9),
            "device": describe_device(self.device),
        }
        self.metrics.append(record)
        self.step_in_epoch = 0
        self.epoch_loader_state = self.loader_generator.bit_generator.state
        self.partial = _EpochSums()
        self.write_metrics()
        if test_acc > self.best_test_acc:
            self.best_test_acc = test_acc
            self.save("best.safetensors")
        self.save("last.safetensors")
        self.log(f"epoch {self.epoch}/{self.config.epochs}  train loss {record['train_loss']:.4f} "
                 f"acc {record['train_acc']:.4f}  test loss {test_loss:.4f} acc {test_acc:.4f}  "
                 f"lr {record['lr']:.4g}  {seconds:.1f}s  {record['images_per_s']:.0f} img/s")

    def write_metrics(self):
        if not self.writes:
            return
        with open(os.path.join(self.out_dir, "metrics.jsonl"), "w") as file:
            file.writelines(json.dumps(record) + "\n" for record in self.metrics)

    def _kept(self):
        if self.epoch == 0:
            return "no checkpoint was written"
        return f"{os.path.join(self.out_dir, 'last.safetensors')} keeps the state after epoch {self.epoch}"


@dataclasses.dataclass
class _EpochSums:
    """Running sums of the epoch in progress (saved with mid-epoch checkpoints)."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    train_seconds: float = 0.0

    def add(self, loss_sum, count):
        self.loss_sum += loss_sum
        self.seen += count


def evaluate(model, dataset, batch_size=_EVAL_BATCH_SIZE):
    """(mean cross-entropy, accuracy) of ``model`` over ``dataset``, in eval mode without autograd."""
    loss_sum, correct = _evaluation_sums(model, dataset, batch_size)
    return loss_sum / len(dataset), correct / len(dataset)


def _count_correct(logits, labels):
    """How many rows of ``logits`` have their largest value at the label: a 0-d int64 tensor on their device."""
    return (logits.argmax(1) == labels).sum()


def _evaluation_sums(model, dataset, batch_size=_EVAL_BATCH_SIZE):
    """(summed cross-entropy, correct predictions) of ``model`` over ``dataset``, on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    # Its own generator: evaluation must not draw from the global one, which resume restores.
    loader = data.DataLoader(dataset, batch_size=batch_size, num_workers=1,
                             generator=np.random.Generator(np.random.PCG64(0)))
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct = 0.0, zeros((), dtype=int64, device=device)
    with no_grad():
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            logits = model(images)
            loss_sum += criterion(logits, labels).item()
            correct = correct + _count_correct(logits, labels)
    return loss_sum, int(correct.item())


# ----------------------------------------------------------------------------- entry points


def default_out_dir(config):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.model}-{config.dataset}-{stamp}")


def train(settings, out_dir=None, resume=None, data_dir=None, threads=None, log=print, pictures=True,
          device="auto"):
    """Run training; returns the final test accuracy, or None when Ctrl-C stopped the run.
    ``pictures=False`` leaves out the run's pictures (``pyconvnet.experiments`` draws its own).
    ``device``: where the model trains (see ``resolve_device``); a resumed run may change it.

    ``settings`` maps Config field names to values (None: not given). With ``resume`` (a
    checkpoint path) the saved settings are used; given settings may only change those in
    ``RESUME_OVERRIDABLE``, and then the run is no longer bit-identical to an uninterrupted one.
    Raises TrainingStopped on a non-finite loss, FileExistsError for a fresh run into a
    directory that already holds one, ValueError for a device that cannot be used. Started by
    ``mpiexec`` with several ranks, trains on all of them on the CPU (see the module's docstring);
    ranks other than 0 log nothing.
    """
    world_size = _join_mpi_launch()
    if world_size > 1 and device != "cpu":
        if device != "auto":
            raise ValueError(f"device {device!r}: runs under mpiexec train on the CPU only (use --device cpu)")
        device = "cpu"
    device = resolve_device(device)
    if world_size > 1:
        if threads is None and "OMP_NUM_THREADS" not in os.environ:  # else OpenMP's, as in a single process
            threads = max(1, (os.cpu_count() or 1) // dist.get_local_world_size())
        if dist.get_rank() != 0:
            log = _quiet
    if threads is not None:
        backend.set_num_threads(threads)
    state = None
    if resume is not None:
        state = checkpoint.load(resume, map_location="cpu")  # restore() copies it to the run's device
        config, changed = _resumed_config(state["config"], settings, resume)
        out_dir = out_dir or os.path.dirname(os.path.abspath(resume))
    else:
        config, changed = resolve_config(**settings), ()
        out_dir = out_dir or default_out_dir(config)
        if os.path.exists(os.path.join(out_dir, "last.safetensors")):
            raise FileExistsError(f"{out_dir} already holds a run (last.safetensors); continue it with "
                                  f"--resume {os.path.join(out_dir, 'last.safetensors')} or choose another --out")
    os.makedirs(out_dir, exist_ok=True)
    run = _Run(config, out_dir, data_dir, log, device, world_size)
    if state is None and config.weights is not None:
        run.load_weights()
    if state is not None:
        run.restore(state, schedule_changed=bool(changed))
        run.write_metrics()
        log(f"resumed {resume} at epoch {run.epoch + 1}, step {run.step_in_epoch}"
            + (f" with new {', '.join(changed)}" if changed else ""))
    threads = backend.get_num_threads()
    ranks = f"{world_size} ranks x " if world_size > 1 else ""
    log(f"training {config.model} on {config.dataset} ({len(run.train_set)} train / {len(run.test_set)} test "
        f"images, {ranks}{threads} thread{'' if threads == 1 else 's'}) on {describe_device(device)} into {out_dir}")
    with _Interrupt() as interrupt:
        if not run.run(interrupt):
            return None
    if pictures and run.writes:
        _write_pictures(out_dir, data_dir, log)
    if run.metrics:
        best = max(run.metrics, key=lambda record: record["test_acc"])
        log(f"best test accuracy: {best['test_acc']:.4f} (epoch {best['epoch']})")
        final = run.metrics[-1]["test_acc"]
        log(f"final test accuracy: {final:.4f}")
        return final
    return None


def _join_mpi_launch():
    """The number of ranks training together: joins the MPI process group when ``mpiexec`` started
    this process (1 otherwise, without importing MPI)."""
    if not dist.launched_by_mpi():
        return 1
    if not dist.is_initialized():
        dist.init_process_group()
    return dist.get_world_size()


def end_distributed_job(errorcode):
    """After an error on this rank of a multi-rank run: end all ranks (others may be waiting on it)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.abort(errorcode)


def _quiet(*args, **kwargs):
    pass


def _write_pictures(out_dir, data_dir, log):
    """The run's pictures (see ``pyconvnet.viz``), when matplotlib is installed."""
    if viz.available():
        log(f"pictures: {', '.join(os.path.basename(path) for path in viz.plot_run(out_dir, data_dir))}")


def _class_count(config, classes):
    if config.num_classes is not None and config.num_classes != len(classes):
        raise ValueError(f"--num-classes {config.num_classes}: the data has {len(classes)} classes "
                         f"({', '.join(classes)})")
    return len(classes)


def _resumed_config(saved, settings, path):
    given = {key: value for key, value in settings.items() if value is not None}
    fixed = sorted(key for key in given if key not in RESUME_OVERRIDABLE and given[key] != saved[key])
    if fixed:
        raise ValueError(f"cannot change {', '.join('--' + key.replace('_', '-') for key in fixed)} when resuming "
                         f"{path} (saved: {', '.join(f'{key}={saved[key]!r}' for key in fixed)}); start a new run")
    changed = sorted(key for key in given if given[key] != saved[key])
    config = Config(**{**saved, **given})
    _check_config(config)
    return config, tuple(changed)


def evaluate_checkpoint(path, data_dir=None, limit_test=None, threads=None):
    """(test loss, test accuracy) of the model saved in checkpoint ``path`` on its dataset's test split."""
    if threads is not None:
        backend.set_num_threads(threads)
    model, state = load_model(path)
    return evaluate(model, build_test_split(state["config"], data_dir, limit_test)[0])
