"""Folder-per-class image datasets decoded with the shared preprocessing function."""

from __future__ import annotations

import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model_store import IMAGE_SIZE, InvalidImageError, load_image_file

log = logging.getLogger(__name__)

# Same extensions keras.utils.image_dataset_from_directory accepts, plus WebP.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")


@dataclass
class ImageSet:
    """Decoded images (uint8, NHWC) with integer labels and bookkeeping."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    paths: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of images per class name."""
        return {name: int((self.labels == i).sum()) for i, name in enumerate(self.class_names)}


def class_names_of(data_dir: str | os.PathLike | list) -> list[str]:
    """Sorted subfolder names of a folder-per-class dataset (several folders must have the same classes)."""
    if isinstance(data_dir, (list, tuple)):
        names = [class_names_of(d) for d in data_dir]
        for d, n in zip(data_dir[1:], names[1:], strict=True):
            if n != names[0]:
                raise ValueError(f"class folders of {d} ({n}) differ from those of {data_dir[0]} ({names[0]})")
        return names[0]
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise ValueError(f"{root} needs at least two class subfolders, found {names}")
    return names


def list_files(
    data_dir: str | os.PathLike | list, class_names: list[str], max_per_class: int | None = None,
    seed: int = 1337,
) -> list[tuple[str, int]]:
    """(path, label) pairs for every image file under each class folder of one or several datasets."""
    dirs = list(data_dir) if isinstance(data_dir, (list, tuple)) else [data_dir]
    pairs: list[tuple[str, int]] = []
    rng = random.Random(seed)
    for label, name in enumerate(class_names):
        files = sorted(
            str(p) for d in dirs if (Path(d) / name).is_dir()
            for p in (Path(d) / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if max_per_class is not None and len(files) > max_per_class:
            files = sorted(rng.sample(files, max_per_class))
        pairs.extend((f, label) for f in files)
    return pairs


def _load_one(path: str) -> np.ndarray | None:
    try:
        return load_image_file(path, np.uint8)
    except (InvalidImageError, OSError) as exc:
        log.debug("skipping %s: %s", path, exc)
        return None


def load_image_set(
    pairs: list[tuple[str, int]], class_names: list[str], workers: int | None = None
) -> ImageSet:
    """Decode files in parallel with preprocess_image, skipping (and counting) unreadable ones."""
    images = np.empty((len(pairs), IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8)
    keep: list[int] = []
    skipped: list[str] = []
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        for i, arr in enumerate(pool.map(_load_one, [p for p, _ in pairs])):
            if arr is None:
                skipped.append(pairs[i][0])
            else:
                images[i] = arr
                keep.append(i)
    if skipped:
        log.warning("skipped %d unreadable image file(s) of %d", len(skipped), len(pairs))
    idx = np.asarray(keep, dtype=np.int64)
    labels = np.asarray([pairs[i][1] for i in keep], dtype=np.int32)
    return ImageSet(images[idx], labels, class_names, [pairs[i][0] for i in keep], skipped)


def load_folder(
    data_dir: str | os.PathLike, class_names: list[str] | None = None, max_per_class: int | None = None
) -> ImageSet:
    """Load a whole folder-per-class dataset."""
    names = class_names or class_names_of(data_dir)
    return load_image_set(list_files(data_dir, names, max_per_class), names)


def split_pairs(
    pairs: list[tuple[str, int]], val_fraction: float, seed: int = 1337
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Stratified, seeded train/validation split of (path, label) pairs."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("validation split must be between 0 and 1")
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted({lbl for _, lbl in pairs}):
        group = [p for p in pairs if p[1] == label]
        rng.shuffle(group)
        n_val = max(1, round(len(group) * val_fraction))
        val.extend(group[:n_val])
        train.extend(group[n_val:])
    return train, val
