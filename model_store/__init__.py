"""The contract between training and serving: store layout and shared preprocessing."""

from model_store.layout import (
    METADATA_FILE,
    MODEL_FILE,
    MODEL_NAME,
    ModelNotFoundError,
    latest_version,
    list_versions,
    publish,
    read_metadata,
    staging_dir,
    version_dir,
)
from model_store.preprocessing import (
    IMAGE_SIZE,
    PREPROCESSING_SPEC,
    InvalidImageError,
    load_image_file,
    preprocess_image,
)

__all__ = [
    "IMAGE_SIZE",
    "METADATA_FILE",
    "MODEL_FILE",
    "MODEL_NAME",
    "PREPROCESSING_SPEC",
    "InvalidImageError",
    "ModelNotFoundError",
    "latest_version",
    "list_versions",
    "load_image_file",
    "preprocess_image",
    "publish",
    "read_metadata",
    "staging_dir",
    "version_dir",
]
