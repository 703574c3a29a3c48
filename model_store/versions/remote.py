"""gs:// model stores: list versions, download one to a local cache (publishing: remote_publish.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from model_store.versions import golden
from model_store.versions.layout import (
    METADATA_FILE,
    MODEL_FILE,
    MODEL_NAME,
    REPORT_FILE,
    list_versions,
    publish,
    staging_dir,
    version_dir,
)

# A trained version's files; metadata.json (uploaded last) marks a version complete.
FILES = (MODEL_FILE, "history.csv", "curves.png", REPORT_FILE, METADATA_FILE)


LIST_RETRY_SECONDS = 20.0


class RemoteStoreError(OSError):
    """A gs:// store could not be read or written (auth, permissions, network, API errors)."""


@contextlib.contextmanager
def _gcs_errors(what: str):
    # google-cloud-storage raises its own hierarchy (and google-auth another); callers catch OSError.
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    try:
        yield
    except (GoogleAPIError, GoogleAuthError) as exc:
        raise RemoteStoreError(f"{what}: {type(exc).__name__}: {exc}") from exc


def is_remote(uri: str) -> bool:
    """True for gs:// stores."""
    return str(uri).startswith("gs://")


def split_uri(uri: str) -> tuple[str, str]:
    """gs://bucket/some/prefix -> ("bucket", "some/prefix")."""
    match = re.fullmatch(r"gs://([^/]+)/?(.*)", str(uri).rstrip("/"))
    if not match:
        raise ValueError(f"not a gs:// URI: {uri}")
    return match.group(1), match.group(2).strip("/")


def _client():
    from google.cloud import storage  # imported lazily: local stores never need it

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local"),
                              credentials=AnonymousCredentials())
    return storage.Client()


# Public names for other packages that keep files in GCS the same way (prediction_log/).
storage_client = _client
gcs_errors = _gcs_errors


def model_prefix(prefix: str) -> str:
    """The object prefix of the model's versions in a store whose URI has this prefix."""
    return f"{prefix}/{MODEL_NAME}/" if prefix else f"{MODEL_NAME}/"


def remote_versions(uri: str) -> list[int]:
    """Complete versions (those with metadata.json) in a gs:// store."""
    bucket, prefix = split_uri(uri)
    base = model_prefix(prefix)
    found = set()
    with _gcs_errors(f"cannot list {uri}"):
        # Retries stop after LIST_RETRY_SECONDS (the library default is 120 s): a store that cannot be
        # reached fails start-up, or one poll, in bounded time.
        from google.cloud.storage.retry import DEFAULT_RETRY

        for blob in _client().list_blobs(bucket, prefix=base, retry=DEFAULT_RETRY.with_timeout(LIST_RETRY_SECONDS)):
            parts = blob.name[len(base):].split("/")
            if len(parts) == 2 and parts[0].isdigit() and parts[1] == METADATA_FILE:
                found.add(int(parts[0]))
    return sorted(found)


def _runtime_files(metadata: dict) -> list[str]:
    # Files of exported runtimes (OpenVINO IRs), as listed in metadata.json; never a path outside the version.
    out = []
    for entry in (metadata.get("runtimes") or {}).values():
        for name in entry.get("files", []) if isinstance(entry, dict) else []:
            if isinstance(name, str) and ".." not in name.split("/") and not name.startswith("/"):
                out.append(name)
    return out


def download_version(uri: str, version: int, cache_dir: str | os.PathLike,
                     want: Callable[[dict], list[str]] | None = None) -> Path:
    """Copy one remote version into cache_dir/alexnet/<version> (atomically); returns that folder.

    want(metadata) names the files needed (default: all); files a later call wants are fetched then.
    """
    target = version_dir(cache_dir, version)
    bucket_name, prefix = split_uri(uri)
    bucket = _client().bucket(bucket_name)
    base = f"{model_prefix(prefix)}{version}/"
    if target.is_dir():
        metadata = json.loads((target / METADATA_FILE).read_text())
        missing = [f for f in _wanted(metadata, want) if not (target / f).is_file()]
        with _gcs_errors(f"cannot download version {version} of {uri}"):
            for name in missing:  # each file lands whole (temp name + rename); metadata is already there
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                tmp = target / f"{name}.{os.getpid()}.part"
                bucket.blob(base + name).download_to_filename(str(tmp))
                os.replace(tmp, target / name)
        return target
    staged = staging_dir(cache_dir)
    try:
        with _gcs_errors(f"cannot download version {version} of {uri}"):
            bucket.blob(base + METADATA_FILE).download_to_filename(str(staged / METADATA_FILE))
            metadata = json.loads((staged / METADATA_FILE).read_text())
            for name in _wanted(metadata, want):
                (staged / name).parent.mkdir(parents=True, exist_ok=True)
                bucket.blob(base + name).download_to_filename(str(staged / name))
            for name in FILES[1:-1]:  # training curves and report: optional, and small
                blob = bucket.blob(base + name)
                if blob.exists():
                    blob.download_to_filename(str(staged / name))
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)  # no half-downloaded version left in the cache
        raise
    for folder in (staged, *(p for p in staged.rglob("*") if p.is_dir())):
        os.chmod(folder, 0o755)
    try:
        os.rename(staged, target)
    except OSError:
        if not target.is_dir():  # someone else (another worker) won the race: theirs is identical
            raise
    return target


def _wanted(metadata: dict, want: Callable[[dict], list[str]] | None) -> list[str]:
    # Model files to fetch: all of them, or those want() names (an OpenVINO server skips the 233 MB .h5).
    files = [MODEL_FILE, *_runtime_files(metadata), *golden.files(metadata)]  # golden: the rollout gate's photos
    return files if want is None else [f for f in want(metadata) if f in files]


def local_copy(uri: str, cache_dir: str | os.PathLike | None = None, version: int | None = None,
               skip: set[int] | frozenset = frozenset(), want: Callable[[dict], list[str]] | None = None) -> str:
    """A local store path for uri: itself when local; for gs://, a cache holding the wanted version
    (the pinned one, else the newest not in skip: versions that already failed to load)."""
    if not is_remote(uri):
        return str(uri)
    cache = Path(cache_dir or Path(tempfile.gettempdir()) / "alexnet-model-cache")
    versions = remote_versions(uri)
    candidates = [v for v in versions if v not in skip]
    wanted = version if version is not None else (candidates[-1] if candidates else None)
    if wanted is not None and wanted in versions:
        download_version(uri, wanted, cache, want)
    cache.mkdir(parents=True, exist_ok=True)
    return str(cache)


def prune_cache(cache_dir: str | os.PathLike, keep: set[int]) -> list[int]:
    """Delete downloaded versions not in keep, and abandoned staging folders; returns what was removed."""
    removed = []
    for v in list_versions(cache_dir):
        if v not in keep:
            shutil.rmtree(version_dir(cache_dir, v), ignore_errors=True)
            removed.append(v)
    root = Path(cache_dir) / MODEL_NAME
    for staged in root.glob(".staging-*") if root.is_dir() else []:
        if time.time() - staged.stat().st_mtime > 3600:  # a download in progress is younger than this
            shutil.rmtree(staged, ignore_errors=True)
    return removed


__all__ = ["RemoteStoreError", "download_version", "is_remote", "list_versions", "local_copy", "prune_cache",
           "publish", "remote_versions", "split_uri"]
