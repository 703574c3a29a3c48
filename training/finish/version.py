"""The last steps of a training run: its best epoch as a float32 model, then the version published."""

from __future__ import annotations

import json
import shutil

import keras

import model_store
from training.finish import finish
from training.fit import resume
from training.fit.run import Run


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
