"""The training loss: categorical cross-entropy, and its form for a model with an "other" class."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="alexnet")
class OtherClassCrossentropy(keras.losses.Loss):
    """Cross-entropy over K classes plus "other", for a model that outputs only the K class probabilities
    (model.build_alexnet(other_class=True)): p(other) = 1 - sum(p), and a target row of zeros (a negative)
    means "other". Label smoothing spreads over all K+1 outputs."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str | None = "sum_over_batch_size",
                 name: str = "other_class_crossentropy"):
        super().__init__(reduction=reduction, name=name)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        full_true = ops.concatenate([y_true, 1.0 - ops.sum(y_true, axis=-1, keepdims=True)], axis=-1)
        full_pred = ops.concatenate([y_pred, 1.0 - ops.sum(y_pred, axis=-1, keepdims=True)], axis=-1)
        k1 = ops.cast(ops.shape(full_true)[-1], y_pred.dtype)
        full_true = full_true * (1.0 - self.label_smoothing) + self.label_smoothing / k1
        full_pred = ops.clip(full_pred, keras.config.epsilon(), 1.0)
        return -ops.sum(full_true * ops.log(full_pred), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def make(other_class: bool, label_smoothing: float, reduction: str | None = "sum_over_batch_size"
         ) -> keras.losses.Loss:
    """The loss for a model with or without the "other" class."""
    if other_class:
        return OtherClassCrossentropy(label_smoothing=label_smoothing, reduction=reduction)
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=reduction)
