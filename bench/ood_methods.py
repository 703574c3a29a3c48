"""`python -m bench.ood_methods`: compare out-of-distribution scores on one trained version.

Every method is fitted on the version's training photos (features) and thresholded to abstain on the same
share of the validation photos; then each is measured on the held-out negatives and the synthetic kinds:

- other: p(other), for a version trained with the "other" output (what the service serves for it)
- msp: 1 - max of the served class probabilities, rescaled (what the service serves for a version trained
  towards the uniform distribution: model_store.ood)
- energy: -logsumexp of the class logits (recomputed from the penultimate features and the last layer)
- mahalanobis: distance to the nearest class mean of the penultimate features, tied covariance
  (Ledoit-Wolf shrinkage), fitted on training photos
- knn: cosine distance to the k-th nearest training photo's penultimate features
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.special import logsumexp
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

import model_store
from model_store import ood
from training import abstain, cache, data, export

FEATURE_LAYER = "fc7_relu"
KNN_K = 10


def _features(model, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features, logits) of uint8 images: K logits, or K + 1 with the "other" output last."""
    import keras

    sub = keras.Model(model.input, model.get_layer(FEATURE_LAYER).output)
    head = "scores" if any(layer.name == "scores" for layer in model.layers) else "predictions"
    kernel, bias = model.get_layer(head).get_weights()
    feats = np.concatenate([np.asarray(sub(np.asarray(images[i:i + batch], np.float32), training=False))
                            for i in range(0, len(images), batch)])
    return feats, feats @ kernel + bias


class Methods:
    """The scores, fitted on training features."""

    def __init__(self, train_feats: np.ndarray, train_labels: np.ndarray, num_classes: int):
        self.k = num_classes
        self.means = np.stack([train_feats[train_labels == c].mean(axis=0) for c in np.unique(train_labels)])
        centred = train_feats - self.means[train_labels]
        self.precision = LedoitWolf().fit(centred).precision_
        self.bank = train_feats / np.linalg.norm(train_feats, axis=1, keepdims=True).clip(1e-9)

    def scores(self, feats: np.ndarray, logits: np.ndarray) -> dict[str, np.ndarray]:
        served = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))[:, :self.k]
        maha = np.min([np.sum(((feats - m) @ self.precision) * (feats - m), axis=1) for m in self.means], axis=0)
        unit = feats / np.linalg.norm(feats, axis=1, keepdims=True).clip(1e-9)
        knn = 1.0 - np.sort(unit @ self.bank.T, axis=1)[:, -KNN_K]
        other = {"other": ood.scores(served, "other")} if logits.shape[1] > self.k else {}
        return {**other, "msp": ood.scores(served, "msp"), "energy": -logsumexp(logits[:, :self.k], axis=1),
                "mahalanobis": maha, "knn": knn}


def main(argv: list[str] | None = None) -> int:
    """Print (and write as JSON) AUROC and abstain rate per method and kind."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--version", type=int)
    parser.add_argument("--train-images", type=int, default=3000, help="training photos the methods are fitted on")
    parser.add_argument("--abstain-rate", type=float, default=ood.DEFAULT_ABSTAIN_RATE)
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args(argv)
    import keras

    started = time.time()
    version = args.version or model_store.latest_version(args.model_store)
    meta = model_store.read_metadata(args.model_store, version)
    model = keras.models.load_model(model_store.version_dir(args.model_store, version) / model_store.MODEL_FILE,
                                    compile=False)
    val = export.validation_of(meta, None)
    sets = abstain.sets_for(meta, val.images, val.labels)
    if sets is None:
        raise SystemExit("this version has no negatives to measure against")
    ds = meta["dataset"]
    pairs = data.list_files(ds["train_dirs"], meta["class_names"], None, 1337)
    rng = np.random.default_rng(0)
    picks = [pairs[i] for i in sorted(rng.choice(len(pairs), min(args.train_images, len(pairs)), replace=False))]
    train = cache.load_cached(picks, meta["class_names"], cache.default_cache_dir())
    methods = Methods(_features(model, train.images)[0], train.labels, len(meta["class_names"]))
    val_scores = methods.scores(*_features(model, sets.val_images))
    others = {f"{k} (held out)": v for k, v in sets.heldout.items()} | dict(sets.synthetic)
    table: dict[str, dict] = {}
    for name, images in others.items():
        found = methods.scores(*_features(model, images))
        for method, scores in found.items():
            threshold = ood.fit_threshold(val_scores[method], args.abstain_rate)
            auroc = roc_auc_score(np.r_[np.zeros(len(val_scores[method])), np.ones(len(scores))],
                                  np.r_[val_scores[method], scores])
            table.setdefault(method, {})[name] = {"auroc": round(float(auroc), 4),
                                                 "abstain": round(float((scores > threshold).mean()), 4)}
    kinds = list(others)
    print(f"version {version} of {args.model_store}: threshold at {args.abstain_rate:.0%} of "
          f"{len(sets.val_labels)} validation photos; methods fitted on {len(train.labels)} training photos "
          f"({time.time() - started:.0f} s)")
    print("| method | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for method, row in table.items():
        print(f"| {method} | " + " | ".join(f"{row[k]['auroc']:.3f} / {row[k]['abstain']:.0%}" for k in kinds) + " |")
    print("(each cell: AUROC / share abstained)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"version": version, "table": table}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
