"""What every prediction route shares: readiness check, overload mapping, result formatting."""

from __future__ import annotations

import numpy as np
from flask import g

from app import metrics
from app.batching import HIGH, OverloadedError
from app.disconnect import client_gone_check
from app.errors import ApiError
from app.model_service import Classified, ClientGoneError, get_service
from model_store import MODEL_NAME, ood


def check_model(name: str, version: str | None = None) -> None:
    """404 unless name is the served model and version (if given) is the serving version."""
    if name != MODEL_NAME:
        raise ApiError(f"model '{name}' not found (this server serves '{MODEL_NAME}')", 404)
    current = get_service().predictor
    if version is not None and (current is None or version != str(current.version)):
        raise ApiError(f"version '{version}' of model '{name}' is not being served", 404)


def classify(arrays: list[np.ndarray], priority: int = HIGH) -> Classified:
    """Classify preprocessed images, turning 'not ready' and overload into 503 JSON errors."""
    service = get_service()
    # Draining turns away only requests that arrived after SIGTERM: an accepted one still gets its answer.
    if not service.loaded or not g.get("arrived_before_drain", not service.draining):
        raise ApiError("model not ready", 503, {"Retry-After": "5"})
    try:
        result = service.classify(arrays, client_gone_check(), priority)
    except ClientGoneError as exc:
        # Nobody reads this answer; 499 (nginx's "client closed request") keeps the logs honest.
        raise ApiError(str(exc), 499) from exc
    except OverloadedError as exc:
        metrics.QUEUE_REJECTED.inc()
        raise ApiError(str(exc), 503, {"Retry-After": "1"}) from exc
    if priority == HIGH:  # answers people get (explanations' occlusion batches are not answers)
        metrics.count_answers(result.version, len(arrays), int(result.abstained.sum()))
    return result


def prediction(result: Classified, index: int) -> dict:
    """{"label", "confidence", "probabilities", "model_version", "ood_score", "abstained"} for one image;
    an abstained answer's label is "unknown" (confidence and probabilities stay the trained classes')."""
    probs = result.probabilities[index]
    top = int(np.argmax(probs))
    abstained = bool(result.abstained[index])
    return {
        "label": ood.UNKNOWN_LABEL if abstained else result.class_names[top],
        "confidence": float(probs[top]),
        "probabilities": {name: float(p) for name, p in zip(result.class_names, probs, strict=False)},
        "model_version": str(result.version),
        "ood_score": float(result.ood_scores[index]),
        "abstained": abstained,
    }
