"""`python -m training calibrate`: refit a stored version's abstain threshold and publish it as a new version.

`train --negatives` and `export` do this themselves; this command serves versions trained before, a new
abstain rate, or negatives the version never trained on (then every one of their photos is measured). The
source version is never changed: a published version is immutable (servers that cache it would never see
an edit), so the recalibrated copy is the next version, with `derived_from` naming its source.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import keras

import model_store
from model_store.answers import ood
from training.finish import abstain, export, report, workspace
from training.inputs import recorded


def run(args: argparse.Namespace) -> int:
    """Refit the threshold of one version (default: newest) of a local or gs:// store; publish the result as
    the next version."""
    with workspace.version_store(args.model_store, args.version, "calibrate-") as store:
        version = args.version or model_store.latest_version(store)
        vdir = model_store.version_dir(store, version)
        metadata = model_store.read_metadata(store, version)
        val = recorded.validation_of(metadata, args.val_dir, args.seed)
        sets = abstain.sets_for(metadata, val.images, val.labels, args.negatives)
        if sets is None:
            raise SystemExit("this version trained without negatives: pass --negatives DIR (photos of other things)")
        model = export.float32_copy(keras.models.load_model(vdir / model_store.MODEL_FILE, compile=False))
        staged = model_store.staging_dir(store)
        try:
            _copy_model_files(vdir, staged)
            meta = {**metadata, "derived_from": {"version": version, "change": "abstain threshold refitted "
                                                 f"(abstain rate {args.abstain_rate:g})"}}
            meta, raw = abstain.apply(staged, model, meta, sets, args.abstain_rate)
            export._write_json_atomic(staged / model_store.METADATA_FILE, meta)
            source = args.val_dir or (metadata.get("dataset") or {}).get("val_dir") or "the held-out split"
            report.write(staged, report.build(model, meta, None, val, staged / "history.csv", str(source), raw))
            new = model_store.publish(store, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        if model_store.is_remote(args.model_store):
            new = model_store.upload_version(store, new, args.model_store)
        print(f"published version {new} of {args.model_store}: version {version} recalibrated, threshold "
              f"{meta['ood']['threshold']:.4f}")
    return 0


def _copy_model_files(src: Path, dest: Path) -> None:
    # Everything but what calibrating rewrites: the metadata and the report.
    for path in src.iterdir():
        if path.name in (model_store.METADATA_FILE, model_store.REPORT_FILE) or path.name.startswith("."):
            continue
        if path.is_dir():
            shutil.copytree(path, dest / path.name)
        else:
            shutil.copy2(path, dest / path.name)


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
