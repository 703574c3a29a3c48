"""`python -m training train`: fit AlexNet and publish a new version to the model store."""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

import model_store
from model_store import ood
from training import (
    budget,
    cache,
    data,
    distributed,
    finish,
    loop,
    losses,
    negatives,
    pipeline,
    plots,
    precision,
    resume,
    synthetic,
)
from training.model import build_alexnet

log = logging.getLogger(__name__)


def _load_data(args: argparse.Namespace) -> tuple[data.ImageSet, data.ImageSet]:
    class_names = data.class_names_of(args.data_dir)
    pairs = data.list_files(args.data_dir, class_names, args.max_per_class, args.seed)
    if args.val_dir:
        val_pairs = data.list_files(args.val_dir, class_names, None, args.seed)
    else:
        pairs, val_pairs = data.split_pairs(pairs, args.val_split, args.seed)
    if args.synthetic_negatives:  # generated images of no class, beside the photos (training/synthetic.py)
        made = synthetic.training_folder(args.synthetic_negatives, args.seed, args.cache_dir)
        args.negatives = [*(args.negatives or []), str(made)]
    if args.negatives:  # photos of other things, trained towards "unsure" (training/negatives.py)
        pairs = pairs + negatives.split(args.negatives, args.negatives_holdout, args.seed)[0]
    cache_dir = None if args.no_cache else (args.cache_dir or cache.default_cache_dir())
    started = time.time()
    train_set = cache.load_cached(pairs, class_names, cache_dir)
    val_set = cache.load_cached(val_pairs, class_names, cache_dir)
    log.info("data ready in %.1f s", time.time() - started)
    if len(train_set.images) == 0 or len(val_set.images) == 0:
        raise SystemExit(f"no readable images: train={len(train_set.images)} validation={len(val_set.images)}")
    log.info("train %s (+%d negatives), validation %s, skipped %d unreadable", train_set.counts(),
             int((train_set.labels == negatives.NEGATIVE).sum()), val_set.counts(),
             len(train_set.skipped) + len(val_set.skipped))
    return train_set, val_set


def _optimizer(args: argparse.Namespace, steps_per_epoch: int, progress: tf.Variable | None = None
               ) -> keras.optimizers.Optimizer:
    total = max(1, args.epochs * steps_per_epoch)
    warmup = min(total // 2, max(1, round(args.warmup_epochs * steps_per_epoch)))
    # A time-budgeted run passes `progress`: the rate then also follows the share of the budget spent.
    schedule = budget.BudgetCosine(args.learning_rate, warmup, total, progress)
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=args.weight_decay)
    # Decaying BatchNorm scales/offsets and biases only hurts; decay the kernels alone.
    opt.exclude_from_weight_decay(var_names=["_bn", "bias"])
    return opt


def _run_settings(args: argparse.Namespace, replicas: int) -> dict:
    keys = ("val_dir", "val_split", "epochs", "crop_scale", "batch_size", "learning_rate", "weight_decay",
            "warmup_epochs", "label_smoothing", "dropout", "bn_momentum", "max_per_class", "seed", "time_budget")
    settings = {"data_dir": [str(d) for d in args.data_dir], **{k: getattr(args, k) for k in keys}}
    if args.negatives:  # kept out of the key when unused: runs begun before the flag still resume
        settings["negatives"] = [str(d) for d in args.negatives]
        settings["negatives_holdout"] = args.negatives_holdout
        if args.negatives_share is not None:
            settings["negatives_share"] = args.negatives_share
        if other_class(args):
            settings["negatives_target"] = "other"
    if settings["time_budget"] is None:
        del settings["time_budget"]  # runs begun before the flag existed keep their folder (and resume)
    if replicas > 1:  # another global batch is another run (kept out of one-replica keys: old runs resume)
        settings["replicas"] = replicas
    return settings


def other_class(args: argparse.Namespace) -> bool:
    """Whether the model gets the extra "other" output (negatives given, --negatives-target other)."""
    return bool(args.negatives) and args.negatives_target == "other"


def run(args: argparse.Namespace) -> int:
    """Train (resumably), checkpoint the best epoch, then atomically publish it as a new version."""
    wall_start = time.time()
    keras.utils.set_random_seed(args.seed)
    strategy_name = distributed.resolve(args.strategy)
    strategy = distributed.strategy_for(strategy_name)
    multi = strategy_name == "multi-worker"
    chief = distributed.is_chief() if multi else True
    train_set, val_set = _load_data(args)
    num_classes = len(train_set.class_names)
    batch = args.batch_size * strategy.num_replicas_in_sync
    # A gs:// store: train into a local store under the cache (so --resume finds it), upload, remove it.
    remote = model_store.is_remote(args.model_store)
    local_store = str(cache.default_cache_dir() / "train-store") if remote else args.model_store
    folder = resume.run_dir(local_store, _run_settings(args, strategy.num_replicas_in_sync))
    state = resume.load_state(folder) if args.resume else None
    if args.resume and state is None:
        print(f"nothing to resume in {folder}; starting a fresh run", flush=True)
    if state is None and chief:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    first_epoch = state["epoch"] if state else 0
    if multi:
        distributed.agree_on_epoch(strategy, first_epoch)
    source = pipeline.EpochBatches(train_set.images, train_set.labels, batch, args.seed, augment=True,
                                   min_scale=args.crop_scale,
                                   negatives_share=args.negatives_share if args.negatives else None)
    source.epoch, source.other_class = first_epoch, other_class(args)
    val_ds = pipeline.eval_dataset(val_set.images, val_set.labels, num_classes, batch)
    mode, speeds = precision.pick(args.precision, strategy, pipeline.train_dataset(
        train_set.images, train_set.labels, num_classes, batch, args.seed), num_classes)
    if args.time_budget:
        source.max_steps = budget.plan(folder, args.time_budget, args.epochs, batch, speeds.get(mode.name),
                                       source.steps(), resuming=state is not None)
    steps = source.steps()
    progress = tf.Variable(0.0, trainable=False) if args.time_budget else None

    keras.mixed_precision.set_global_policy(mode.policy)
    loss = losses.make(other_class(args), args.label_smoothing)
    with strategy.scope():
        model = build_alexnet((*model_store.IMAGE_SIZE[::-1], 3), num_classes, dropout=args.dropout,
                              bn_momentum=args.bn_momentum, sync_bn=multi, other_class=other_class(args))
        model.compile(optimizer=_optimizer(args, steps, progress), loss=loss, metrics=["accuracy"],
                      jit_compile=mode.jit and not multi)
        if state:  # optimizer variables are created here: inside the scope, as the strategy's own
            resume.restore(model, folder, state, writer=chief)
    best_weights = folder / "best.weights.h5"
    started, clock = time.time(), time.monotonic()
    try:
        if multi:
            train_img_s = loop.fit(strategy, model, loss, source, val_ds, num_classes, args.epochs, first_epoch,
                                   folder, chief, args.patience, state)
        else:
            deadline = budget.Deadline(folder, args.time_budget, progress, budget.spent(folder) if state else 0.0,
                                       clock_start=clock) if progress is not None else None
            train_img_s = _fit(args, model, pipeline.train_dataset_from(source, num_classes), val_ds, folder,
                               state, first_epoch, batch, deadline)
    except BaseException:
        print(f"training interrupted; continue it with the same command plus --resume ({folder})", flush=True)
        raise
    seconds = time.time() - started
    if not chief:
        print("worker done: the chief publishes the version", flush=True)
        return 0
    # What is saved, exported and served: float32 (a bf16 model serves slowly on CPUs without bf16 and
    # cannot be quantized) on one replica (no mirrored variables, no synchronized BatchNorm).
    keras.mixed_precision.set_global_policy("float32")
    model = build_alexnet((*model_store.IMAGE_SIZE[::-1], 3), num_classes, dropout=args.dropout,
                          bn_momentum=args.bn_momentum, other_class=other_class(args))
    model.load_weights(best_weights)  # the best epoch, not the last
    best_weights.unlink()
    resume.clear(folder)
    model.save(folder / model_store.MODEL_FILE, include_optimizer=False)
    summary = finish.best_epoch(folder / "history.csv")
    plots.training_curves(folder / "history.csv", folder / "curves.png")
    bare = speeds.get(mode.name)
    summary["speed"] = {"precision": mode.name, "strategy": strategy_name, "bare_step_img_s": speeds,
                        "train_img_s": train_img_s,
                        "pipeline_ratio": round(train_img_s / bare, 3) if bare and train_img_s else None,
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                        "wall_seconds": round(time.time() - wall_start, 1)}
    meta = finish.metadata(args, train_set, val_set, summary, seconds, strategy)
    if not args.no_export:
        meta["runtimes"] = finish.export(folder, model, train_set, val_set, args.seed)
    meta, ood_raw = finish.abstain(folder, model, meta, val_set, args.abstain_rate)
    if not args.no_report:
        finish.report(folder, model, meta, val_set, args.val_dir or "the held-out split", ood_raw)
    (folder / model_store.METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    version = model_store.publish(local_store, folder)
    where = model_store.version_dir(local_store, version)
    if remote:
        version = model_store.upload_version(local_store, version, args.model_store)
        shutil.rmtree(local_store, ignore_errors=True)
        where = f"{args.model_store.rstrip('/')}/{model_store.MODEL_NAME}/{version}"
    sp = summary["speed"]
    # The host's bare float32 step beside the wall time: hosts differ, and budgets scale with it.
    f32 = f"{speeds['float32']:.1f}" if "float32" in speeds else "not measured"
    print(f"precision {sp['precision']}: training {sp['train_img_s'] or 0:.1f} img/s, bare step "
          f"{bare or 0:.1f} img/s (pipeline/bare {sp['pipeline_ratio']}); peak RSS {sp['peak_rss_mb']} MB; "
          f"wall {sp['wall_seconds'] / 60:.1f} min{' (this process: resumed)' if state else ''}; "
          f"host bare float32 step {f32} img/s")
    print(f"published {where} "
          f"(best val_accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']}, "
          f"{seconds / 60:.1f} min)")
    return 0


def _fit(args: argparse.Namespace, model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset,
         folder: Path, state: dict | None, first_epoch: int, batch_size: int,
         deadline: keras.callbacks.Callback | None = None) -> float | None:
    """Keras fit with the best-epoch checkpoint, early stopping and the resume state; steady img/s."""
    checkpoint = keras.callbacks.ModelCheckpoint(folder / "best.weights.h5", monitor="val_accuracy", mode="max",
                                                 save_best_only=True, save_weights_only=True)
    stopping = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=args.patience,
                                             restore_best_weights=True)
    speed = precision.EpochSpeed(batch_size)
    callbacks = [checkpoint, stopping, keras.callbacks.CSVLogger(folder / "history.csv", append=bool(state)),
                 speed, *([deadline] if deadline else []), resume.SaveState(folder, checkpoint, stopping, state)]
    model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, initial_epoch=first_epoch,
              callbacks=callbacks, verbose=args.verbose)
    return speed.steady()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the train command."""
    parser.add_argument("--data-dir", required=True, action="append",
                        help="folder with one subfolder of images per class (repeat to train on several)")
    parser.add_argument("--val-dir", help="validation folder (same classes); default: split --data-dir")
    parser.add_argument("--negatives", action="append", metavar="DIR",
                        help="photos of other things (subfolders = kinds), trained towards 'unsure' so the "
                             "served version can abstain (repeatable)")
    parser.add_argument("--negatives-holdout", type=float, default=negatives.HOLDOUT,
                        help="fraction of each negative kind kept out of training to calibrate and report on")
    parser.add_argument("--negatives-share", type=float, metavar="FRACTION",
                        help="share of every epoch drawn from the negatives (repeating them as needed); "
                             "default: their natural proportion")
    parser.add_argument("--negatives-target", choices=("other", "uniform"), default="other",
                        help="what negatives train towards: an extra 'other' output (default) or the uniform "
                             "distribution over the classes")
    parser.add_argument("--synthetic-negatives", type=int, default=0, metavar="N",
                        help="also train on N generated images of no class (noise, flat colours, gradients, "
                             "filled shapes), as negatives")
    parser.add_argument("--abstain-rate", type=float, default=ood.DEFAULT_ABSTAIN_RATE,
                        help="share of the validation photos the fitted abstain threshold abstains on")
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
    parser.add_argument("--time-budget", type=float, metavar="MINUTES",
                        help="cut each epoch to a random subset so training fits these minutes at the measured speed")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--precision", default="auto", choices=("auto", *precision.MODES),
                        help="CPU precision mode; auto races them briefly and trains in the fastest")
    parser.add_argument("--strategy", default="auto", choices=distributed.CHOICES,
                        help="auto: multi-worker when TF_CONFIG names several workers, else all GPUs, else one CPU")
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
