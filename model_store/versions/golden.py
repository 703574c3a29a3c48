"""A version's golden set: a small, content-hashed sample of its validation photos, kept as their original bytes.

Training writes it beside the model (`golden.npz`: the encoded photos end to end, their offsets and labels;
no pickle), and the rollout gate answers it through the runtime a candidate will serve with before any user
sees that candidate. The photos are kept encoded so that the check runs the serving decode and resize too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GOLDEN_FILE = "golden.npz"
GOLDEN_PER_CLASS = 24
_PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


@dataclass(frozen=True)
class GoldenSet:
    """Encoded photos with the index of their true class in `class_names`."""

    photos: list[bytes]
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.photos)


def files(metadata: dict) -> list[str]:
    """The golden file a version's metadata names ([] for none): fetched and baked with its model files."""
    return [GOLDEN_FILE] if (metadata.get("golden") or {}).get("file") == GOLDEN_FILE else []


def sample(photos: dict[str, list[bytes]], per_class: int = GOLDEN_PER_CLASS) -> dict[str, list[bytes]]:
    """The `per_class` photos of each class whose SHA-256 is smallest: a sample anyone can re-derive."""
    return {name: sorted(items, key=lambda b: hashlib.sha256(b).digest())[:per_class]
            for name, items in photos.items()}


def write(folder: str | os.PathLike, class_names: list[str], photos: dict[str, list[bytes]]) -> dict:
    """Write golden.npz into a (staged) version folder; returns the metadata entry that names it."""
    chosen = [(class_names.index(name), data) for name, items in sample(photos).items() for data in items]
    blob = b"".join(data for _, data in chosen)
    offsets = np.cumsum([0, *(len(data) for _, data in chosen)]).astype(np.int64)
    np.savez(Path(folder) / GOLDEN_FILE, data=np.frombuffer(blob, np.uint8), offsets=offsets,
             labels=np.array([label for label, _ in chosen], np.int32))
    digest = hashlib.sha256((Path(folder) / GOLDEN_FILE).read_bytes()).hexdigest()
    return {"file": GOLDEN_FILE, "photos": len(chosen), "sha256": digest, "source": "validation photos"}


def read(folder: str | os.PathLike, metadata: dict) -> GoldenSet | None:
    """The golden set a version folder carries (None when its metadata names none or the file is missing)."""
    entry = metadata.get("golden") or {}
    path = Path(folder) / GOLDEN_FILE
    if entry.get("file") != GOLDEN_FILE or not path.is_file():
        return None
    if entry.get("sha256") and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
        raise ValueError(f"{path} does not match the sha256 in its metadata.json")
    with np.load(path, allow_pickle=False) as npz:
        data, offsets, labels = npz["data"].tobytes(), npz["offsets"], npz["labels"]
    photos = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return GoldenSet(photos, labels.astype(np.int64), tuple(metadata["class_names"]), f"{path}")


def read_folder(root: str | os.PathLike, class_names: list[str], per_class: int = GOLDEN_PER_CLASS) -> GoldenSet:
    """A golden set from a folder with one sub-folder of photos per class (an operator's GATE_GOLDEN_DIR)."""
    root = Path(root)
    photos: dict[str, list[bytes]] = {}
    for name in class_names:
        sub = root / name
        if sub.is_dir():
            photos[name] = [p.read_bytes() for p in sorted(sub.iterdir()) if p.suffix.lower() in _PHOTO_SUFFIXES]
    if not any(photos.values()):
        raise ValueError(f"{root} has no photos in a sub-folder named after a class ({', '.join(class_names)})")
    chosen = sample(photos, per_class)
    flat = [(class_names.index(n), d) for n, items in chosen.items() for d in items]
    return GoldenSet([d for _, d in flat], np.array([lab for lab, _ in flat], np.int64), tuple(class_names),
                     str(root))
