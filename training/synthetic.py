"""Synthetic images no class should claim (noise, flat colours, gradients, line drawings), for measuring
abstention on kinds never trained on. Never used as training data."""

from __future__ import annotations

import io

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


_MAKERS = {"noise": _noise, "flat": _flat, "gradient": _gradient, "drawing": _drawing}


def images(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """n images of one kind at random sizes, JPEG-encoded and decoded with preprocess_image as uploads are."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    out = []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(160, 640, 2))
        buf = io.BytesIO()
        Image.fromarray(_MAKERS[kind](rng, h, w)).save(buf, "JPEG", quality=90)
        out.append(preprocess_image(buf.getvalue(), np.uint8))
    return np.stack(out)


def all_kinds(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """n images of every kind."""
    return {kind: images(kind, n, seed) for kind in KINDS}
