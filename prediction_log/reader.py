"""Reading a prediction log back: every record in time order, or the records of one request id."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from prediction_log.storage import SEGMENTS, GcsStorage, LocalStorage


def _lines(data: bytes) -> Iterator[dict]:
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: the rest of the segment still counts
        if isinstance(record, dict):
            yield record


def _segments(storage: LocalStorage | GcsStorage) -> list[tuple[str, int]]:
    """(name, size) of the stored segments from one listing, oldest first (names start with their UTC start time)."""
    return sorted(((e.name, e.size) for e in storage.entries() if e.name.startswith(f"{SEGMENTS}/")),
                  key=lambda entry: entry[0].rsplit("/", 1)[-1])


def segment_names(storage: LocalStorage | GcsStorage) -> list[str]:
    """Names of the stored segments, oldest first (names start with their UTC start time)."""
    return [name for name, _ in _segments(storage)]


def _read(storage: LocalStorage | GcsStorage, source: str | Path) -> bytes | None:
    # None when the file went meanwhile: an open segment the writer sealed into storage, or a stored segment the
    # retention removed.
    try:
        return source.read_bytes() if isinstance(source, Path) else storage.read(source)
    except FileNotFoundError:
        return None


def records(storage: LocalStorage | GcsStorage, extra: Iterable[Path] = ()) -> Iterator[dict]:
    """Every record of the log, segment by segment (plus local files not yet stored, e.g. an open segment)."""
    for source in [*segment_names(storage), *extra]:
        data = _read(storage, source)
        if data is not None:
            yield from _lines(data)


def find(storage: LocalStorage | GcsStorage, request_id: str, max_bytes: int, extra: Iterable[Path] = ()
         ) -> list[dict]:
    """The prediction records of one request id, searching the newest segments first, at most max_bytes of
    them (a feedback for an old request the server no longer remembers)."""
    # Local files first, then one listing of the store: a segment the writer seals in between is in the listing.
    sources: list[tuple[int, object]] = []
    for path in extra:
        with contextlib.suppress(FileNotFoundError):  # sealed since the caller named it: it is in the listing
            sources.append((path.stat().st_size, path))
    sources += [(size, name) for name, size in reversed(_segments(storage))]
    read = 0
    for size, source in sources:
        if read + size > max_bytes:
            break
        read += size
        data = _read(storage, source)
        if data is None:
            continue
        found = [r for r in _lines(data) if r.get("request_id") == request_id and r.get("type") == "prediction"]
        if found:
            return found
    return []
