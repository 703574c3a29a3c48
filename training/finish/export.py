"""OpenVINO export: float32 and NNCF int8 IRs of a version, each runtime's validation accuracy in metadata.json.

A version stays atomic: the IRs are written to a hidden folder, renamed into place, and only then does
metadata.json (replaced atomically) name them; a reader sees either the old or the new metadata, and
every file the metadata it read names exists.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import model_store
import runtimes
from model_store.answers import ood
from training.finish import abstain

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger(__name__)

# Training photos the int8 ranges are fitted on (the negatives a version trained on among them).
CALIBRATION_IMAGES = 1000
IR_PREFIX = "openvino-"


def float32_copy(model):
    """The same network and weights computing in float32, on one replica (a model trained in mixed
    precision would otherwise convert with bfloat16 ops NNCF cannot quantize, and serve slowly on CPUs
    without bf16)."""
    if all(layer.dtype_policy.name == "float32" and not getattr(layer, "synchronized", False)
           for layer in model.layers):
        return model
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] != "InputLayer":
            layer["config"]["dtype"] = "float32"
        if "synchronized" in layer["config"]:
            layer["config"]["synchronized"] = False
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def convert(model) -> ov.Model:
    """An OpenVINO model of a Keras AlexNet that takes uint8 NHWC (the cast to float runs inside the graph)."""
    import openvino as ov
    import tensorflow as tf

    model = float32_copy(model)
    shape = [None, model_store.IMAGE_SIZE[1], model_store.IMAGE_SIZE[0], 3]
    fn = tf.function(lambda x: model(tf.cast(x, tf.float32), training=False), autograph=False)
    ov_model = ov.convert_model(fn.get_concrete_function(tf.TensorSpec(shape, tf.uint8)))
    ov_model.outputs[0].get_tensor().set_names({"probabilities"})
    return ov_model


def quantize(ov_model: ov.Model, calibration: np.ndarray) -> ov.Model:
    """Post-training int8 quantization with NNCF, calibrated on preprocessed training photos."""
    import nncf

    items = [calibration[i:i + 1] for i in range(len(calibration))]
    ignored = None
    if any("/scores" in op.get_friendly_name() for op in ov_model.get_ordered_ops()):
        # The "other" head (model.other_class_head): the projection after the K+1 softmax stays float, or the
        # softmax output is quantized to 8 bits in front of it and p(other), the score that decides
        # abstaining, moves by several points (validation photos' median 0.028 -> 0.068 measured).
        patterns = [r".*/predictions[^/]*/MatMul"]
        if any("/ood_" in op.get_friendly_name() for op in ov_model.get_ordered_ops()):
            # The fused OOD head (training/net/ood_head.py) squares feature differences: 8-bit inputs there
            # would move the distance, and with it the "other" score, far more than the classes'.
            patterns.append(r".*/ood_[^/]*/.*")
        ignored = nncf.IgnoredScope(patterns=patterns, validate=False)
    # Full bias correction (not the fast one): it corrects each layer's shift on the calibration photos after
    # the layers before it are quantized, so the int8 model decides as float32 does more often.
    return nncf.quantize(ov_model, nncf.Dataset(items), subset_size=len(items), ignored_scope=ignored,
                         fast_bias_correction=False)


def accuracy(predict, images: np.ndarray, labels: np.ndarray, batch: int = 32) -> float:
    """Top-1 accuracy of predict(images) -> probabilities on a labelled array set."""
    hits = 0
    for i in range(0, len(images), batch):
        hits += int((predict(np.asarray(images[i:i + batch])).argmax(axis=1) == labels[i:i + batch]).sum())
    return hits / max(1, len(images))


def write_irs(folder: Path, keras_model, calibration: np.ndarray, val_images: np.ndarray,
              val_labels: np.ndarray, subdir: str = f"{IR_PREFIX}1") -> dict[str, dict]:
    """Write folder/subdir/alexnet_{fp32,int8}.xml/.bin; return metadata's `runtimes` with measured accuracy."""
    import nncf
    import openvino as ov
    import tensorflow as tf

    from runtimes.keras_h5 import KerasRuntime
    from runtimes.openvino_ir import OpenVinoRuntime

    out = folder / subdir
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    fp32 = convert(keras_model)
    fp32_stem, int8_stem = runtimes.REGISTRY["openvino"].ir_stem, runtimes.REGISTRY["openvino-int8"].ir_stem
    ov.save_model(fp32, out / f"{fp32_stem}.xml", compress_to_fp16=False)
    int8 = quantize(fp32, calibration)
    ov.save_model(int8, out / f"{int8_stem}.xml")
    log.info("OpenVINO float32 and int8 written to %s in %.1f s", out, time.time() - started)

    found = {
        "tensorflow": {"files": [model_store.MODEL_FILE], "library": f"tensorflow {tf.__version__}",
                       "runtime": KerasRuntime(float32_copy(keras_model))},
        "openvino": {"files": [f"{subdir}/{fp32_stem}.xml", f"{subdir}/{fp32_stem}.bin"],
                     "library": f"openvino {ov.get_version()}"},
        "openvino-int8": {"files": [f"{subdir}/{int8_stem}.xml", f"{subdir}/{int8_stem}.bin"],
                          "library": f"openvino {ov.get_version()}, nncf {nncf.__version__}",
                          "calibration_images": int(len(calibration))},
    }
    for name, entry in found.items():
        runtime = entry.pop("runtime", None) or OpenVinoRuntime(folder / entry["files"][0], name)
        entry["val_accuracy"] = round(accuracy(runtime.predict, val_images, val_labels), 4)
        entry["val_images"] = int(len(val_images))
        print(f"{name:<14} validation accuracy {entry['val_accuracy']:.4f} on {len(val_images)} images", flush=True)
    return found


def _write_json_atomic(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".metadata-", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(obj, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def export_version(vdir: Path, calibration: np.ndarray, val_images: np.ndarray, val_labels: np.ndarray) -> dict:
    """Export a published version in place (atomically, see the module docstring); returns its new metadata."""
    import keras

    model = float32_copy(keras.models.load_model(vdir / model_store.MODEL_FILE, compile=False))
    old = sorted(p for p in vdir.glob(f"{IR_PREFIX}*") if p.is_dir())
    number = 1 + max((int(p.name[len(IR_PREFIX):]) for p in old if p.name[len(IR_PREFIX):].isdigit()), default=0)
    subdir = f"{IR_PREFIX}{number}"
    staged = Path(tempfile.mkdtemp(prefix=".export-", dir=vdir))
    try:
        found = write_irs(staged, model, calibration, val_images, val_labels, subdir)
        os.chmod(staged / subdir, 0o755)
        os.rename(staged / subdir, vdir / subdir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    metadata = json.loads((vdir / model_store.METADATA_FILE).read_text())
    metadata["runtimes"] = found
    sets = abstain.sets_for(metadata, val_images, val_labels)
    if sets is not None:  # a version trained with negatives: refit its threshold, measure the new runtimes
        metadata = abstain.apply(vdir, model, metadata, sets, float((metadata.get("ood") or {}).get(
            "target_abstain_rate", ood.DEFAULT_ABSTAIN_RATE)))[0]
    _write_json_atomic(vdir / model_store.METADATA_FILE, metadata)
    for path in old:  # older exports: no metadata names them any more
        shutil.rmtree(path, ignore_errors=True)
    return metadata


def summary(found: dict[str, dict]) -> str:
    """One line per runtime for the console."""
    return "; ".join(f"{n} {e['val_accuracy']:.4f}" for n, e in found.items() if n in runtimes.NAMES)
