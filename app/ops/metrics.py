"""Prometheus metrics (prometheus-client); multi-process aware under several gunicorn workers."""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.http.contract.datamodels import api
from app.serving.batching import HIGH

REQUESTS = Counter("http_requests_total", "HTTP requests by route and status", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "Request latency by route", ["route"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram("inference_batch_size", "Images per model call", buckets=(1, 2, 4, 8, 16, 24, 32, 64))
INFERENCE = Histogram(
    "inference_duration_seconds", "Seconds per model call",
    buckets=(0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 1, 2),
)
IMAGES = Counter("images_classified_total", "Images classified")
QUEUE_REJECTED = Counter("inference_rejected_total", "Requests answered 503 because of overload")
MODEL_VERSION = Gauge("model_version_info", "Loaded model version and the runtime serving it (1 = serving)",
                      ["version", "runtime"], multiprocess_mode="liveall")
MODEL_LOADS = Counter("model_loads_total", "Model version loads by outcome", ["outcome"])
IN_PROGRESS = Gauge("http_requests_in_progress", "Requests being handled now", multiprocess_mode="livesum")
POLL_FAILURES = Counter("model_poll_failures_total", "Hot-reload polls that raised (the poller keeps going)")
CLIENT_GONE = Counter("requests_client_gone_total", "Requests dropped before inference: the client hung up")
DECODE_WAIT = Histogram("decode_budget_wait_seconds", "Time an upload waited for the decode memory budget",
                        buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10))
EXPLANATIONS = Histogram("explanation_duration_seconds", "Seconds per explanation (model work included)",
                         ["method"], buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2.5, 5, 10))
ANSWERS = Counter("predictions_total", "Images answered, by model version", ["version"])
ABSTENTIONS = Counter("abstentions_total", "Images answered \"unknown\" (OOD score above the threshold), by model "
                      "version", ["version"])

LOG_RECORDS = Counter("prediction_log_records_total", "Records written to the prediction log, by type", ["type"])
LOG_DROPPED = Counter("prediction_log_dropped_total", "Prediction-log records (or captured images) not written, "
                      "by reason: queue_full, write_error, image_error", ["reason"])
FEEDBACK = Counter("feedback_total", "Feedback received, by model version and verdict (agree: the person's label "
                   "is the served one)", ["version", "verdict"])
LIVE_AGREEMENT = Gauge("live_agreement_ratio", "Feedback that agreed / all feedback, by model version (this "
                       "process)", ["version"], multiprocess_mode="mostrecent")
ROLLOUT_REQUESTS = Counter("rollout_requests_total", "Images a candidate version answered, by mode (shadow, "
                           "canary)", ["version", "mode"])
ROLLOUT_ERRORS = Counter("rollout_errors_total", "Images a candidate version failed on", ["version"])
SHADOW_DROPPED = Counter("shadow_dropped_total", "Shadow requests skipped because the candidate was behind")
CANARY_COMPARE_DROPPED = Counter("canary_compare_dropped_total", "Canary requests not also run on stable "
                                 "because stable was behind")
ROLLOUT_REJECTED = Counter("rollout_rejected_total", "Candidates rejected, by stage: load, preflight (golden set, "
                           "before any traffic) or live", ["stage"])
ROLLOUT_STATE = Gauge("rollout_state", "Candidate version state (1 = current): candidate, rejected, promoted",
                      ["version", "state"], multiprocess_mode="liveall")
ROLLOUT_WINDOW = Gauge("rollout_window", "A candidate's figures over the gate's window: agreement, error_rate, "
                       "abstain_rate, stable_abstain_rate, p99_ms", ["version", "figure"], multiprocess_mode="liveall")


def set_rollout(version: int, state: str, figures: dict) -> None:
    """Publish a candidate's state and window figures."""
    for name in ("candidate", "rejected", "promoted"):
        ROLLOUT_STATE.labels(version=str(version), state=name).set(1 if name == state else 0)
    for name, value in figures.items():
        if name != "samples" and isinstance(value, int | float):
            ROLLOUT_WINDOW.labels(version=str(version), figure=name).set(value)


def count_log_records(kind: str, n: int) -> None:
    """Count records the prediction log wrote."""
    LOG_RECORDS.labels(type=kind).inc(n)


def count_log_drops(reason: str, n: int) -> None:
    """Count records the prediction log could not take or write."""
    LOG_DROPPED.labels(reason=reason).inc(n)


def count_feedback(version: str, agreed: bool, rate: float) -> None:
    """Count one feedback and publish the version's live agreement."""
    FEEDBACK.labels(version=version, verdict="agree" if agreed else "disagree").inc()
    LIVE_AGREEMENT.labels(version=version).set(rate)


def count_answers(version: int, images: int, abstained: int) -> None:
    """Count one request's answered images and how many of them abstained."""
    ANSWERS.labels(version=str(version)).inc(images)
    if abstained:
        ABSTENTIONS.labels(version=str(version)).inc(abstained)


def observe_model_call(size: int, seconds: float, priority: int = HIGH) -> None:
    """Record one model call of any version (a candidate's shadow work included)."""
    BATCH_SIZE.observe(size)
    INFERENCE.observe(seconds)


CLIENT_REQUESTS = Counter("api_client_requests_total", "Requests by API key name (anonymous without one) and "
                          "outcome: accepted, unauthorized, forbidden, throttled", ["client", "outcome"])
KEYS_RELOADS = Counter("api_keys_reloads_total", "Reloads of the keys file by result (error: the last good "
                       "keys stay)", ["result"])


def count_client(client: str, outcome: str) -> None:
    """Count one request of a key (by name, never the key) or of anonymous clients."""
    CLIENT_REQUESTS.labels(client=client, outcome=outcome).inc()


def count_keys_reload(result: str) -> None:
    """Count one reload of the keys file."""
    KEYS_RELOADS.labels(result=result).inc()


def observe_batch(size: int, seconds: float, priority: int = HIGH) -> None:
    """Record one model call of the stable version; its prediction (HIGH, 0) batches are the images classified
    for users, not background work such as an explanation's masked copies."""
    observe_model_call(size, seconds)
    if priority == HIGH:  # a batch never mixes priorities
        count_classified(size)


def count_classified(images: int) -> None:
    """Count images classified for users (an explanation's own image, not its masked copies)."""
    IMAGES.inc(images)


def set_model_version(version: int, runtime: str, previous: tuple[int, str] | None = None) -> None:
    """Mark the serving version and its runtime (and the one it replaced as no longer serving)."""
    if previous is not None:
        MODEL_VERSION.labels(version=str(previous[0]), runtime=previous[1]).set(0)
    MODEL_VERSION.labels(version=str(version), runtime=runtime).set(1)


def _route() -> str:
    # The URL rule, not the raw path, so label cardinality stays bounded.
    return request.url_rule.rule if request.url_rule else "<unmatched>"


def _before() -> None:
    g.metrics_started = time.perf_counter()
    g.metrics_in_progress = True
    IN_PROGRESS.inc()


def _teardown(_exc) -> None:
    # Teardown runs for every request, whatever happened in between: the gauge never drifts.
    if g.pop("metrics_in_progress", False):
        IN_PROGRESS.dec()


def _after(response):
    started = g.pop("metrics_started", None)
    if started is not None:
        route = _route()
        LATENCY.labels(route=route).observe(time.perf_counter() - started)
        REQUESTS.labels(method=request.method, route=route, status=str(response.status_code)).inc()
    return response


@api(content={"text/plain": {"schema": {"type": "string"}}})
def metrics_view() -> Response:
    """GET /metrics in the Prometheus text format."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
    return Response(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def init_app(app: Flask) -> None:
    """Time every request and expose /metrics."""
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
