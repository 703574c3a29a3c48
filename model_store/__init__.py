"""The contract between training and serving: store layout and shared preprocessing."""

from model_store.answers.labels import display_name, display_names
from model_store.answers.tta import TTA_MODES, predict_tta
from model_store.preprocessing import (
    IMAGE_SIZE,
    PREPROCESSING_SPEC,
    InvalidImageError,
    load_image_file,
    preprocess_image,
)
from model_store.versions.layout import (
    METADATA_FILE,
    MODEL_FILE,
    MODEL_NAME,
    REPORT_FILE,
    ModelNotFoundError,
    latest_version,
    list_versions,
    publish,
    read_metadata,
    staging_dir,
    version_dir,
)
from model_store.versions.remote import (
    RemoteStoreError,
    is_remote,
    local_copy,
    prune_cache,
    remote_versions,
)
from model_store.versions.remote_publish import update_version, upload_version

__all__ = [
    "IMAGE_SIZE",
    "METADATA_FILE",
    "MODEL_FILE",
    "MODEL_NAME",
    "PREPROCESSING_SPEC",
    "REPORT_FILE",
    "TTA_MODES",
    "InvalidImageError",
    "ModelNotFoundError",
    "RemoteStoreError",
    "display_name",
    "display_names",
    "is_remote",
    "latest_version",
    "local_copy",
    "remote_versions",
    "update_version",
    "upload_version",
    "list_versions",
    "load_image_file",
    "predict_tta",
    "preprocess_image",
    "prune_cache",
    "publish",
    "read_metadata",
    "staging_dir",
    "version_dir",
]
