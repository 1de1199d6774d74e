"""Transforms: hand-computed results, batch vs per-sample agreement, seeding, torch semantics."""

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet.data import transforms as T


def _images(*shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_normalize_by_hand_and_against_torch():
    x = _images(2, 3, 4, 5)
    mean, std = (0.1, 0.2, 0.3), (0.5, 2.0, 0.25)
    out = T.Normalize(mean, std)(x)
    expected = (x - np.float32(mean).reshape(3, 1, 1)) / np.float32(std).reshape(3, 1, 1)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(T.Normalize(mean, std)(x[1]), expected[1])
    torch = pytest.importorskip("torch")
    reference = (torch.from_numpy(x[1]) - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    np.testing.assert_allclose(out[1], reference.numpy(), rtol=0, atol=1e-6)


def test_normalize_errors():
    with pytest.raises(ValueError, match="division by zero"):
        T.Normalize([0.5], [0.0])
    with pytest.raises(ValueError, match="2 values but the input has 3 channels"):
        T.Normalize([0.5, 0.5], [1.0, 1.0])(_images(3, 2, 2))
    with pytest.raises(ValueError, match=r"\(C, H, W\) or a batch"):
        T.Normalize([0.5], [1.0])(_images(2, 2))
    with pytest.raises(TypeError, match="numpy array"):
        T.Normalize([0.5], [1.0])([[1.0]])


def test_pad_forms_and_modes():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    np.testing.assert_array_equal(T.Pad(1, fill=9)(x)[0], [[9, 9, 9, 9, 9], [9, 0, 1, 2, 9], [9, 3, 4, 5, 9],
                                                           [9, 9, 9, 9, 9]])
    # (left/right, top/bottom) and (left, top, right, bottom), as torchvision.
    assert T.Pad((2, 1))(x).shape == (1, 4, 7)
    np.testing.assert_array_equal(T.Pad((1, 0, 0, 1))(x)[0], [[0, 0, 1, 2], [0, 3, 4, 5], [0, 0, 0, 0]])
    np.testing.assert_array_equal(T.Pad(1, padding_mode="edge")(x)[0, 0], [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(T.Pad(1, padding_mode="reflect")(x)[0, 1], [1, 0, 1, 2, 1])
    np.testing.assert_array_equal(T.Pad(1, padding_mode="symmetric")(x)[0, 1], [0, 0, 1, 2, 2])
    assert T.Pad(2)(_images(5, 3, 4, 4)).shape == (5, 3, 8, 8)
    with pytest.raises(ValueError, match="non-negative"):
        T.Pad(-1)
    with pytest.raises(TypeError, match="padding"):
        T.Pad((1, 2, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        T.Pad(1, padding_mode="wrap")


def test_pad_matches_torch_functional_pad():
    torch = pytest.importorskip("torch")
    x = _images(2, 3, 5, 6)
    for mode in ("constant", "reflect", "replicate"):
        ours = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}[mode]
        expected = torch.nn.functional.pad(torch.from_numpy(x), (1, 2, 2, 1), mode=mode).numpy()
        np.testing.assert_array_equal(T.Pad((1, 2, 2, 1), padding_mode=ours)(x), expected)


def test_random_crop_picks_a_window_of_the_padded_image_per_sample():
    x = _images(64, 2, 6, 7)
    crop = T.RandomCrop((4, 5), padding=2, generator=np.random.default_rng(0))
    out = crop(x)
    assert out.shape == (64, 2, 4, 5) and out.dtype == np.float32
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    rng = np.random.default_rng(0)
    tops, lefts = rng.integers(0, 7, size=64), rng.integers(0, 7, size=64)
    for n in range(64):
        np.testing.assert_array_equal(out[n], padded[n, :, tops[n] : tops[n] + 4, lefts[n] : lefts[n] + 5])
    assert len(set(zip(tops.tolist(), lefts.tolist()))) > 10


def test_random_crop_single_sample_and_full_size():
    x = _images(3, 5, 5)
    np.testing.assert_array_equal(T.RandomCrop(5)(x), x)
    assert T.RandomCrop(3)(x).shape == (3, 3, 3)
    assert T.RandomCrop(8, pad_if_needed=True)(x).shape == (3, 8, 8)
    with pytest.raises(ValueError, match="larger than the"):
        T.RandomCrop(6)(x)
    with pytest.raises(ValueError, match="positive"):
        T.RandomCrop(0)


def test_random_crop_offsets_are_uniform_over_all_positions():
    x = np.zeros((4000, 1, 3, 3), np.float32)
    x[:, 0, 1, 1] = 1
    out = T.RandomCrop(3, padding=1, generator=np.random.default_rng(1))(x)
    # The centre pixel lands at one of 9 positions, each with probability 1/9.
    counts = out.reshape(4000, 9).argmax(axis=1)
    frequencies = np.bincount(counts, minlength=9) / 4000
    assert np.all(np.abs(frequencies - 1 / 9) < 0.03)


def test_horizontal_flip_per_sample():
    x = _images(200, 2, 3, 4)
    out = T.RandomHorizontalFlip(p=0.5, generator=np.random.default_rng(5))(x)
    flip = np.random.default_rng(5).random(200) < 0.5
    np.testing.assert_array_equal(out[flip], x[flip][..., ::-1])
    np.testing.assert_array_equal(out[~flip], x[~flip])
    assert 60 < flip.sum() < 140
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x[0]), x[0][..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x), x)
    with pytest.raises(ValueError, match="probability"):
        T.RandomHorizontalFlip(p=1.5)


def test_global_generator_and_manual_seed():
    x = _images(16, 1, 8, 8)
    augment = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip()])
    pcn.manual_seed(11)
    a = augment(x)
    pcn.manual_seed(11)
    np.testing.assert_array_equal(augment(x), a)
    assert not np.array_equal(augment(x), a)


def test_use_generator_scopes_the_randomness():
    x = _images(16, 1, 8, 8)
    flip = T.RandomHorizontalFlip()
    with T.use_generator(np.random.default_rng(2)):
        a = flip(x)
    with T.use_generator(np.random.default_rng(2)):
        np.testing.assert_array_equal(flip(x), a)


def test_compose_is_batched_only_when_every_part_is():
    assert T.Compose([T.Pad(1), T.Normalize([0.0], [1.0])]).batched
    assert not T.Compose([T.Pad(1), lambda x: x]).batched
    x = _images(1, 2, 2)
    np.testing.assert_array_equal(T.Compose([T.Pad(1), T.Normalize([0.5], [0.5])])(x), (np.pad(x, ((0, 0), (1, 1), (1, 1))) - 0.5) / 0.5)
    with pytest.raises(TypeError, match="not callable"):
        T.Compose([3])
