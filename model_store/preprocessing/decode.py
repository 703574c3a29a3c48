"""Decode an upload or a training photo into the model's 227x227 RGB pixels (the one preprocessing function)."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import numpy as np
from PIL import Image, ImageOps

from model_store.preprocessing.resize import resize_bilinear

IMAGE_SIZE = (227, 227)
# The smallest JPEG decode draft() may pick: 80% of IMAGE_SIZE per side. A 500x375 photo (the Kaggle
# size) then decodes at 1/2 scale (250x188: 0.64 instead of 0.87 ms) and the resize upsamples its height
# by 1.2x. A model trained without it scored 0.932 either way; `make train` with it: 0.940.
DCT_MIN_SIZE = (round(0.8 * IMAGE_SIZE[0]), round(0.8 * IMAGE_SIZE[1]))
# Pillow refuses images above this many pixels (decompression bombs); serving maps it to a 400.
MAX_IMAGE_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

# "OpenCV INTER_LINEAR" names the arithmetic: resize.py reproduces it bit for bit, so versions trained when
# this called OpenCV still match.
PREPROCESSING_SPEC = {
    "function": "model_store.preprocessing.preprocess_image",
    "size": list(IMAGE_SIZE),
    "color": "RGB",
    "exif_orientation": True,
    "resize": "JPEG DCT scaling to >= 0.8 x size, integer box reduce to < 2x size, then bilinear (OpenCV "
              "INTER_LINEAR); whole image, aspect ratio not kept",
    "dtype": "float32",
    "range": "0-255 (the model rescales internally)",
}


class InvalidImageError(ValueError):
    """Raised when bytes cannot be decoded into an image."""


def _flatten_alpha(img: Image.Image) -> Image.Image:
    # Transparent pixels become white rather than whatever colour sits under the alpha.
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return _flatten_alpha(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping everything to white.
        arr = np.asarray(img, dtype=np.float64)
        top = max(float(arr.max()), 1.0)
        scale = 255.0 / (65535.0 if top > 255 else 255.0)
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def open_image(data: bytes) -> Image.Image:
    """Read an image's header (no pixels decoded yet), refusing more than MAX_IMAGE_PIXELS of any format."""
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        # Checked before any pixel is decoded: Pillow itself only refuses above 2x its limit.
        if width * height > MAX_IMAGE_PIXELS:
            raise InvalidImageError(f"image too large: {width}x{height} = {width * height:,} pixels "
                                    f"(limit {MAX_IMAGE_PIXELS:,})")
        # draft() lets libjpeg decode big JPEGs at 1/2, 1/4 or 1/8 scale, never below DCT_MIN_SIZE: the
        # DCT does the first (antialiased) part of the downscale almost for free.
        img.draft("RGB", DCT_MIN_SIZE)
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"image too large: {exc}") from exc
    except Image.UnidentifiedImageError:
        raise InvalidImageError("not a recognised image file (JPEG, PNG, GIF, WebP, BMP, ...)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"cannot decode image: {exc}") from exc
    return img


def decoded_pixels(img: Image.Image) -> int:
    """Pixels a decode of this (opened, drafted) image will hold: the unit of the serving decode budget."""
    return img.size[0] * img.size[1]


def preprocess_image(image: bytes | Image.Image, dtype: type = np.float32,
                     budget: Callable[[int], AbstractContextManager] | None = None) -> np.ndarray:
    """Turn image bytes or a PIL image into a 227x227x3 RGB array (0-255), float32 or (same pixels) uint8.

    budget(pixels), when given, is held while the full-size pixels exist (serving bounds decode memory).
    """
    ours = isinstance(image, (bytes, bytearray, memoryview))
    img = open_image(image) if ours else image
    with budget(decoded_pixels(img)) if budget else nullcontext():
        return _to_array(img, ours, dtype)


def _to_array(img: Image.Image, ours: bool, dtype: type) -> np.ndarray:
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"image too large: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"cannot decode image: {exc}") from exc
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated GIF/WebP: first frame
        if ours:
            # In place: the copying variant duplicates every upright image (~3% of a request's CPU).
            ImageOps.exif_transpose(img, in_place=True)
        else:
            img = ImageOps.exif_transpose(img)  # never modify the caller's image
        arr = _resize(_to_rgb(img))
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"cannot decode image: {exc}") from exc
    if arr.shape != (*IMAGE_SIZE[::-1], 3):
        raise InvalidImageError(f"unexpected decoded shape {arr.shape}")
    return arr if arr.dtype == dtype else arr.astype(dtype)


def box_reduce(img: Image.Image) -> Image.Image:
    """The integer box reduce (the antialiasing, for >= 2x) that leaves each side under 2x IMAGE_SIZE."""
    factors = (max(1, img.size[0] // IMAGE_SIZE[0]), max(1, img.size[1] // IMAGE_SIZE[1]))
    return img.reduce(factors) if factors != (1, 1) else img


def _resize(img: Image.Image) -> np.ndarray:
    # Under 2x a 2-tap bilinear suffices; resize_bilinear reproduces the OpenCV INTER_LINEAR that versions
    # were trained with, bit for bit.
    img = box_reduce(img)
    arr = np.asarray(img)
    if img.size != IMAGE_SIZE:
        arr = resize_bilinear(arr, IMAGE_SIZE)
    return arr


def load_image_file(path: str, dtype: type = np.float32) -> np.ndarray:
    """Read a file from disk and preprocess it exactly as serving does."""
    with open(path, "rb") as fh:
        return preprocess_image(fh.read(), dtype)
