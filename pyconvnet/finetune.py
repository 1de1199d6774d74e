"""Fine-tuning ImageNet-trained weights on a folder of images: what ``pyconvnet train --data
imagefolder:DIR --weights FILE`` is made of, usable from Python too.

``image_folder_splits`` reads the folder (ImageNet's layout ``DIR/train`` + ``DIR/val``, or one
class-per-folder tree from which a stratified validation split is drawn), with the transforms
pretrained weights expect (``train_transform``: a random resized crop and a flip;
``eval_transform``: resize and centre crop, as ``pyconvnet.models.preprocess``; both normalised with
ImageNet's statistics). ``classifier_head`` finds a zoo model's last Linear layer (``fc`` in the
ResNets and GoogLeNet, ``classifier.6`` in VGG and AlexNet), ``load_backbone`` loads a weight file
into everything but that head, which keeps its fresh initialisation sized for the new classes, and
``freeze_backbone`` leaves only the head trainable.
"""

import copy
import os

import numpy as np

from . import data, models, nn
from .checkpoint import load_state_dict_file
from .models import _IMAGENET_MEAN, _IMAGENET_STD

__all__ = ["image_folder_splits", "train_transform", "eval_transform", "eval_settings", "classifier_head",
           "load_backbone", "freeze_backbone"]

# torchvision's evaluation resizes the shorter edge to 256 for a 224 crop: the same ratio at any size.
_RESIZE_RATIO = 256 / 224


def eval_settings(image_size, resize_size=None, mean=_IMAGENET_MEAN, std=_IMAGENET_STD, channels=3):
    """The evaluation preprocessing as plain values (what a checkpoint stores and
    ``pyconvnet.predict`` rebuilds with ``eval_transform(**settings)``): the shorter edge resized
    to ``resize_size`` (default: in torchvision's 256:224 ratio), the centred ``image_size`` crop."""
    resize_size = round(image_size * _RESIZE_RATIO) if resize_size is None else resize_size
    return {"resize_size": resize_size, "crop_size": image_size, "mean": list(mean), "std": list(std),
            "channels": channels}


def eval_transform(resize_size, crop_size, mean, std, channels=3):
    """Resize, centre crop, to tensor, normalise (``models.preprocess``); grey first for one channel."""
    transform = models.preprocess(resize_size, crop_size, tuple(mean), tuple(std))
    if channels == 1:
        transform = data.transforms.Compose([data.transforms.Grayscale(), transform])
    return transform


def train_transform(image_size):
    """A random resized crop of ``image_size`` and a horizontal flip, normalised with ImageNet's statistics."""
    t = data.transforms
    return t.Compose([t.RandomResizedCrop(image_size), t.RandomHorizontalFlip(), t.ToTensor(),
                      t.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)])


def image_folder_splits(folder, image_size=224, val_split=0.1, augment=True, seed=0, limit_train=None,
                        limit_test=None):
    """(train set, validation set, class names) of the images under ``folder``.

    With both ``folder/train`` and ``folder/val`` present they are the splits (their class folders
    must agree); otherwise ``folder`` holds one folder per class and a ``val_split`` share of each
    class's images (at least one, when the class has two or more), drawn with ``seed``, is held out.
    ``limit_train`` / ``limit_test`` keep that many images of a split, drawn at random with ``seed``."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder} is not a directory")
    if not 0 < val_split < 1:
        raise ValueError(f"val_split must be in (0, 1), got {val_split}")
    test_steps = eval_transform(**eval_settings(image_size))
    train_steps = train_transform(image_size) if augment else test_steps
    train_dir, val_dir = os.path.join(folder, "train"), os.path.join(folder, "val")
    if os.path.isdir(train_dir) and os.path.isdir(val_dir):
        train_set = data.ImageFolder(train_dir, transform=train_steps)
        test_set = data.ImageFolder(val_dir, transform=test_steps)
        if test_set.classes != train_set.classes:
            raise ValueError(f"{train_dir} and {val_dir} hold different class folders: {train_set.classes} and "
                             f"{test_set.classes}")
        train_indices, test_indices = np.arange(len(train_set)), np.arange(len(test_set))
    else:
        train_set = data.ImageFolder(folder, transform=train_steps)
        test_set = copy.copy(train_set)  # the same listing, read once
        test_set.transform = test_steps
        train_indices, test_indices = _stratified_split(np.array(train_set.targets), val_split, _rng(seed, 0))
        if not len(test_indices):
            raise ValueError(f"{folder}: no class has two images, so no validation split can be held out")
    return (_limited(train_set, train_indices, limit_train, _rng(seed, 1)),
            _limited(test_set, test_indices, limit_test, _rng(seed, 2)), list(train_set.classes))


def _rng(seed, stream):
    """An independent generator per use, so that each split is the same whichever others are drawn."""
    return np.random.Generator(np.random.PCG64([seed, stream]))


def _stratified_split(targets, val_split, rng):
    """(train indices, held-out indices): a ``val_split`` share of each class's indices held out."""
    train, held_out = [], []
    for label in np.unique(targets):
        indices = rng.permutation(np.flatnonzero(targets == label))
        count = max(1, round(val_split * len(indices))) if len(indices) > 1 else 0
        held_out += list(indices[:count])
        train += list(indices[count:])
    return np.sort(train), np.sort(held_out)


def _limited(dataset, indices, limit, rng):
    if limit is not None and limit < len(indices):
        indices = np.sort(rng.permutation(indices)[:limit])
    return data.Subset(dataset, indices)


def classifier_head(model):
    """(name, layer) of ``model``'s classifier: its last ``nn.Linear`` (``fc``, ``classifier.6``).
    ValueError when the model has none."""
    heads = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no Linear layer to use as its classifier head")
    return heads[-1]


def load_backbone(model, path):
    """Load the weight file ``path`` (``load_state_dict_file``'s formats) into every layer of
    ``model`` but its classifier head, which keeps its own (freshly initialised) weights: the
    file's head may be sized for other classes. Any other missing, unexpected or mis-shaped
    weight raises RuntimeError, as a strict load does, except those of heads the model leaves out
    (an attribute set to None: GoogLeNet's ``aux1`` and ``aux2`` without ``aux_logits``)."""
    head, _ = classifier_head(model)
    head_keys = {f"{head}.weight", f"{head}.bias"}
    own = model.state_dict()
    state = {key: value for key, value in load_state_dict_file(path).items()
             if key not in head_keys and (key in own or getattr(model, key.split(".")[0], False) is not None)}
    missing = [key for key in own if key not in state and key not in head_keys]
    unexpected = [key for key in state if key not in own]
    if missing or unexpected:
        raise RuntimeError(f"{path} does not fit {type(model).__name__} (another architecture?): "
                           f"{_some('missing', missing)}; {_some('unexpected', unexpected)}")
    model.load_state_dict(state, strict=False)


def _some(kind, keys, shown=6):
    """'2 missing keys: a, b' with at most ``shown`` keys named."""
    more = f", ... ({len(keys) - shown} more)" if len(keys) > shown else ""
    return f"{len(keys)} {kind} keys" + (f": {', '.join(keys[:shown])}{more}" if keys else "")


def freeze_backbone(model):
    """Set ``requires_grad=False`` on every parameter but those of the classifier head."""
    model.requires_grad_(False)
    classifier_head(model)[1].requires_grad_(True)
