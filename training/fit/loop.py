"""The one training loop, for every strategy: one CPU, the GPUs of one machine, several workers.

A custom loop rather than Keras `fit` because fit cannot reduce its metrics under MultiWorkerMirroredStrategy;
it drives the same Keras callbacks fit would (best-epoch checkpoint, early stopping, CSV history, epoch
speed, the time budget's deadline, the resume state), so one code path trains every run. Under several
workers each reads its shard of every global batch and gradients are all-reduced, so every worker ends
with the same weights; only the chief is given the callbacks that write.
"""

from __future__ import annotations

import hashlib
import logging
import time

import keras
import numpy as np
import tensorflow as tf

from training.inputs import pipeline
from training.net import losses

log = logging.getLogger(__name__)


def weights_digest(model: keras.Model) -> str:
    """sha256 of every weight, in order: equal on two workers means identical models."""
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
    return digest.hexdigest()


def _distributed(strategy, source: pipeline.EpochBatches, num_classes: int, multi_worker: bool):
    # Repeated: each repetition calls the source again (the next epoch's order), and one iterator serves every
    # epoch. A fresh iterator per epoch, with the last one's prefetch still in flight, stalled the CPU for
    # ~35 s at some epoch starts (measured on a 2-core host).
    if not multi_worker:  # one process: the strategy splits each global batch over its replicas
        return strategy.experimental_distribute_dataset(pipeline.train_dataset_from(source, num_classes).repeat())

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return pipeline.train_dataset_from(source.shard(ctx.input_pipeline_id, ctx.num_input_pipelines),
                                           num_classes).repeat()
    return strategy.distribute_datasets_from_function(dataset_fn)


def _evaluate(forward, val_ds: tf.data.Dataset, loss_fn) -> tuple[float, float]:
    hits = total = loss = 0.0
    for x, y in val_ds:
        probs = forward(x)
        loss += float(tf.reduce_sum(loss_fn(y, probs)))
        hits += float(tf.reduce_sum(tf.cast(tf.argmax(probs, 1) == tf.argmax(y, 1), tf.float32)))
        total += int(x.shape[0])
    return hits / max(1.0, total), loss / max(1.0, total)


def _step(strategy, model: keras.Model, per_example, global_batch: int, jit: bool):
    optimizer = model.optimizer

    def replica(x, y):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = tf.nn.compute_average_loss(per_example(y, probs), global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss)  # mixed_float16 (GPUs): what Keras' own train step does
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        hits = tf.reduce_sum(tf.cast(tf.argmax(probs, 1) == tf.argmax(y, 1), tf.float32))
        return loss, hits

    def on_batch(x, y):
        loss, hits = strategy.run(replica, args=(x, y))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, hits, axis=None))

    # As Keras compiles its train step: the whole step under XLA when the precision race chose it.
    return tf.function(on_batch, jit_compile=jit, reduce_retracing=True)


def fit(strategy, model: keras.Model, loss_fn, source: pipeline.EpochBatches, val_ds: tf.data.Dataset,
        num_classes: int, epochs: int, first_epoch: int, callbacks: list[keras.callbacks.Callback],
        multi_worker: bool = False) -> None:
    """Train epochs first_epoch..epochs-1 (or until a callback stops it), calling `callbacks` as Keras fit
    does; the model must be compiled (its optimizer and jit_compile are used)."""
    global_batch = source.batch_size
    per_example = losses.make(isinstance(loss_fn, losses.OtherClassCrossentropy), loss_fn.label_smoothing,
                              reduction=None)
    step = _step(strategy, model, per_example, global_batch, bool(model.jit_compile))
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    hooks = keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs, steps=source.steps())
    source.epoch = first_epoch
    iterator = iter(_distributed(strategy, source, num_classes, multi_worker))
    model.stop_training = False
    hooks.on_train_begin()
    for epoch in range(first_epoch, epochs):
        started = time.time()
        hooks.on_epoch_begin(epoch)
        loss_sum = hits_sum = 0.0
        steps = 0
        for batch in range(source.steps()):
            loss, hits = step(*next(iterator))
            loss_sum, hits_sum, steps = loss_sum + loss, hits_sum + hits, steps + 1
            hooks.on_train_batch_end(batch)
            if model.stop_training:  # the time budget is spent: validate and keep this epoch
                break
        logs = {"accuracy": float(hits_sum) / (steps * global_batch), "loss": float(loss_sum) / steps}
        hooks.on_test_begin()
        logs["val_accuracy"], logs["val_loss"] = _evaluate(forward, val_ds, per_example)
        hooks.on_test_end()
        print(f"epoch {epoch + 1}/{epochs}: accuracy {logs['accuracy']:.4f} loss {logs['loss']:.4f} "
              f"val_accuracy {logs['val_accuracy']:.4f} val_loss {logs['val_loss']:.4f} "
              f"({time.time() - started:.0f} s)", flush=True)
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end()
    print(f"final weights sha256 {weights_digest(model)}", flush=True)
