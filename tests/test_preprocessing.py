"""The shared preprocessing function on every input kind."""

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
