"""What a training run is made of, shared by the trainer (``train.py``), its pictures (``viz.py``)
and ``pyconvnet predict``: the datasets runs train on, and the model a run's checkpoint holds."""

import dataclasses

import numpy as np

from . import checkpoint, data, finetune, models


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


# ``pyconvnet train --data imagefolder:DIR``: the Config's ``folder`` names the directory.
IMAGE_FOLDER = "imagefolder"


def build_splits(config, data_dir=None, limit_test=None):
    """(train set, test set, class names) of the run whose settings are ``config`` (a Config's fields
    as a dict), each cut to the run's limit (the test set to ``limit_test`` when given)."""
    limit_test = config["limit_test"] if limit_test is None else limit_test
    if config["dataset"] == IMAGE_FOLDER:
        return finetune.image_folder_splits(config["folder"], config["image_size"], config["val_split"],
                                            config["augment"], config["seed"], config["limit_train"], limit_test)
    return (build_dataset(config["dataset"], True, config["augment"], data_dir, config["limit_train"]),
            *build_test_split(config, data_dir, limit_test))


def build_test_split(config, data_dir=None, limit=None):
    """(test set, class names) of the run ``config``, as ``build_splits`` gives them, without
    reading a built-in dataset's training images."""
    if config["dataset"] == IMAGE_FOLDER:
        return build_splits(config, data_dir, limit)[1:]
    limit = config["limit_test"] if limit is None else limit
    return build_dataset(config["dataset"], False, False, data_dir, limit), class_names(config)


def class_names(config):
    """The class names of a built-in dataset's run (an image folder's are in its checkpoints)."""
    return list(getattr(data, DATASETS[config["dataset"]].cls).classes)


def eval_settings(config):
    """The evaluation preprocessing of the run ``config`` as plain values (``finetune.eval_transform``'s
    arguments), which its checkpoints keep for ``pyconvnet predict``."""
    if config["dataset"] == IMAGE_FOLDER:
        return finetune.eval_settings(config["image_size"])
    spec = DATASETS[config["dataset"]]
    return finetune.eval_settings(spec.image_size, spec.image_size, spec.mean, spec.std, spec.channels)


def checkpoint_eval_settings(state):
    """``eval_settings`` as a checkpoint's ``state`` keeps them (from its config when written before it did)."""
    return state.get("preprocess") or eval_settings(state["config"])


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
