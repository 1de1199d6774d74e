"""pyconvnet.vision.utils.make_grid / save_image: torchvision's documented layout, worked by hand."""

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet.vision.utils import make_grid, save_image


def _batch(*shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_layout_rows_of_nrow_with_padding_and_pad_value():
    images = _batch(3, 3, 2, 4)
    grid = make_grid(pcn.tensor(images), nrow=2, padding=1, pad_value=0.5).numpy()
    # 2 columns, ceil(3 / 2) = 2 rows; cells of (2 + 1) x (4 + 1) plus one padding at the end
    assert grid.shape == (3, 2 * 3 + 1, 2 * 5 + 1) and grid.dtype == np.float32
    expected = np.full((3, 7, 11), 0.5, np.float32)
    for k in range(3):
        top, left = (k // 2) * 3 + 1, (k % 2) * 5 + 1
        expected[:, top : top + 2, left : left + 4] = images[k]
    np.testing.assert_array_equal(grid, expected)


def test_defaults_single_channel_and_shapes():
    images = _batch(10, 1, 3, 3)
    grid = make_grid(pcn.tensor(images)).numpy()  # nrow=8, padding=2, pad_value=0
    assert grid.shape == (3, 2 * 5 + 2, 8 * 5 + 2)
    np.testing.assert_array_equal(grid[:, 2:5, 2:5], np.repeat(images[0], 3, axis=0))
    np.testing.assert_array_equal(grid[:, 7:10, 7:10], np.repeat(images[9], 3, axis=0))
    assert np.all(grid[:, 7:10, 12:] == 0)  # the empty cells of the last row
    one = make_grid(pcn.tensor(images[0]))  # one image comes back alone, as three channels
    assert tuple(one.shape) == (3, 3, 3)
    assert tuple(make_grid(pcn.tensor(images[0, 0])).shape) == (3, 3, 3)
    listed = make_grid([pcn.tensor(image) for image in images], nrow=5, padding=0).numpy()
    assert listed.shape == (3, 6, 15)
    np.testing.assert_array_equal(listed[:, 3:, :3], np.repeat(images[5], 3, axis=0))


def test_normalize_over_the_batch_each_image_and_a_range():
    images = _batch(2, 3, 2, 2) * 4 - 1
    grid = make_grid(pcn.tensor(images), normalize=True, padding=0).numpy()
    scaled = (images - images.min()) / (images.max() - images.min())
    np.testing.assert_allclose(grid, np.concatenate(list(scaled), axis=2), rtol=1e-6)
    each = make_grid(pcn.tensor(images), normalize=True, scale_each=True, padding=0).numpy()
    for k in range(2):
        part = each[:, :, 2 * k : 2 * k + 2]
        assert part.min() == 0 and part.max() == pytest.approx(1)
    ranged = make_grid(pcn.tensor(images), normalize=True, value_range=(0.0, 2.0), padding=0).numpy()
    np.testing.assert_allclose(ranged, np.concatenate(list(np.clip(images, 0, 2) / 2), axis=2), rtol=1e-6)
    constant = make_grid(pcn.ones(2, 1, 2, 2), normalize=True).numpy()
    assert np.all(constant == 0)  # a zero range divides by 1e-5 after subtracting the minimum
    with pytest.raises(TypeError, match="tuple"):
        make_grid(pcn.tensor(images), normalize=True, value_range=[0, 1])


def test_errors():
    with pytest.raises(TypeError, match="Tensor"):
        make_grid(np.zeros((2, 3, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        make_grid(pcn.zeros(1, 1, 1, 2, 2))
    with pytest.raises(ValueError, match="nrow"):
        make_grid(pcn.zeros(2, 3, 2, 2), nrow=0)


def test_save_image_rounds_to_bytes(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    images = _batch(2, 3, 4, 4)
    path = tmp_path / "grid.png"
    save_image(pcn.tensor(images), path, nrow=1, padding=1)
    saved = np.asarray(Image.open(path))
    grid = make_grid(pcn.tensor(images), nrow=1, padding=1).numpy()
    np.testing.assert_array_equal(saved, np.floor(grid * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0))
    assert saved.shape == (11, 6, 3)
