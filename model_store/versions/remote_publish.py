"""Publish a local version to a gs:// store, or add files to one published there."""

from __future__ import annotations

import os
from pathlib import Path

from model_store.versions.layout import METADATA_FILE, version_dir
from model_store.versions.remote import gcs_errors, model_prefix, remote_versions, split_uri, storage_client

CLAIM_FILE = ".publishing"  # hidden: never downloaded, never a version file


def _version_files(src: Path) -> list[str]:
    """Every file of a local version (relative, '/'-separated), metadata.json last; hidden ones skipped."""
    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src).parts))
    return [n for n in names if n != METADATA_FILE] + [METADATA_FILE]


def upload_version(local_store: str | os.PathLike, version: int, uri: str) -> int:
    """Publish a local version to a gs:// store as the next remote version number; returns it."""
    from google.api_core.exceptions import PreconditionFailed

    src = version_dir(local_store, version)
    bucket_name, prefix = split_uri(uri)
    bucket = storage_client().bucket(bucket_name)
    names = _version_files(src)
    existing = remote_versions(uri)
    remote = (existing[-1] + 1) if existing else 1
    while True:
        base = f"{model_prefix(prefix)}{remote}/"
        try:
            # Claim the number before writing into it (create-only, if_generation_match=0): a publisher racing
            # for the same number gets PreconditionFailed and takes the next one, so no publisher ever
            # overwrites another's files. A claim left by a publisher that died stays an unfinished version.
            bucket.blob(base + CLAIM_FILE).upload_from_string(b"", if_generation_match=0)
        except PreconditionFailed:
            remote += 1
            continue
        for name in names:
            bucket.blob(base + name).upload_from_filename(str(src / name), if_generation_match=0)
        return remote


def update_version(local_store: str | os.PathLike, version: int, uri: str, new_files: list[str]) -> None:
    """Upload files added to a published version (an export), then replace its metadata.json that names them."""
    src = version_dir(local_store, version)
    bucket_name, prefix = split_uri(uri)
    bucket = storage_client().bucket(bucket_name)
    base = f"{model_prefix(prefix)}{version}/"
    with gcs_errors(f"cannot update version {version} of {uri}"):
        for name in new_files:
            bucket.blob(base + name).upload_from_filename(str(src / name))
        bucket.blob(base + METADATA_FILE).upload_from_filename(str(src / METADATA_FILE))


__all__ = ["CLAIM_FILE", "update_version", "upload_version"]
