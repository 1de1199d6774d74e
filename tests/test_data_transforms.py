"""The transforms' batch path (``Transform.batch`` on (N, C, H, W) arrays): hand-computed results,
per-sample randomness, agreement with the per-sample path, seeding."""

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet.data import transforms as T

Image = pytest.importorskip("PIL.Image")


def _images(*shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _bytes(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_normalize_by_hand_and_against_torch():
    x = _images(2, 3, 4, 5)
    mean, std = (0.1, 0.2, 0.3), (0.5, 2.0, 0.25)
    out = T.Normalize(mean, std).batch(x)
    expected = (x - np.float32(mean).reshape(3, 1, 1)) / np.float32(std).reshape(3, 1, 1)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(T.Normalize(mean, std)(pcn.tensor(x[1])).numpy(), expected[1])
    torch = pytest.importorskip("torch")
    reference = (torch.from_numpy(x[1]) - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    np.testing.assert_allclose(out[1], reference.numpy(), rtol=0, atol=1e-6)


def test_normalize_errors():
    with pytest.raises(ValueError, match="division by zero"):
        T.Normalize([0.5], [0.0])
    with pytest.raises(ValueError, match="2 values but the input has 3 channels"):
        T.Normalize([0.5, 0.5], [1.0, 1.0]).batch(_images(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        T.Normalize([0.5], [1.0]).batch(_images(2, 2))
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize([0.5], [1.0]).batch(_bytes(1, 1, 2, 2))


def test_pad_forms_and_modes():
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(T.Pad(1, fill=9).batch(x)[0, 0], [[9, 9, 9, 9, 9], [9, 0, 1, 2, 9], [9, 3, 4, 5, 9],
                                                                    [9, 9, 9, 9, 9]])
    # (left/right, top/bottom) and (left, top, right, bottom), as torchvision.
    assert T.Pad((2, 1)).batch(x).shape == (1, 1, 4, 7)
    np.testing.assert_array_equal(T.Pad((1, 0, 0, 1)).batch(x)[0, 0], [[0, 0, 1, 2], [0, 3, 4, 5], [0, 0, 0, 0]])
    np.testing.assert_array_equal(T.Pad(1, padding_mode="edge").batch(x)[0, 0, 0], [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(T.Pad(1, padding_mode="reflect").batch(x)[0, 0, 1], [1, 0, 1, 2, 1])
    np.testing.assert_array_equal(T.Pad(1, padding_mode="symmetric").batch(x)[0, 0, 1], [0, 0, 1, 2, 2])
    rgb = T.Pad(1, fill=(1, 2, 3)).batch(np.zeros((2, 3, 2, 2), np.uint8))
    assert rgb.shape == (2, 3, 4, 4) and rgb[1, :, 0, 0].tolist() == [1, 2, 3] and rgb[1, :, 1, 1].tolist() == [0, 0, 0]
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
        np.testing.assert_array_equal(T.Pad((1, 2, 2, 1), padding_mode=ours).batch(x), expected)
        np.testing.assert_array_equal(T.Pad((1, 2, 2, 1), padding_mode=ours)(pcn.tensor(x)).numpy(), expected)


def test_random_crop_picks_a_window_of_the_padded_image_per_sample():
    x = _bytes(64, 2, 6, 7)
    with T.use_generator(np.random.default_rng(0)):
        out = T.RandomCrop((4, 5), padding=2).batch(x)
    assert out.shape == (64, 2, 4, 5) and out.dtype == np.uint8
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    rng = np.random.default_rng(0)
    tops, lefts = rng.integers(0, 7, size=64), rng.integers(0, 7, size=64)
    for n in range(64):
        np.testing.assert_array_equal(out[n], padded[n, :, tops[n] : tops[n] + 4, lefts[n] : lefts[n] + 5])
    assert len(set(zip(tops.tolist(), lefts.tolist()))) > 10


def test_random_crop_full_size_and_pad_if_needed():
    x = _images(1, 3, 5, 5)
    np.testing.assert_array_equal(T.RandomCrop(5).batch(x), x)
    assert T.RandomCrop(3).batch(x).shape == (1, 3, 3, 3)
    assert T.RandomCrop(8, pad_if_needed=True).batch(x).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="larger than the"):
        T.RandomCrop(6).batch(x)
    with pytest.raises(ValueError, match="positive"):
        T.RandomCrop(0)


def test_random_crop_offsets_are_uniform_over_all_positions():
    x = np.zeros((4000, 1, 3, 3), np.float32)
    x[:, 0, 1, 1] = 1
    with T.use_generator(np.random.default_rng(1)):
        out = T.RandomCrop(3, padding=1).batch(x)
    # The centre pixel lands at one of 9 positions, each with probability 1/9.
    counts = out.reshape(4000, 9).argmax(axis=1)
    frequencies = np.bincount(counts, minlength=9) / 4000
    assert np.all(np.abs(frequencies - 1 / 9) < 0.03)


@pytest.mark.parametrize("cls,axis", [(T.RandomHorizontalFlip, -1), (T.RandomVerticalFlip, -2)])
def test_flips_per_sample(cls, axis):
    x = _images(200, 2, 3, 4)
    with T.use_generator(np.random.default_rng(5)):
        out = cls(p=0.5).batch(x)
    flip = np.random.default_rng(5).random(200) < 0.5
    np.testing.assert_array_equal(out[flip], np.flip(x[flip], axis))
    np.testing.assert_array_equal(out[~flip], x[~flip])
    assert 60 < flip.sum() < 140
    np.testing.assert_array_equal(cls(p=0.0).batch(x), x)
    with pytest.raises(ValueError, match="probability"):
        cls(p=1.5)


def test_global_generator_and_manual_seed():
    x = _bytes(16, 1, 8, 8)
    augment = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip(), T.ToTensor()])
    pcn.manual_seed(11)
    a = augment.batch(x)
    pcn.manual_seed(11)
    np.testing.assert_array_equal(augment.batch(x), a)
    assert not np.array_equal(augment.batch(x), a)


def test_compose_is_batched_only_when_every_part_is():
    assert T.Compose([T.Pad(1), T.ToTensor(), T.Normalize([0.0], [1.0])]).batched
    assert not T.Compose([T.Pad(1), T.Lambda(lambda x: x)]).batched
    assert not T.Compose([T.Resize(4), T.ToTensor()]).batched
    with pytest.raises(TypeError, match="not callable"):
        T.Compose([3])


def test_deterministic_batch_equals_the_per_sample_path():
    """uint8 batches stand for PIL images until ToTensor: both paths give the same numbers."""
    x = _bytes(5, 3, 7, 9)
    for crop in ((8, 6), (14, 10), (3, 12)):  # inside, larger than (padded), one side each
        pipeline = T.Compose([T.Pad((1, 2), fill=(10, 20, 30)), T.CenterCrop(crop), T.ToTensor(),
                              T.Normalize([0.5, 0.4, 0.3], [0.2, 0.3, 0.4])])
        batch = pipeline.batch(x)
        for n in range(5):
            one = pipeline(Image.fromarray(x[n].transpose(1, 2, 0))).numpy()
            np.testing.assert_allclose(batch[n], one, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(T.PILToTensor().batch(x), x.astype(np.int64))
    with pytest.raises(TypeError, match="uint8"):
        T.ToTensor().batch(_images(1, 1, 2, 2))


def test_random_batch_has_the_per_sample_distribution():
    """A 2x2 image padded by 1 and cropped back: 9 offsets x 2 flips, equally likely either way."""
    x = np.arange(4, dtype=np.uint8).reshape(1, 1, 2, 2) + 1
    augment = T.Compose([T.RandomCrop(2, padding=1), T.RandomHorizontalFlip(), T.PILToTensor()])
    with T.use_generator(np.random.default_rng(3)):
        batched = augment.batch(np.repeat(x, 3600, axis=0))
        single = np.stack([augment(Image.fromarray(x[0, 0])).numpy() for _ in range(3600)])
    for out in (batched, single):
        _, counts = np.unique(out.reshape(3600, 4), axis=0, return_counts=True)
        assert len(counts) == 18 and np.all(np.abs(counts / 3600 - 1 / 18) < 0.02)
