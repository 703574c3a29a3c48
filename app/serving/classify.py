"""What every prediction route shares: readiness check, overload mapping, result formatting."""

from __future__ import annotations

import time

import numpy as np
from flask import g, request

from app.http import request_id
from app.http.disconnect import client_gone_check
from app.http.errors import ApiError
from app.ops import metrics
from app.rollouts.gate import PROMOTED, REJECTED
from app.serving.batching import HIGH, OverloadedError
from app.serving.model_service import Classified, ClientGoneError, VersionNotServedError, get_service
from app.serving.predictor import Predictor
from model_store import MODEL_NAME


def served_predictor(name: str, version: str | None = None) -> Predictor:
    """The predictor of the version a route names (stable when none); 404 as check_model."""
    asked = check_model(name, version)
    try:
        return get_service().predictor_for(asked)
    except VersionNotServedError as exc:  # unloaded between the two looks
        raise ApiError(f"version '{version}' of model '{name}' is not being served", 404) from exc


def check_model(name: str, version: str | None = None) -> int | None:
    """404 unless name is the served model and version (if given) is served (stable, or a loaded candidate);
    returns the version asked for."""
    if name != MODEL_NAME:
        raise ApiError(f"model '{name}' not found (this server serves '{MODEL_NAME}')", 404)
    if version is None:
        return None
    service = get_service()
    missing = ApiError(f"version '{version}' of model '{name}' is not being served", 404)
    if not version.isdigit() or service.predictor is None:
        raise missing
    try:
        service.batcher_for(int(version))
    except VersionNotServedError as exc:
        raise missing from exc
    return int(version)


def classify(arrays: list[np.ndarray], priority: int = HIGH, version: int | None = None) -> Classified:
    """Classify preprocessed images (on `version`, default stable), turning 'not ready' and overload into
    503 JSON errors."""
    service = get_service()
    # Draining turns away only requests that arrived after SIGTERM: an accepted one still gets its answer.
    if not service.loaded or not g.get("arrived_before_drain", not service.draining):
        raise ApiError("model not ready", 503, {"Retry-After": "5"})
    try:
        result = service.classify(arrays, client_gone_check(), priority, version)
    except VersionNotServedError as exc:
        raise ApiError(str(exc), 404) from exc
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
    """{"label", "state", "confidence", "looks_like", "probabilities", "model_version", "ood_score",
    "abstained"} for one image (model_store.answers.decision); a "neither" answer's label is "unknown" (confidence,
    looks_like and probabilities still say what it looked most like)."""
    probs = result.probabilities[index]
    return {
        **result.decisions[index].as_dict(),
        "probabilities": {name: float(p) for name, p in zip(result.class_names, probs, strict=False)},
        "model_version": str(result.version),
    }


def _client_key() -> str:
    # Sticky canary: the client's own id, else the request id it chose, else its address.
    return (request.headers.get("X-Client-Id") or request.headers.get("X-Request-ID")
            or request.remote_addr or "")


def classify_routed(arrays: list[np.ndarray], version: int | None = None) -> Classified:
    """/predict's routing: an explicit version; else the canary's clients to the candidate (stable answers
    when it fails); else stable, with the shadow share also run on the candidate in the background."""
    if version is not None:
        return classify(arrays, version=version)
    rollouts = get_service().rollouts
    canary = rollouts.canary_for(_client_key()) if rollouts.enabled else None
    if canary is not None:
        started, judged = time.perf_counter(), True
        try:
            result = classify(arrays, version=canary.version)
        except ApiError as exc:
            if exc.status == 499:  # the client left: nothing to answer, nothing to blame the candidate for
                raise
            # A full queue is the candidate's share of capacity, not a wrong answer (stable answers instead);
            # a timeout is the candidate being slow, and counts against it.
            result, judged = None, not (exc.status == 503 and "queue is full" in exc.message)
        except Exception:  # noqa: BLE001 - whatever the candidate raises, the user gets stable's answer
            result = None
        answers = None if result is None else result.decisions
        if judged:
            state = canary.record("canary", result is None, (time.perf_counter() - started) * 1000, answers)
            if state in (REJECTED, PROMOTED):
                rollouts.settle(canary, state)
            if state == REJECTED:  # rejected by this answer or while it ran: the user gets stable's instead
                result = None
        if result is not None:
            rollouts.compare(canary, request_id.current(), arrays, answers)  # stable's view, off the response path
            return result
    started = time.perf_counter()
    result = classify(arrays)
    if rollouts.enabled:
        rollouts.note_stable([bool(a) for a in result.abstained], (time.perf_counter() - started) * 1000)
        rollouts.shadow(request_id.current(), arrays, result.decisions)
    return result
