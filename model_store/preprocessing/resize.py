"""Bilinear resize of uint8 pixels, bit for bit what OpenCV's cv2.resize(INTER_LINEAR) returns.

Versions trained while preprocessing called OpenCV keep receiving the very pixels they were trained on, and
the serving image does without OpenCV's ~160 MB. OpenCV computes in fixed point: 11-bit tap weights, an
exact integer horizontal pass, then a vertical pass that rounds each product separately (its SIMD form).
tests/test_resize.py compares the two on photos and on edge cases.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
_COEF_SCALE = 1 << _COEF_BITS


def _taps(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # OpenCV's float32 source positions (pixel centres at +0.5), floored; its scale is 1 / (dst / src).
    pos = ((np.arange(dst) + 0.5) * (1.0 / (dst / src)) - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.intp)
    frac = pos - first.astype(np.float32)
    if clamp_weights:
        # Columns past an edge take the edge pixel whole; rows past an edge keep their weights but read the
        # edge row twice (OpenCV treats the two axes differently, and its rounding shows it).
        frac[(first < 0) | (first >= src - 1)] = 0
    second = np.clip(first + 1, 0, src - 1)
    first = np.clip(first, 0, src - 1)
    # cvRound rounds half to even, as np.rint does; each weight is rounded on its own (their sum may be 2049).
    w0 = np.rint((np.float32(1) - frac) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int32)
    return first, second, w0, w1


@lru_cache(maxsize=128)
def _plan(width: int, height: int, size: tuple[int, int], channels: int) -> tuple[np.ndarray, ...]:
    # Photos come in few sizes: the taps of one are computed once (~0.1 ms saved per image); a plan is
    # ~22 KB, so uploads of many odd sizes hold at most ~3 MB of them.
    x0, x1, a0, a1 = _taps(width, size[0], clamp_weights=True)
    y0, y1, b0, b1 = _taps(height, size[1], clamp_weights=False)
    lanes = np.arange(channels)
    cols0, cols1 = ((x[:, None] * channels + lanes).ravel() for x in (x0, x1))
    plan = (cols0, cols1, np.repeat(a0, channels), np.repeat(a1, channels), y0, y1, b0[:, None], b1[:, None])
    for arr in plan:
        arr.flags.writeable = False  # shared by every thread that resizes a photo of this size
    return plan


def resize_bilinear(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWxC uint8 array to size (width, height) exactly as cv2.resize(INTER_LINEAR) does."""
    height, width, channels = pixels.shape
    cols0, cols1, a0, a1, y0, y1, b0, b1 = _plan(width, height, tuple(size), channels)
    rows = pixels.reshape(height, width * channels)
    # Horizontal pass, exact in int32 (255 x 2049 x 2 fits), then OpenCV's >> 4 before the vertical pass.
    horizontal = rows[:, cols0] * a0
    horizontal += rows[:, cols1] * a1
    horizontal >>= 4
    out = horizontal[y0]
    out *= b0
    out >>= 16
    below = horizontal[y1]
    below *= b1
    below >>= 16
    out += below
    out += 2
    out >>= 2
    return out.astype(np.uint8).reshape(size[1], size[0], channels)
