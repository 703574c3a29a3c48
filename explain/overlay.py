"""Heatmap presentation: a coarse grid for JSON answers and a colour overlay PNG (Pillow only)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# A short perceptual ramp (dark blue -> teal -> yellow, like viridis): readable for colour-blind users.
_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)


def colorize(heat: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours."""
    pos = np.clip(heat, 0.0, 1.0) * (len(_STOPS) - 1)
    low = np.floor(pos).astype(int).clip(0, len(_STOPS) - 2)
    frac = (pos - low)[..., None]
    return np.rint(_STOPS[low] * (1 - frac) + _STOPS[low + 1] * frac).astype(np.uint8)


def resize_map(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float map to (width, height): area average when shrinking, bilinear when growing."""
    img = Image.fromarray(np.asarray(heat, np.float32), mode="F")
    shrinking = size[0] <= img.width and size[1] <= img.height
    return np.asarray(img.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR),
                      np.float32)


def to_grid(heat: np.ndarray, cells: int) -> list[list[float]]:
    """The map averaged into cells x cells, rescaled to [0, 1], as nested lists rounded for JSON."""
    grid = resize_map(heat, (cells, cells)).astype(np.float64)
    top = grid.max()
    grid = grid / top if top > 0 else grid
    return np.clip(np.round(grid, 4), 0.0, 1.0).tolist()


def overlay_png(image: np.ndarray, heat: np.ndarray, alpha: float = 0.55, cells: int = 16) -> bytes:
    """The image with the heatmap blended over it (strength follows the heat), as PNG bytes.

    The map is shown as its cells x cells grid (what the JSON answer holds), smoothly interpolated.
    """
    h, w = image.shape[:2]
    heat = resize_map(resize_map(heat, (cells, cells)), (w, h))
    top = heat.max()
    heat = heat / top if top > 0 else heat
    weight = (alpha * np.clip(heat, 0, 1))[..., None]
    blended = image.astype(np.float32) * (1 - weight) + colorize(heat).astype(np.float32) * weight
    buf = io.BytesIO()
    Image.fromarray(np.rint(blended).clip(0, 255).astype(np.uint8)).save(buf, "PNG", optimize=False)
    return buf.getvalue()
