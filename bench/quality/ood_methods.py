"""`python -m bench.quality.ood_methods`: compare out-of-distribution scores on versions trained with kinds held out.

Each version named (`--model-store S [--version N]`, repeatable: one per kind fold) is scored with every
method; each method is thresholded to abstain on the same share of the validation photos, then measured on
the version's **unseen kinds** (negative kinds held out whole: `train --unseen-kinds`), which is what the
method is chosen on, and for reference on held-out photos of seen kinds and synthetic images. A method is
ranked by its mean AUROC and mean share abstained over the unseen kinds of every fold, and by its worst kind.

- other: p(other) of the "other" output (what a version trained with it serves)
- msp: 1 - max of the served class probabilities, rescaled
- energy: -logsumexp of the class logits (recomputed from the penultimate features and the head)
- mahalanobis: distance of the penultimate (fc7) features to the nearest class mean, tied covariance
  (Ledoit-Wolf), fitted on training photos; mahalanobis-k: the same in the top-k principal directions
  (what the fused head computes in the served graph: training/net/ood_head.py)
- knn: cosine distance to the k-th nearest training photo's penultimate features
- other+maha-k@w: the "other" logit margin plus w x the mahalanobis-k distance, both standardised on the
  validation photos (what the fused head serves)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.special import logsumexp
from sklearn.metrics import roc_auc_score

import model_store
from model_store.answers import ood
from training.finish import abstain
from training.inputs import cache, data, recorded
from training.net import ood_head

KNN_K = 10
WEIGHTS = (0.5, 1.0, 2.0)


class Methods:
    """The scores, fitted on training features."""

    def __init__(self, train_feats: np.ndarray, train_labels: np.ndarray, num_classes: int,
                 dims: tuple[int, ...] = (ood_head.DIMS,)):
        self.k = num_classes
        self.full = ood_head.fit(train_feats, train_labels, None)
        self.truncated = {d: ood_head.fit(train_feats, train_labels, d) for d in dims}
        self.bank = train_feats / np.linalg.norm(train_feats, axis=1, keepdims=True).clip(1e-9)

    def scores(self, feats: np.ndarray, logits: np.ndarray) -> dict[str, np.ndarray]:
        """{method: score per row}, higher = less like the classes."""
        served = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))[:, :self.k]
        unit = feats / np.linalg.norm(feats, axis=1, keepdims=True).clip(1e-9)
        out = {"msp": ood.scores(served, "msp"), "energy": -logsumexp(logits[:, :self.k], axis=1),
               "mahalanobis": ood_head.distance(self.full, feats),
               "knn": 1.0 - np.sort(unit @ self.bank.T, axis=1)[:, -KNN_K]}
        for d, stats in self.truncated.items():
            out[f"mahalanobis-{d}"] = ood_head.distance(stats, feats)
        if logits.shape[1] > self.k:  # the "other" output: its logit margin over the classes (monotone in p(other))
            out = {"other": logits[:, self.k] - logsumexp(logits[:, :self.k], axis=1), **out}
        return out


def combined(found: dict[str, np.ndarray], val: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """other + w x mahalanobis-k, each standardised by the validation photos' mean and deviation."""
    if "other" not in found:
        return {}
    z = {m: (found[m] - val[m].mean()) / max(val[m].std(), 1e-9) for m in found if m == "other" or
         m.startswith("mahalanobis-")}
    return {f"other+maha-{m.split('-')[1]}@{w:g}": z["other"] + w * z[m]
            for m in z if m != "other" for w in WEIGHTS}


def _figures(val: np.ndarray, scores: np.ndarray, rate: float) -> dict:
    threshold = ood.fit_threshold(val, rate)
    auroc = roc_auc_score(np.r_[np.zeros(len(val)), np.ones(len(scores))], np.r_[val, scores])
    return {"auroc": round(float(auroc), 4), "abstain": round(float((scores > threshold).mean()), 4)}


def score_version(store: str, version: int | None, train_images: int, rate: float) -> dict:
    """{"version", "unseen": {method: {kind: figures}}, "seen": {...}} for one version."""
    import keras

    version = version or model_store.latest_version(store)
    meta = model_store.read_metadata(store, version)
    model = keras.models.load_model(model_store.version_dir(store, version) / model_store.MODEL_FILE, compile=False)
    val = recorded.validation_of(meta, None)
    sets = abstain.sets_for(meta, val.images, val.labels)
    if sets is None or not sets.unseen:
        raise SystemExit(f"version {version} of {store} has no unseen kinds (train it with --unseen-kinds)")
    ds = meta["dataset"]
    pairs = data.list_files(ds["train_dirs"], meta["class_names"], None, 1337)
    rng = np.random.default_rng(0)
    picks = [pairs[i] for i in sorted(rng.choice(len(pairs), min(train_images, len(pairs)), replace=False))]
    train = cache.load_cached(picks, meta["class_names"], cache.default_cache_dir())
    methods = Methods(ood_head.features(model, train.images)[0], train.labels, len(meta["class_names"]))
    val_scores = methods.scores(*ood_head.features(model, sets.val_images))
    val_scores |= combined(val_scores, val_scores)
    out: dict = {"store": store, "version": version, "unseen": {}, "seen": {}}
    groups = {"unseen": sets.unseen,
              "seen": {f"{k} (held out)": v for k, v in sets.heldout.items()} | dict(sets.synthetic)}
    for group, kinds in groups.items():
        for name, images in kinds.items():
            found = methods.scores(*ood_head.features(model, images))
            found |= combined(found, {m: v for m, v in val_scores.items()})
            for method, scores in found.items():
                out[group].setdefault(method, {})[name] = _figures(val_scores[method], scores, rate)
    return out


def rank(results: list[dict]) -> list[dict]:
    """Methods by mean AUROC over every fold's unseen kinds (then mean abstained), with each fold's mean."""
    rows = []
    for method in results[0]["unseen"]:
        kinds = [f for r in results for f in r["unseen"][method].values()]
        rows.append({"method": method, "kinds": len(kinds),
                     "mean_auroc": round(float(np.mean([k["auroc"] for k in kinds])), 4),
                     "mean_abstain": round(float(np.mean([k["abstain"] for k in kinds])), 4),
                     "worst_auroc": round(float(min(k["auroc"] for k in kinds)), 4),
                     "worst_abstain": round(float(min(k["abstain"] for k in kinds)), 4),
                     "folds": [round(float(np.mean([k["auroc"] for k in r["unseen"][method].values()])), 4)
                               for r in results]})
    return sorted(rows, key=lambda r: (-r["mean_auroc"], -r["mean_abstain"]))


def main(argv: list[str] | None = None) -> int:
    """Print (and write as JSON) the ranking over unseen kinds, and each fold's per-kind table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-store", action="append", required=True,
                        help="store of a version trained with --unseen-kinds (repeat: one per kind fold)")
    parser.add_argument("--version", type=int, action="append", help="per store (default: its newest)")
    parser.add_argument("--train-images", type=int, default=3000, help="training photos the methods are fitted on")
    parser.add_argument("--abstain-rate", type=float, default=ood.DEFAULT_ABSTAIN_RATE)
    parser.add_argument("--json", help="also write everything here")
    args = parser.parse_args(argv)
    started = time.time()
    versions = args.version or [None] * len(args.model_store)
    if len(versions) != len(args.model_store):
        parser.error("give --version once per --model-store, or not at all")
    results = [score_version(s, v, args.train_images, args.abstain_rate) for s, v in zip(args.model_store, versions,
                                                                                         strict=True)]
    ranking = rank(results)
    print(f"{len(results)} fold(s), {ranking[0]['kinds']} unseen kinds in all; thresholds at "
          f"{args.abstain_rate:.1%} of the validation photos ({time.time() - started:.0f} s)")
    print("| method | mean AUROC, unseen | mean abstained | worst kind AUROC | worst kind abstained | per fold |")
    print("|---|---:|---:|---:|---:|---|")
    for r in ranking:
        print(f"| {r['method']} | {r['mean_auroc']:.3f} | {r['mean_abstain']:.0%} | {r['worst_auroc']:.3f} | "
              f"{r['worst_abstain']:.0%} | {' / '.join(f'{f:.3f}' for f in r['folds'])} |")
    for r in results:
        kinds = list(next(iter(r["unseen"].values())))
        print(f"\n{r['store']} version {r['version']}, unseen kinds (AUROC / abstained):")
        print("| method | " + " | ".join(kinds) + " |")
        print("|---|" + "---:|" * len(kinds))
        for method, row in r["unseen"].items():
            print(f"| {method} | " + " | ".join(f"{row[k]['auroc']:.3f} / {row[k]['abstain']:.0%}" for k in kinds)
                  + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"ranking": ranking, "folds": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
