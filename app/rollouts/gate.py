"""Rollouts: a labelled candidate version proves itself on real traffic before it serves everyone.

Shadow (SHADOW_PERCENT) runs a share of stable's requests on the candidate after their answer is ready,
and compares; canary (CANARY_PERCENT) answers a share of clients from the candidate. Every candidate
answer is a sample; once GATE_WINDOW samples are in, the gate checks agreement with stable, error rate,
abstain rate and p99 latency after every sample, and rejects the candidate (no more traffic, no restart)
when one leaves its bound. PROMOTE_AFTER samples within bounds promote it in this server.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.ops import metrics
from app.serving.batching import Batcher
from app.serving.predictor import Predictor

CANDIDATE, REJECTED, PROMOTED = "candidate", "rejected", "promoted"


@dataclass(frozen=True)
class Bounds:
    """What a candidate must stay within (from the GATE_* and PROMOTE_AFTER settings)."""

    window: int = 200
    min_agreement: float = 0.9
    max_error_rate: float = 0.01
    max_abstain_increase: float = 0.05
    max_p99_ms: float = 1000.0
    accuracy_tolerance: float = 0.01
    promote_after: int = 0

    @classmethod
    def from_config(cls, config: dict) -> Bounds:
        """The bounds a server was configured with."""
        return cls(int(config["GATE_WINDOW"]), float(config["GATE_MIN_AGREEMENT"]),
                   float(config["GATE_MAX_ERROR_RATE"]), float(config["GATE_MAX_ABSTAIN_INCREASE"]),
                   float(config["GATE_MAX_P99_MS"]), float(config["GATE_TOLERANCE"]), int(config["PROMOTE_AFTER"]))


def bucket(key: str) -> float:
    """A key's place in [0, 100): the same key always lands in the same place (sticky routing)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64 * 100


def accuracy_gate(candidate_meta: dict, stable_meta: dict, tolerance: float) -> str:
    """Why a candidate may take no traffic ("" when its validation accuracy is within tolerance of stable's)."""
    cand, stable = candidate_meta.get("best_val_accuracy"), stable_meta.get("best_val_accuracy")
    if not isinstance(cand, int | float):
        return "its metadata has no validation accuracy (best_val_accuracy)"
    if isinstance(stable, int | float) and cand < stable - tolerance:
        return f"validation accuracy {cand:.4f} is below stable's {stable:.4f} - {tolerance:g}"
    return ""


class Candidate:
    """A loaded candidate version with its own batcher, and its record on real traffic."""

    def __init__(self, version: int, predictor: Predictor | None, batcher: Batcher | None, bounds: Bounds,
                 reason: str = ""):
        self.version, self.predictor, self.batcher, self.bounds = version, predictor, batcher, bounds
        self.state, self.reason = (REJECTED, reason) if reason else (CANDIDATE, "")
        # (agreed or None, error, abstained, latency_ms, stable's abstained or None), one per image
        self.samples: deque = deque(maxlen=bounds.window)
        self.counts = {"shadow": 0, "canary": 0}
        self.shadow_dropped = 0
        self.stable_rate: Callable[[], float | None] = lambda: None  # stable's recent abstain rate (canary)
        self._lock = threading.Lock()

    @property
    def serving(self) -> bool:
        """Takes shadow or canary traffic."""
        return self.state == CANDIDATE

    def record(self, mode: str, error: bool, latency_ms: float, abstained: list[bool] | None = None,
               agreed: list[bool] | None = None, stable_abstained: list[bool] | None = None) -> str:
        """Count one request's candidate answer (one sample per image); returns the verdict after it."""
        with self._lock:
            if self.state != CANDIDATE:
                return self.state
            n = len(abstained) if abstained else 1
            for i in range(n):
                self.samples.append((agreed[i] if agreed else None, error, bool(abstained and abstained[i]),
                                     latency_ms, stable_abstained[i] if stable_abstained else None))
            self.counts[mode] += n
            metrics.ROLLOUT_REQUESTS.labels(version=str(self.version), mode=mode).inc(n)
            if error:
                metrics.ROLLOUT_ERRORS.labels(version=str(self.version)).inc(n)
            figures = self.figures()
            reason = self._judge(figures)
            if reason:
                self.state, self.reason = REJECTED, reason
            elif self.bounds.promote_after and sum(self.counts.values()) >= self.bounds.promote_after \
                    and len(self.samples) >= self.bounds.window:
                self.state = PROMOTED
        metrics.set_rollout(self.version, self.state, figures)
        return self.state

    def figures(self) -> dict:
        """Agreement, error rate, abstain rates and p99 latency over the window."""
        samples = list(self.samples)
        answered = [s for s in samples if not s[1]]
        paired = [s for s in answered if s[4] is not None]  # shadow: both versions answered the same image
        # Abstain rates on the same images when shadow gives them; canary alone compares with stable's
        # recent answers to other clients.
        mine = paired or answered
        stable_rate = float(np.mean([s[4] for s in paired])) if paired else self.stable_rate()
        return {
            "samples": len(samples),
            "agreement": float(np.mean([s[0] for s in paired])) if paired else None,
            "error_rate": float(np.mean([s[1] for s in samples])) if samples else None,
            "abstain_rate": float(np.mean([s[2] for s in mine])) if mine else None,
            "stable_abstain_rate": stable_rate,
            "p99_ms": float(np.percentile([s[3] for s in answered], 99)) if answered else None,
        }

    def _judge(self, f: dict) -> str:
        b = self.bounds
        if f["samples"] < b.window:
            return ""
        if f["error_rate"] is not None and f["error_rate"] > b.max_error_rate:
            return f"error rate {f['error_rate']:.3f} > {b.max_error_rate:g} over {f['samples']} answers"
        if f["agreement"] is not None and f["agreement"] < b.min_agreement:
            return f"agreement with stable {f['agreement']:.3f} < {b.min_agreement:g} over {f['samples']} answers"
        if f["abstain_rate"] is not None and f["stable_abstain_rate"] is not None \
                and f["abstain_rate"] > f["stable_abstain_rate"] + b.max_abstain_increase:
            return (f"abstain rate {f['abstain_rate']:.3f} > stable's {f['stable_abstain_rate']:.3f} + "
                    f"{b.max_abstain_increase:g}")
        if f["p99_ms"] is not None and f["p99_ms"] > b.max_p99_ms:
            return f"p99 latency {f['p99_ms']:.0f} ms > {b.max_p99_ms:g} ms"
        return ""

    def summary(self) -> dict:
        """What GET /v1/models/alexnet says about the candidate."""
        with self._lock:
            return {"version": str(self.version), "state": self.state, "reason": self.reason,
                    "requests": dict(self.counts), "shadow_dropped": self.shadow_dropped, "window": self.figures()}
