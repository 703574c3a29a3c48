"""`python -m training train`: fit AlexNet and publish a new version to the model store."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import platform
import resource
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import PIL
import tensorflow as tf

import model_store
import runtimes
from training import cache, data, pipeline, plots, precision, resume
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
    cache_dir = None if args.no_cache else (args.cache_dir or cache.default_cache_dir())
    started = time.time()
    train_set = cache.load_cached(pairs, class_names, cache_dir)
    val_set = cache.load_cached(val_pairs, class_names, cache_dir)
    log.info("data ready in %.1f s", time.time() - started)
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


def _run_settings(args: argparse.Namespace) -> dict:
    keys = ("val_dir", "val_split", "epochs", "crop_scale", "batch_size", "learning_rate", "weight_decay",
            "warmup_epochs", "label_smoothing", "dropout", "bn_momentum", "max_per_class", "seed")
    return {"data_dir": [str(d) for d in args.data_dir], **{k: getattr(args, k) for k in keys}}


def run(args: argparse.Namespace) -> int:
    """Train (resumably), checkpoint the best epoch, then atomically publish it as a new version."""
    wall_start = time.time()
    keras.utils.set_random_seed(args.seed)
    strategy = distribution_strategy()
    train_set, val_set = _load_data(args)
    num_classes = len(train_set.class_names)
    batch = args.batch_size * strategy.num_replicas_in_sync
    # A gs:// store: train into a local store under the cache (so --resume finds it), upload, remove it.
    remote = model_store.is_remote(args.model_store)
    local_store = str(cache.default_cache_dir() / "train-store") if remote else args.model_store
    folder = resume.run_dir(local_store, _run_settings(args))
    state = resume.load_state(folder) if args.resume else None
    if args.resume and state is None:
        print(f"nothing to resume in {folder}; starting a fresh run", flush=True)
    if state is None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    first_epoch = state["epoch"] if state else 0
    train_ds = pipeline.train_dataset(train_set.images, train_set.labels, num_classes, batch, args.seed,
                                      start_epoch=first_epoch, min_scale=args.crop_scale)
    val_ds = pipeline.eval_dataset(val_set.images, val_set.labels, num_classes, batch)
    steps = max(1, len(train_set.images) // batch)
    mode, speeds = precision.pick(args.precision, strategy, pipeline.train_dataset(
        train_set.images, train_set.labels, num_classes, batch, args.seed), num_classes)

    keras.mixed_precision.set_global_policy(mode.policy)
    with strategy.scope():
        model = build_alexnet((*model_store.IMAGE_SIZE[::-1], 3), num_classes, dropout=args.dropout,
                              bn_momentum=args.bn_momentum)
        model.compile(
            optimizer=_optimizer(args, steps),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
            metrics=["accuracy"],
            jit_compile=mode.jit,
        )
    if state:
        resume.restore(model, folder, state)
    best_weights = folder / "best.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(best_weights, monitor="val_accuracy", mode="max",
                                                 save_best_only=True, save_weights_only=True)
    stopping = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=args.patience,
                                             restore_best_weights=True)
    speed = precision.EpochSpeed(steps * batch)
    callbacks = [checkpoint, stopping, keras.callbacks.CSVLogger(folder / "history.csv", append=bool(state)),
                 speed, resume.SaveState(folder, checkpoint, stopping, state)]
    started = time.time()
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, initial_epoch=first_epoch,
                  callbacks=callbacks, verbose=args.verbose)
    except BaseException:
        print(f"training interrupted; continue it with the same command plus --resume ({folder})", flush=True)
        raise
    seconds = time.time() - started
    model.load_weights(best_weights)  # EarlyStopping only restores when it stops early
    best_weights.unlink()
    resume.clear(folder)
    model.save(folder / model_store.MODEL_FILE, include_optimizer=False)
    summary = _best_epoch(folder / "history.csv")
    plots.training_curves(folder / "history.csv", folder / "curves.png")
    bare = speeds.get(mode.name)
    summary["speed"] = {"precision": mode.name, "bare_step_img_s": speeds,
                        "train_img_s": speed.steady(),
                        "pipeline_ratio": round(speed.steady() / bare, 3) if bare and speed.steady() else None,
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                        "wall_seconds": round(time.time() - wall_start, 1)}
    meta = _metadata(args, train_set, val_set, summary, seconds, strategy)
    if not args.no_export:
        meta["runtimes"] = _export(folder, model, train_set, val_set, args.seed)
    if not args.no_report:
        _report(folder, model, meta, val_set, args.val_dir or "the held-out split")
    (folder / model_store.METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    version = model_store.publish(local_store, folder)
    where = model_store.version_dir(local_store, version)
    if remote:
        version = model_store.upload_version(local_store, version, args.model_store)
        shutil.rmtree(local_store, ignore_errors=True)
        where = f"{args.model_store.rstrip('/')}/{model_store.MODEL_NAME}/{version}"
    sp = summary["speed"]
    print(f"precision {sp['precision']}: training {sp['train_img_s'] or 0:.1f} img/s, bare step "
          f"{bare or 0:.1f} img/s (pipeline/bare {sp['pipeline_ratio']}); peak RSS {sp['peak_rss_mb']} MB; "
          f"wall {sp['wall_seconds'] / 60:.1f} min")
    print(f"published {where} "
          f"(best val_accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']}, "
          f"{seconds / 60:.1f} min)")
    return 0


def _export(folder: Path, model: keras.Model, train_set: data.ImageSet, val_set: data.ImageSet, seed: int) -> dict:
    """OpenVINO float32 + int8 models in the version folder, with each runtime's validation accuracy."""
    from training import export

    if not runtimes.installed("openvino") or importlib.util.find_spec("nncf") is None:
        log.warning("openvino/nncf not installed: version has alexnet.h5 only (serving needs TensorFlow)")
        return {}
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(train_set.images), min(export.CALIBRATION_IMAGES, len(train_set.images)), False))
    found = export.write_irs(folder, model, np.asarray(train_set.images[picks]), val_set.images, val_set.labels)
    print(f"runtimes' validation accuracy: {export.summary(found)}", flush=True)
    return found


def _report(folder: Path, model: keras.Model, meta: dict, val_set: data.ImageSet, source: str) -> None:
    """report.html in the version folder, published with it."""
    from training import report

    started = time.time()
    report.write(folder, report.build(model, meta, None, val_set, folder / "history.csv", str(source)))
    print(f"wrote the model report ({time.time() - started:.0f} s)", flush=True)


def _display_names(class_names: list[str], given: list[str]) -> dict[str, str]:
    """Labels for people: derived from the folder names ('dogs' -> 'dog'), overridden by --display-name."""
    names = model_store.display_names({"class_names": class_names})
    for item in given:
        folder, sep, label = item.partition("=")
        if not sep or folder not in names or not label.strip():
            raise SystemExit(f"--display-name {item!r}: use FOLDER=LABEL with FOLDER one of {', '.join(names)}")
        names[folder] = label.strip()
    return names


def _metadata(args, train_set, val_set, summary: dict, seconds: float, strategy) -> dict:
    return {
        "model_name": model_store.MODEL_NAME,
        "class_names": train_set.class_names,
        "display_names": _display_names(train_set.class_names, args.display_name or []),
        "input_size": list(model_store.IMAGE_SIZE),
        "input_shape": [model_store.IMAGE_SIZE[1], model_store.IMAGE_SIZE[0], 3],
        "preprocessing": model_store.PREPROCESSING_SPEC,
        **summary,
        "dataset": {
            "train_dirs": [str(d) for d in args.data_dir], "val_dir": str(args.val_dir) if args.val_dir else None,
            "val_split": None if args.val_dir else args.val_split,
            "train_counts": train_set.counts(), "val_counts": val_set.counts(),
            "skipped_unreadable": len(train_set.skipped) + len(val_set.skipped),
        },
        "hyperparameters": {k: getattr(args, k) for k in (
            "epochs", "batch_size", "learning_rate", "weight_decay", "warmup_epochs", "label_smoothing",
            "dropout", "bn_momentum", "patience", "seed", "precision", "crop_scale")},
        "training_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(1, summary["epochs_run"]), 1),
        "replicas": strategy.num_replicas_in_sync,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__, "pillow": PIL.__version__},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the train command."""
    parser.add_argument("--data-dir", required=True, action="append",
                        help="folder with one subfolder of images per class (repeat to train on several)")
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
    parser.add_argument("--crop-scale", type=float, default=pipeline.CROP_SCALE[0],
                        help="smallest random crop, as a fraction of the photo's area")
    parser.add_argument("--bn-momentum", type=float, default=0.99,
                        help="BatchNorm moving-average momentum (lower adapts faster in short runs)")
    parser.add_argument("--patience", type=int, default=10, help="EarlyStopping patience in epochs")
    parser.add_argument("--max-per-class", type=int, help="use at most this many training images per class")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--precision", default="auto", choices=("auto", *precision.MODES),
                        help="CPU precision mode; auto races them briefly and trains in the fastest")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run of the same settings from its last finished epoch")
    parser.add_argument("--cache-dir", help="decoded-image cache (default: ~/.cache/alexnet-service)")
    parser.add_argument("--no-cache", action="store_true", help="decode every image again, cache nothing")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the OpenVINO float32/int8 export (and its accuracy check) after training")
    parser.add_argument("--no-report", action="store_true", help="skip report.html (python -m training report)")
    parser.add_argument("--display-name", action="append", metavar="FOLDER=LABEL",
                        help="label shown to people for a class folder (default: the folder name, singular)")
    parser.add_argument("--verbose", type=int, default=1, help="Keras verbosity (1 = progress bars)")
    parser.set_defaults(func=run)
