"""A local working copy of one stored version, for commands that rewrite a version's files in place."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import model_store


@contextmanager
def version_store(uri: str, version: int | None, prefix: str) -> Iterator[str]:
    """A local store holding `version` (default: newest) of a local or gs:// store: the store itself when
    local, else a temporary download that is removed afterwards (upload changes before leaving)."""
    remote = model_store.is_remote(uri)
    store = model_store.local_copy(uri, tempfile.mkdtemp(prefix=prefix) if remote else None, version)
    try:
        yield store
    finally:
        if remote:
            shutil.rmtree(store, ignore_errors=True)
