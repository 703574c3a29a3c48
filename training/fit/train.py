"""`python -m training train`: fit AlexNet and publish a new version to the model store."""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

import model_store
from model_store import ood
from training.finish import finish, plots
from training.fit import budget, distributed, loop, options, resume
from training.inputs import cache, data, negatives, pipeline, synthetic
from training.net import losses, precision
from training.net.model import build_alexnet

log = logging.getLogger(__name__)


def _load_data(args: argparse.Namespace) -> tuple[data.ImageSet, data.ImageSet]:
    class_names = data.class_names_of(args.data_dir)
    pairs = data.list_files(args.data_dir, class_names, args.max_per_class, args.seed)
    if args.val_dir:
        val_pairs = data.list_files(args.val_dir, class_names, None, args.seed)
    else:
        pairs, val_pairs = data.split_pairs(pairs, args.val_split, args.seed)
    # Kinds held out whole are drawn from the photo folders only (generated kinds are never held out).
    try:
        args.unseen_names = negatives.pick_unseen(args.negatives or [], args.unseen_kinds,
                                                  args.seed if args.unseen_seed is None else args.unseen_seed)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if args.synthetic_negatives:  # generated images of no class, beside the photos (training/inputs/synthetic.py)
        made = synthetic.training_folder(args.synthetic_negatives, args.seed, args.cache_dir)
        args.negatives = [*(args.negatives or []), str(made)]
    if args.negatives:  # photos of other things, trained towards "unsure" (training/inputs/negatives.py)
        pairs = pairs + negatives.split(args.negatives, args.negatives_holdout, args.seed, args.unseen_names)[0]
    cache_dir = None if args.no_cache else (args.cache_dir or cache.default_cache_dir())
    started = time.time()
    train_set = cache.load_cached(pairs, class_names, cache_dir)
    val_set = cache.load_cached(val_pairs, class_names, cache_dir)
    log.info("data ready in %.1f s", time.time() - started)
    if args.unseen_names:
        log.info("negative kinds held out whole (never trained on): %s", ", ".join(args.unseen_names))
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


def other_class(args: argparse.Namespace) -> bool:
    """Whether the model gets the extra "other" output (negatives given, --negatives-target other)."""
    return bool(args.negatives) and args.negatives_target == "other"


@dataclass
class Run:
    """One training run: what its steps share."""

    args: argparse.Namespace
    strategy: tf.distribute.Strategy
    strategy_name: str
    train_set: data.ImageSet
    val_set: data.ImageSet
    local_store: str  # a gs:// store trains into a local one under the cache, uploaded at the end
    folder: Path  # the run's working folder (resume state, best weights, history)
    state: dict | None  # what --resume restores, None for a fresh run
    wall_start: float = field(default_factory=time.time)

    @property
    def multi(self) -> bool:
        return self.strategy_name == "multi-worker"

    @property
    def chief(self) -> bool:
        return distributed.is_chief() if self.multi else True

    @property
    def num_classes(self) -> int:
        return len(self.train_set.class_names)

    @property
    def batch(self) -> int:
        return self.args.batch_size * self.strategy.num_replicas_in_sync

    @property
    def first_epoch(self) -> int:
        return self.state["epoch"] if self.state else 0

    def build(self, sync_bn: bool = False) -> keras.Model:
        """AlexNet for this run's classes and options."""
        return build_alexnet((*model_store.IMAGE_SIZE[::-1], 3), self.num_classes, dropout=self.args.dropout,
                             bn_momentum=self.args.bn_momentum, sync_bn=sync_bn, other_class=other_class(self.args))


def run(args: argparse.Namespace) -> int:
    """Train (resumably), checkpoint the best epoch, then atomically publish it as a new version."""
    r = start(args)
    source, val_ds, mode, speeds, progress = prepare(r)
    model, loss = build_and_compile(r, mode, source.steps(), progress)
    train_img_s, seconds = train(r, model, loss, source, val_ds, progress)
    if not r.chief:
        print("worker done: the chief publishes the version", flush=True)
        return 0
    model = best_float32_model(r)
    summary = finish.best_epoch(r.folder / "history.csv")
    plots.training_curves(r.folder / "history.csv", r.folder / "curves.png")
    bare = speeds.get(mode.name)
    summary["speed"] = {"precision": mode.name, "strategy": r.strategy_name, "bare_step_img_s": speeds,
                        "train_img_s": train_img_s,
                        "pipeline_ratio": round(train_img_s / bare, 3) if bare and train_img_s else None,
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                        "wall_seconds": round(time.time() - r.wall_start, 1)}
    where = publish(r, model, summary, seconds)
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
    train_set, val_set = _load_data(args)
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
        r.train_set.images, r.train_set.labels, r.num_classes, r.batch, args.seed), r.num_classes)
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


def best_float32_model(r: Run) -> keras.Model:
    """Step 5: the best epoch's weights in a float32, one-replica model, saved as alexnet.h5 (a bf16 model
    serves slowly on CPUs without bf16 and cannot be quantized; no mirrored variables or synchronized BN)."""
    keras.mixed_precision.set_global_policy("float32")
    model = r.build()
    best_weights = r.folder / "best.weights.h5"
    model.load_weights(best_weights)  # the best epoch, not the last
    best_weights.unlink()
    resume.clear(r.folder)
    model.save(r.folder / model_store.MODEL_FILE, include_optimizer=False)
    return model


def publish(r: Run, model: keras.Model, summary: dict, seconds: float) -> str:
    """Step 6: metadata, OpenVINO exports, abstain threshold and report, then the version published
    atomically (uploaded for a gs:// store): where it is."""
    args, folder = r.args, r.folder
    meta = finish.metadata(args, r.train_set, r.val_set, summary, seconds, r.strategy)
    if not args.no_export:
        meta["runtimes"] = finish.export(folder, model, r.train_set, r.val_set, args.seed)
    meta, ood_raw = finish.abstain(folder, model, meta, r.val_set, args.abstain_rate)
    if golden := finish.golden(folder, r.val_set):
        meta["golden"] = golden
    if not args.no_report:
        finish.report(folder, model, meta, r.val_set, args.val_dir or "the held-out split", ood_raw)
    (folder / model_store.METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    version = model_store.publish(r.local_store, folder)
    if not model_store.is_remote(args.model_store):
        return str(model_store.version_dir(r.local_store, version))
    version = model_store.upload_version(r.local_store, version, args.model_store)
    shutil.rmtree(r.local_store, ignore_errors=True)
    return f"{args.model_store.rstrip('/')}/{model_store.MODEL_NAME}/{version}"


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
