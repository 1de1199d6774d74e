"""pyconvnet.models.preprocess: the ImageNet evaluation transform (resize, centre crop, ToTensor,
normalise), checked against the same steps in numpy and against torchvision's preset."""

import numpy as np
import pytest
from PIL import Image

import pyconvnet as pcn


def _image(width, height):
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("width, height", [(300, 200), (97, 131)])
def test_preprocess_matches_the_steps_done_in_numpy(width, height):
    image = _image(width, height)
    actual = pcn.models.preprocess(resize_size=64, crop_size=56)(image)
    short = min(width, height)
    size = (64 * width // short, 64 * height // short)  # the shorter edge becomes 64, the other is scaled
    resized = np.asarray(image.resize(size, Image.BILINEAR), dtype=np.float32) / 255
    top, left = (size[1] - 56 + 1) // 2, (size[0] - 56 + 1) // 2
    crop = resized[top:top + 56, left:left + 56].transpose(2, 0, 1)
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    assert tuple(actual.shape) == (3, 56, 56) and actual.dtype == pcn.float32
    np.testing.assert_allclose(actual.numpy(), (crop - mean) / std, rtol=1e-5, atol=1e-5)


def test_preprocess_matches_torchvision_weights_transforms():
    pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    image = _image(320, 240)
    expected = models.ResNet18_Weights.IMAGENET1K_V1.transforms()(image).numpy()
    actual = pcn.models.preprocess()(image).numpy()
    assert actual.shape == expected.shape == (3, 224, 224)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)
