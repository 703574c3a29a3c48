"""The preprocessing resize against the OpenCV resize that versions were trained with: every pixel equal."""

import numpy as np
import pytest
from PIL import Image

from model_store import IMAGE_SIZE, preprocessing
from model_store.preprocessing.resize import resize_bilinear
from tests.conftest import shared_photos

cv2 = pytest.importorskip("cv2")

# Upscales, downscales below 2x, one axis each way, the edges (1 and 2 pixels) and the Kaggle photo sizes
# after DCT scaling. At exactly 2x on both axes OpenCV switches to area averaging; preprocessing never asks it.
SIZES = [(1, 1), (1, 300), (2, 2), (3, 500), (128, 128), (187, 250), (188, 250), (226, 226), (227, 227),
         (228, 229), (250, 188), (300, 400), (453, 453), (454, 300), (66, 224), (227, 453)]


def _opencv(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("height,width", SIZES)
def test_equals_opencv_on_noise(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_bilinear(pixels, IMAGE_SIZE), _opencv(pixels, IMAGE_SIZE))


@pytest.mark.parametrize("size", [(100, 60), (64, 64), (300, 227)])
def test_equals_opencv_for_other_output_sizes(size):
    pixels = np.random.default_rng(7).integers(0, 256, (181, 263, 3), dtype=np.uint8)
    out = resize_bilinear(pixels, size)
    assert out.shape == (size[1], size[0], 3)
    np.testing.assert_array_equal(out, _opencv(pixels, size))


def test_extremes_and_flat_images_stay_exact():
    for value in (0, 1, 127, 254, 255):
        flat = np.full((190, 333, 3), value, np.uint8)
        np.testing.assert_array_equal(resize_bilinear(flat, IMAGE_SIZE), _opencv(flat, IMAGE_SIZE))
        assert np.all(resize_bilinear(flat, IMAGE_SIZE) == value)


def test_equals_opencv_on_photos():
    photos = shared_photos("validation", "cats", 40) + shared_photos("validation", "dogs", 40)
    if not photos:
        pytest.skip("../shared is absent")
    for path in photos:
        pixels = np.asarray(preprocessing.box_reduce(preprocessing.open_image(path.read_bytes()).convert("RGB")))
        np.testing.assert_array_equal(resize_bilinear(pixels, IMAGE_SIZE), _opencv(pixels, IMAGE_SIZE),
                                      err_msg=str(path))


def test_preprocess_image_is_the_opencv_pipeline():
    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (375, 500, 3), dtype=np.uint8))
    reduced = np.asarray(img.reduce((2, 1)))
    np.testing.assert_array_equal(preprocessing.preprocess_image(img, np.uint8), _opencv(reduced, IMAGE_SIZE))
