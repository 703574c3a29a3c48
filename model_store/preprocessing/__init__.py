"""The one image preprocessing shared by training and serving: decode (decode.py), then resize (resize.py)."""

from model_store.preprocessing.decode import (
    DCT_MIN_SIZE,
    IMAGE_SIZE,
    MAX_IMAGE_PIXELS,
    PREPROCESSING_SPEC,
    InvalidImageError,
    box_reduce,
    decoded_pixels,
    load_image_file,
    open_image,
    preprocess_image,
)

__all__ = [
    "DCT_MIN_SIZE",
    "IMAGE_SIZE",
    "MAX_IMAGE_PIXELS",
    "PREPROCESSING_SPEC",
    "InvalidImageError",
    "box_reduce",
    "decoded_pixels",
    "load_image_file",
    "open_image",
    "preprocess_image",
]
