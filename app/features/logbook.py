"""The prediction log as the server uses it: a record per answered image, feedback on them, live agreement.

Off unless PREDICTION_LOG names a folder or gs:// prefix. Logging never slows or fails a request: records go
through prediction_log.LogWriter's bounded queue, and what it cannot take is counted as dropped.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import OrderedDict

from flask import Flask, current_app, g

import prediction_log
from app.access import auth
from app.http import request_id
from app.ops import metrics
from app.serving.model_service import get_service

# Request ids remembered for feedback without reading the log back (about 200 bytes each).
REMEMBERED = 100_000
# A feedback for an id no longer remembered searches this much of the newest log (another worker's,
# another instance's, or one from before a restart).
SCAN_BYTES = 64 << 20
# Ids a scan did not find answer 404 without another scan for this long (a burst of feedback for ids the
# log does not hold, mistaken or hostile, costs one scan per id, and scans run one at a time); short, so a
# retry finds a record another worker had not written yet.
MISS_SECONDS = 5.0
MISSES_KEPT = 10_000


class Logbook:
    """Writes prediction and feedback records and keeps what feedback needs: served labels per request."""

    def __init__(self, writer: prediction_log.LogWriter, storage):
        self.writer, self.storage = writer, storage
        self._recent: OrderedDict[str, tuple[str, list[str]]] = OrderedDict()  # id -> (version, labels)
        self._lock = threading.Lock()
        self._agreement: dict[str, list[int]] = {}  # version -> [agreed, all] feedback in this process
        self._scan_lock = threading.Lock()
        self._misses: OrderedDict[str, float] = OrderedDict()  # id -> when a scan did not find it

    def log_predictions(self, request_id: str, answers: list[dict], uploads: list[bytes], runtime: str | None,
                        latency_ms: float, client: str | None = None) -> None:
        """Queue one record per answered image (the writer hashes and maybe captures the upload)."""
        now = prediction_log.utc_now()
        kept = []
        for index, (answer, data) in enumerate(zip(answers, uploads, strict=True)):
            record = {"type": "prediction", "request_id": request_id, "index": index, "time": now,
                      "model_version": answer["model_version"], "runtime": runtime,
                      "label": answer["label"], "probabilities": answer["probabilities"],
                      "ood_score": answer.get("ood_score"), "abstained": answer.get("abstained"),
                      "state": answer.get("state"),
                      "latency_ms": round(latency_ms, 2)}
            if client is not None:
                record["client"] = client
            kept.append(self.writer.submit(record, data))
        if any(kept):
            with self._lock:
                self._recent[request_id] = (answers[0]["model_version"], [a["label"] for a in answers])
                self._recent.move_to_end(request_id)
                while len(self._recent) > REMEMBERED:
                    self._recent.popitem(last=False)

    def served(self, request_id: str, index: int) -> tuple[str, str] | None:
        """(model version, served label) of one logged image, or None when the log does not hold it."""
        with self._lock:
            hit = self._recent.get(request_id)
        if hit is not None:
            version, labels = hit
            return (version, labels[index]) if 0 <= index < len(labels) else None
        if self._missed_recently(request_id):
            return None
        with self._scan_lock:
            if self._missed_recently(request_id):  # the scan this request waited for did not find it either
                return None
            extra = [self.writer.open_segment] if self.writer.open_segment else []
            found = prediction_log.find(self.storage, request_id, SCAN_BYTES, extra)
            if not found:
                with self._lock:
                    self._misses[request_id] = time.monotonic()
                    while len(self._misses) > MISSES_KEPT:
                        self._misses.popitem(last=False)
        for record in found:
            if record.get("index") == index:
                return str(record.get("model_version")), str(record.get("label"))
        return None

    def _missed_recently(self, request_id: str) -> bool:
        with self._lock:
            when = self._misses.get(request_id)
        return when is not None and time.monotonic() - when < MISS_SECONDS

    def log_feedback(self, request_id: str, index: int, label: str, version: str, served: str,
                     client: str | None = None, trusted: bool = True) -> dict:
        """Queue a feedback record; count it towards the version's live agreement. Returns the record.

        With API keys on, the record names its key (`client`) and says whether it is `trusted` training data
        (a `curate` key); `training feedback` holds the rest for review."""
        agreed = prediction_log.agrees(label, served)
        record = {"type": "feedback", "request_id": request_id, "index": index, "time": prediction_log.utc_now(),
                  "label": label, "model_version": version, "served": served, "agreed": agreed}
        if client is not None:
            record.update(client=client, trusted=trusted)
        if not self.writer.submit(record):
            return {**record, "stored": False}
        with self._lock:
            counts = self._agreement.setdefault(version, [0, 0])
            counts[0] += int(agreed)
            counts[1] += 1
            rate = counts[0] / counts[1]
        metrics.count_feedback(version, agreed, rate)
        return {**record, "stored": True}

    def agreement(self) -> dict[str, dict]:
        """{version: {"feedback": n, "agreed": k, "live_agreement": k / n}} for this process."""
        with self._lock:
            return {v: {"feedback": n, "agreed": k, "live_agreement": k / n} for v, (k, n) in self._agreement.items()}

    def close(self) -> None:
        """Write out everything queued."""
        self.writer.close()


def record(answers: list[dict], uploads: list[bytes]) -> None:
    """Log this request's answers when the log is on (request id, runtime and latency from the request)."""
    logbook = get_logbook()
    if logbook is None:
        return
    predictor = get_service().predictor
    same = predictor is not None and answers and str(predictor.version) == answers[0]["model_version"]
    runtime = predictor.runtime_name if same else None
    started = g.get("metrics_started")
    latency_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    client = auth.client_label() if auth.keys_on() else None
    logbook.log_predictions(request_id.current(), answers, uploads, runtime, latency_ms, client)


def get_logbook() -> Logbook | None:
    """The app's logbook, or None when PREDICTION_LOG is not set."""
    return current_app.extensions.get("logbook")


def init_app(app: Flask) -> None:
    """Start the log writer when PREDICTION_LOG is configured (and close it at exit)."""
    uri = app.config.get("PREDICTION_LOG")
    if not uri:
        app.extensions["logbook"] = None
        return
    storage = prediction_log.open_storage(str(uri))
    writer = prediction_log.LogWriter(
        storage, capture=float(app.config["PREDICTION_LOG_IMAGES"]),
        segment_bytes=int(app.config["PREDICTION_LOG_SEGMENT_BYTES"]),
        segment_seconds=float(app.config["PREDICTION_LOG_ROTATE_SECONDS"]),
        max_bytes=int(app.config["PREDICTION_LOG_MAX_BYTES"]),
        max_age_days=float(app.config["PREDICTION_LOG_MAX_AGE_DAYS"]),
        queue_records=int(app.config["PREDICTION_LOG_QUEUE"]),
        on_drop=metrics.count_log_drops, on_write=metrics.count_log_records)
    logbook = Logbook(writer, storage)
    app.extensions["logbook"] = logbook
    atexit.register(logbook.close)  # gunicorn's worker_exit hook closes it first (gunicorn.conf.py)
    app.logger.info("prediction log on: %s (images captured: %s)", uri, app.config["PREDICTION_LOG_IMAGES"])
