"""MODEL_VERSIONS=labels: follow the store's labels.json, keep the candidate loaded beside stable, route to it.

The service serves `stable` (the newest version when unlabelled) and, while `candidate` names another
version that passes preflight (its answers on a golden set, beside stable's), loads that too with its own
batcher. Labels are acted on when the file changes, so a version promoted by the gate in this server stays
until someone relabels. What live traffic tells about the candidate (shadow, canary comparisons): traffic.py.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np

import model_store
from app.ops import metrics
from app.rollouts import preflight
from app.rollouts.gate import PROMOTED, REJECTED, Bounds, Candidate, bucket
from app.rollouts.traffic import LiveEvidence
from app.serving.batching import Batcher
from app.serving.predictor import ModelLoadError
from model_store.versions import version_labels

log = logging.getLogger(__name__)


class RolloutManager(LiveEvidence):
    """The candidate side of a ModelService."""

    def __init__(self, service):
        self.service = service
        self.config = service.config
        self.enabled = str(self.config.get("MODEL_VERSIONS") or "latest") == "labels"
        self.bounds = Bounds.from_config(self.config)
        self.shadow_percent = float(self.config.get("SHADOW_PERCENT") or 0)
        self.canary_percent = float(self.config.get("CANARY_PERCENT") or 0)
        self.compare_percent = float(self.config.get("GATE_CANARY_COMPARE_PERCENT") or 0)
        self.limits = preflight.Limits(self.bounds.accuracy_tolerance, self.bounds.min_agreement,
                                       self.bounds.max_abstain_increase)
        self.labels: dict[str, int] = {}
        self._seen: dict[str, int] | None = None
        self.candidate: Candidate | None = None
        self._stable_abstains: deque = deque(maxlen=self.bounds.window)
        self._stable_latencies: deque = deque(maxlen=self.bounds.window)
        self._lock = threading.Lock()

    def read(self) -> dict[str, int]:
        """The store's labels now (and remember them for the status)."""
        self.labels = version_labels.read_labels(self.service.store_uri)
        return self.labels

    def changed(self) -> dict[str, int] | None:
        """The labels, when they differ from those last acted on; else None."""
        labels = self.read()
        if labels == self._seen:
            return None
        self._seen = labels
        return labels

    def sync(self, version: int | None) -> None:
        """Load `version` as the candidate (or drop the candidate when None or equal to stable)."""
        with self._lock:  # settle() may be promoting or unloading the same candidate from a request thread
            stable, current = self.service.predictor, self.candidate
            if current is not None and current.version == version:
                return  # a rejected candidate stays rejected until relabelled
            if current is not None:
                self._unload(current)
                self.candidate = None
            if version is None or version == stable.version:
                return
        loaded = self._load(version, stable)  # slow (fetch, load, warm, preflight): outside the lock
        with self._lock:
            self.candidate = loaded
        metrics.set_rollout(version, loaded.state, {**loaded.figures(), **preflight.numbers(loaded.preflight)})

    def _load(self, version: int, stable) -> Candidate:
        service = self.service
        try:
            if model_store.is_remote(service.store_uri):
                model_store.local_copy(service.store_uri, self.config.get("MODEL_CACHE_DIR"), version,
                                       want=service.files_wanted)
            metadata = model_store.read_metadata(service.local_store, version)
        except (OSError, ValueError, KeyError) as exc:
            return self._rejected(version, f"cannot read its metadata: {exc}")
        if list(metadata.get("class_names") or []) != list(stable.class_names):
            return self._rejected(version, f"its classes {metadata.get('class_names')} are not stable's "
                                           f"{list(stable.class_names)}")
        try:
            predictor = service.load(version)
        except ModelLoadError as exc:
            return self._rejected(version, f"cannot load: {exc}")
        # Before any user sees it: the golden set through the runtime it will serve with, beside stable.
        reason, checked = preflight.check(self.config, service.local_store, predictor, stable, self.limits,
                                          service.model_lock)
        if reason:
            return self._rejected(version, f"preflight: {reason}", checked)
        def run(images, p=predictor):  # under service.model_lock: the batcher's turn
            return [(p.version, row) for row in p.predict(images)]

        batcher = Batcher(run, before_low=self._stable_idle, turn=service.model_lock, yield_to=service.batcher,
                          max_yield_s=float(self.config["CANARY_MAX_WAIT_MS"]) / 1000.0,
                          max_batch=int(self.config["BATCH_MAX_SIZE"]), max_queue=int(self.config["MAX_QUEUE"]),
                          max_queue_time_s=float(self.config["MAX_QUEUE_SECONDS"]),
                          max_low_batch=int(self.config["BATCH_MAX_SIZE"]), on_batch=metrics.observe_model_call)
        service.states[version] = {"state": "AVAILABLE", "error_message": ""}
        log.info("candidate version %s loaded beside stable %s (shadow %g%%, canary %g%%)", version,
                 stable.version, self.shadow_percent, self.canary_percent)
        candidate = Candidate(version, predictor, batcher, self.bounds, preflight=checked)
        candidate.stable_rate, candidate.stable_p99 = self.stable_abstain_rate, self.stable_p99_ms
        return candidate

    def _rejected(self, version: int, reason: str, checked: dict | None = None) -> Candidate:
        log.error("candidate version %s rejected before any traffic: %s", version, reason)
        metrics.ROLLOUT_REJECTED.labels(stage="preflight" if checked else "load").inc()
        self.service.states[version] = {"state": "END", "error_message": reason, "failed": True}
        return Candidate(version, None, None, self.bounds, reason, checked)

    def _unload(self, candidate: Candidate) -> None:
        batcher, candidate.batcher, candidate.predictor = candidate.batcher, None, None
        if batcher is not None:
            # Queued shadow work finishes first; nobody waits for it.
            threading.Thread(target=batcher.close, name="candidate-unload", daemon=True).start()
        if candidate.state != PROMOTED:
            self.service.states[candidate.version] = {"state": "END", "error_message": candidate.reason}

    def settle(self, candidate: Candidate, state: str) -> None:
        """Act on a verdict: a rejected candidate is unloaded; a promoted one becomes stable here."""
        with self._lock:
            if candidate.predictor is None:
                return
            if state == REJECTED:
                metrics.ROLLOUT_REJECTED.labels(stage="live").inc()
                log.error("candidate version %s rejected: %s; stable %s keeps serving", candidate.version,
                          candidate.reason, self.service.predictor.version)
                self._unload(candidate)
            elif state == PROMOTED:
                log.info("candidate version %s promoted after %s answers within bounds", candidate.version,
                         candidate.counts)
                self.service.swap(candidate.predictor)
                self._unload(candidate)

    def note_stable(self, abstained: list[bool], latency_ms: float | None = None) -> None:
        """Remember stable's recent abstain decisions and request latencies (what a canary's abstain rate
        and p99 are compared with)."""
        self._stable_abstains.extend(abstained)
        if latency_ms is not None:
            self._stable_latencies.append(latency_ms)

    def stable_p99_ms(self) -> float | None:
        """Stable's p99 request latency over its recent requests."""
        recent = list(self._stable_latencies)
        return float(np.percentile(recent, 99)) if len(recent) >= 20 else None

    def stable_abstain_rate(self) -> float | None:
        """Stable's abstain rate over its recent answers."""
        recent = list(self._stable_abstains)
        return float(np.mean(recent)) if recent else None

    def serving_candidate(self) -> Candidate | None:
        """The candidate while it takes traffic."""
        cand = self.candidate
        return cand if cand is not None and cand.serving and cand.batcher is not None else None

    def canary_for(self, key: str) -> Candidate | None:
        """The candidate when this client's key falls in the canary share."""
        cand = self.serving_candidate()
        return cand if cand is not None and self.canary_percent > 0 and bucket(key) < self.canary_percent else None

    def summary(self) -> dict:
        """The rollout block of GET /v1/models/alexnet."""
        cand = self.candidate
        return {"model_versions": "labels", "labels": dict(self.labels), "stable": str(self.service.predictor.version),
                "shadow_percent": self.shadow_percent, "canary_percent": self.canary_percent,
                "canary_compare_percent": self.compare_percent,
                "candidate": cand.summary() if cand is not None else None}


