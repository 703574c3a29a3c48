"""TensorFlow runtime: the Keras alexnet.h5 in a tf.function."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import model_store
from explain.gradcam import GradCam


class KerasRuntime:
    """alexnet.h5 behind predict(images) -> probabilities."""

    name = "tensorflow"
    warm_each_batch_size = True  # oneDNN builds its kernels per input shape on first use

    def __init__(self, model: keras.Model):
        self.model = model
        self.input_shape = tuple(self.model.input_shape)
        self.num_classes = int(self.model.output_shape[-1])
        self.library_version = tf.__version__
        # Serving sends uint8 (4x fewer bytes to stack and convert); the cast runs inside the graph.
        fn = tf.function(lambda x: self.model(tf.cast(x, tf.float32), training=False), autograph=False)
        size = (model_store.IMAGE_SIZE[1], model_store.IMAGE_SIZE[0], 3)
        self._forward = {np.dtype(dt.as_numpy_dtype): fn.get_concrete_function(tf.TensorSpec([None, *size], dt))
                         for dt in (tf.uint8, tf.float32)}
        try:
            self._gradcam = GradCam(model)
        except ValueError:  # no Conv2D or no Dense head: only model-agnostic explanations
            self._gradcam = None
        self.explain_methods = ("gradcam",) if self._gradcam else ()

    @classmethod
    def from_file(cls, path: str | Path) -> KerasRuntime:
        """Load alexnet.h5."""
        return cls(keras.models.load_model(path, compile=False))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for one batch of uint8 (or float32, 0-255) NHWC images."""
        forward = self._forward.get(images.dtype) or self._forward[np.dtype(np.float32)]
        return forward(images if images.dtype in self._forward else images.astype(np.float32)).numpy()

    def gradcam(self, images: np.ndarray, classes: list[int]) -> list[np.ndarray]:
        """Grad-CAM maps (H, W) in [0, 1] of a batch of images, each for its class index."""
        if self._gradcam is None:
            raise ValueError("this model has no convolution block and Dense head for Grad-CAM")
        return self._gradcam(images, classes)


def open_runtime(files: list[Path], name: str = "tensorflow", threads: int | None = None) -> KerasRuntime:
    """The registry's entry point: alexnet.h5 (the first file) on TensorFlow (threads: TensorFlow's own)."""
    return KerasRuntime.from_file(files[0])
