"""AlexNet builder (the tutorial's layer plan, with BatchNorm so it actually trains)."""

from __future__ import annotations

import keras
from keras import layers


def _channel_half(x, half: int, name: str):
    """Channels [half * c/2, (half + 1) * c/2) of x."""
    # Core layers only (a cropped 5-D view), not a slice op: the legacy .h5 format loads them without custom
    # objects and OpenVINO converts them to one StridedSlice.
    h, w, c = x.shape[1:]
    x = layers.Reshape((h, w, c, 1), name=f"{name}_view{half}")(x)
    x = layers.Cropping3D(((0, 0), (0, 0), (half * c // 2, (1 - half) * c // 2)), name=f"{name}_crop{half}")(x)
    return layers.Reshape((h, w, c // 2), name=f"{name}_in{half}")(x)


def _conv_block(x, filters: int, kernel: int, strides: int = 1, padding: str = "same", name: str = "",
                bn_momentum: float = 0.99, sync_bn: bool = False, groups: int = 1):
    # BN before the activation keeps every layer's input centred; bias is redundant under BN.
    if groups == 1:
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=name)(x)
    else:  # two Conv2D on the two channel halves: Keras' own groups= runs under XLA on CPU, 4x slower
        halves = [layers.Conv2D(filters // 2, kernel, strides=strides, padding=padding, use_bias=False,
                                name=f"{name}_g{half}")(_channel_half(x, half, name)) for half in (0, 1)]
        x = layers.Concatenate(name=name)(halves)
    x = layers.BatchNormalization(momentum=bn_momentum, synchronized=sync_bn, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _dense_block(x, units: int, dropout: float, name: str, bn_momentum: float = 0.99, sync_bn: bool = False):
    x = layers.Dense(units, use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=bn_momentum, synchronized=sync_bn, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    return layers.Dropout(dropout, name=f"{name}_dropout")(x)


def build_alexnet(
    input_shape: tuple[int, int, int] = (227, 227, 3), num_classes: int = 2, dropout: float = 0.5,
    bn_momentum: float = 0.99, sync_bn: bool = False, other_class: bool = False, groups: int = 1,
) -> keras.Model:
    """AlexNet: 5 conv (96/11s4, 256/5, 384/3, 384/3, 256/3), 3 max-pools, dense 4096-4096, softmax.

    groups: 2 splits conv2, conv4 and conv5 into two groups of channels, as the original paper's two GPUs
    did (each half sees half of the layer below): half their multiply-adds, the same feature map sizes.

    sync_bn: BatchNorm statistics over the global batch of all replicas (multi-worker training), so
    every worker's moving averages stay equal and match what one machine would compute.
    other_class: one more softmax output, "none of the classes", trained on negatives (outlier exposure
    with an extra class). The model still outputs one probability per class: those of the K+1 softmax,
    so they sum to 1 - p(other) and the service reads p(other) back as the remainder.
    """
    if groups not in (1, 2):
        raise ValueError(f"groups must be 1 or 2, not {groups}")
    inputs = keras.Input(shape=input_shape, name="image")
    # Inputs are 0-255 RGB from model_store.preprocess_image; scaling lives in the model so
    # training and serving cannot disagree about it.
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    bn = {"bn_momentum": bn_momentum, "sync_bn": sync_bn}
    x = _conv_block(x, 96, 11, strides=4, padding="valid", name="conv1", **bn)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = _conv_block(x, 256, 5, name="conv2", groups=groups, **bn)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = _conv_block(x, 384, 3, name="conv3", **bn)
    x = _conv_block(x, 384, 3, name="conv4", groups=groups, **bn)
    x = _conv_block(x, 256, 3, name="conv5", groups=groups, **bn)
    x = layers.MaxPooling2D(3, strides=2, name="pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = _dense_block(x, 4096, dropout, name="fc6", **bn)
    x = _dense_block(x, 4096, dropout, name="fc7", **bn)
    # float32 output even under mixed precision, so softmax probabilities stay accurate.
    if not other_class:
        outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
        return keras.Model(inputs, outputs, name="alexnet")
    return keras.Model(inputs, other_class_head(x, num_classes), name="alexnet")


def other_class_head(x, num_classes: int):
    """Softmax over the classes plus "other", output without the "other" column (so one probability per
    class, summing to 1 - p(other))."""
    scores = layers.Dense(num_classes + 1, activation="softmax", dtype="float32", name="scores")(x)
    # A fixed projection drops the last column with a plain Dense layer, so the saved model needs no custom
    # layer and every runtime (OpenVINO, int8) converts it as it is.
    drop_other = layers.Dense(num_classes, use_bias=False, trainable=False, dtype="float32", name="predictions",
                              kernel_initializer=keras.initializers.Identity())
    return drop_other(scores)
