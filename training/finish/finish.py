"""The end of a training run: OpenVINO export, model report, display names and metadata.json."""

from __future__ import annotations

import csv
import importlib.util
import logging
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import PIL
import tensorflow as tf

import model_store
import runtimes
from model_store.versions import golden as golden_set
from training.fit import options
from training.inputs import data

log = logging.getLogger(__name__)


def export(folder: Path, model: keras.Model, train_set: data.ImageSet, val_set: data.ImageSet, seed: int) -> dict:
    """OpenVINO float32 + int8 models in the version folder, with each runtime's validation accuracy."""
    from training.finish import export

    if not runtimes.installed("openvino") or importlib.util.find_spec("nncf") is None:
        log.warning("openvino/nncf not installed: version has alexnet.h5 only (serving needs TensorFlow)")
        return {}
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(train_set.images), min(export.CALIBRATION_IMAGES, len(train_set.images)), False))
    found = export.write_irs(folder, model, np.asarray(train_set.images[picks]), val_set.images, val_set.labels)
    print(f"runtimes' validation accuracy: {export.summary(found)}", flush=True)
    return found


def abstain(folder: Path, model: keras.Model, meta: dict, val_set: data.ImageSet, rate: float
            ) -> tuple[dict, dict | None]:
    """Fit the abstain threshold of a version trained with negatives: (metadata, raw scores for the report)."""
    from training.finish import abstain

    sets = abstain.sets_for(meta, val_set.images, val_set.labels)
    if sets is None:
        return meta, None
    return abstain.apply(folder, model, meta, sets, rate)


def report(folder: Path, model: keras.Model, meta: dict, val_set: data.ImageSet, source: str,
           ood_raw: dict | None = None) -> None:
    """report.html in the version folder, published with it."""
    from training.finish import report

    started = time.time()
    report.write(folder, report.build(model, meta, None, val_set, folder / "history.csv", str(source), ood_raw))
    print(f"wrote the model report ({time.time() - started:.0f} s)", flush=True)


def golden(folder: Path, val_set: data.ImageSet) -> dict | None:
    """golden.npz (a hashed sample of the validation photos, as their files' bytes) for the rollout gate."""
    photos: dict[str, list[bytes]] = {name: [] for name in val_set.class_names}
    for path, label in zip(val_set.paths, val_set.labels, strict=False):
        if label >= 0:
            photos[val_set.class_names[int(label)]].append(Path(path).read_bytes())
    if not any(photos.values()):
        return None  # no photo paths (a split of in-memory arrays): the gate uses GATE_GOLDEN_DIR instead
    return golden_set.write(folder, val_set.class_names, photos)


def display_names(class_names: list[str], given: list[str]) -> dict[str, str]:
    """Labels for people: derived from the folder names ('dogs' -> 'dog'), overridden by --display-name."""
    names = model_store.display_names({"class_names": class_names})
    for item in given:
        folder, sep, label = item.partition("=")
        if not sep or folder not in names or not label.strip():
            raise SystemExit(f"--display-name {item!r}: use FOLDER=LABEL with FOLDER one of {', '.join(names)}")
        names[folder] = label.strip()
    return names


def metadata(args, train_set, val_set, summary: dict, seconds: float, strategy) -> dict:
    return {
        "model_name": model_store.MODEL_NAME,
        "class_names": train_set.class_names,
        "display_names": display_names(train_set.class_names, args.display_name or []),
        "input_size": list(model_store.IMAGE_SIZE),
        "input_shape": [model_store.IMAGE_SIZE[1], model_store.IMAGE_SIZE[0], 3],
        "preprocessing": model_store.PREPROCESSING_SPEC,
        **summary,
        "dataset": {
            "train_dirs": [str(d) for d in args.data_dir], "val_dir": str(args.val_dir) if args.val_dir else None,
            "val_split": None if args.val_dir else args.val_split,
            "train_counts": train_set.counts(), "val_counts": val_set.counts(),
            "skipped_unreadable": len(train_set.skipped) + len(val_set.skipped),
            "negatives": [str(d) for d in args.negatives or []],
            "negatives_holdout": args.negatives_holdout if args.negatives else None,
            "negatives_unseen": list(getattr(args, "unseen_names", None) or []),
            "negatives_share": args.negatives_share if args.negatives else None,
            "negatives_trained": int((train_set.labels < 0).sum()),
            "negatives_target": (args.negatives_target if args.negatives else None),
            "synthetic_negatives": args.synthetic_negatives,
        },
        "hyperparameters": options.hyperparameters(args),
        "training_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(1, summary["epochs_run"]), 1),
        "replicas": strategy.num_replicas_in_sync,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__, "pillow": PIL.__version__},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def best_epoch(history_path: Path) -> dict:
    """Epochs run and the best epoch's validation accuracy/loss, from history.csv."""
    with open(history_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    return {"epochs_run": len(rows), "best_epoch": int(best["epoch"]) + 1,
            "best_val_accuracy": float(best["val_accuracy"]), "best_val_loss": float(best["val_loss"])}
