"""The one answer rule: a version's outputs -> label, state, abstained, score and confidence.

Every consumer (the /predict, TF Serving and V2 routes, /explain, the upload page, batch scoring,
`training evaluate`, the rollout gate) calls `decide` with the version's `Policy`, so they cannot disagree.

Three states:

- "sure": a confident answer, one of the classes.
- "not_sure": an answer (the most likely class), flagged: its OOD score is above the version's
  `ood.unsure_threshold`, or its top class has less than `unsure_confidence` of the class probability.
- "neither": the OOD score is above `ood.threshold`; the label is "unknown" (`abstained` is true) and the
  probabilities still say what it looked most like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_store.answers import ood

SURE, NOT_SURE, NEITHER = "sure", "not_sure", "neither"
STATES = (SURE, NOT_SURE, NEITHER)
# An answer whose top class holds less than this share of the class probability is "not sure" (two classes
# nearly tied): a version's metadata can set its own (`ood.unsure_confidence`).
UNSURE_CONFIDENCE = 0.75
# A version's `ood.unsure_threshold` is fitted so that this share of the validation photos score above it
# (the fitted `ood.threshold`, abstaining on about 2%, is above it).
UNSURE_RATE = 0.10


@dataclass(frozen=True)
class Policy:
    """How one version turns probabilities into answers (from its metadata, and the server's ABSTAIN)."""

    class_names: tuple[str, ...]
    method: str = ood.METHOD
    threshold: float | None = None  # above it: "neither" (None: never)
    unsure_threshold: float | None = None  # above it (and not neither): "not sure"
    unsure_confidence: float = UNSURE_CONFIDENCE

    @classmethod
    def of(cls, metadata: dict, threshold: float | None = None, abstain: bool = True) -> Policy:
        """A version's policy: its fitted thresholds (threshold overrides `ood.threshold`; abstain=False
        answers every image, still flagging "not sure")."""
        fitted = metadata.get("ood") or {}
        neither = (threshold if threshold is not None else ood.threshold_of(metadata)) if abstain else None
        unsure = fitted.get("unsure_threshold")
        unsure = float(unsure) if isinstance(unsure, (int, float)) else None
        if unsure is not None and neither is not None:
            unsure = min(unsure, neither)
        confidence = fitted.get("unsure_confidence")
        return cls(tuple(metadata["class_names"]), ood.method_of(metadata), neither, unsure,
                   float(confidence) if isinstance(confidence, (int, float)) else UNSURE_CONFIDENCE)


@dataclass(frozen=True)
class Decision:
    """One image's answer."""

    label: str  # a class name, or "unknown" when state is "neither"
    state: str  # one of STATES
    abstained: bool  # state == "neither"
    score: float  # the version's OOD score (higher = less like its classes)
    confidence: float  # probability of the most likely class (of the served probabilities)
    looks_like: str  # the most likely class, whatever the state

    def as_dict(self) -> dict:
        """The fields every prediction route shares."""
        return {"label": self.label, "state": self.state, "abstained": self.abstained, "ood_score": self.score,
                "confidence": self.confidence, "looks_like": self.looks_like}


def states(probabilities: np.ndarray, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """(OOD scores, states) per row of probabilities (N, K), vectorised for batch consumers."""
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(policy.class_names))
    scores = ood.scores(probs, policy.method)
    neither = ood.abstains(scores, policy.threshold)
    share = probs.max(axis=1) / np.clip(probs.sum(axis=1), 1e-12, None)
    unsure = share < policy.unsure_confidence
    if policy.unsure_threshold is not None:
        unsure |= scores > policy.unsure_threshold
    out = np.where(neither, NEITHER, np.where(unsure, NOT_SURE, SURE))
    return scores, out


def decide(probabilities: np.ndarray, policy: Policy) -> list[Decision]:
    """The answer for each row of probabilities (N, K) under a version's policy."""
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(policy.class_names))
    scores, found = states(probs, policy)
    out = []
    for row, score, state in zip(probs, scores, found, strict=True):
        top = policy.class_names[int(np.argmax(row))]
        out.append(Decision(ood.UNKNOWN_LABEL if state == NEITHER else top, str(state), bool(state == NEITHER),
                            float(score), float(row.max()), top))
    return out
