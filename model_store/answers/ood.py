"""The "neither" answer: an out-of-distribution score and the abstain decision every consumer shares.

A version trained with negatives (`train --negatives`, outlier exposure) learned what is not one of its
classes, in one of two ways, and its metadata names the score (`ood.method`):

- "other": the model has an extra "other" output and serves the class probabilities of that softmax, so
  they sum to 1 - p(other); the score is p(other), the remainder.
- "msp": negatives trained towards the uniform distribution, so uncertainty is the score: 0 when one class
  has all the probability, 1 when every class has the same.

A version's metadata carries the threshold fitted at training or export time (`ood.threshold`); a score
above it abstains. Computed from the probabilities alone, so every runtime and every consumer (server,
batch scoring, CLI) decides the same way at no extra model cost.
"""

from __future__ import annotations

import numpy as np

UNKNOWN_LABEL = "unknown"
METHODS = ("other", "msp")
METHOD = "msp"  # the score of versions whose metadata names none
DEFAULT_ABSTAIN_RATE = 0.025  # share of the validation photos a fitted threshold abstains on


def scores(probabilities: np.ndarray, method: str = METHOD) -> np.ndarray:
    """OOD score per row of probabilities (N, K), higher = less like the classes: "other" 1 - sum(p),
    "msp" (1 - max p) / (1 - 1/K)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if method == "other":
        return np.clip(1.0 - probs.sum(axis=-1), 0.0, 1.0)
    if method != "msp":
        raise ValueError(f"unknown OOD method {method!r}: use one of {', '.join(METHODS)}")
    k = probs.shape[-1]
    return np.clip((1.0 - probs.max(axis=-1)) / (1.0 - 1.0 / k), 0.0, 1.0)


def method_of(metadata: dict) -> str:
    """The score a version is decided by: its fitted `ood.method`, else what it was trained for."""
    method = (metadata.get("ood") or {}).get("method")
    if method in METHODS:
        return method
    return "other" if (metadata.get("dataset") or {}).get("negatives_target") == "other" else METHOD


def fit_threshold(val_scores: np.ndarray, abstain_rate: float = DEFAULT_ABSTAIN_RATE) -> float:
    """The score above which about `abstain_rate` of the (in-distribution) validation photos lie."""
    if not 0.0 <= abstain_rate < 1.0:
        raise ValueError("abstain rate must be in [0, 1)")
    return float(np.quantile(np.asarray(val_scores, dtype=np.float64), 1.0 - abstain_rate, method="higher"))


def threshold_of(metadata: dict) -> float | None:
    """The fitted threshold of a version, or None for a version trained without one."""
    value = (metadata.get("ood") or {}).get("threshold")
    return float(value) if isinstance(value, (int, float)) else None


def abstains(ood_scores: np.ndarray, threshold: float | None) -> np.ndarray:
    """True where a prediction abstains (never when threshold is None: abstaining is off)."""
    ood_scores = np.asarray(ood_scores)
    if threshold is None:
        return np.zeros(ood_scores.shape, dtype=bool)
    return ood_scores > threshold

