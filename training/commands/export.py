"""`python -m training export`: add OpenVINO float32 and int8 models to a stored version (local or gs://),
calibrated on its own training photos and the negatives it trained on, checked on its validation photos."""

from __future__ import annotations

import numpy as np

import model_store
import runtimes
from training.finish.export import CALIBRATION_IMAGES, export_version, summary
from training.inputs import data, recorded


def _calibration_and_validation(args, metadata: dict):
    ds = metadata.get("dataset") or {}
    train_dirs = args.data_dir or ds.get("train_dirs")
    if not train_dirs:
        raise SystemExit("this version does not record its training folders: pass --data-dir (and --val-dir)")
    class_names = list(metadata["class_names"])
    seed = int(metadata.get("hyperparameters", {}).get("seed", args.seed))
    pairs = data.list_files(train_dirs, class_names, None, args.seed)
    if not (args.val_dir or ds.get("val_dir")):  # the held-out split is not calibration material
        pairs = data.split_pairs(pairs, ds.get("val_split") or 0.2, seed)[0]
    pairs += recorded.trained_negatives(metadata, seed)
    rng = np.random.default_rng(args.seed)
    chosen = [pairs[i] for i in sorted(rng.choice(len(pairs), min(args.calibration_images, len(pairs)), False))]
    calibration = data.load_image_set(chosen, class_names).images
    val = recorded.validation_of(metadata, args.val_dir, args.seed)
    return calibration, val.images, val.labels


def run(args) -> int:
    """Export one version (default: newest) of a local or gs:// store."""
    remote = model_store.is_remote(args.model_store)
    local = model_store.local_copy(args.model_store, args.cache_dir, args.version) if remote else args.model_store
    # local_copy fetched the pinned version, else the newest: the newest in the cache is the one asked for.
    version = args.version or model_store.latest_version(local)
    vdir = model_store.version_dir(local, version)
    calibration, val_images, val_labels = _calibration_and_validation(args, model_store.read_metadata(local, version))
    metadata = export_version(vdir, calibration, val_images, val_labels)
    if remote:
        new = [f for n in runtimes.EXPORTED for f in metadata["runtimes"][n]["files"]]
        model_store.update_version(local, version, args.model_store, new)
    print(f"exported version {version} of {args.model_store}: {summary(metadata['runtimes'])}")
    return 0


def add_arguments(parser) -> None:
    """Flags of the export command."""
    parser.add_argument("--model-store", default="model_store", help="a folder or gs://bucket/prefix")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("--data-dir", action="append",
                        help="calibration photos (default: the version's training folders, from metadata.json)")
    parser.add_argument("--val-dir", help="validation folder (default: the version's, from metadata.json)")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--cache-dir", help="where a gs:// version is downloaded (default: a temp folder)")
    parser.set_defaults(func=run)
