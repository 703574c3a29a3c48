"""The photos of one training run: its classes' files, the negatives it trains on, decoded through the cache."""

from __future__ import annotations

import argparse
import logging
import time

from training.inputs import cache, data, negatives, synthetic

log = logging.getLogger(__name__)


def run_data(args: argparse.Namespace) -> tuple[data.ImageSet, data.ImageSet]:
    """(training set with its negatives, validation set) for the train command's flags; sets
    args.unseen_names and adds the generated negatives' folder to args.negatives."""
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
