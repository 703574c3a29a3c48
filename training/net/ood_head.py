"""The fused OOD head: a feature-space distance folded into the "other" output, inside the served graph.

A version trained with the "other" output scores "neither" by p(other). This head adds what the output
layer does not see: how far the penultimate (fc7) features lie from the classes' training photos, as a
class-conditional Mahalanobis distance with a tied covariance (Ledoit-Wolf shrinkage) in its top principal
directions. The distance, standardised on the validation photos, shifts the "other" logit:

    logit_other' = logit_other + weight * sigma_other * (d - mean_d) / sigma_d

so the served probabilities keep their shape (one per class, summing to 1 - p(other)), every consumer keeps
reading p(other) as the score (`ood.method` "other"), and every runtime computes it in the same model call:
the head is plain Dense / Multiply / pooling layers, saved in alexnet.h5 and converted to OpenVINO like the
rest (kept in float32 by the int8 export). The statistics live in those layers' weights; metadata.json's
`ood.head` says what they are.
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

FEATURE_LAYER = "fc7_relu"
HEAD_INPUT = "fc7_dropout"  # what the "scores" layer reads (equal to FEATURE_LAYER at inference)
DIMS = 256  # principal directions the distance is measured in
WEIGHT = 1.0  # the distance's weight against the "other" logit, both standardised (bench.quality.ood_methods)


def features(model, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features, logits) of uint8 images: K logits, or K + 1 with the "other" output last."""
    import keras

    sub = keras.Model(model.input, model.get_layer(FEATURE_LAYER).output)
    head = "scores" if any(layer.name == "scores" for layer in model.layers) else "predictions"
    kernel, bias = model.get_layer(head).get_weights()[:2]
    feats = np.concatenate([np.asarray(sub(np.asarray(images[i:i + batch], np.float32), training=False))
                            for i in range(0, len(images), batch)]) if len(images) else np.zeros((0, kernel.shape[0]))
    return feats.astype(np.float64), feats.astype(np.float64) @ kernel + bias


def fit(feats: np.ndarray, labels: np.ndarray, dims: int | None = DIMS) -> dict:
    """Class means and tied shrunk covariance of training features: the full precision matrix (dims None),
    or a projection onto the top `dims` principal directions scaled by their variance."""
    classes = np.unique(labels)
    means = np.stack([feats[labels == c].mean(axis=0) for c in classes])
    centred = feats - means[np.searchsorted(classes, labels)]
    lw = LedoitWolf().fit(centred)
    if dims is None:
        return {"means": means, "precision": lw.precision_}
    values, vectors = np.linalg.eigh(lw.covariance_)
    top = np.argsort(values)[::-1][:dims]
    projection = vectors[:, top] / np.sqrt(values[top])
    return {"means": means, "projection": projection, "centres": means @ projection}


def distance(stats: dict, feats: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row to the nearest class mean."""
    if "precision" in stats:
        return np.min([np.sum(((feats - m) @ stats["precision"]) * (feats - m), axis=1) for m in stats["means"]],
                      axis=0)
    z = feats @ stats["projection"]
    return np.min([np.sum((z - c) ** 2, axis=1) for c in stats["centres"]], axis=0)


def other_margin(logits: np.ndarray, num_classes: int) -> np.ndarray:
    """The "other" logit over the classes' logsumexp (monotone in p(other))."""
    from scipy.special import logsumexp

    return logits[:, num_classes] - logsumexp(logits[:, :num_classes], axis=1)


def standardisation(val_feats: np.ndarray, val_logits: np.ndarray, stats: dict, num_classes: int) -> dict:
    """Means and deviations of the validation photos' distance and "other" margin (the head's scale)."""
    d, o = distance(stats, val_feats), other_margin(val_logits, num_classes)
    return {"distance_mean": float(d.mean()), "distance_std": float(max(d.std(), 1e-9)),
            "other_std": float(max(o.std(), 1e-9))}


def build(model, stats: dict, scale: dict, weight: float):
    """The served model with the fused head (a new keras.Model sharing the trained layers' weights)."""
    import keras
    from keras import layers

    old = model.get_layer("scores")
    kernel, bias = old.get_weights()
    k = kernel.shape[1] - 1
    dims = stats["projection"].shape[1]
    feats = model.get_layer(FEATURE_LAYER).output
    logits = layers.Dense(k + 1, dtype="float32", name="scores")(model.get_layer(HEAD_INPUT).output)
    z = layers.Dense(dims, use_bias=False, trainable=False, dtype="float32", name="ood_project")(feats)
    diffs = layers.Dense(k * dims, trainable=False, dtype="float32", name="ood_centre")(z)
    squares = layers.Multiply(dtype="float32", name="ood_square")([diffs, diffs])
    negative = layers.Dense(k, use_bias=False, trainable=False, dtype="float32", name="ood_sum")(squares)
    nearest = layers.GlobalMaxPooling1D(dtype="float32", name="ood_nearest")(
        layers.Reshape((k, 1), name="ood_classes")(negative))  # -(distance to the nearest class mean)
    shift = layers.Dense(k + 1, trainable=False, dtype="float32", name="ood_shift")(nearest)
    probs = layers.Activation("softmax", dtype="float32", name="scores_softmax")(
        layers.Add(dtype="float32", name="ood_logits")([logits, shift]))
    out = layers.Dense(k, use_bias=False, trainable=False, dtype="float32", name="predictions")(probs)
    fused = keras.Model(model.input, out, name=model.name)
    fused.get_layer("scores").set_weights([kernel, bias])
    fused.get_layer("ood_project").set_weights([stats["projection"].astype(np.float32)])
    fused.get_layer("ood_centre").set_weights([np.tile(np.eye(dims, dtype=np.float32), (1, k)),
                                               -stats["centres"].reshape(-1).astype(np.float32)])
    fused.get_layer("ood_sum").set_weights([-np.kron(np.eye(k), np.ones((dims, 1))).astype(np.float32)])
    a = weight * scale["other_std"] / scale["distance_std"]
    shift_kernel = np.zeros((1, k + 1), np.float32)
    shift_bias = np.zeros(k + 1, np.float32)
    shift_kernel[0, k], shift_bias[k] = -a, -a * scale["distance_mean"]  # nearest is minus the distance
    fused.get_layer("ood_shift").set_weights([shift_kernel, shift_bias])
    fused.get_layer("predictions").set_weights([np.eye(k + 1, k, dtype=np.float32)])
    return fused


def describe(stats: dict, scale: dict, weight: float, fitted_on: int) -> dict:
    """metadata.json's `ood.head`: what the fused layers compute."""
    return {"kind": "mahalanobis", "feature_layer": FEATURE_LAYER, "dims": int(stats["projection"].shape[1]),
            "covariance": "tied, Ledoit-Wolf", "weight": weight, "fitted_on_train_images": int(fitted_on),
            **{k: round(v, 6) for k, v in scale.items()}}
