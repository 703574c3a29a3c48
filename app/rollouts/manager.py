"""MODEL_VERSIONS=labels: follow the store's labels.json, keep the candidate loaded beside stable, route to it.

The service serves `stable` (the newest version when unlabelled) and, while `candidate` names another
version that passes the accuracy gate, loads that too with its own batcher. Labels are acted on when the
file changes, so a version promoted by the gate in this server stays until someone relabels.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

import model_store
from app.ops import metrics
from app.rollouts.gate import PROMOTED, REJECTED, Bounds, Candidate, accuracy_gate, bucket
from app.serving.batching import LOW, Batcher, OverloadedError
from app.serving.predictor import ModelLoadError
from model_store import decision, version_labels

log = logging.getLogger(__name__)

# Shadow work runs only once stable has been idle this long (closed-loop clients refill its queue within
# about a millisecond), and is dropped after waiting this long for such a gap.
STABLE_IDLE_S = 0.002
SHADOW_WAIT_S = 0.2


class RolloutManager:
    """The candidate side of a ModelService."""

    def __init__(self, service):
        self.service = service
        self.config = service.config
        self.enabled = str(self.config.get("MODEL_VERSIONS") or "latest") == "labels"
        self.bounds = Bounds.from_config(self.config)
        self.shadow_percent = float(self.config.get("SHADOW_PERCENT") or 0)
        self.canary_percent = float(self.config.get("CANARY_PERCENT") or 0)
        self.labels: dict[str, int] = {}
        self._seen: dict[str, int] | None = None
        self.candidate: Candidate | None = None
        self._stable_abstains: deque = deque(maxlen=self.bounds.window)
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
        stable = self.service.predictor
        current = self.candidate
        if version is None or version == stable.version:
            if current is not None:
                self._unload(current)
                self.candidate = None
            return
        if current is not None and current.version == version:
            return  # a rejected candidate stays rejected until relabelled
        if current is not None:
            self._unload(current)
        self.candidate = self._load(version, stable)
        metrics.set_rollout(version, self.candidate.state, self.candidate.figures())

    def _load(self, version: int, stable) -> Candidate:
        service = self.service
        try:
            if model_store.is_remote(service.store_uri):
                model_store.local_copy(service.store_uri, self.config.get("MODEL_CACHE_DIR"), version,
                                       want=service.files_wanted)
            metadata = model_store.read_metadata(service.local_store, version)
        except (OSError, ValueError, KeyError) as exc:
            return self._rejected(version, f"cannot read its metadata: {exc}")
        reason = accuracy_gate(metadata, stable.metadata, self.bounds.accuracy_tolerance)
        if reason:
            return self._rejected(version, reason)
        try:
            predictor = service.load(version)
        except ModelLoadError as exc:
            return self._rejected(version, f"cannot load: {exc}")
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
        candidate = Candidate(version, predictor, batcher, self.bounds)
        candidate.stable_rate = self.stable_abstain_rate
        return candidate

    def _stable_idle(self) -> bool:
        """Wait for a gap in stable's work (True), or give up after SHADOW_WAIT_S (False: drop the shadow)."""
        deadline = time.monotonic() + SHADOW_WAIT_S
        while time.monotonic() < deadline:
            # No request being handled (one may be decoding, about to need the model) and stable idle.
            if self.service.in_flight == 0 and self.service.batcher.idle_for() >= STABLE_IDLE_S:
                return True
            time.sleep(STABLE_IDLE_S / 2)
        return False

    def _rejected(self, version: int, reason: str) -> Candidate:
        log.error("candidate version %s rejected: %s", version, reason)
        return Candidate(version, None, None, self.bounds, reason)

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
                log.error("candidate version %s rejected: %s; stable %s keeps serving", candidate.version,
                          candidate.reason, self.service.predictor.version)
                self._unload(candidate)
            elif state == PROMOTED:
                log.info("candidate version %s promoted after %s answers within bounds", candidate.version,
                         candidate.counts)
                self.service.swap(candidate.predictor)
                self._unload(candidate)

    def note_stable(self, abstained: list[bool]) -> None:
        """Remember stable's recent abstain decisions (what a canary's abstain rate is compared with)."""
        self._stable_abstains.extend(abstained)

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

    def shadow(self, request_key: str, images: list, stable_labels: list[str], stable_abstained: list[bool]) -> None:
        """Run the images on the candidate in the background and compare with stable's answers; never waits.
        Skipped (and counted) while stable has work queued or the candidate's queue is a full batch deep."""
        cand = self.serving_candidate()
        if cand is None or self.shadow_percent <= 0 or bucket("shadow:" + request_key) >= self.shadow_percent:
            return
        batcher, predictor = cand.batcher, cand.predictor  # the candidate may be unloaded meanwhile
        if batcher is None or predictor is None:
            return
        # Dropped first under load: while stable has images waiting, or the candidate is a batch behind.
        if self.service.batcher.depth() > 0 or batcher.depth() >= batcher.max_batch:
            cand.shadow_dropped += 1
            metrics.SHADOW_DROPPED.inc()
            return
        started = time.perf_counter()
        try:
            futures = batcher.submit(images, LOW)
        except OverloadedError:
            cand.shadow_dropped += 1
            metrics.SHADOW_DROPPED.inc()
            return
        remaining = [len(futures)]
        lock = threading.Lock()

        def done(_future) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            latency = (time.perf_counter() - started) * 1000
            try:
                rows = [f.result()[1] for f in futures]
            except OverloadedError:  # waited too long behind stable's work: dropped, not the candidate's fault
                cand.shadow_dropped += 1
                metrics.SHADOW_DROPPED.inc()
                return
            except Exception:  # noqa: BLE001 - any failure of the candidate is an error sample, never the user's
                state = cand.record("shadow", True, latency)
            else:
                answers = decision.decide(np.stack(rows), predictor.policy)
                labels, abstained = [a.label for a in answers], [a.abstained for a in answers]
                agreed = [a == b for a, b in zip(labels, stable_labels, strict=True)]
                state = cand.record("shadow", False, latency, abstained, agreed, stable_abstained)
            if state in (REJECTED, PROMOTED):
                self.settle(cand, state)

        for f in futures:
            f.add_done_callback(done)

    def summary(self) -> dict:
        """The rollout block of GET /v1/models/alexnet."""
        cand = self.candidate
        return {"model_versions": "labels", "labels": dict(self.labels), "stable": str(self.service.predictor.version),
                "shadow_percent": self.shadow_percent, "canary_percent": self.canary_percent,
                "candidate": cand.summary() if cand is not None else None}


