"""The model behind a tiny interface: predict(images) -> probabilities."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import model_store

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A model version is missing, unreadable or does not match its metadata."""


def warmup_sizes(max_batch: int) -> list[int]:
    """Batch sizes run once at start-up: powers of two up to max_batch, and max_batch."""
    sizes, n = [], 1
    while n < max_batch:
        sizes.append(n)
        n *= 2
    return [*sizes, max_batch]


@dataclass
class Predictor:
    """A loaded, warmed model version."""

    version: int
    metadata: dict
    class_names: list[str]
    _forward: dict  # numpy dtype -> concrete tf.function
    max_batch: int
    warmup_seconds: float = 0.0
    tta: str = "none"

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for preprocessed images (N, 227, 227, 3), uint8 or float32 0-255."""
        return model_store.predict_tta(self._predict, images, self.tta)

    def _predict(self, images: np.ndarray) -> np.ndarray:
        if images.dtype not in self._forward:
            images = images.astype(np.float32)
        forward = self._forward[images.dtype]
        # No padding to fixed batch shapes: measured here, a batch size seen for the first time costs
        # no more than a repeat, while padding 17 images to 32 nearly doubled the work.
        out = [forward(images[i:i + self.max_batch]).numpy() for i in range(0, len(images), self.max_batch)]
        return out[0] if len(out) == 1 else np.concatenate(out)


def load_predictor(store: str | Path, version: int, max_batch: int = 32, tta: str = "none") -> Predictor:
    """Load alexnet.h5 + metadata.json of one version, check them, and warm every batch shape."""
    import keras
    import tensorflow as tf

    vdir = model_store.version_dir(store, version)
    try:
        metadata = json.loads((vdir / model_store.METADATA_FILE).read_text())
        class_names = list(metadata["class_names"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"bad metadata.json in {vdir}: {exc}") from exc
    try:
        model = keras.models.load_model(vdir / model_store.MODEL_FILE, compile=False)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
        # h5py/Keras raise any of these for a truncated or foreign file.
        raise ModelLoadError(f"cannot load {vdir / model_store.MODEL_FILE}: {exc}") from exc
    expected_in = (None, model_store.IMAGE_SIZE[1], model_store.IMAGE_SIZE[0], 3)
    if tuple(model.input_shape) != expected_in or model.output_shape[-1] != len(class_names):
        raise ModelLoadError(
            f"{vdir}: model input {model.input_shape} / output {model.output_shape} do not match "
            f"{expected_in} and {len(class_names)} classes in metadata.json")

    # Serving sends uint8 (4x fewer bytes to stack and convert); the cast runs inside the graph.
    fn = tf.function(lambda x: model(tf.cast(x, tf.float32), training=False), autograph=False)
    forwards = {np.dtype(dt.as_numpy_dtype): fn.get_concrete_function(tf.TensorSpec([None, *expected_in[1:]], dt))
                for dt in (tf.uint8, tf.float32)}

    predictor = Predictor(version, metadata, class_names, forwards, max_batch, tta=model_store.tta.check_mode(tta))
    started = time.monotonic()
    sizes = warmup_sizes(max_batch)
    for dtype, batch_sizes in ((np.uint8, sizes), (np.float32, [1])):
        for size in batch_sizes:
            probs = predictor.predict(np.zeros((size, *expected_in[1:]), dtype))
            if not np.all(np.isfinite(probs)):
                raise ModelLoadError(f"{vdir}: warm-up produced non-finite outputs")
    predictor.warmup_seconds = time.monotonic() - started
    log.info("model version %s loaded and warmed (batches %s) in %.1fs", version, sizes, predictor.warmup_seconds)
    return predictor
