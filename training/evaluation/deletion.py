"""`python -m training deletion`: do the heatmaps point at what the model uses? (a deletion check)

For each labelled photo: grey out the 20% of pixels a heatmap ranks highest, and (separately) 20% of pixels
at random; a faithful heatmap lowers the predicted class's probability more. Averaged over the photos, per
method (Grad-CAM on the Keras model, occlusion through the chosen runtime).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

import explain
import model_store
import runtimes
from training.evaluation.inference import load_version
from training.inputs import data

log = logging.getLogger(__name__)
FILL = explain.occlusion.FILL


def grey_out(image: np.ndarray, order: np.ndarray, fraction: float) -> np.ndarray:
    """The image with the first `fraction` of pixels in `order` (flat indices) set to grey."""
    out = image.copy().reshape(-1, 3)
    out[order[: int(round(fraction * len(order)))]] = FILL
    return out.reshape(image.shape)


def ranked(heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices, hottest first (ties in random order: Grad-CAM maps have flat zero areas)."""
    return np.lexsort((rng.random(heat.size), -heat.ravel()))


def heatmaps(method: str, images: np.ndarray, classes: list[int], predict, gradcam) -> list[np.ndarray]:
    """Per-pixel maps of one method for a batch of images."""
    if method == "gradcam":
        return gradcam(images, classes)
    maps = []
    for image, cls in zip(images, classes, strict=True):
        batch, boxes = explain.occlusion_batch(image)
        probs = predict(np.concatenate([image[None], batch]))
        maps.append(explain.occlusion_map(probs[0], probs[1:], boxes, cls, image.shape[:2]))
    return maps


def run(args: argparse.Namespace) -> int:
    """Print (and optionally save) mean probability drops, heatmap-guided against random, per method."""
    from explain.gradcam import GradCam

    model, meta, version = load_version(args.model_store, args.version)
    vdir = model_store.version_dir(args.model_store, version)
    name = runtimes.choose(meta, args.runtime)
    predict = runtimes.load(vdir, meta, name).predict
    data_dir = args.data_dir or (meta.get("dataset") or {}).get("val_dir")
    image_set = data.load_folder(data_dir, meta["class_names"])
    images = np.asarray(image_set.images)[: args.limit]
    rng = np.random.default_rng(args.seed)
    gradcam = GradCam(model)
    drops = {m: {"heatmap": [], "random": []} for m in explain.METHODS}
    started = time.time()
    for i in range(0, len(images), args.batch_size):
        batch = images[i:i + args.batch_size]
        base = predict(batch)
        classes = [int(c) for c in base.argmax(axis=1)]
        random_cut = np.stack([grey_out(img, rng.permutation(img.shape[0] * img.shape[1]), args.fraction)
                               for img in batch])
        random_p = predict(random_cut)[np.arange(len(batch)), classes]
        for method in explain.METHODS:
            maps = heatmaps(method, batch, classes, predict, gradcam)
            cut = np.stack([grey_out(img, ranked(h, rng), args.fraction) for img, h in zip(batch, maps, strict=True)])
            guided_p = predict(cut)[np.arange(len(batch)), classes]
            own = base[np.arange(len(batch)), classes]
            drops[method]["heatmap"].extend((own - guided_p).tolist())
            drops[method]["random"].extend((own - random_p).tolist())
        log.info("%d/%d photos (%.0f s)", min(i + args.batch_size, len(images)), len(images), time.time() - started)
    methods = {m: {"mean_drop_heatmap": float(np.mean(d["heatmap"])), "mean_drop_random": float(np.mean(d["random"])),
                   "heatmap_beats_random": float(np.mean(np.array(d["heatmap"]) > np.array(d["random"])))}
               for m, d in drops.items()}
    result = {"model_version": version, "runtime": name, "photos": len(images), "fraction": args.fraction,
              "data_dir": str(data_dir), "methods": methods}
    for m, r in result["methods"].items():
        print(f"{m}: greying the top {args.fraction:.0%} lowers p(predicted class) by {r['mean_drop_heatmap']:.4f} "
              f"on average, {args.fraction:.0%} at random by {r['mean_drop_random']:.4f} "
              f"(heatmap worse for the model on {r['heatmap_beats_random']:.1%} of {len(images)} photos)")
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the deletion command."""
    parser.add_argument("--model-store", default="model_store", help="a local store folder")
    parser.add_argument("--version", type=int, help="default: newest")
    parser.add_argument("--data-dir", help="labelled folder (default: the version's validation folder)")
    parser.add_argument("--runtime", default="openvino", choices=runtimes.CHOICES,
                        help="runtime for predictions and occlusion (default: OpenVINO float32)")
    parser.add_argument("--fraction", type=float, default=0.2, help="share of pixels greyed out")
    parser.add_argument("--limit", type=int, help="use only the first N photos")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--output", help="also write the numbers to this JSON file")
    parser.set_defaults(func=run)
