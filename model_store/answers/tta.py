"""Test-time augmentation shared by `evaluate --tta` and the server's TTA option."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TTA_MODES = ("none", "flip")


def check_mode(mode: str | None) -> str:
    """Normalise a TTA mode name ('' or None -> 'none'), raising ValueError for unknown ones."""
    mode = (mode or "none").lower()
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose from {', '.join(TTA_MODES)}")
    return mode


def predict_tta(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, mode: str = "none") -> np.ndarray:
    """Probabilities for NHWC images; 'flip' averages each image and its mirror in one model call."""
    if check_mode(mode) == "none" or len(images) == 0:
        return predict(images)
    n = len(images)
    probs = predict(np.concatenate([images, images[:, :, ::-1]]))
    return (probs[:n] + probs[n:]) / 2.0
