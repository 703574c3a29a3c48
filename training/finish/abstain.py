"""Fit and measure a version's abstain threshold (model_store.answers.ood): validation photos against held-out
negatives (kinds the version trained on, photos it did not), unseen kinds (negative kinds held out whole,
`train --unseen-kinds`) and synthetic images.

The threshold is fitted once, on the float reference (the Keras model), so that `abstain_rate` of the
validation photos abstain; every exported runtime is then measured with that same threshold and its
decisions compared with the reference's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score

from model_store.answers import decision, ood
from training.inputs import cache, negatives, synthetic

log = logging.getLogger(__name__)

SYNTHETIC_PER_KIND = 50


@dataclass
class OodSets:
    """Images to measure abstention on: validation (with labels), held-out negatives and synthetic, per kind."""

    val_images: np.ndarray
    val_labels: np.ndarray
    heldout: dict[str, np.ndarray] = field(default_factory=dict)
    synthetic: dict[str, np.ndarray] = field(default_factory=dict)
    unseen: dict[str, np.ndarray] = field(default_factory=dict)

    def groups(self) -> dict[str, dict[str, np.ndarray]]:
        """The out-of-distribution images by group, in the order figures and reports list them."""
        return {"heldout": self.heldout, "unseen": self.unseen, "synthetic": self.synthetic}


GROUPS = ("heldout", "unseen", "synthetic")


def _load(files_by_kind: dict[str, list[str]], class_names: list[str]) -> dict[str, np.ndarray]:
    return {kind: cache.load_cached([(f, negatives.NEGATIVE) for f in files], class_names,
                                    cache.default_cache_dir()).images for kind, files in files_by_kind.items()}


def load_sets(val_images: np.ndarray, val_labels: np.ndarray, negative_dirs: list[str], holdout: float,
              seed: int, class_names: list[str], unseen: list[str] = ()) -> OodSets:
    """The held-out part of every seen negative kind (the same split train made), every photo of the unseen
    kinds, and the synthetic kinds."""
    _, held = negatives.split(negative_dirs, holdout, seed, list(unseen))
    return OodSets(val_images, val_labels, _load(held, class_names), synthetic.all_kinds(SYNTHETIC_PER_KIND, seed),
                   _load(negatives.unseen_files(negative_dirs, list(unseen)), class_names))


def _probs(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch: int = 32) -> np.ndarray:
    out = [predict(np.asarray(images[i:i + batch])) for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


def scores_of(predict: Callable[[np.ndarray], np.ndarray], sets: OodSets, method: str = ood.METHOD) -> dict:
    """{"val": (probs, scores), "heldout": {kind: scores}, "synthetic": {kind: scores}} for one runtime."""
    val_probs = _probs(predict, sets.val_images)
    return {"val": (val_probs, ood.scores(val_probs, method)),
            **{group: {k: ood.scores(_probs(predict, v), method) for k, v in kinds.items()}
               for group, kinds in sets.groups().items()}}


def _kind_figures(val_scores: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    return {"images": int(len(scores)), "abstain_rate": round(float(ood.abstains(scores, threshold).mean()), 4),
            "auroc": round(float(roc_auc_score(np.r_[np.zeros(len(val_scores)), np.ones(len(scores))],
                                               np.r_[val_scores, scores])), 4)}


def figures(found: dict, labels: np.ndarray, threshold: float) -> dict:
    """Validation abstain rate and accuracy on the answered photos; abstain rate and AUROC per kind."""
    probs, val_scores = found["val"]
    abstained = ood.abstains(val_scores, threshold)
    answered = ~abstained
    correct = probs.argmax(axis=1) == labels
    out = {
        "validation": {"images": int(len(labels)), "abstain_rate": round(float(abstained.mean()), 4),
                       "accuracy_answered": round(float(correct[answered].mean()), 4) if answered.any() else None,
                       "accuracy_all": round(float(correct.mean()), 4)},
        **{group: {k: _kind_figures(val_scores, s, threshold) for k, s in found.get(group, {}).items()}
           for group in GROUPS},
    }
    if out["unseen"]:  # the figure that says most about the next kind a user uploads
        kinds = list(out["unseen"].values())
        out["unseen_mean"] = {"kinds": len(kinds),
                              "auroc": round(float(np.mean([k["auroc"] for k in kinds])), 4),
                              "abstain_rate": round(float(np.mean([k["abstain_rate"] for k in kinds])), 4),
                              "worst_auroc": round(float(min(k["auroc"] for k in kinds)), 4),
                              "worst_abstain_rate": round(float(min(k["abstain_rate"] for k in kinds)), 4)}
    return out


def _decisions(found: dict, threshold: float) -> np.ndarray:
    parts = [found["val"][1], *(s for group in GROUPS for s in found.get(group, {}).values())]
    return ood.abstains(np.concatenate(parts), threshold)


def _pooled_rate(fig: dict, group: str) -> float | None:
    kinds = fig[group].values()
    n = sum(k["images"] for k in kinds)
    return round(sum(k["abstain_rate"] * k["images"] for k in kinds) / n, 4) if n else None


def calibrate(reference: Callable[[np.ndarray], np.ndarray], others: dict[str, Callable], sets: OodSets,
              abstain_rate: float = ood.DEFAULT_ABSTAIN_RATE, method: str = ood.METHOD
              ) -> tuple[dict, dict[str, dict], dict]:
    """(metadata's `ood`, each runtime's abstain figures, the reference's raw scores for the report)."""
    ref = scores_of(reference, sets, method)
    threshold = ood.fit_threshold(ref["val"][1], abstain_rate)
    unsure = min(threshold, ood.fit_threshold(ref["val"][1], max(abstain_rate, decision.UNSURE_RATE)))
    meta = {"method": method, "threshold": round(threshold, 6), "target_abstain_rate": abstain_rate,
            "unsure_threshold": round(unsure, 6), "unsure_rate": decision.UNSURE_RATE,
            **figures(ref, sets.val_labels, threshold)}
    ref_decisions = _decisions(ref, threshold)
    per_runtime = {}
    for name, predict in others.items():
        found = scores_of(predict, sets, method)
        fig = figures(found, sets.val_labels, threshold)
        per_runtime[name] = {
            "val_abstain_rate": fig["validation"]["abstain_rate"],
            "heldout_abstain_rate": _pooled_rate(fig, "heldout"),
            "synthetic_abstain_rate": _pooled_rate(fig, "synthetic"),
            "unseen_abstain_rate": _pooled_rate(fig, "unseen"),
            "decision_agreement": round(float((_decisions(found, threshold) == ref_decisions).mean()), 4),
        }
    return meta, per_runtime, ref


def summary(meta: dict) -> str:
    """One console line of a version's abstain figures."""
    v = meta["validation"]
    kinds = "; ".join(f"{k} {f['abstain_rate']:.1%} (AUROC {f['auroc']:.3f})"
                      for group in GROUPS for k, f in meta.get(group, {}).items())
    mean = meta.get("unseen_mean")
    unseen = (f"; unseen kinds (never trained on): mean AUROC {mean['auroc']:.3f}, mean abstained "
              f"{mean['abstain_rate']:.1%}" if mean else "")
    return (f"abstain threshold {meta['threshold']:.4f}: validation abstains {v['abstain_rate']:.1%}, "
            f"accuracy on the answered {v['accuracy_answered']}; {kinds}{unseen}")


def sets_for(metadata: dict, val_images: np.ndarray, val_labels: np.ndarray,
             negative_dirs: list[str] | None = None) -> OodSets | None:
    """The measuring sets of a version: its own negatives' held-out part, or all of `negative_dirs` when the
    version did not train on them; None when there are no negatives to calibrate against."""
    found = negatives.recorded(metadata)
    dirs = [str(d) for d in negative_dirs or found.dirs]
    if not dirs:
        return None
    seed = int((metadata.get("hyperparameters") or {}).get("seed", 1337))
    if dirs == found.dirs:
        return load_sets(val_images, val_labels, dirs, found.holdout, seed, list(metadata["class_names"]),
                         found.unseen)
    sets = load_sets(val_images, val_labels, [], 0.0, seed, list(metadata["class_names"]))
    for kind, files in negatives.kinds(dirs).items():  # never trained on: every photo measures
        pairs = [(f, negatives.NEGATIVE) for f in files]
        sets.heldout[kind] = cache.load_cached(pairs, list(metadata["class_names"]), cache.default_cache_dir()).images
    return sets


def apply(folder, keras_model, metadata: dict, sets: OodSets, abstain_rate: float = ood.DEFAULT_ABSTAIN_RATE
          ) -> tuple[dict, dict]:
    """Fit the threshold on the Keras model and measure every exported runtime of a version folder with it;
    returns (the updated metadata, the reference's raw scores). Writes nothing."""
    from runtimes.keras_h5 import KerasRuntime
    from runtimes.openvino_ir import OpenVinoRuntime

    found = metadata.get("runtimes") or {}
    others = {name: OpenVinoRuntime(folder / entry["files"][0], name).predict
              for name, entry in found.items() if name != "tensorflow" and isinstance(entry, dict)}
    meta, per_runtime, raw = calibrate(KerasRuntime(keras_model).predict, others, sets, abstain_rate,
                                       ood.method_of(metadata))
    head = (metadata.get("ood") or {}).get("head")  # the fused head's description stays with its version
    out = {**metadata, "ood": {**meta, **({"head": head} if head else {})}}
    if found:
        out["runtimes"] = {name: {**entry, **({"ood": per_runtime[name]} if name in per_runtime else {})}
                           for name, entry in found.items()}
    print(summary(meta), flush=True)
    for name, fig in per_runtime.items():
        print(f"{name:<14} abstains: validation {fig['val_abstain_rate']:.1%}, held-out negatives "
              f"{fig['heldout_abstain_rate']:.1%}, synthetic {fig['synthetic_abstain_rate']:.1%}; same decision "
              f"as the reference on {fig['decision_agreement']:.1%} of the images", flush=True)
    return out, raw
