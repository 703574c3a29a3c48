"""`python -m training ood-head`: publish a version's model with the fused OOD head as a new version.

`train` publishes without it (the "other" output alone); this command adds the head (training/net/ood_head.py)
to a version, with the weight given. The source version is never changed: a published version is
immutable, and servers that serve it keep its answers. The new version carries the same training record
(history, curves), its own exports, abstain threshold, figures and report, and `derived_from`.
"""

from __future__ import annotations

import argparse
import json
import shutil

import keras
import numpy as np

import model_store
from model_store.answers import ood
from training.finish import abstain, export, report
from training.inputs import cache, data, recorded
from training.net import ood_head

TRAIN_IMAGES = 3000  # training photos whose features the statistics are fitted on
COPIED = ("history.csv", "curves.png")


def fit_head(model, train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray, weight: float,
             dims: int = ood_head.DIMS):
    """(fused model, metadata's `ood.head`) of a float32 model with the "other" output."""
    feats, _ = ood_head.features(model, train_images)
    stats = ood_head.fit(feats, train_labels, dims)
    val_feats, val_logits = ood_head.features(model, val_images)
    scale = ood_head.standardisation(val_feats, val_logits, stats, val_logits.shape[1] - 1)
    fused = ood_head.build(model, stats, scale, weight)
    return fused, ood_head.describe(stats, scale, weight, len(train_labels))


def train_sample(metadata: dict, n: int = TRAIN_IMAGES, seed: int = 0) -> data.ImageSet:
    """A seeded sample of a version's training photos (its classes only, no negatives)."""
    ds = metadata.get("dataset") or {}
    if not ds.get("train_dirs"):
        raise SystemExit("this version does not record its training folders")
    pairs = data.list_files(ds["train_dirs"], list(metadata["class_names"]), None, 1337)
    rng = np.random.default_rng(seed)
    picks = [pairs[i] for i in sorted(rng.choice(len(pairs), min(n, len(pairs)), replace=False))]
    return cache.load_cached(picks, list(metadata["class_names"]), cache.default_cache_dir())


def run(args: argparse.Namespace) -> int:
    """Fit the head on a version of a local store and publish the result as the next version."""
    store = args.model_store
    if model_store.is_remote(store):
        raise SystemExit("ood-head works on a local store: fetch the version, run it, publish with "
                         "`python -m training publish`")
    version = args.version or model_store.latest_version(store)
    vdir = model_store.version_dir(store, version)
    metadata = model_store.read_metadata(store, version)
    model = export.float32_copy(keras.models.load_model(vdir / model_store.MODEL_FILE, compile=False))
    if not any(layer.name == "scores" for layer in model.layers) or any(
            layer.name.startswith("ood_") for layer in model.layers):
        raise SystemExit(f"version {version} has no plain \"other\" output to fuse a head into (trained without "
                         "--negatives, or already fused)")
    train = train_sample(metadata, args.train_images)
    val = recorded.validation_of(metadata, None)
    fused, head = fit_head(model, train.images, train.labels, val.images, args.weight, args.dims)
    staged = model_store.staging_dir(store)
    try:
        fused.save(staged / model_store.MODEL_FILE, include_optimizer=False)
        for name in COPIED:
            if (vdir / name).is_file():
                shutil.copy2(vdir / name, staged / name)
        meta = {**metadata, "derived_from": {"version": version, "change": "fused OOD head"},
                "ood": {**(metadata.get("ood") or {}), "method": "other", "head": head}}
        calibration = np.asarray(train.images[:export.CALIBRATION_IMAGES])
        meta["runtimes"] = export.write_irs(staged, fused, calibration, val.images, val.labels)
        sets = abstain.sets_for(meta, val.images, val.labels)
        if sets is not None:
            rate = float((metadata.get("ood") or {}).get("target_abstain_rate", ood.DEFAULT_ABSTAIN_RATE))
            meta, raw = abstain.apply(staged, fused, meta, sets, rate)
        else:
            raw = None
        (staged / model_store.METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        source = (metadata.get("dataset") or {}).get("val_dir") or "the held-out split"
        report.write(staged, report.build(fused, meta, None, val, staged / "history.csv", str(source), raw))
        new = model_store.publish(store, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    print(f"published version {new} of {store}: version {version} with the fused OOD head (weight {args.weight})")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the ood-head command."""
    parser.add_argument("--model-store", default="model_store", help="a local store")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("--weight", type=float, default=ood_head.WEIGHT,
                        help="weight of the standardised feature distance against the 'other' logit")
    parser.add_argument("--dims", type=int, default=ood_head.DIMS, help="principal directions of the distance")
    parser.add_argument("--train-images", type=int, default=TRAIN_IMAGES)
    parser.set_defaults(func=run)
