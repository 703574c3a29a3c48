"""`python -m training train`: fit AlexNet and publish a new version to the model store."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import PIL
import tensorflow as tf

import model_store
from training import data, pipeline, plots
from training.model import build_alexnet

log = logging.getLogger(__name__)


def distribution_strategy() -> tf.distribute.Strategy:
    """All GPUs with mixed precision when there are any; the default strategy on CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return tf.distribute.get_strategy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    log.info("training on %d GPU(s) with mixed precision", len(gpus))
    return tf.distribute.MirroredStrategy()


def _load_data(args: argparse.Namespace) -> tuple[data.ImageSet, data.ImageSet]:
    class_names = data.class_names_of(args.data_dir)
    pairs = data.list_files(args.data_dir, class_names, args.max_per_class, args.seed)
    if args.val_dir:
        val_pairs = data.list_files(args.val_dir, class_names, None, args.seed)
    else:
        pairs, val_pairs = data.split_pairs(pairs, args.val_split, args.seed)
    train_set = data.load_image_set(pairs, class_names)
    val_set = data.load_image_set(val_pairs, class_names)
    if len(train_set.images) == 0 or len(val_set.images) == 0:
        raise SystemExit(f"no readable images: train={len(train_set.images)} validation={len(val_set.images)}")
    log.info("train %s, validation %s, skipped %d unreadable", train_set.counts(), val_set.counts(),
             len(train_set.skipped) + len(val_set.skipped))
    return train_set, val_set


def _optimizer(args: argparse.Namespace, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    total = max(1, args.epochs * steps_per_epoch)
    warmup = min(total // 2, max(1, round(args.warmup_epochs * steps_per_epoch)))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.learning_rate * 0.01, decay_steps=total - warmup, alpha=0.01,
        warmup_target=args.learning_rate, warmup_steps=warmup,
    )
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=args.weight_decay)
    # Decaying BatchNorm scales/offsets and biases only hurts; decay the kernels alone.
    opt.exclude_from_weight_decay(var_names=["_bn", "bias"])
    return opt


def _best_epoch(history_path: Path) -> dict:
    with open(history_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    return {"epochs_run": len(rows), "best_epoch": int(best["epoch"]) + 1,
            "best_val_accuracy": float(best["val_accuracy"]), "best_val_loss": float(best["val_loss"])}


def run(args: argparse.Namespace) -> int:
    """Train, checkpoint the best epoch, then atomically publish it as a new version."""
    keras.utils.set_random_seed(args.seed)
    strategy = distribution_strategy()
    train_set, val_set = _load_data(args)
    num_classes = len(train_set.class_names)
    batch = args.batch_size * strategy.num_replicas_in_sync
    train_ds = pipeline.train_dataset(train_set.images, train_set.labels, num_classes, batch, args.seed)
    val_ds = pipeline.eval_dataset(val_set.images, val_set.labels, num_classes, batch)
    steps = max(1, len(train_set.images) // batch)

    with strategy.scope():
        model = build_alexnet((*model_store.IMAGE_SIZE[::-1], 3), num_classes, dropout=args.dropout,
                              bn_momentum=args.bn_momentum)
        model.compile(
            optimizer=_optimizer(args, steps),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
            metrics=["accuracy"],
            jit_compile=args.jit,  # XLA: ~8% faster training steps on this CPU
        )

    # A gs:// store: train into a local temp store, then upload the finished version.
    local_store = tempfile.mkdtemp(prefix="alexnet-train-") if model_store.is_remote(args.model_store) \
        else args.model_store
    staged = model_store.staging_dir(local_store)
    best_weights = staged / "best.weights.h5"
    callbacks = [
        keras.callbacks.ModelCheckpoint(best_weights, monitor="val_accuracy", mode="max",
                                        save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=args.patience,
                                      restore_best_weights=True),
        keras.callbacks.CSVLogger(staged / "history.csv"),
    ]
    started = time.time()
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose)
        seconds = time.time() - started
        model.load_weights(best_weights)  # EarlyStopping only restores when it stops early
        best_weights.unlink()
        model.save(staged / model_store.MODEL_FILE, include_optimizer=False)
        summary = _best_epoch(staged / "history.csv")
        plots.training_curves(staged / "history.csv", staged / "curves.png")
        meta = _metadata(args, train_set, val_set, summary, seconds, strategy)
        (staged / model_store.METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        version = model_store.publish(local_store, staged)
    except BaseException:
        model_store.layout.discard(staged)
        raise
    where = model_store.version_dir(local_store, version)
    if model_store.is_remote(args.model_store):
        version = model_store.upload_version(local_store, version, args.model_store)
        where = f"{args.model_store.rstrip('/')}/{model_store.MODEL_NAME}/{version}"
    print(f"published {where} "
          f"(best val_accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']}, "
          f"{seconds / 60:.1f} min)")
    return 0


def _metadata(args, train_set, val_set, summary: dict, seconds: float, strategy) -> dict:
    return {
        "model_name": model_store.MODEL_NAME,
        "class_names": train_set.class_names,
        "input_size": list(model_store.IMAGE_SIZE),
        "input_shape": [model_store.IMAGE_SIZE[1], model_store.IMAGE_SIZE[0], 3],
        "preprocessing": model_store.PREPROCESSING_SPEC,
        **summary,
        "dataset": {
            "train_dir": str(args.data_dir), "val_dir": str(args.val_dir) if args.val_dir else None,
            "val_split": None if args.val_dir else args.val_split,
            "train_counts": train_set.counts(), "val_counts": val_set.counts(),
            "skipped_unreadable": len(train_set.skipped) + len(val_set.skipped),
        },
        "hyperparameters": {k: getattr(args, k) for k in (
            "epochs", "batch_size", "learning_rate", "weight_decay", "warmup_epochs", "label_smoothing",
            "dropout", "bn_momentum", "patience", "seed")},
        "training_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(1, summary["epochs_run"]), 1),
        "replicas": strategy.num_replicas_in_sync,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__, "pillow": PIL.__version__},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the train command."""
    parser.add_argument("--data-dir", required=True, help="folder with one subfolder of images per class")
    parser.add_argument("--val-dir", help="validation folder (same classes); default: split --data-dir")
    parser.add_argument("--val-split", type=float, default=0.2, help="fraction held out when no --val-dir")
    parser.add_argument("--model-store", default="model_store",
                        help="store to publish the version into (a folder or gs://bucket/prefix)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32, help="per replica")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak rate after warm-up")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-epochs", type=float, default=2.0)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--bn-momentum", type=float, default=0.99,
                        help="BatchNorm moving-average momentum (lower adapts faster in short runs)")
    parser.add_argument("--patience", type=int, default=10, help="EarlyStopping patience in epochs")
    parser.add_argument("--max-per-class", type=int, help="use at most this many training images per class")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--no-jit", dest="jit", action="store_false", help="disable XLA compilation")
    parser.add_argument("--verbose", type=int, default=1, help="Keras verbosity (1 = progress bars)")
    parser.set_defaults(func=run)
