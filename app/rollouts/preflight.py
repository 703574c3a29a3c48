"""Preflight: before any user sees it, a candidate answers a golden set through the runtime it will serve with.

The golden set is the operator's GATE_GOLDEN_DIR (a folder per class), else stable's own `golden.npz`, else
the candidate's (model_store/versions/golden.py). Stable answers the same photos in the same process, so the
candidate is compared with what stable measurably does here, never with what any metadata claims. Each
check asks for significance (a one-sided binomial test at P_VALUE) as well as a distance beyond the bound,
so that a good retrain is not turned away by the few photos it happens to answer differently.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

import model_store
from app.rollouts.evidence import binomial_tail
from app.serving.predictor import Predictor
from model_store import InvalidImageError, preprocess_image
from model_store.answers import decision
from model_store.versions import golden

log = logging.getLogger(__name__)

P_VALUE = 0.01  # a preflight check fails only when chance would explain the difference less often than this
CHUNK = 16  # stable answers the golden set in chunks, taking the model turn between user batches


@dataclass(frozen=True)
class Limits:
    """Bounds a candidate's golden-set answers must stay within, relative to stable's on the same photos."""

    accuracy_tolerance: float = 0.01  # accuracy may be this far below stable's
    min_agreement: float = 0.9  # share of photos answered as stable answers them
    max_abstain_increase: float = 0.05  # abstain rate above stable's, at most
    max_class_shift: float = 0.3  # total variation distance between the two versions' answer shares


def golden_set(config: dict, local_store: str | None, stable: Predictor,
               candidate: Predictor) -> golden.GoldenSet | None:
    """The photos preflight runs: GATE_GOLDEN_DIR, else stable's golden set, else the candidate's (None: none)."""
    folder = config.get("GATE_GOLDEN_DIR")
    if folder:
        return golden.read_folder(folder, list(stable.class_names))
    for p in (stable, candidate):
        if local_store is None:
            break
        found = golden.read(model_store.version_dir(local_store, p.version), p.metadata)
        if found is not None:
            return found
    return None


def _answers(predictor: Predictor, images: np.ndarray, lock=None) -> list[decision.Decision]:
    rows = []
    for i in range(0, len(images), CHUNK):
        if lock is None:
            rows.append(predictor.predict(images[i:i + CHUNK]))
        else:
            with lock:  # stable's batcher holds this lock for each model call: wait for a gap between them
                rows.append(predictor.predict(images[i:i + CHUNK]))
    return decision.decide(np.concatenate(rows), predictor.policy)


def run(golden_photos: golden.GoldenSet, candidate: Predictor, stable: Predictor, model_lock=None) -> dict:
    """Both versions' answers on the golden set, as figures (accuracy, agreement, abstain and answer shares)."""
    started = time.perf_counter()
    images, truth = [], []
    for data, label in zip(golden_photos.photos, golden_photos.labels, strict=True):
        try:
            images.append(preprocess_image(data, np.uint8))
        except InvalidImageError:
            continue  # an unreadable file in an operator's folder is not the candidate's fault
        truth.append(golden_photos.class_names[int(label)])
    if not images:
        raise ValueError(f"no readable photos in the golden set {golden_photos.source}")
    batch = np.stack(images)
    mine, theirs = _answers(candidate, batch), _answers(stable, batch, model_lock)
    cand_right = np.array([a.label == t for a, t in zip(mine, truth, strict=True)])
    stable_right = np.array([a.label == t for a, t in zip(theirs, truth, strict=True)])
    agreed = np.array([a.label == b.label for a, b in zip(mine, theirs, strict=True)])
    labels = sorted({a.label for a in mine} | {b.label for b in theirs})
    share = {side: {lab: float(np.mean([a.label == lab for a in answers])) for lab in labels}
             for side, answers in (("candidate", mine), ("stable", theirs))}
    return {
        "golden_set": golden_photos.source,
        "photos": len(truth),
        "accuracy": float(cand_right.mean()), "stable_accuracy": float(stable_right.mean()),
        "stable_only_right": int((stable_right & ~cand_right).sum()),
        "candidate_only_right": int((cand_right & ~stable_right).sum()),
        "agreement": float(agreed.mean()), "disagreed": int((~agreed).sum()),
        "abstained": int(sum(a.abstained for a in mine)), "stable_abstained": int(sum(b.abstained for b in theirs)),
        "answer_share": share["candidate"], "stable_answer_share": share["stable"],
        "class_shift": 0.5 * sum(abs(share["candidate"][lab] - share["stable"][lab]) for lab in labels),
        "mean_confidence": float(np.mean([a.confidence for a in mine])),
        "stable_mean_confidence": float(np.mean([b.confidence for b in theirs])),
        "seconds": round(time.perf_counter() - started, 3),
    }


def verdict(f: dict, limits: Limits) -> str:
    """Why the candidate fails preflight ("" when it passes)."""
    n = f["photos"]
    worse, better = f["stable_only_right"], f["candidate_only_right"]
    # McNemar's exact test on the photos only one of the two gets right.
    if f["accuracy"] < f["stable_accuracy"] - limits.accuracy_tolerance \
            and binomial_tail(worse, worse + better, 0.5) < P_VALUE:
        return (f"golden-set accuracy {f['accuracy']:.3f} is below stable's {f['stable_accuracy']:.3f} - "
                f"{limits.accuracy_tolerance:g} on the same {n} photos")
    if f["agreement"] < limits.min_agreement and binomial_tail(f["disagreed"], n, 1 - limits.min_agreement) < P_VALUE:
        return f"agreement with stable {f['agreement']:.3f} < {limits.min_agreement:g} on {n} golden photos"
    bound = f["stable_abstained"] / n + limits.max_abstain_increase
    if f["abstained"] / n > bound and binomial_tail(f["abstained"], n, min(bound, 1.0)) < P_VALUE:
        return (f"abstained on {f['abstained']}/{n} golden photos, stable on {f['stable_abstained']} "
                f"(at most +{limits.max_abstain_increase:g})")
    if f["class_shift"] > limits.max_class_shift:
        return f"its answer shares differ from stable's by {f['class_shift']:.2f} (> {limits.max_class_shift:g})"
    return ""


def numbers(figures: dict) -> dict:
    """The numeric preflight figures, named for the rollout_window metric."""
    return {f"preflight_{k}": v for k, v in figures.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "seconds"}


def check(config: dict, local_store: str | None, candidate: Predictor, stable: Predictor, limits: Limits,
          model_lock=None) -> tuple[str, dict]:
    """(reason to reject or "", figures) for a freshly loaded candidate; no golden set: ("", {"skipped": why})."""
    try:
        photos = golden_set(config, local_store, stable, candidate)
    except (OSError, ValueError) as exc:
        return f"cannot read the golden set: {exc}", {"skipped": str(exc)}
    if photos is None:
        why = "no golden set (neither version carries golden.npz and GATE_GOLDEN_DIR is not set)"
        log.warning("candidate version %s: preflight skipped: %s; only live evidence judges it", candidate.version,
                    why)
        return "", {"skipped": why}
    try:
        figures = run(photos, candidate, stable, model_lock)
    except ValueError as exc:
        return f"preflight failed: {exc}", {"skipped": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a candidate whose model call fails must not take traffic
        return f"preflight: the candidate's model call failed: {exc}", {"skipped": str(exc)}
    reason = verdict(figures, limits)
    figures["passed"] = not reason
    log.info("candidate version %s preflight on %d golden photos: accuracy %.3f (stable %.3f), agreement %.3f, "
             "abstained %d (stable %d): %s", candidate.version, figures["photos"], figures["accuracy"],
             figures["stable_accuracy"], figures["agreement"], figures["abstained"], figures["stable_abstained"],
             reason or "passed")
    return reason, figures
