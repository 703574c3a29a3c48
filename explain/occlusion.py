"""Occlusion sensitivity (Zeiler & Fergus 2014): grey out one patch at a time, see how much the class loses."""

from __future__ import annotations

import numpy as np

# 7x7 patch positions of 57 px (a quarter of the side) overlapping by half: 49 model inputs per explanation,
# few enough to run at batch speed on a 2-core CPU, fine enough to find a face in a photo.
POSITIONS = 7
PATCH_FRACTION = 0.25
# Model inputs per explanation: the photo and its masked copies.
IMAGES_PER_EXPLANATION = POSITIONS ** 2 + 1
# 128 is the network's zero after its rescaling (x / 127.5 - 1): a patch that carries no signal.
FILL = 128


def _boxes(height: int, width: int, positions: int, patch: int) -> list[tuple[int, int, int, int]]:
    ys = np.linspace(0, height - patch, positions).round().astype(int)
    xs = np.linspace(0, width - patch, positions).round().astype(int)
    return [(int(y), int(x), int(y) + patch, int(x) + patch) for y in ys for x in xs]


def occlusion_batch(image: np.ndarray, positions: int = POSITIONS, patch_fraction: float = PATCH_FRACTION,
                    fill: int = FILL) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Masked copies of one HWC image (one grey patch each) and their boxes (y0, x0, y1, x1)."""
    height, width = image.shape[:2]
    patch = max(1, int(round(min(height, width) * patch_fraction)))
    boxes = _boxes(height, width, positions, patch)
    batch = np.repeat(image[None], len(boxes), axis=0)
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        batch[i, y0:y1, x0:x1] = fill
    return batch, boxes


def occlusion_map(base: np.ndarray, masked: np.ndarray, boxes: list[tuple[int, int, int, int]], class_index: int,
                  shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel map (H, W) in [0, 1]: the class probability lost when the patches covering a pixel are greyed.

    base: probabilities of the unmasked image; masked: probabilities of each masked copy, in box order.
    """
    drop = np.maximum(float(base[class_index]) - masked[:, class_index].astype(np.float64), 0.0)
    total = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.float64)
    for value, (y0, x0, y1, x1) in zip(drop, boxes, strict=True):
        total[y0:y1, x0:x1] += value
        count[y0:y1, x0:x1] += 1
    heat = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return normalize(heat)


def normalize(heat: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1] (all zeros stays zeros); float32."""
    heat = np.nan_to_num(np.asarray(heat, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    heat = np.maximum(heat, 0.0)
    top = heat.max() if heat.size else 0.0
    return (heat / top if top > 0 else heat).astype(np.float32)
