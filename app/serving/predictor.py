"""The serving model: a runtime (see runtimes/) loaded from one store version, checked and warmed."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np

import model_store
import runtimes
from model_store.answers import decision, ood

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A model version is missing, unreadable or does not match its metadata."""


def warmup_sizes(max_batch: int) -> list[int]:
    """Batch sizes run once at start-up: powers of two up to max_batch, and max_batch."""
    sizes, n = [], 1
    while n < max_batch:
        sizes.append(n)
        n *= 2
    return [*sizes, max_batch]


@dataclass
class Predictor:
    """A loaded, warmed model version."""

    version: int
    metadata: dict
    class_names: list[str]
    runtime: runtimes.Runtime
    max_batch: int
    warmup_seconds: float = 0.0
    tta: str = "none"
    policy: decision.Policy | None = None  # how its outputs become answers (model_store.answers.decision)

    def __post_init__(self):
        if self.policy is None:
            self.policy = decision.Policy.of(self.metadata)

    @property
    def abstain_threshold(self) -> float | None:
        """OOD score above which answers are "unknown" (None: never)."""
        return self.policy.threshold

    @property
    def display_names(self) -> dict[str, str]:
        """{class folder name: label for people}."""
        return model_store.display_names(self.metadata)

    @property
    def runtime_name(self) -> str:
        """Which runtime serves: openvino-int8, openvino or tensorflow."""
        return self.runtime.name

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for preprocessed images (N, 227, 227, 3), uint8 0-255."""
        return model_store.predict_tta(self._predict, images, self.tta)

    def _predict(self, images: np.ndarray) -> np.ndarray:
        # No padding to fixed batch shapes: measured here, a batch size seen for the first time costs
        # no more than a repeat, while padding 17 images to 32 nearly doubled the work.
        out = [self.runtime.predict(images[i:i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return out[0] if len(out) == 1 else np.concatenate(out)


def _read_metadata(vdir) -> tuple[dict, list[str]]:
    try:
        metadata = json.loads((vdir / model_store.METADATA_FILE).read_text())
        return metadata, list(metadata["class_names"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"bad metadata.json in {vdir}: {exc}") from exc


def abstain_threshold(metadata: dict, abstain: str = "on", override: float | None = None) -> float | None:
    """The threshold a version serves with: none when ABSTAIN=off, else ABSTAIN_THRESHOLD, else the version's
    fitted one (a version without one answers as before)."""
    if abstain == "off":
        return None
    return float(override) if override is not None else ood.threshold_of(metadata)


def policy_of(metadata: dict, abstain: str = "on", override: float | None = None) -> decision.Policy:
    """The answer policy a version serves with (ABSTAIN, ABSTAIN_THRESHOLD, else its fitted thresholds)."""
    return decision.Policy.of(metadata, override, abstain != "off")


def load_predictor(store, version: int, max_batch: int = 32, tta: str = "none",
                   runtime: str = "auto", abstain: str = "on", threshold: float | None = None) -> Predictor:
    """Load one version with the chosen runtime (MODEL_RUNTIME), check it against its metadata, warm it."""
    vdir = model_store.version_dir(store, version)
    metadata, class_names = _read_metadata(vdir)
    try:
        name = runtimes.choose(metadata, runtime)
    except runtimes.RuntimeUnavailableError as exc:
        raise ModelLoadError(f"version {version}: {exc}") from exc
    try:
        model = runtimes.load(vdir, metadata, name)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
        # h5py/Keras/OpenVINO raise any of these for a truncated or foreign file.
        raise ModelLoadError(f"cannot load the {name} model of {vdir}: {exc}") from exc
    expected_in = (None, model_store.IMAGE_SIZE[1], model_store.IMAGE_SIZE[0], 3)
    if tuple(model.input_shape) != expected_in or model.num_classes != len(class_names):
        raise ModelLoadError(
            f"{vdir}: {name} model input {model.input_shape} / {model.num_classes} outputs do not match "
            f"{expected_in} and {len(class_names)} classes in metadata.json")

    trained_with = metadata.get("preprocessing")
    if trained_with and trained_with != model_store.PREPROCESSING_SPEC:
        # Still served (the pixels differ by a few grey levels at most), but its accuracy was measured on other input.
        changed = sorted(k for k in {*trained_with, *model_store.PREPROCESSING_SPEC}
                         if trained_with.get(k) != model_store.PREPROCESSING_SPEC.get(k))
        log.warning("model version %s was trained with other preprocessing (%s differ): retrain for the "
                    "accuracy in its metadata to hold", version, ", ".join(changed))
    predictor = Predictor(version, metadata, class_names, model, max_batch, tta=model_store.answers.tta.check_mode(tta),
                          policy=policy_of(metadata, abstain, threshold))
    started = time.monotonic()
    sizes = warmup_sizes(max_batch) if model.warm_each_batch_size else [1]
    for size in sizes:
        probs = predictor.predict(np.zeros((size, *expected_in[1:]), np.uint8))
        if probs.shape != (size, len(class_names)) or not np.all(np.isfinite(probs)):
            raise ModelLoadError(f"{vdir}: warm-up produced {probs.shape} outputs, finite={np.isfinite(probs).all()}")
    if "gradcam" in model.explain_methods:  # trace the explanation graph now, not on a user's first /explain
        model.gradcam(np.zeros((1, *expected_in[1:]), np.uint8), [0])
    predictor.warmup_seconds = time.monotonic() - started
    log.info("model version %s loaded with runtime %s and warmed (batches %s) in %.1fs", version, name, sizes,
             predictor.warmup_seconds)
    return predictor
