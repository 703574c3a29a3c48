"""Version labels (`<store>/alexnet/labels.json`, e.g. {"stable": 3, "candidate": 4}): which version serves
everyone and which one proves itself first. Written by `python -m training label`, read by the server."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from model_store.versions import remote
from model_store.versions.layout import MODEL_NAME

LABELS_FILE = "labels.json"
STABLE, CANDIDATE = "stable", "candidate"
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class LabelsError(ValueError):
    """A labels file or a label assignment that is not {name: version}."""


def check(labels: object) -> dict[str, int]:
    """{label: version} with lower-case names and non-negative integer versions, or LabelsError."""
    if not isinstance(labels, dict):
        raise LabelsError(f"labels must be a JSON object of name: version, got {type(labels).__name__}")
    out = {}
    for name, version in labels.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise LabelsError(f"label name {name!r}: lower-case letters, digits, - and _ (at most 32)")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise LabelsError(f"label {name!r}: version must be a non-negative integer, got {version!r}")
        out[name] = version
    return out


def _local_path(store: str | os.PathLike) -> Path:
    return Path(store) / MODEL_NAME / LABELS_FILE


def _blob(uri: str):
    bucket, prefix = remote.split_uri(uri)
    name = f"{prefix}/{MODEL_NAME}/{LABELS_FILE}" if prefix else f"{MODEL_NAME}/{LABELS_FILE}"
    return remote.storage_client().bucket(bucket).blob(name)


def read_labels(store: str | os.PathLike) -> dict[str, int]:
    """The store's labels ({} when it has none)."""
    if remote.is_remote(str(store)):
        from google.api_core.exceptions import NotFound

        with remote.gcs_errors(f"cannot read the labels of {store}"):
            try:
                text = _blob(str(store)).download_as_text()
            except NotFound:
                return {}
    else:
        try:
            text = _local_path(store).read_text()
        except FileNotFoundError:
            return {}
    try:
        return check(json.loads(text))
    except ValueError as exc:
        raise LabelsError(f"bad {LABELS_FILE} in {store}: {exc}") from exc


def write_labels(store: str | os.PathLike, labels: dict[str, int]) -> None:
    """Replace the store's labels atomically (a local rename; a GCS object is replaced whole)."""
    text = json.dumps(check(labels), sort_keys=True) + "\n"
    if remote.is_remote(str(store)):
        with remote.gcs_errors(f"cannot write the labels of {store}"):
            _blob(str(store)).upload_from_string(text, content_type="application/json")
        return
    path = _local_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{LABELS_FILE}.{os.getpid()}.part")
    tmp.write_text(text)
    os.replace(tmp, path)
