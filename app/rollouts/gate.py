"""Rollouts: a labelled candidate version proves itself, first on a golden set, then on real traffic.

Preflight (app/rollouts/preflight.py) runs before any traffic. Then shadow (SHADOW_PERCENT) runs a share of
stable's requests on the candidate after their answer is ready, and canary (CANARY_PERCENT) answers a share
of clients from the candidate and (GATE_CANARY_COMPARE_PERCENT of them) also runs them on stable, off the
response path, so both give pairs of answers to the same image. Sequential tests (app/rollouts/evidence.py)
judge disagreement with stable, abstaining and failing after every answer, and reject a broken candidate
within a few dozen; the p99 latency is judged over GATE_WINDOW answers, against GATE_MAX_P99_MS and
stable's own p99 meanwhile. Promotion (PROMOTE_AFTER) needs
that many answers and the sequential tests' evidence in.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from app.ops import metrics
from app.rollouts.evidence import Sprt
from app.serving.batching import Batcher
from app.serving.predictor import Predictor
from model_store.answers import decision

CANDIDATE, REJECTED, PROMOTED = "candidate", "rejected", "promoted"
# What the sequential tests tell apart: a rate at its bound from one this much above it.
AGREEMENT_MARGIN, ABSTAIN_MARGIN, ERROR_MARGIN = 0.3, 0.3, 0.2
P99_OVER_STABLE = 1.5  # a candidate's p99 above GATE_MAX_P99_MS rejects it only when also this much over stable's


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


class Candidate:
    """A loaded candidate version with its own batcher, and its record: preflight, then real traffic."""

    def __init__(self, version: int, predictor: Predictor | None, batcher: Batcher | None, bounds: Bounds,
                 reason: str = "", preflight: dict | None = None):
        self.version, self.predictor, self.batcher, self.bounds = version, predictor, batcher, bounds
        self.state, self.reason = (REJECTED, reason) if reason else (CANDIDATE, "")
        self.preflight = preflight or {}
        self.answers: deque = deque(maxlen=bounds.window)  # (error, abstained, latency_ms), one per image
        # (agreed, candidate label, stable label, candidate abstained, stable abstained, candidate confidence,
        # stable confidence): both versions' answers to one image (shadow, and canary's comparisons)
        self.pairs: deque = deque(maxlen=bounds.window)
        self.counts = {"shadow": 0, "canary": 0}
        self.compared, self.shadow_dropped, self.compare_dropped = 0, 0, 0
        self.disagreement = Sprt("disagreement with stable", 1 - bounds.min_agreement, AGREEMENT_MARGIN)
        self.abstaining = Sprt("abstain rate", bounds.max_abstain_increase, ABSTAIN_MARGIN)
        self.failing = Sprt("error rate", bounds.max_error_rate, ERROR_MARGIN)
        self.stable_rate = lambda: None  # stable's recent abstain rate on other clients' images (canary)
        self.stable_p99 = lambda: None  # stable's recent p99 request latency (ms)
        self._lock = threading.Lock()

    @property
    def serving(self) -> bool:
        """Takes shadow or canary traffic."""
        return self.state == CANDIDATE

    def record(self, mode: str, error: bool, latency_ms: float, answers: list[decision.Decision] | None = None,
               stable: list[decision.Decision] | None = None) -> str:
        """Count one request's candidate answers (with stable's to the same images when known); returns the
        verdict after them."""
        with self._lock:
            if self.state != CANDIDATE:
                return self.state
            n = len(answers) if answers else 1
            for i in range(n):
                abstained = bool(answers and answers[i].abstained)
                self.answers.append((error, abstained, latency_ms))
                self.failing.update(error)
                if not error:
                    self.abstaining.update(abstained, self._stable_abstain_rate() + self.bounds.max_abstain_increase)
            self.counts[mode] += n
            metrics.ROLLOUT_REQUESTS.labels(version=str(self.version), mode=mode).inc(n)
            if error:
                metrics.ROLLOUT_ERRORS.labels(version=str(self.version)).inc(n)
            if answers and stable:
                self._pair(answers, stable)
            figures = self._judge_and_figures()
        metrics.set_rollout(self.version, self.state, figures)
        return self.state

    def compare(self, answers: list[decision.Decision], stable: list[decision.Decision]) -> str:
        """Add stable's answers to images the candidate answered earlier (a canary request's comparison)."""
        with self._lock:
            if self.state != CANDIDATE:
                return self.state
            self._pair(answers, stable)
            figures = self._judge_and_figures()
        metrics.set_rollout(self.version, self.state, figures)
        return self.state

    def _pair(self, answers: list[decision.Decision], stable: list[decision.Decision]) -> None:
        for a, b in zip(answers, stable, strict=True):
            agreed = a.label == b.label
            self.pairs.append((agreed, a.label, b.label, a.abstained, b.abstained, a.confidence, b.confidence))
            self.disagreement.update(not agreed)
        self.compared += len(answers)

    def _stable_abstain_rate(self) -> float:
        # Stable's rate on the same images once there are enough pairs, else on other clients' recent images,
        # else on the golden set.
        if len(self.pairs) >= 20:
            return float(np.mean([p[4] for p in self.pairs]))
        recent = self.stable_rate()
        if recent is not None:
            return recent
        golden = self.preflight.get("stable_abstained")
        return golden / self.preflight["photos"] if golden is not None else 0.0

    def _judge_and_figures(self) -> dict:
        figures = self.figures()
        b = self.bounds
        for test in (self.failing, self.disagreement, self.abstaining):
            if test.rejected:
                self.state, self.reason = REJECTED, test.reason()
                return figures
        p99, stable_p99 = figures["p99_ms"], figures["stable_p99_ms"]
        # Slow beyond the bound and beyond what stable's own requests take now: a busy host slows both, and
        # that is no reason to reject the candidate.
        if len(self.answers) >= b.window and p99 is not None and p99 > b.max_p99_ms \
                and (stable_p99 is None or p99 > P99_OVER_STABLE * stable_p99):
            self.state, self.reason = REJECTED, (f"p99 latency {p99:.0f} ms > {b.max_p99_ms:g} ms (stable's "
                                                 f"{'unknown' if stable_p99 is None else f'{stable_p99:.0f} ms'})")
        elif b.promote_after and sum(self.counts.values()) >= b.promote_after and self.evidence_in:
            self.state = PROMOTED
        return figures

    @property
    def evidence_in(self) -> bool:
        """Every sequential test has seen enough to call the candidate good."""
        return self.disagreement.accepted and self.abstaining.accepted and self.failing.accepted

    def figures(self) -> dict:
        """Agreement, class-share and confidence drift (pairs), error and abstain rates and p99 (answers)."""
        answers, pairs = list(self.answers), list(self.pairs)
        answered = [a for a in answers if not a[0]]
        out = {
            "samples": len(answers), "compared": len(pairs),
            "agreement": float(np.mean([p[0] for p in pairs])) if pairs else None,
            "error_rate": float(np.mean([a[0] for a in answers])) if answers else None,
            "abstain_rate": float(np.mean([a[1] for a in answered])) if answered else None,
            "stable_abstain_rate": float(np.mean([p[4] for p in pairs])) if pairs else self.stable_rate(),
            "p99_ms": float(np.percentile([a[2] for a in answered], 99)) if answered else None,
            "stable_p99_ms": self.stable_p99(),
            "class_shift": None, "confidence_drift": None,
        }
        if pairs:
            labels = {p[1] for p in pairs} | {p[2] for p in pairs}
            mine = {lab: np.mean([p[1] == lab for p in pairs]) for lab in labels}
            theirs = {lab: np.mean([p[2] == lab for p in pairs]) for lab in labels}
            out["class_shift"] = float(0.5 * sum(abs(mine[lab] - theirs[lab]) for lab in labels))
            out["confidence_drift"] = float(np.mean([p[5] - p[6] for p in pairs]))
        return out

    def summary(self) -> dict:
        """What GET /v1/models/alexnet says about the candidate."""
        with self._lock:
            return {"version": str(self.version), "state": self.state, "reason": self.reason,
                    "requests": dict(self.counts), "compared": self.compared, "shadow_dropped": self.shadow_dropped,
                    "compare_dropped": self.compare_dropped, "preflight": self.preflight, "window": self.figures(),
                    "evidence": {t.name: t.summary() for t in (self.disagreement, self.abstaining, self.failing)}}
