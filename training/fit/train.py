"""`python -m training train`: fit AlexNet and publish a new version to the model store."""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

import model_store
from model_store.answers import ood
from training.finish import finish, plots, version
from training.fit import budget, distributed, loop, options, resume
from training.fit.run import Run, other_class
from training.inputs import cache, load, pipeline
from training.net import losses, precision

log = logging.getLogger(__name__)


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


def run(args: argparse.Namespace) -> int:
    """Train (resumably), checkpoint the best epoch, then atomically publish it as a new version."""
    r = start(args)
    source, val_ds, mode, speeds, progress = prepare(r)
    model, loss = build_and_compile(r, mode, source.steps(), progress)
    train_img_s, seconds = train(r, model, loss, source, val_ds, progress)
    if not r.chief:
        print("worker done: the chief publishes the version", flush=True)
        return 0
    model = version.best_float32_model(r)
    summary = finish.best_epoch(r.folder / "history.csv")
    plots.training_curves(r.folder / "history.csv", r.folder / "curves.png")
    bare = speeds.get(mode.name)
    summary["speed"] = {"precision": mode.name, "strategy": r.strategy_name, "bare_step_img_s": speeds,
                        "train_img_s": train_img_s,
                        "pipeline_ratio": round(train_img_s / bare, 3) if bare and train_img_s else None,
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                        "wall_seconds": round(time.time() - r.wall_start, 1)}
    where = version.publish(r, model, summary, seconds)
    sp = summary["speed"]
    # The host's bare float32 step beside the wall time: hosts differ, and budgets scale with it.
    f32 = f"{speeds['float32']:.1f}" if "float32" in speeds else "not measured"
    print(f"precision {sp['precision']}: training {sp['train_img_s'] or 0:.1f} img/s, bare step "
          f"{bare or 0:.1f} img/s (pipeline/bare {sp['pipeline_ratio']}); peak RSS {sp['peak_rss_mb']} MB; "
          f"wall {sp['wall_seconds'] / 60:.1f} min{' (this process: resumed)' if r.state else ''}; "
          f"host bare float32 step {f32} img/s")
    print(f"published {where} "
          f"(best val_accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']}, "
          f"{seconds / 60:.1f} min)")
    return 0


def start(args: argparse.Namespace) -> Run:
    """Step 1: seed, strategy, data, and the run's folder (fresh, or the interrupted run's with --resume)."""
    keras.utils.set_random_seed(args.seed)
    strategy_name = distributed.resolve(args.strategy)
    strategy = distributed.strategy_for(strategy_name)
    train_set, val_set = load.run_data(args)
    remote = model_store.is_remote(args.model_store)
    local_store = str(cache.default_cache_dir() / "train-store") if remote else args.model_store
    folder = resume.run_dir(local_store, options.identity(args, strategy.num_replicas_in_sync))
    state = resume.load_state(folder) if args.resume else None
    r = Run(args, strategy, strategy_name, train_set, val_set, local_store, folder, state)
    if args.resume and state is None:
        print(f"nothing to resume in {folder}; starting a fresh run", flush=True)
    if state is None and r.chief:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    if r.multi:
        distributed.agree_on_epoch(strategy, r.first_epoch)
    return r


def prepare(r: Run):
    """Step 2: the epoch source and validation batches, the precision race, and the time budget's plan:
    (source, val_ds, precision mode, measured speeds, budget progress variable or None)."""
    args = r.args
    source = pipeline.EpochBatches(r.train_set.images, r.train_set.labels, r.batch, args.seed, augment=True,
                                   min_scale=args.crop_scale,
                                   negatives_share=args.negatives_share if args.negatives else None)
    source.epoch, source.other_class = r.first_epoch, other_class(args)
    val_ds = pipeline.eval_dataset(r.val_set.images, r.val_set.labels, r.num_classes, r.batch)
    mode, speeds = precision.pick(args.precision, r.strategy, pipeline.train_dataset(
        r.train_set.images, r.train_set.labels, r.num_classes, r.batch, args.seed), r.build)
    if args.time_budget:
        source.max_steps = budget.plan(r.folder, args.time_budget, args.epochs, r.batch, speeds.get(mode.name),
                                       source.steps(), resuming=r.state is not None)
    progress = tf.Variable(0.0, trainable=False) if args.time_budget else None
    return source, val_ds, mode, speeds, progress


def build_and_compile(r: Run, mode, steps: int, progress: tf.Variable | None):
    """Step 3: the model in the chosen precision, compiled (and restored on --resume): (model, loss)."""
    keras.mixed_precision.set_global_policy(mode.policy)
    loss = losses.make(other_class(r.args), r.args.label_smoothing)
    with r.strategy.scope():
        model = r.build(sync_bn=r.multi)
        model.compile(optimizer=_optimizer(r.args, steps, progress), loss=loss, metrics=["accuracy"],
                      jit_compile=mode.jit and not r.multi)
        if r.state:  # optimizer variables are created here: inside the scope, as the strategy's own
            resume.restore(model, r.folder, r.state, writer=r.chief)
    return model, loss


def train(r: Run, model: keras.Model, loss, source: pipeline.EpochBatches, val_ds: tf.data.Dataset,
          progress: tf.Variable | None) -> tuple[float | None, float]:
    """Step 4: the epochs (keeping the best weights and the resume state): (steady img/s, seconds)."""
    args, folder = r.args, r.folder
    started, clock = time.time(), time.monotonic()
    # Several workers stop together or not at all: the time budget's deadline is for one process.
    deadline = budget.Deadline(folder, args.time_budget, progress, budget.spent(folder) if r.state else 0.0,
                               clock_start=clock) if progress is not None and not r.multi else None
    speed = precision.EpochSpeed(r.batch)
    try:
        loop.fit(r.strategy, model, loss, source, val_ds, r.num_classes, args.epochs, r.first_epoch,
                 _callbacks(args, folder, r.state, speed, deadline, writer=r.chief), multi_worker=r.multi)
    except BaseException:
        print(f"training interrupted; continue it with the same command plus --resume ({folder})", flush=True)
        raise
    return speed.steady(), time.time() - started


def _callbacks(args: argparse.Namespace, folder: Path, state: dict | None, speed: precision.EpochSpeed,
               deadline: keras.callbacks.Callback | None, writer: bool) -> list[keras.callbacks.Callback]:
    """The loop's callbacks: best-epoch checkpoint, early stopping, history, speed, deadline and resume state
    (a worker that is not the chief gets only those that write nothing)."""
    checkpoint = keras.callbacks.ModelCheckpoint(folder / "best.weights.h5", monitor="val_accuracy", mode="max",
                                                 save_best_only=True, save_weights_only=True)
    stopping = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=args.patience,
                                             restore_best_weights=True)
    if not writer:
        return [stopping, speed, *([deadline] if deadline else []), resume.RestoreCounters(checkpoint, stopping, state)]
    return [checkpoint, stopping, keras.callbacks.CSVLogger(folder / "history.csv", append=bool(state)),
            speed, *([deadline] if deadline else []), resume.SaveState(folder, checkpoint, stopping, state)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the train command."""
    parser.add_argument("--data-dir", required=True, action="append",
                        help="folder with one subfolder of images per class (repeat to train on several)")
    parser.add_argument("--val-dir", help="validation folder (same classes); default: split --data-dir")
    parser.add_argument("--negatives", action="append", metavar="DIR",
                        help="photos of other things (subfolders = kinds), trained towards 'unsure' so the "
                             "served version can abstain (repeatable)")
    parser.add_argument("--synthetic-negatives", type=int, default=0, metavar="N",
                        help="also train on N generated images of no class (noise, flat colours, gradients, "
                             "filled shapes), as negatives")
    parser.add_argument("--abstain-rate", type=float, default=ood.DEFAULT_ABSTAIN_RATE,
                        help="share of the validation photos the fitted abstain threshold abstains on")
    parser.add_argument("--model-store", default="model_store",
                        help="store to publish the version into (a folder or gs://bucket/prefix)")
    options.add_to(parser)  # the recipe: training/fit/options.py
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
