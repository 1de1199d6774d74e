"""pyconvnet.vision.transforms on single samples (PIL images and Tensors), as torchvision's.

torchvision cannot be installed beside torch here, so the expectations are torchvision's
documented rules worked by hand, Pillow itself, and torch ops where the semantics are the same."""

import colorsys

import numpy as np
import pytest

import pyconvnet as pcn
from pyconvnet.vision import transforms as T
from pyconvnet.vision.transforms import functional as TF

Image = pytest.importorskip("PIL.Image")
torch = pytest.importorskip("torch")


def _rgb(height=6, width=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _tensor(height=6, width=8, channels=3, seed=0, lead=()):
    return pcn.tensor(np.random.default_rng(seed).random((*lead, channels, height, width), dtype=np.float32))


def test_module_paths():
    import pyconvnet.data

    assert T.Compose is pyconvnet.data.transforms.Compose and TF.resize is pyconvnet.data.functional.resize
    assert T.functional is TF and T.InterpolationMode.BILINEAR.value == "bilinear"


# ----------------------------------------------------------------------------- conversions
def test_to_tensor_from_pil_and_numpy():
    pixels = _rgb()
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).numpy()
    for source in (Image.fromarray(pixels), pixels):
        out = T.ToTensor()(source)
        assert isinstance(out, pcn.Tensor) and out.dtype == pcn.float32 and tuple(out.shape) == (3, 6, 8)
        np.testing.assert_array_equal(out.numpy(), expected)
    gray = T.ToTensor()(Image.fromarray(pixels[..., 0]))
    np.testing.assert_array_equal(gray.numpy(), expected[:1])
    floats = np.random.default_rng(1).random((4, 5, 2))  # non-uint8 arrays are taken as they are
    np.testing.assert_allclose(T.ToTensor()(floats).numpy(), floats.transpose(2, 0, 1), rtol=1e-7)
    np.testing.assert_array_equal(T.ToTensor()(Image.fromarray(pixels[..., 0] > 127)).numpy()[0],
                                  (pixels[..., 0] > 127).astype(np.float32))
    with pytest.raises(TypeError, match="PIL Image or a numpy array"):
        T.ToTensor()([1, 2])


def test_pil_to_tensor_and_back():
    pixels = _rgb()
    values = T.PILToTensor()(Image.fromarray(pixels))
    assert values.dtype == pcn.int64 and values.numpy().tolist() == pixels.transpose(2, 0, 1).tolist()
    assert np.array_equal(np.asarray(T.ToPILImage()(values)), pixels)
    with pytest.raises(TypeError, match="PIL Image"):
        T.PILToTensor()(pcn.zeros(1, 2, 2))


def test_to_pil_image_truncates_like_torch():
    x = np.random.default_rng(2).random((3, 4, 5), dtype=np.float32)
    image = T.ToPILImage()(pcn.tensor(x))
    assert image.mode == "RGB" and image.size == (5, 4)
    expected = torch.from_numpy(x).mul(255).byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.asarray(image), expected)
    assert T.ToPILImage()(pcn.tensor(x[:1])).mode == "L"
    assert T.ToPILImage()(np.zeros((4, 5, 4), np.uint8)).mode == "RGBA"
    assert T.ToPILImage(mode="L")(pcn.tensor(x)).mode == "L"
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        T.ToPILImage()(pcn.tensor(np.full((1, 2, 2), 300)))


def test_normalize_on_tensors_like_torch():
    x = _tensor(lead=(2,))
    mean, std = [0.1, 0.2, 0.3], [0.5, 2.0, 0.25]
    expected = (torch.from_numpy(x.numpy()) - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    out = T.Normalize(mean, std)(x)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=0, atol=1e-6)
    assert out is not x
    assert T.Normalize(mean, std, inplace=True)(x) is x
    np.testing.assert_allclose(x.numpy(), expected.numpy(), rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize(mean, std)(Image.fromarray(_rgb()))
    with pytest.raises(TypeError, match="float"):
        T.Normalize(mean, std)(pcn.tensor(np.ones((3, 2, 2), np.int64)))


# ----------------------------------------------------------------------------- geometry
def test_pad_on_pil_and_tensor():
    pixels = _rgb(3, 4)
    padded = T.Pad((1, 2), fill=(9, 8, 7))(Image.fromarray(pixels))
    assert padded.mode == "RGB" and padded.size == (6, 7)
    array = np.asarray(padded)
    np.testing.assert_array_equal(array[2:5, 1:5], pixels)
    assert array[0, 0].tolist() == [9, 8, 7] and array[6, 5].tolist() == [9, 8, 7]
    reflected = T.Pad(1, padding_mode="reflect")(Image.fromarray(pixels))
    np.testing.assert_array_equal(np.asarray(reflected), np.pad(pixels, ((1, 1), (1, 1), (0, 0)), mode="reflect"))
    x = _tensor(lead=(2,))
    expected = torch.nn.functional.pad(torch.from_numpy(x.numpy()), (1, 1, 2, 2), value=0.5).numpy()
    np.testing.assert_array_equal(T.Pad((1, 2), fill=0.5)(x).numpy(), expected)


def test_random_crop_draws_top_then_left_and_crops_every_image_alike():
    x = _tensor(lead=(2,))
    with T.use_generator(np.random.default_rng(4)):
        out = T.RandomCrop((4, 5), padding=1)(x)
    rng = np.random.default_rng(4)
    top, left = rng.integers(0, 8 - 4 + 1), rng.integers(0, 10 - 5 + 1)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    np.testing.assert_array_equal(out.numpy(), padded[..., top : top + 4, left : left + 5])
    pixels = _rgb()
    with T.use_generator(np.random.default_rng(4)):
        image = T.RandomCrop((4, 5), padding=1)(Image.fromarray(pixels))
    assert image.size == (5, 4)
    np.testing.assert_array_equal(np.asarray(image), np.pad(pixels, ((1, 1), (1, 1), (0, 0)))[top : top + 4, left : left + 5])
    small = T.RandomCrop(10, pad_if_needed=True, fill=3)(Image.fromarray(pixels))
    assert small.size == (10, 10)
    with pytest.raises(ValueError, match="larger than"):
        T.RandomCrop(9)(x)


def test_random_crop_get_params():
    x = _tensor(6, 8)
    with T.use_generator(np.random.default_rng(7)):
        params = T.RandomCrop.get_params(x, (4, 5))
    rng = np.random.default_rng(7)
    assert params == (int(rng.integers(0, 3)), int(rng.integers(0, 4)), 4, 5)


@pytest.mark.parametrize("cls,flip", [(T.RandomHorizontalFlip, np.fliplr), (T.RandomVerticalFlip, np.flipud)])
def test_flips_on_pil_and_tensor(cls, flip):
    pixels = _rgb()
    np.testing.assert_array_equal(np.asarray(cls(p=1.0)(Image.fromarray(pixels))), flip(pixels))
    x = _tensor()
    np.testing.assert_array_equal(cls(p=1.0)(x).numpy(), flip(x.numpy().transpose(1, 2, 0)).transpose(2, 0, 1))
    assert cls(p=0.0)(x) is x
    torch_flip = torch.flip(torch.from_numpy(x.numpy()), dims=[-1 if cls is T.RandomHorizontalFlip else -2])
    np.testing.assert_array_equal(cls(p=1.0)(x).numpy(), torch_flip.numpy())


def test_center_crop_rounds_and_pads_like_torchvision():
    x = pcn.tensor(np.arange(25, dtype=np.float32).reshape(1, 5, 5))
    # top = left = int(round((5 - 2) / 2)) = 2 (round half to even)
    np.testing.assert_array_equal(T.CenterCrop(2)(x).numpy()[0], [[12, 13], [17, 18]])
    np.testing.assert_array_equal(T.CenterCrop((3, 1))(x).numpy()[0], [[7], [12], [17]])
    bigger = T.CenterCrop((7, 8))(x).numpy()[0]  # padded (left 1, top 1, right 2, bottom 1) with zeros
    assert bigger.shape == (7, 8) and bigger[1, 1] == 0 and bigger[1:6, 1:6].tolist() == x.numpy()[0].tolist()
    pixels = _rgb(5, 5)
    np.testing.assert_array_equal(np.asarray(T.CenterCrop(2)(Image.fromarray(pixels))), pixels[2:4, 2:4])


@pytest.mark.parametrize("size,expected", [(3, (3, 4)), ([3], (3, 4)), ((5, 2), (5, 2)), (12, (12, 16))])
def test_resize_output_sizes(size, expected):
    """An int sets the shorter edge; the longer is int(size * long / short)."""
    assert T.Resize(size)(Image.fromarray(_rgb(6, 8))).size == expected[::-1]
    assert tuple(T.Resize(size)(_tensor(6, 8)).shape) == (3, *expected)


def test_resize_max_size_and_errors():
    assert tuple(T.Resize(3, max_size=5)(_tensor(6, 12)).shape) == (3, 2, 5)
    with pytest.raises(ValueError, match="max_size"):
        T.Resize((3, 3), max_size=5)
    with pytest.raises(ValueError, match="strictly greater"):
        T.Resize(3, max_size=3)(_tensor())
    with pytest.raises(TypeError, match="InterpolationMode"):
        T.Resize(3, interpolation="bilinear")
    with pytest.raises(ValueError, match="NEAREST and BILINEAR"):
        T.Resize(3, interpolation=T.InterpolationMode.BICUBIC)(_tensor())


@pytest.mark.parametrize("size", [(3, 5), (2, 3), (13, 11), (6, 8), (7, 20)])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_tensor_resize_matches_torch_interpolate(size, mode):
    x = _tensor(lead=(2,))
    ours = T.Resize(size, interpolation=T.InterpolationMode(mode))(x).numpy()
    kwargs = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
    theirs = torch.nn.functional.interpolate(torch.from_numpy(x.numpy()), size=size, mode=mode, **kwargs).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-6)
    plain = torch.nn.functional.interpolate(torch.from_numpy(x.numpy()), size=size, mode="bilinear",
                                            align_corners=False).numpy()
    np.testing.assert_allclose(T.Resize(size, antialias=False)(x).numpy(), plain, rtol=0, atol=2e-6)


def test_pil_resize_is_pillows():
    pixels = _rgb(6, 8)
    out = T.Resize((3, 5), interpolation=T.InterpolationMode.NEAREST)(Image.fromarray(pixels))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(Image.fromarray(pixels).resize((5, 3), Image.NEAREST)))
    # Pillow's bilinear resize and the Tensor path use the same filter: they agree to rounding.
    pil = T.ToTensor()(T.Resize((3, 5))(Image.fromarray(pixels))).numpy()
    np.testing.assert_allclose(pil, T.Resize((3, 5))(T.ToTensor()(pixels)).numpy(), rtol=0, atol=1.5 / 255)


def test_random_resized_crop():
    x = _tensor(20, 30)
    with T.use_generator(np.random.default_rng(0)):
        for _ in range(50):
            top, left, h, w = T.RandomResizedCrop.get_params(x, (0.2, 0.9), (0.5, 2.0))
            assert 0 <= top <= 20 - h and 0 <= left <= 30 - w
            assert 0.2 * 600 * 0.8 <= h * w <= 0.9 * 600 * 1.2 and 0.4 <= w / h <= 2.5
    # No window of 3 to 4 times the area exists: the fallback is the centred window with the
    # nearest allowed aspect ratio (30 / 20 = 1.5 is above 4/3, so h = 20, w = round(20 * 4/3) = 27).
    assert T.RandomResizedCrop.get_params(x, (3.0, 4.0), (3 / 4, 4 / 3)) == (0, 1, 20, 27)
    out = T.RandomResizedCrop(8)(x)
    assert tuple(out.shape) == (3, 8, 8)
    assert T.RandomResizedCrop((4, 6))(Image.fromarray(_rgb(20, 30))).size == (6, 4)
    with pytest.raises(ValueError, match="ordered"):
        T.RandomResizedCrop(8, scale=(0.9, 0.1))


# ----------------------------------------------------------------------------- colour
def test_brightness_contrast_saturation_on_tensors_like_torch_ops():
    x = _tensor(lead=(2,))
    t = torch.from_numpy(x.numpy())
    gray = (0.2989 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2]).unsqueeze(1)
    np.testing.assert_allclose(TF.adjust_brightness(x, 1.7).numpy(), (1.7 * t).clamp(0, 1).numpy(), atol=1e-6)
    mean = gray.mean(dim=(-3, -2, -1), keepdim=True)
    np.testing.assert_allclose(TF.adjust_contrast(x, 0.4).numpy(), (0.4 * t + 0.6 * mean).clamp(0, 1).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(TF.adjust_saturation(x, 2.5).numpy(), (2.5 * t - 1.5 * gray).clamp(0, 1).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(TF.rgb_to_grayscale(x).numpy(), gray.numpy(), atol=1e-6)
    assert tuple(T.Grayscale(3)(x).shape) == (2, 3, 6, 8)


def test_hue_on_tensors_against_colorsys():
    x = _tensor(3, 4, seed=3)
    out = TF.adjust_hue(x, 0.3).numpy()
    for i in range(3):
        for j in range(4):
            h, s, v = colorsys.rgb_to_hsv(*x.numpy()[:, i, j])
            np.testing.assert_allclose(out[:, i, j], colorsys.hsv_to_rgb((h + 0.3) % 1.0, s, v), atol=1e-5)
    with pytest.raises(ValueError, match=r"\[-0.5, 0.5\]"):
        TF.adjust_hue(x, 0.6)


@pytest.mark.parametrize("adjust,factor,tolerance", [
    (TF.adjust_brightness, 1.4, 1.01 / 255), (TF.adjust_contrast, 0.6, 1.5 / 255),  # Pillow: integer mean
    (TF.adjust_saturation, 1.8, 2.01 / 255), (TF.adjust_hue, -0.2, 0.05), (TF.adjust_hue, 0.1, 0.05),
])
def test_pil_and_tensor_colour_paths_agree(adjust, factor, tolerance):
    pixels = _rgb(8, 8, seed=6)
    pil = T.ToTensor()(adjust(Image.fromarray(pixels), factor)).numpy()
    tensor = adjust(T.ToTensor()(pixels), factor).numpy()
    np.testing.assert_allclose(pil, tensor, rtol=0, atol=tolerance)


def test_grayscale_on_pil():
    pixels = _rgb()
    gray = T.Grayscale()(Image.fromarray(pixels))
    assert gray.mode == "L" and np.array_equal(np.asarray(gray), np.asarray(Image.fromarray(pixels).convert("L")))
    three = np.asarray(T.Grayscale(num_output_channels=3)(Image.fromarray(pixels)))
    assert three.shape == (6, 8, 3) and np.all(three == np.asarray(gray)[..., None])
    assert T.RandomGrayscale(p=1.0)(Image.fromarray(pixels)).mode == "RGB"


def test_color_jitter_ranges_order_and_effect():
    jitter = T.ColorJitter(brightness=0.5, contrast=(0.2, 0.3), saturation=0, hue=0.1)
    assert jitter.brightness == (0.5, 1.5) and jitter.contrast == (0.2, 0.3)
    assert jitter.saturation is None and jitter.hue == (-0.1, 0.1)
    assert T.ColorJitter(brightness=2).brightness == (0.0, 3.0)
    with T.use_generator(np.random.default_rng(0)):
        order, b, c, s, h = T.ColorJitter.get_params(jitter.brightness, jitter.contrast, None, jitter.hue)
    assert sorted(order) == [0, 1, 2, 3] and 0.5 <= b <= 1.5 and 0.2 <= c <= 0.3 and s is None and -0.1 <= h <= 0.1
    x = _tensor()
    with T.use_generator(np.random.default_rng(0)):
        out = jitter(x).numpy()
    expected = x
    for index in order:
        expected = [TF.adjust_brightness, TF.adjust_contrast, None, TF.adjust_hue][index](expected, [b, c, s, h][index]) \
            if [b, c, s, h][index] is not None else expected
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-6)
    assert T.ColorJitter(0.4, 0.4, 0.4, 0.1)(Image.fromarray(_rgb())).mode == "RGB"
    with pytest.raises(ValueError, match="non negative"):
        T.ColorJitter(brightness=-1)
    with pytest.raises(ValueError, match="within"):
        T.ColorJitter(hue=0.7)


# ----------------------------------------------------------------------------- composition
def test_compose_lambda_random_apply_and_a_cifar_pipeline():
    pipeline = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    out = pipeline(Image.fromarray(_rgb(32, 32)))
    assert isinstance(out, pcn.Tensor) and tuple(out.shape) == (3, 32, 32) and out.dtype == pcn.float32
    assert "RandomCrop" in repr(pipeline)
    double = T.Lambda(lambda t: t * 2)
    np.testing.assert_array_equal(double(pcn.ones(1, 2, 2)).numpy(), np.full((1, 2, 2), 2))
    assert T.RandomApply([double], p=0.0)(pcn.ones(1)).numpy().tolist() == [1]
    assert T.RandomApply([double], p=1.0)(pcn.ones(1)).numpy().tolist() == [2]
    with pytest.raises(TypeError, match="callable"):
        T.Lambda(3)


def test_wrong_input_types_are_type_errors():
    for transform in (T.RandomCrop(2), T.CenterCrop(2), T.Resize(2), T.RandomHorizontalFlip(p=1.0), T.Pad(1)):
        with pytest.raises(TypeError, match="PIL Image or a Tensor"):
            transform(np.zeros((3, 4, 4), np.float32))


# ----------------------------------------------------------------------------- rotation
def _theta(height, width, angle, centre):
    """torch.affine_grid's theta for the rotation, found by mapping three normalised points."""
    cos, sin = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    cx, cy = centre

    def source(u, v):
        x, y = (u + 1) * width / 2, (v + 1) * height / 2
        sx, sy = cos * (x - cx) - sin * (y - cy) + cx, sin * (x - cx) + cos * (y - cy) + cy
        return np.array([sx / (width / 2) - 1, sy / (height / 2) - 1])

    origin = source(0, 0)
    return np.stack([source(1, 0) - origin, source(0, 1) - origin, origin], axis=1)


# (90 degrees about the centre of a 6x7 image would put every source on a pixel edge, where
# nearest rounding is a tie that float error breaks either way; about (3.5, 3.5) it hits centres.)
@pytest.mark.parametrize("angle,centre", [(90, (3.5, 3.5)), (33.0, None), (-71.5, (2.0, 1.5)), (200, (0.0, 5.0))])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_tensor_rotate_matches_torch_grid_sample(angle, centre, mode):
    x = _tensor(6, 7, lead=(2,))
    ours = TF.rotate(x, angle, T.InterpolationMode(mode), center=centre).numpy()
    theta = torch.tensor(_theta(6, 7, angle, centre or (3.5, 3.0)), dtype=torch.float32)[None].expand(2, 2, 3)
    grid = torch.nn.functional.affine_grid(theta, (2, 3, 6, 7), align_corners=False)
    theirs = torch.nn.functional.grid_sample(torch.from_numpy(x.numpy()), grid, mode=mode, align_corners=False)
    # nearest: a source landing within float error of a pixel edge may round either way
    mismatched = np.abs(ours - theirs.numpy()) > 1e-4
    assert mismatched.mean() < (0.02 if mode == "nearest" else 1e-9)


def test_rotation_direction_expand_and_fill():
    x = _tensor(4, 6)
    square = _tensor(5, 5)
    # counter-clockwise, as np.rot90 over (H, W) and as Pillow
    np.testing.assert_allclose(TF.rotate(square, 90).numpy(), np.rot90(square.numpy(), 1, axes=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(TF.rotate(x, 90, expand=True).numpy(), np.rot90(x.numpy(), 1, axes=(1, 2)), atol=1e-6)
    pixels = _rgb(4, 6)
    np.testing.assert_array_equal(np.asarray(TF.rotate(Image.fromarray(pixels), 90, expand=True)), np.rot90(pixels))
    filled = TF.rotate(square, 45, fill=[0.25, 0.5, 0.75]).numpy()
    assert filled[:, 0, 0].tolist() == [0.25, 0.5, 0.75]
    assert TF.rotate(Image.fromarray(pixels), 45, fill=(1, 2, 3)).getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(TypeError, match="angle"):
        TF.rotate(square, "90")


def test_random_rotation_draws_the_angle():
    x = _tensor(5, 5)
    with T.use_generator(np.random.default_rng(9)):
        out = T.RandomRotation(30, interpolation=T.InterpolationMode.BILINEAR)(x).numpy()
    angle = np.random.default_rng(9).uniform(-30, 30)
    np.testing.assert_allclose(out, TF.rotate(x, angle, T.InterpolationMode.BILINEAR, fill=0).numpy(), atol=1e-6)
    assert T.RandomRotation((10, 20)).degrees == (10.0, 20.0)
    assert T.RandomRotation(10)(Image.fromarray(_rgb())).size == (8, 6)
    with pytest.raises(ValueError, match="positive"):
        T.RandomRotation(-5)
