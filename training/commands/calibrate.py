"""`python -m training calibrate`: fit (or refit) a stored version's abstain threshold and measure it.

`train --negatives` and `export` do this themselves; this command serves versions trained before, a new
abstain rate, or negatives the version never trained on (then every one of their photos is measured).
"""

from __future__ import annotations

import argparse

import keras

import model_store
from model_store import ood
from training.finish import abstain, export, report, workspace


def run(args: argparse.Namespace) -> int:
    """Fit the threshold of one version (default: newest) of a local or gs:// store; rewrite its report."""
    with workspace.version_store(args.model_store, args.version, "calibrate-") as store:
        version = args.version or model_store.latest_version(store)
        vdir = model_store.version_dir(store, version)
        metadata = model_store.read_metadata(store, version)
        val = export.validation_of(metadata, args.val_dir, args.seed)
        sets = abstain.sets_for(metadata, val.images, val.labels, args.negatives)
        if sets is None:
            raise SystemExit("this version trained without negatives: pass --negatives DIR (photos of other things)")
        model = export.float32_copy(keras.models.load_model(vdir / model_store.MODEL_FILE, compile=False))
        metadata, raw = abstain.apply(vdir, model, metadata, sets, args.abstain_rate)
        export._write_json_atomic(vdir / model_store.METADATA_FILE, metadata)
        source = args.val_dir or (metadata.get("dataset") or {}).get("val_dir") or "the held-out split"
        report.write(vdir, report.build(model, metadata, version, val, vdir / "history.csv", str(source), raw))
        if model_store.is_remote(args.model_store):
            model_store.update_version(store, version, args.model_store, [model_store.REPORT_FILE])
        print(f"calibrated version {version} of {args.model_store}: threshold {metadata['ood']['threshold']:.4f}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the calibrate command."""
    parser.add_argument("--model-store", default="model_store", help="a folder or gs://bucket/prefix")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("--negatives", action="append", metavar="DIR",
                        help="photos of other things (default: the version's own, their held-out part)")
    parser.add_argument("--abstain-rate", type=float, default=ood.DEFAULT_ABSTAIN_RATE,
                        help="share of the validation photos the threshold abstains on")
    parser.add_argument("--val-dir", help="validation folder (default: the version's, from metadata.json)")
    parser.add_argument("--seed", type=int, default=1337)
    parser.set_defaults(func=run)
