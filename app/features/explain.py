"""Explanations: one preprocessed image -> its prediction and a saliency map, bounded per worker.

Occlusion sends its masked copies through the batcher at LOW priority (at most EXPLAIN_BATCH of them per
model call), so predictions never queue behind an explanation; Grad-CAM (TensorFlow runtime) runs on the
request thread. Either way at most EXPLAIN_CONCURRENCY explanations run at once in a worker.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass

import numpy as np
from flask import current_app

import explain
from app.http.errors import ApiError
from app.ops import metrics
from app.serving.batching import LOW
from app.serving.classify import classify, prediction
from app.serving.model_service import Classified, get_service


@dataclass
class Explanation:
    """A prediction with its saliency map over the preprocessed image."""

    prediction: dict
    method: str
    heat: np.ndarray  # (H, W) in [0, 1]
    image: np.ndarray  # the preprocessed image the model saw

    def png(self) -> bytes:
        """The overlay image."""
        return explain.overlay_png(self.image, self.heat, cells=explain.GRID)

    def as_json(self, cells: int = explain.GRID, png: bool = True) -> dict:
        """The /explain JSON answer (overlay_png only when png)."""
        out = {**self.prediction, "method": self.method, "heatmap": explain.to_grid(self.heat, cells)}
        if png:
            out["overlay_png"] = base64.b64encode(self.png()).decode()
        return out


def methods() -> list[str]:
    """Methods the serving runtime supports, the default first."""
    predictor = get_service().predictor
    return [*(predictor.runtime.explain_methods if predictor else ()), "occlusion"]


def _slots() -> threading.BoundedSemaphore:
    return current_app.extensions["explain_slots"]


def _occlusion(image: np.ndarray) -> tuple[Classified, np.ndarray]:
    batch, boxes = explain.occlusion_batch(image)
    result = classify([image, *batch], priority=LOW)
    metrics.count_classified(1)
    probs = result.probabilities
    heat = explain.occlusion_map(probs[0], probs[1:], boxes, int(np.argmax(probs[0])), image.shape[:2])
    return Classified(result.version, probs[:1], result.policy), heat


def _gradcam(image: np.ndarray) -> tuple[Classified, np.ndarray]:
    predictor = get_service().predictor
    result = classify([image])
    if result.version != predictor.version:  # a hot swap landed in between: explain with the new model
        return _gradcam(image)
    heat = predictor.runtime.gradcam(image[None], [int(np.argmax(result.probabilities[0]))])[0]
    return result, heat


def explain_image(image: np.ndarray, method: str | None = None) -> Explanation:
    """Predict and explain one preprocessed image with `method` (default: the runtime's best)."""
    available = methods()
    method = method or available[0]
    if method not in available:
        hint = " (needs MODEL_RUNTIME=tensorflow)" if method in explain.METHODS else ""
        raise ApiError(f"explanation method {method!r} is not available{hint}; this server offers "
                       f"{', '.join(available)}")
    if not _slots().acquire(timeout=float(current_app.config["REQUEST_TIMEOUT_SECONDS"])):
        raise ApiError("server busy explaining other images", 503, {"Retry-After": "2"})
    started = time.monotonic()
    try:
        result, heat = _occlusion(image) if method == "occlusion" else _gradcam(image)
    finally:
        _slots().release()
    metrics.EXPLANATIONS.labels(method=method).observe(time.monotonic() - started)
    return Explanation(prediction(result, 0), method, heat, image)


def init_app(app) -> None:
    """The per-worker explanation slots."""
    app.extensions["explain_slots"] = threading.BoundedSemaphore(max(1, int(app.config["EXPLAIN_CONCURRENCY"])))
