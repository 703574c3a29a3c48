"""Model runtimes behind one interface, predict(images) -> probabilities, and the one place that picks one.

Importing this package imports neither TensorFlow nor OpenVINO: a runtime's library is imported only when
that runtime is loaded, so a worker serving OpenVINO never loads TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

import model_store


@dataclass(frozen=True)
class RuntimeSpec:
    """One runtime: its name, the library it needs, the module that opens it, its KServe V2 platform and,
    for an exported model, the file stem in the version's `openvino-<n>/` folder."""

    name: str
    library: str
    module: str  # has open_runtime(files, name, threads) -> Runtime
    v2_platform: str
    ir_stem: str | None = None


# The one list of runtimes, in auto's order of preference.
REGISTRY: dict[str, RuntimeSpec] = {spec.name: spec for spec in (
    RuntimeSpec("openvino-int8", "openvino", "runtimes.openvino_ir", "openvino_ir", "alexnet_int8"),
    RuntimeSpec("openvino", "openvino", "runtimes.openvino_ir", "openvino_ir", "alexnet_fp32"),
    RuntimeSpec("tensorflow", "tensorflow", "runtimes.keras_h5", "tensorflow_keras"),
)}
NAMES = tuple(REGISTRY)
CHOICES = ("auto", *NAMES)
EXPORTED = tuple(name for name, spec in REGISTRY.items() if spec.ir_stem)  # made by training export
# auto serves int8 only when it lost at most this much validation accuracy against float32.
MAX_INT8_DROP = 0.01
# ... and, for a version that abstains, when its abstain rates moved at most this much from float32's.
MAX_INT8_ABSTAIN_DRIFT = 0.02


@runtime_checkable
class Runtime(Protocol):
    """A loaded model: uint8 NHWC images (N, 227, 227, 3), 0-255 -> probabilities (N, classes)."""

    name: str
    input_shape: tuple  # (None, height, width, 3)
    num_classes: int
    library_version: str
    # Explanation methods the runtime computes itself (e.g. "gradcam", which needs gradients); occlusion
    # works for every runtime through predict.
    explain_methods: tuple[str, ...]
    # Whether each batch size needs a warm-up call of its own (else one batch-1 call warms every size).
    warm_each_batch_size: bool

    def predict(self, images: np.ndarray) -> np.ndarray: ...

    def gradcam(self, images: np.ndarray, classes: list[int]) -> list[np.ndarray]:
        """Grad-CAM maps (H, W) in [0, 1], one per image for its class (only with "gradcam" in explain_methods)."""
        ...


class RuntimeUnavailableError(RuntimeError):
    """The requested runtime cannot serve this version (not exported, or its library is not installed)."""


def installed(name: str) -> bool:
    """True when the library a runtime needs can be imported (checked without importing it)."""
    return importlib.util.find_spec(REGISTRY[name].library) is not None


def exported(metadata: dict) -> dict[str, dict]:
    """Runtimes a version's files support: its metadata's `runtimes`, plus TensorFlow for the alexnet.h5 every
    version has."""
    out = {"tensorflow": {"files": [model_store.MODEL_FILE]}}
    out.update({k: v for k, v in (metadata.get("runtimes") or {}).items() if k in NAMES and isinstance(v, dict)})
    return out


def _int8_good_enough(found: dict[str, dict]) -> bool:
    int8, fp32 = found["openvino-int8"].get("val_accuracy"), found.get("openvino", {}).get("val_accuracy")
    if int8 is None or fp32 is None or float(int8) < float(fp32) - MAX_INT8_DROP:
        return False
    int8_ood, fp32_ood = found["openvino-int8"].get("ood"), found.get("openvino", {}).get("ood")
    if not (int8_ood and fp32_ood):  # a version without an abstain threshold: accuracy decides alone
        return True
    keys = ("val_abstain_rate", "heldout_abstain_rate", "synthetic_abstain_rate")
    return all(abs(float(int8_ood.get(k) or 0.0) - float(fp32_ood.get(k) or 0.0)) <= MAX_INT8_ABSTAIN_DRIFT
               for k in keys)


def choose(metadata: dict, requested: str = "auto", is_installed: Callable[[str], bool] | None = None) -> str:
    """The runtime to serve a version with: `requested`, or for auto int8 (if within MAX_INT8_DROP of float32's
    accuracy and MAX_INT8_ABSTAIN_DRIFT of its abstain rates),
    else OpenVINO float32, else TensorFlow. Raises RuntimeUnavailableError naming the fix."""
    if requested not in CHOICES:
        raise RuntimeUnavailableError(f"unknown MODEL_RUNTIME {requested!r}; choose from {', '.join(CHOICES)}")
    is_installed = is_installed or installed
    found = exported(metadata)
    export_hint = "export it with `python -m training export --model-store STORE --version N`"
    if requested != "auto":
        if requested not in found:
            raise RuntimeUnavailableError(f"this version has no {requested} model; {export_hint}")
        if not is_installed(requested):
            raise RuntimeUnavailableError(f"runtime {requested} needs the {REGISTRY[requested].library} package, "
                                          "which is not installed")
        return requested
    order = [n for n in NAMES if n in found and is_installed(n)]
    if "openvino-int8" in order and not _int8_good_enough(found):
        order.remove("openvino-int8")
    if order:
        return order[0]
    raise RuntimeUnavailableError(
        "this version has only alexnet.h5 and TensorFlow is not installed: "
        f"{export_hint} (adds OpenVINO models), or install TensorFlow (requirements.txt)")


def files_for(metadata: dict, name: str) -> list[str]:
    """Files (relative to the version folder) a runtime reads."""
    return list(exported(metadata)[name]["files"])


def share_of_cores(processes: int) -> int:
    """Inference threads for one of `processes` model processes on this machine's cores (at least 1)."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, processes))


def load(version_dir: str | Path, metadata: dict, name: str, threads: int | None = None) -> Runtime:
    """Load one runtime's model from a version folder (OpenVINO: on `threads` cores, default all)."""
    files = [Path(version_dir) / f for f in files_for(metadata, name)]
    return importlib.import_module(REGISTRY[name].module).open_runtime(files, name, threads)
