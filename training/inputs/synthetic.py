"""Synthetic images no class should claim: noise, flat colours, gradients and line drawings to measure
abstention on, and (`train --synthetic-negatives`) noise, flat colours, gradients and filled shapes to train
on as negatives. Line drawings are never generated for training, so one kind stays unseen; training images
come from another seed than the measured ones."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from model_store import preprocess_image

KINDS = ("noise", "flat", "gradient", "drawing")


def _noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    if rng.uniform() < 0.5:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # Smooth noise: random values on a coarse grid, upscaled.
    coarse = rng.integers(0, 256, (rng.integers(2, 16), rng.integers(2, 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR))


def _flat(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (h, w, 3)).copy()


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    if rng.uniform() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
    else:
        t = np.hypot(xx - rng.uniform(), yy - rng.uniform())
    t = (t - t.min()) / max(1e-9, np.ptp(t))
    return (a + (b - a) * t[..., None]).astype(np.uint8)


def _drawing(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(img)
    ink = tuple(int(v) for v in rng.integers(0, 80, 3))
    for _ in range(rng.integers(3, 15)):
        box = sorted(rng.integers(0, w, 2)), sorted(rng.integers(0, h, 2))
        shape = rng.integers(0, 3)
        width = int(rng.integers(1, 5))
        if shape == 0:
            draw.line([(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(rng.integers(2, 6))],
                      fill=ink, width=width)
        elif shape == 1:
            draw.ellipse([box[0][0], box[1][0], box[0][1], box[1][1]], outline=ink, width=width)
        else:
            draw.rectangle([box[0][0], box[1][0], box[0][1], box[1][1]], outline=ink, width=width)
    return np.asarray(img)


def _shapes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(1, 8)):
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(rng.integers(3, 7))]
        if rng.uniform() < 0.5:
            draw.polygon(points, fill=fill)
        else:
            xs, ys = sorted(p[0] for p in points[:2]), sorted(p[1] for p in points[:2])
            draw.ellipse([xs[0], ys[0], xs[1], ys[1]], fill=fill)
    return np.asarray(img)


_MAKERS = {"noise": _noise, "flat": _flat, "gradient": _gradient, "drawing": _drawing, "shapes": _shapes}
TRAINING_KINDS = ("noise", "flat", "gradient", "shapes")


def _jpegs(kind: str, n: int, seed: int):
    rng = np.random.default_rng([seed, list(_MAKERS).index(kind)])
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(160, 640, 2))
        buf = io.BytesIO()
        Image.fromarray(_MAKERS[kind](rng, h, w)).save(buf, "JPEG", quality=90)
        yield buf.getvalue()


def images(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """n images of one kind at random sizes, JPEG-encoded and decoded with preprocess_image as uploads are."""
    return np.stack([preprocess_image(data, np.uint8) for data in _jpegs(kind, n, seed)])


def training_folder(n: int, seed: int, root: str | os.PathLike | None = None) -> Path:
    """A folder of n training negatives (one subfolder per TRAINING_KINDS kind, `synthetic-<kind>`), made
    once per (n, seed) in the decode cache and reused: the same files at training and calibration time."""
    from training.inputs import cache

    # The measured images use the version's seed itself (training/finish/abstain.py); training images use
    # 10,000 + seed, a stream of their own.
    folder = Path(root or cache.default_cache_dir()) / f"synthetic-negatives-{n}-{seed}"
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=folder.parent))
    per_kind = -(-n // len(TRAINING_KINDS))
    for kind in TRAINING_KINDS:
        (tmp / f"synthetic-{kind}").mkdir()
        for i, data in enumerate(_jpegs(kind, per_kind, 10_000 + seed)):
            (tmp / f"synthetic-{kind}" / f"{i:05d}.jpg").write_bytes(data)
    try:
        tmp.rename(folder)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def all_kinds(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """n images of every kind."""
    return {kind: images(kind, n, seed) for kind in KINDS}


def restore(path: str | os.PathLike) -> None:
    """Make a training_folder again if `path` names one that is missing."""
    path = Path(path)
    name, _, rest = path.name.partition("synthetic-negatives-")
    n, _, seed = rest.partition("-")
    if not name and n.isdigit() and seed.lstrip("-").isdigit() and not path.is_dir():
        training_folder(int(n), int(seed), path.parent)
