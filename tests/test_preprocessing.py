"""The shared preprocessing function on every input kind."""

import io

import numpy as np
import pytest
from PIL import Image

from model_store import InvalidImageError, preprocess_image
from tests import images


@pytest.mark.parametrize("name,data", sorted(images.valid_images().items()))
def test_valid_inputs_become_227_rgb_float(name, data):
    arr = preprocess_image(data)
    assert arr.shape == (227, 227, 3) and arr.dtype == np.float32
    assert 0.0 <= arr.min() and arr.max() <= 255.0


@pytest.mark.parametrize("name,data", sorted(images.invalid_images().items()))
def test_invalid_inputs_raise(name, data):
    with pytest.raises(InvalidImageError):
        preprocess_image(data)


def test_decompression_bomb_rejected():
    with pytest.raises(InvalidImageError, match="too large"):
        preprocess_image(images.bomb_png())


def test_exif_orientation_is_applied():
    # A wide image tagged "rotate 90" must come out like the same image rotated by hand.
    img = images.gradient((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    tagged = preprocess_image(images.encode(img, "PNG", exif=exif))
    by_hand = preprocess_image(img.transpose(Image.Transpose.ROTATE_270))
    np.testing.assert_allclose(tagged, by_hand, atol=1)
    assert not np.allclose(tagged, preprocess_image(img), atol=10)


def test_alpha_is_flattened_on_white():
    img = Image.new("RGBA", (50, 50), (255, 0, 0, 0))  # fully transparent red
    arr = preprocess_image(images.encode(img, "PNG"))
    np.testing.assert_array_equal(arr, np.full((227, 227, 3), 255.0, np.float32))


def test_sixteen_bit_png_keeps_contrast():
    arr = preprocess_image(images.valid_images()["png_16bit"])
    assert arr.min() < 30 and arr.max() > 225


def test_bytes_and_pil_give_same_array():
    data = images.encode(images.gradient(), "PNG")
    import io

    from PIL import Image as PILImage

    np.testing.assert_array_equal(preprocess_image(data), preprocess_image(PILImage.open(io.BytesIO(data))))


@pytest.mark.parametrize("name,data", sorted(images.valid_images().items()))
def test_uint8_output_is_the_same_pixels(name, data):
    as_uint8 = preprocess_image(data, np.uint8)
    assert as_uint8.dtype == np.uint8
    np.testing.assert_array_equal(as_uint8.astype(np.float32), preprocess_image(data))


def test_callers_image_is_not_modified():
    img = images.gradient((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    import io

    tagged = Image.open(io.BytesIO(images.encode(img, "PNG", exif=exif)))
    preprocess_image(tagged)
    assert tagged.size == (300, 200) and tagged.getexif().get(0x0112) == 6


def _antialiased_reference(img: Image.Image) -> np.ndarray:
    """Pillow's full antialiased bilinear resize of the whole decode: the slow path this replaced."""
    return np.asarray(img.convert("RGB").resize((227, 227), Image.Resampling.BILINEAR), dtype=np.float32)


@pytest.mark.parametrize("size", [(500, 375), (1000, 750), (4000, 3000), (200, 200), (120, 900)])
def test_resize_matches_an_antialiased_resize(size):
    # Smooth content plus fine stripes: a resize without antialiasing turns the stripes into moire.
    x = np.linspace(0, 1, size[0])[None, :, None]
    y = np.linspace(0, 1, size[1])[:, None, None]
    stripes = 40 * np.sin(np.arange(size[0]) * 2.9)[None, :, None]
    arr = np.clip(255 * (0.3 * x + 0.5 * y) + stripes + np.array([0, 40, 80]), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    ours = preprocess_image(images.encode(img, "PNG"))
    reference = _antialiased_reference(img)
    assert np.abs(ours - reference).mean() < 4.0  # same picture (0-255 scale), within a few grey levels
    naive = np.asarray(img.resize((227, 227), Image.Resampling.NEAREST), dtype=np.float32)
    if size[0] >= 454:  # the stripes alias without a proper downscale; ours keeps them averaged out
        assert np.abs(ours - reference).mean() < np.abs(naive - reference).mean() / 2


def test_big_jpegs_decode_at_reduced_dct_scale_never_below_80_percent_of_the_input_size():
    from model_store.preprocessing import open_image

    # 1/2, 1/4 or 1/8 scale, the smallest that keeps both sides >= 182 (0.8 x 227); small photos in full.
    for size, expected in [((4000, 3000), (500, 375)), ((1000, 750), (250, 188)), ((500, 375), (250, 188)),
                           ((460, 460), (230, 230)), ((363, 500), (363, 500)), ((364, 364), (182, 182)),
                           ((200, 200), (200, 200))]:
        img = open_image(images.encode(Image.new("RGB", size, (90, 120, 150)), "JPEG"))
        img.load()
        assert img.size == expected, size


def test_a_half_scale_decode_is_the_same_picture():
    # A Kaggle-sized JPEG decoded at 1/2 scale (250x188, then upsampled to 227 high) against the
    # antialiased resize of its full decode: the same picture within a few grey levels.
    x = np.linspace(0, 1, 500)[None, :, None]
    y = np.linspace(0, 1, 375)[:, None, None]
    arr = np.clip(255 * (0.3 * x + 0.5 * y) + np.array([0, 40, 80]), 0, 255).astype(np.uint8)
    data = images.encode(Image.fromarray(arr), "JPEG")
    full = Image.open(io.BytesIO(data))
    ours = preprocess_image(data)
    assert np.abs(ours - _antialiased_reference(full)).mean() < 2.0
