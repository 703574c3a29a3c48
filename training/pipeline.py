"""tf.data pipelines: augmentation for training, plain batches for evaluation."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def build_augmenter(seed: int = 1337) -> keras.Sequential:
    """Random flip, small rotation, zoom-in crops, shifts and contrast/brightness jitter."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.04, fill_mode="reflect", seed=seed),
            # Zooming in by up to 25% is a random crop of 80-100% of the picture.
            layers.RandomZoom((-0.25, 0.0), fill_mode="reflect", seed=seed),
            layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed),
            layers.RandomContrast(0.2, seed=seed),
            layers.RandomBrightness(0.15, value_range=(0.0, 255.0), seed=seed),
        ],
        name="augment",
    )


def train_dataset(
    images: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, seed: int = 1337
) -> tf.data.Dataset:
    """Shuffled, augmented, one-hot batches (augmentation runs per batch on the CPU)."""
    augment = build_augmenter(seed)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=len(images) >= batch_size)
    ds = ds.map(
        lambda x, y: (
            tf.clip_by_value(augment(tf.cast(x, tf.float32), training=True), 0.0, 255.0),
            tf.one_hot(y, num_classes),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(images: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int) -> tf.data.Dataset:
    """Batches exactly as preprocess_image produced them (float32 0-255), one-hot labels."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)))
    return ds.prefetch(tf.data.AUTOTUNE)
