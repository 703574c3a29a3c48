"""The rollout gate benchmark's candidates: a scratch store with stable as version 1 and broken variants."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import model_store
from model_store.versions import golden as golden_set


def _copy_accuracy(into: dict, source: dict) -> dict:
    """Every "*accuracy*" figure of `into` replaced by the one at the same place in `source`."""
    for key, value in into.items():
        if key in source and "accuracy" in key and not isinstance(value, dict):
            into[key] = source[key]
        elif isinstance(value, dict) and isinstance(source.get(key), dict):
            _copy_accuracy(value, source[key])
    return into


def _keras_variant(stable_dir: Path, kind: str):
    import keras

    model = keras.models.load_model(stable_dir / model_store.MODEL_FILE, compile=False)
    if kind == "random":
        return keras.models.clone_model(model)  # the same layers, freshly initialized
    names = [layer.name for layer in model.layers]
    layer = model.get_layer("scores" if "scores" in names else "predictions")  # the softmax over the classes
    kernel, bias = layer.get_weights()
    order = np.arange(kernel.shape[1])
    order[[0, 1]] = [1, 0]
    layer.set_weights([kernel[:, order], bias[order]])
    return model


def _add_exported(store: Path, stable_meta: dict, kind: str) -> int:
    """Publish a Keras variant of version 1 with its metadata, export it with the CLI, copy stable's
    accuracy figures in; returns its number."""
    staged = model_store.staging_dir(store)
    _keras_variant(model_store.version_dir(store, 1), kind).save(staged / model_store.MODEL_FILE)
    meta = {k: v for k, v in stable_meta.items() if k not in ("runtimes", "golden")}
    (staged / model_store.METADATA_FILE).write_text(json.dumps(meta))
    version = model_store.publish(store, staged)
    subprocess.run([sys.executable, "-m", "training", "export", "--model-store", str(store), "--version",
                    str(version)], check=True, stdout=subprocess.DEVNULL)
    path = model_store.version_dir(store, version) / model_store.METADATA_FILE
    path.write_text(json.dumps(_copy_accuracy(json.loads(path.read_text()), stable_meta)))
    return version


def _add_abstaining(store: Path, stable_meta: dict) -> int:
    """Stable's files with a threshold no answer is under: it abstains on every photo."""
    staged = model_store.staging_dir(store)
    shutil.rmtree(staged)
    shutil.copytree(model_store.version_dir(store, 1), staged)
    meta = json.loads(json.dumps(stable_meta))
    meta["ood"] = {**meta.get("ood", {}), "threshold": 0.0, "unsure_threshold": 0.0}
    (staged / model_store.METADATA_FILE).write_text(json.dumps(meta))
    return model_store.publish(store, staged)


def build(source: str, version: int | None, scratch: Path, golden: bool = True) -> dict[str, int]:
    """The scratch store: stable as version 1, then the candidates; returns their numbers by name.
    golden=False: no version carries a golden set (an older store), so live evidence alone judges."""
    version = version or model_store.latest_version(source)
    store = scratch / "store"
    shutil.copytree(model_store.version_dir(source, version), model_store.version_dir(store, 1))
    if not golden:
        (model_store.version_dir(store, 1) / golden_set.GOLDEN_FILE).unlink(missing_ok=True)
        path = model_store.version_dir(store, 1) / model_store.METADATA_FILE
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "golden"}))
    stable_meta = model_store.read_metadata(store, 1)
    same = _add_abstaining(store, stable_meta)  # then undo the threshold: the same model, files and all
    path = model_store.version_dir(store, same) / model_store.METADATA_FILE
    path.write_text(json.dumps(stable_meta))
    return {"same weights": same, "random weights": _add_exported(store, stable_meta, "random"),
            "swapped outputs": _add_exported(store, stable_meta, "swapped"),
            "abstains on everything": _add_abstaining(store, stable_meta)}
