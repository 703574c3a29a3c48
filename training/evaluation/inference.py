"""Offline inference for the CLI: load a stored version and classify arrays in batches."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

import model_store


def load_version(store: str, version: int | None = None) -> tuple[keras.Model, dict, int]:
    """Model, metadata and version number (the newest when version is None)."""
    version = model_store.latest_version(store) if version is None else version
    path = model_store.version_dir(store, version)
    model = keras.models.load_model(path / model_store.MODEL_FILE, compile=False)
    return model, model_store.read_metadata(store, version), version


def predict_arrays(model: keras.Model, images: np.ndarray, batch_size: int = 32, tta: str = "none") -> np.ndarray:
    """Class probabilities for an NHWC batch of preprocessed images (0-255), optionally with TTA."""
    forward = tf.function(lambda x: model(x, training=False), autograph=False)

    def run(x: np.ndarray) -> np.ndarray:
        return forward(tf.cast(x, tf.float32)).numpy()

    out = [model_store.predict_tta(run, np.asarray(images[i:i + batch_size]), tta)
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)
