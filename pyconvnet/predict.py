"""Classifying images with a training checkpoint: ``pyconvnet predict`` and, for Python, ``Classifier``.

A checkpoint written by ``pyconvnet train`` keeps the class names and the evaluation preprocessing
of its run (for an image folder: resize, centre crop, ImageNet normalisation at the run's
``image_size``), so images are prepared exactly as the validation images were.
"""

import os

import numpy as np

from . import finetune
from ._runs import checkpoint_eval_settings, class_names, load_model
from .autograd import no_grad
from .creation import from_numpy
from .data.folder import IMG_EXTENSIONS, pil_loader

__all__ = ["Classifier", "image_paths"]

_BATCH = 32


class Classifier:
    """The model saved in training checkpoint ``path``, ready to classify images.

    ``classes`` are the class names, ``transform`` the evaluation preprocessing (a transform taking a
    PIL image, as ``pyconvnet.models.preprocess``) and ``model`` the network, in eval mode.
    ``probabilities(images)`` gives an (N, classes) array of softmax probabilities and
    ``predict(images, top_k)`` each image's ``top_k`` (class name, probability) pairs, most likely
    first; ``images`` are PIL images or paths of image files."""

    def __init__(self, path):
        self.model, state = load_model(path)
        self.model.eval()
        self.classes = list(state.get("classes") or class_names(state["config"]))
        self.transform = finetune.eval_transform(**checkpoint_eval_settings(state))

    def probabilities(self, images):
        images = list(images)
        chunks = []
        with no_grad():
            for start in range(0, len(images), _BATCH):
                batch = np.stack([self.transform(_opened(image)).numpy() for image in images[start:start + _BATCH]])
                logits = self.model(from_numpy(batch)).numpy().astype(np.float64)
                exp = np.exp(logits - logits.max(axis=1, keepdims=True))
                chunks.append(exp / exp.sum(axis=1, keepdims=True))
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes)))

    def predict(self, images, top_k=5):
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        ranked = []
        for row in self.probabilities(images):
            order = np.argsort(-row, kind="stable")[:top_k]
            ranked.append([(self.classes[i], float(row[i])) for i in order])
        return ranked


def _opened(image):
    return pil_loader(image) if isinstance(image, (str, os.PathLike)) else image


def image_paths(paths):
    """The image files named by ``paths``: a file as given, a directory walked (sorted) for files
    with an image extension. FileNotFoundError for a path that does not exist or a directory
    holding no image."""
    found = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            inside = [os.path.join(folder, name) for folder, _, names in sorted(os.walk(path, followlinks=True))
                      for name in sorted(names) if name.lower().endswith(IMG_EXTENSIONS)]
            if not inside:
                raise FileNotFoundError(f"{path}: no image files (extensions {', '.join(IMG_EXTENSIONS)})")
            found += inside
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return found
