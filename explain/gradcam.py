"""Grad-CAM on a Keras model's last convolution block, with HiResCAM's weighting. Imports TensorFlow.

Grad-CAM (Selvaraju et al. 2017) weights each channel of the block by its spatially averaged gradient.
AlexNet's head is fully connected, so every position has its own weights and that average blurs them away:
in the deletion check (`python -m training deletion`) such maps did no better than random pixels. HiResCAM
(Draelos & Carin 2020) multiplies gradient and activation per position instead, which is provably faithful
for such heads; measured, it lowers the class probability about 3x more than random. Same layer, same cost.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from explain.occlusion import normalize
from explain.overlay import resize_map

_STOP = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D,
         keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)


def target_layer(model: keras.Model) -> str:
    """The last convolution block's output: the last 4-D layer after the last Conv2D, before any pooling."""
    layers = model.layers
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"model {model.name} has no Conv2D layer for Grad-CAM")
    name = layers[convs[-1]].name
    for layer in layers[convs[-1] + 1:]:
        if isinstance(layer, _STOP) or len(layer.output.shape) != 4:
            break
        name = layer.name  # its BatchNorm and ReLU: the block's activations, as the paper uses
    return name


class GradCam:
    """Grad-CAM for one model: built once, then one forward + backward pass per explanation."""

    def __init__(self, model: keras.Model, layer: str | None = None):
        self.layer = layer or target_layer(model)
        head = model.layers[-1]
        if not isinstance(head, keras.layers.Dense):
            raise ValueError("Grad-CAM here needs a Dense classification head")
        # Gradients of logits (pre-softmax), as in the paper: softmax gradients vanish when confident.
        self._model = keras.Model(model.inputs, [model.get_layer(self.layer).output, head.input])
        self._kernel, self._bias = head.kernel, head.bias
        self._fn = tf.function(self._maps, autograph=False, reduce_retracing=True)

    def _maps(self, images: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            acts, features = self._model(tf.cast(images, tf.float32), training=False)
            tape.watch(acts)
            logits = tf.matmul(tf.cast(features, tf.float32), tf.cast(self._kernel, tf.float32))
            if self._bias is not None:
                logits += tf.cast(self._bias, tf.float32)
            # The class logit against the probability-weighted mean of all logits (the gradient of log p_c,
            # without softmax's saturation): a shift common to every class does not change the answer,
            # so it must not light up the map.
            mean = tf.reduce_sum(tf.stop_gradient(tf.nn.softmax(logits)) * logits, axis=1)
            score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1) - mean)
        grads = tf.cast(tape.gradient(score, acts), tf.float32)
        return tf.nn.relu(tf.reduce_sum(grads * tf.cast(acts, tf.float32), axis=-1))  # per-position weights

    def __call__(self, images: np.ndarray, classes: list[int]) -> list[np.ndarray]:
        """Per-pixel maps (H, W) in [0, 1] for a batch of HWC images, each for its class index."""
        cams = self._fn(tf.convert_to_tensor(images), tf.constant(classes, tf.int32)).numpy()
        h, w = images.shape[1:3]
        return [normalize(resize_map(cam, (w, h))) for cam in cams]
