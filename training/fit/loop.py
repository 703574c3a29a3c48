"""A custom training loop for MultiWorkerMirroredStrategy (Keras 3's fit cannot reduce its metrics there).

Same model, optimizer, schedule, augmentation and data order as `fit`; each worker reads its shard of
every global batch; gradients are all-reduced, so every worker ends with the same weights. Only the chief
writes the best weights, the resume state and the history; every worker can resume from them.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.fit import resume
from training.inputs import pipeline
from training.net import losses

log = logging.getLogger(__name__)


def weights_digest(model: keras.Model) -> str:
    """sha256 of every weight, in order: equal on two workers means identical models."""
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
    return digest.hexdigest()


def _sharded(strategy, source: pipeline.EpochBatches, num_classes: int) -> tf.distribute.DistributedDataset:
    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return pipeline.train_dataset_from(source.shard(ctx.input_pipeline_id, ctx.num_input_pipelines),
                                           num_classes)
    return strategy.distribute_datasets_from_function(dataset_fn)


def _evaluate(model: keras.Model, val_ds: tf.data.Dataset, loss_fn) -> tuple[float, float]:
    hits = total = loss = 0.0
    for x, y in val_ds:
        probs = model(x, training=False)
        loss += float(tf.reduce_sum(loss_fn(y, probs)))
        hits += float(tf.reduce_sum(tf.cast(tf.argmax(probs, 1) == tf.argmax(y, 1), tf.float32)))
        total += int(x.shape[0])
    return hits / max(1.0, total), loss / max(1.0, total)


def fit(strategy, model: keras.Model, loss_fn, source: pipeline.EpochBatches, val_ds: tf.data.Dataset,
        num_classes: int, epochs: int, first_epoch: int, folder: Path, chief: bool, patience: int,
        state: dict | None) -> float | None:
    """Train epochs first_epoch..epochs-1 (the chief keeps best.weights.h5, history.csv and the resume
    state); the training img/s of the epochs after the first (which pays for tracing)."""
    optimizer = model.optimizer
    global_batch = source.batch_size
    per_example = losses.make(isinstance(loss_fn, losses.OtherClassCrossentropy), loss_fn.label_smoothing,
                              reduction=None)

    @tf.function
    def step(iterator):
        def replica(x, y):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                loss = tf.nn.compute_average_loss(per_example(y, probs), global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            hits = tf.reduce_sum(tf.cast(tf.argmax(probs, 1) == tf.argmax(y, 1), tf.float32))
            return loss, hits
        loss, hits = strategy.run(replica, args=next(iterator))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, hits, axis=None))

    best = state["best"] if state else -np.inf
    wait = state["wait"] if state else 0
    source.epoch = first_epoch
    dist = _sharded(strategy, source, num_classes)
    history = folder / "history.csv"
    rates = []
    for epoch in range(first_epoch, epochs):
        started = time.time()
        iterator = iter(dist)
        loss_sum = hits_sum = 0.0
        for _ in range(source.steps()):
            loss, hits = step(iterator)
            loss_sum += float(loss)
            hits_sum += float(hits)
        steps = source.steps()
        rates.append(steps * global_batch / (time.time() - started))
        row = {"epoch": epoch, "accuracy": hits_sum / (steps * global_batch), "loss": loss_sum / steps}
        row["val_accuracy"], row["val_loss"] = _evaluate(model, val_ds, per_example)
        print(f"epoch {epoch + 1}/{epochs}: accuracy {row['accuracy']:.4f} loss {row['loss']:.4f} "
              f"val_accuracy {row['val_accuracy']:.4f} val_loss {row['val_loss']:.4f} "
              f"({time.time() - started:.0f} s)", flush=True)
        improved = row["val_accuracy"] > best
        best, wait = (row["val_accuracy"], 0) if improved else (best, wait + 1)
        if chief:  # one writer; the others would race it on a shared folder
            if improved:
                model.save_weights(folder / "best.weights.h5")
            _append(history, row)
            resume.save_state(folder, model, {"epoch": epoch + 1, "best": best, "wait": wait})
        if wait >= patience:
            print(f"early stop: no better val_accuracy for {patience} epochs", flush=True)
            break
    print(f"final weights sha256 {weights_digest(model)}", flush=True)
    return float(np.median(rates[1:] or rates)) if rates else None


def _append(path: Path, row: dict) -> None:
    fresh = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])
        if fresh:
            writer.writeheader()
        writer.writerow(row)
