"""Versioned local model store: <store>/alexnet/<N>/{alexnet.h5, metadata.json}."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

MODEL_NAME = "alexnet"
MODEL_FILE = "alexnet.h5"
METADATA_FILE = "metadata.json"
REPORT_FILE = "report.html"  # the model report (training/finish/report.py), optional


class ModelNotFoundError(FileNotFoundError):
    """Raised when a store holds no usable model version."""


def model_root(store: str | os.PathLike) -> Path:
    """Folder holding the numbered versions of the model."""
    return Path(store) / MODEL_NAME


def list_versions(store: str | os.PathLike) -> list[int]:
    """Complete version numbers in the store, ascending (temp dirs are ignored)."""
    root = model_root(store)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir())


def version_dir(store: str | os.PathLike, version: int) -> Path:
    """Folder of one version."""
    return model_root(store) / str(int(version))


def latest_version(store: str | os.PathLike) -> int:
    """Newest version number, or ModelNotFoundError when the store is empty."""
    versions = list_versions(store)
    if not versions:
        raise ModelNotFoundError(f"no model versions under {model_root(store)}")
    return versions[-1]


def read_metadata(store: str | os.PathLike, version: int) -> dict:
    """Parsed metadata.json of one version."""
    path = version_dir(store, version) / METADATA_FILE
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def staging_dir(store: str | os.PathLike) -> Path:
    """A fresh temp folder inside the store, on the same filesystem so the publish rename is atomic."""
    root = model_root(store)
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=root))


def publish(store: str | os.PathLike, staged: str | os.PathLike) -> int:
    """Atomically rename a staged folder into the next free version number and return it."""
    staged = Path(staged)
    for name in (MODEL_FILE, METADATA_FILE):
        if not (staged / name).is_file():
            raise FileNotFoundError(f"staged version lacks {name}: {staged}")
    root = model_root(store)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(staged, 0o755)  # mkdtemp makes it 0700; a non-root server must be able to read it
    while True:
        versions = list_versions(store)
        version = (versions[-1] + 1) if versions else 1
        try:
            # rename() of a directory onto a missing name is atomic; if another publisher won
            # the race the target exists and we try the next number.
            os.rename(staged, root / str(version))
            return version
        except OSError:
            if not (root / str(version)).exists():
                raise

