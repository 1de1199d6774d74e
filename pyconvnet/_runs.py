"""What a training run is made of, shared by the trainer (``train.py``) and its pictures
(``viz.py``): the datasets runs train on, and the model a run's checkpoint holds."""

import dataclasses

import numpy as np

from . import checkpoint, data, models


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to build one dataset: its class, per-channel mean/std of the training images (in
    [0, 1] units), its channel count and image side, the padding of its random crop and whether
    mirror images are plausible."""

    cls: str
    mean: tuple
    std: tuple
    channels: int
    image_size: int
    crop_padding: int
    flip: bool


DATASETS = {
    "fashion-mnist": DatasetSpec("FashionMNIST", (0.2860,), (0.3530,), 1, 28, 2, True),
    "mnist": DatasetSpec("MNIST", (0.1307,), (0.3081,), 1, 28, 2, False),  # a mirrored digit is another glyph
    "cifar10": DatasetSpec("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 3, 32, 4, True),
}


def build_dataset(name, train, augment, data_dir, limit):
    """Split ``train`` (True) or test of dataset ``name`` under ``data_dir`` (downloaded when
    missing), normalised with its statistics, with random crops and flips when ``augment``,
    cut to its first ``limit`` images."""
    spec = DATASETS[name]
    steps = []
    if train and augment:
        steps.append(data.transforms.RandomCrop(spec.image_size, padding=spec.crop_padding))
        if spec.flip:
            steps.append(data.transforms.RandomHorizontalFlip())
    steps += [data.transforms.ToTensor(), data.transforms.Normalize(spec.mean, spec.std)]
    dataset = getattr(data, spec.cls)(root=data_dir, train=train, transform=data.transforms.Compose(steps),
                                      download=True)
    if limit is not None and limit < len(dataset):
        dataset = data.Subset(dataset, np.arange(limit))
    return dataset


def load_model(path):
    """(model, state): the model saved in training checkpoint ``path``, rebuilt on the CPU with its
    weights, and the checkpoint's whole state (its tensors on the CPU, whichever device saved them)."""
    state = checkpoint.load(path, map_location="cpu")
    for key in ("model_name", "model_kwargs", "dataset", "model"):
        if key not in state:
            raise ValueError(f"{path}: not a training checkpoint (no {key!r})")
    model = models.get_model(state["model_name"], **state["model_kwargs"])
    model.load_state_dict(state["model"])
    return model, state
