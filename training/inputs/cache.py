"""Decoded-image cache: uint8 arrays in a .npy memmap keyed by the file list and the preprocessing spec."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from model_store import IMAGE_SIZE, PREPROCESSING_SPEC
from training.inputs import data

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """$ALEXNET_CACHE_DIR, else $XDG_CACHE_HOME/alexnet-service, else ~/.cache/alexnet-service."""
    if os.environ.get("ALEXNET_CACHE_DIR"):
        return Path(os.environ["ALEXNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "alexnet-service"


def cache_key(pairs: list[tuple[str, int]], class_names: list[str]) -> str:
    """Hash of every file's path, size, mtime and label plus the preprocessing spec: any change -> new key."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "spec": PREPROCESSING_SPEC, "size": IMAGE_SIZE,
                         "classes": class_names}, sort_keys=True).encode())
    for path, label in pairs:
        st = os.stat(path)
        h.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
    return h.hexdigest()[:24]


def load_cached(pairs: list[tuple[str, int]], class_names: list[str], cache_dir: str | os.PathLike | None
                ) -> data.ImageSet:
    """The decoded ImageSet for these files, from the cache when its key matches, else decoded and cached."""
    if cache_dir is None:
        return data.load_image_set(pairs, class_names)
    root = Path(cache_dir)
    key = cache_key(pairs, class_names)
    arrays, index = root / f"{key}.npy", root / f"{key}.json"
    if arrays.is_file() and index.is_file():
        meta = json.loads(index.read_text())
        images = np.load(arrays, mmap_mode="r")  # pages come in from disk as training touches them
        log.info("decode cache hit %s (%d images)", arrays, len(images))
        return data.ImageSet(images, np.asarray(meta["labels"], np.int32), class_names, meta["paths"],
                             meta["skipped"])
    image_set = data.load_image_set(pairs, class_names)
    root.mkdir(parents=True, exist_ok=True)
    # Write under temporary names and rename: a reader never sees a half-written cache entry.
    tmp_arrays, tmp_index = arrays.with_suffix(f".{os.getpid()}.tmp.npy"), index.with_suffix(f".{os.getpid()}.tmp")
    np.save(tmp_arrays, image_set.images)
    tmp_index.write_text(json.dumps({"labels": image_set.labels.tolist(), "paths": image_set.paths,
                                     "skipped": image_set.skipped, "spec": PREPROCESSING_SPEC}))
    os.replace(tmp_arrays, arrays)
    os.replace(tmp_index, index)
    log.info("decode cache written %s (%d images, %.0f MB)", arrays, len(image_set.images),
             arrays.stat().st_size / 1e6)
    return data.ImageSet(np.load(arrays, mmap_mode="r"), image_set.labels, class_names, image_set.paths,
                         image_set.skipped)
