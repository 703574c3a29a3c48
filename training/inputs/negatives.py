"""Photos of other things ("negatives") for outlier exposure: listing, a seeded held-out split, targets.

A negative trains towards the uniform distribution over the classes (outlier exposure, Hendrycks et al.
2019): the model learns to be unsure on things that are not one of its classes, and the served output
keeps its shape (one probability per class).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from training.inputs import synthetic
from training.inputs.data import IMAGE_EXTENSIONS

NEGATIVE = -1  # the label of a negative in (path, label) pairs and label arrays
HOLDOUT = 0.3  # fraction of every kind kept out of training, to measure abstention on


def kinds(dirs: list[str | os.PathLike]) -> dict[str, list[str]]:
    """Image files per kind: each subfolder of a negatives folder is a kind (a folder without subfolders
    is one kind, named after it)."""
    out: dict[str, list[str]] = {}
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise FileNotFoundError(f"negatives folder not found: {root}")
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for folder in subs or [root]:
            files = sorted(str(p) for p in folder.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if files:
                out.setdefault(folder.name, []).extend(files)
    return out


def pick_unseen(dirs: list[str | os.PathLike], spec: str | None, seed: int = 1337) -> list[str]:
    """The kinds held out whole (never trained on, to judge "neither" on kinds the model never saw): spec is
    a count N (N kinds drawn with the seed) or comma-separated kind names; None or "0" holds out none."""
    if not spec or spec.strip() == "0":
        return []
    found = sorted(kinds(dirs))
    spec = spec.strip()
    if spec.isdigit():
        n = int(spec)
        if n >= len(found):
            raise ValueError(f"--unseen-kinds {n}: the negatives have only {len(found)} kinds; keep some to train on")
        return sorted(random.Random(f"{seed}:unseen").sample(found, n))
    names = sorted({name.strip() for name in spec.split(",") if name.strip()})
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError(f"--unseen-kinds: no negative kind named {', '.join(missing)} (kinds: {', '.join(found)})")
    if len(names) >= len(found):
        raise ValueError("--unseen-kinds names every negative kind; keep some to train on")
    return names


def unseen_files(dirs: list[str | os.PathLike], names: list[str]) -> dict[str, list[str]]:
    """Every photo of each unseen kind (none of them was trained on)."""
    found = kinds(dirs)
    return {name: found[name] for name in names if name in found}


def split(dirs: list[str | os.PathLike], holdout: float = HOLDOUT, seed: int = 1337, unseen: list[str] = ()
          ) -> tuple[list[tuple[str, int]], dict[str, list[str]]]:
    """(training pairs labelled NEGATIVE, held-out files per seen kind): the same split for the same files and
    seed, so training, calibration and the report agree on what was never trained on. Kinds in `unseen`
    are in neither (unseen_files lists them)."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError("negatives hold-out fraction must be in [0, 1)")
    train: list[tuple[str, int]] = []
    held: dict[str, list[str]] = {}
    for kind, files in kinds(dirs).items():
        if kind in unseen:
            continue
        group = sorted(files)
        random.Random(f"{seed}:{kind}").shuffle(group)
        n_held = round(len(group) * holdout)
        held[kind] = sorted(group[:n_held])
        train.extend((f, NEGATIVE) for f in sorted(group[n_held:]))
    return train, held


@dataclass(frozen=True)
class Recorded:
    """The negatives a version trained with, as its metadata records them (dirs empty: none)."""

    dirs: list[str] = field(default_factory=list)
    holdout: float = HOLDOUT
    unseen: list[str] = field(default_factory=list)

    def split(self, seed: int) -> tuple[list[tuple[str, int]], dict[str, list[str]]]:
        """The split training made of them (see split())."""
        return split(self.dirs, self.holdout, seed, self.unseen)


def recorded(metadata: dict) -> Recorded:
    """A version's negatives, with its generated folders made again where they are missing (another machine)."""
    ds = metadata.get("dataset") or {}
    dirs = [str(d) for d in ds.get("negatives") or []]
    for d in dirs:
        synthetic.restore(d)
    return Recorded(dirs, float(ds.get("negatives_holdout") or HOLDOUT), list(ds.get("negatives_unseen") or []))
