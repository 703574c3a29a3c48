"""The candidate's evidence from live traffic: shadow runs beside stable and canary answers compared with
stable's, each queued without making the user wait, and what starts shadow work only in stable's idle gaps."""

from __future__ import annotations

import threading
import time

import numpy as np

from app.ops import metrics
from app.rollouts.gate import PROMOTED, REJECTED, Candidate, bucket
from app.serving.batching import HIGH, LOW, OverloadedError
from model_store.answers import decision

# Shadow work runs only once stable has been idle this long (closed-loop clients refill its queue within
# about a millisecond), and is dropped after waiting this long for such a gap.
STABLE_IDLE_S = 0.002
SHADOW_WAIT_S = 0.2


class LiveEvidence:
    """RolloutManager's traffic side; uses its service, serving_candidate(), settle() and percentages."""

    def shadow(self, request_key: str, images: list, stable_answers: list[decision.Decision]) -> None:
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
                state = cand.record("shadow", False, latency, answers, stable_answers)
            if state in (REJECTED, PROMOTED):
                self.settle(cand, state)

        for f in futures:
            f.add_done_callback(done)

    def compare(self, cand: Candidate, request_key: str, images: list, answers: list[decision.Decision]) -> None:
        """Run a canary request's images on stable too, after the response is ready, and add the pairs to the
        candidate's evidence; never waits. Until the agreement test has its evidence the comparison queues
        as a prediction (a saturated stable would starve background work, and a broken candidate would keep
        answering meanwhile: a few dozen extra images is the price of knowing); after that at low priority,
        skipped (and counted) while stable is a batch behind."""
        if self.compare_percent <= 0 or bucket("compare:" + request_key) >= self.compare_percent:
            return
        batcher = self.service.batcher
        urgent = not cand.disagreement.accepted
        if not urgent and batcher.depth() >= batcher.max_batch:
            cand.compare_dropped += 1
            metrics.CANARY_COMPARE_DROPPED.inc()
            return
        try:
            futures = batcher.submit(images, HIGH if urgent else LOW)
        except OverloadedError:
            cand.compare_dropped += 1
            metrics.CANARY_COMPARE_DROPPED.inc()
            return
        remaining, lock = [len(futures)], threading.Lock()

        def done(_future) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            try:
                results = [f.result() for f in futures]
            except Exception:  # noqa: BLE001 - stable's low-priority work timed out or failed: no evidence either way
                cand.compare_dropped += 1
                metrics.CANARY_COMPARE_DROPPED.inc()
                return
            versions = {v for v, _ in results}
            if len(versions) != 1:  # a hot swap split the comparison
                return
            policy = self.service.gateway.policy_for(versions.pop())
            state = cand.compare(answers, decision.decide(np.stack([row for _, row in results]), policy))
            if state in (REJECTED, PROMOTED):
                self.settle(cand, state)

        for f in futures:
            f.add_done_callback(done)

    def _stable_idle(self) -> bool:
        """Wait for a gap in stable's work (True), or give up after SHADOW_WAIT_S (False: drop the shadow).

        Woken by events, not a polling tick: the last request in flight leaving, stable finishing a batch."""
        service = self.service
        deadline = time.monotonic() + SHADOW_WAIT_S
        while (remaining := deadline - time.monotonic()) > 0:
            # No request being handled (one may be decoding, about to need the model)...
            with service.in_flight_lock:
                if not service.in_flight_lock.wait_for(lambda: service.in_flight == 0, remaining):
                    return False
            # ...and stable idle for STABLE_IDLE_S (closed-loop clients come back within that).
            idle = service.batcher.idle_for()
            if idle >= STABLE_IDLE_S:
                return True
            if idle == 0.0:
                service.batcher.wait_for_batch(remaining)
            else:
                time.sleep(min(STABLE_IDLE_S - idle, remaining))
        return False
