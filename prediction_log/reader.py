"""Reading a prediction log back: every record in time order, or the records of one request id."""

from __future__ import annotations

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


def segment_names(storage: LocalStorage | GcsStorage) -> list[str]:
    """Names of the stored segments, oldest first (names start with their UTC start time)."""
    return sorted((e.name for e in storage.entries() if e.name.startswith(f"{SEGMENTS}/")),
                  key=lambda n: n.rsplit("/", 1)[-1])


def records(storage: LocalStorage | GcsStorage, extra: Iterable[Path] = ()) -> Iterator[dict]:
    """Every record of the log, segment by segment (plus local files not yet stored, e.g. an open segment)."""
    for name in segment_names(storage):
        yield from _lines(storage.read(name))
    for path in extra:
        if path.is_file():
            yield from _lines(path.read_bytes())


def find(storage: LocalStorage | GcsStorage, request_id: str, max_bytes: int, extra: Iterable[Path] = ()
         ) -> list[dict]:
    """The prediction records of one request id, searching the newest segments first, at most max_bytes of
    them (a feedback for an old request the server no longer remembers)."""
    entries = {e.name: e.size for e in storage.entries() if e.name.startswith(f"{SEGMENTS}/")}
    sources: list[tuple[int, object]] = [(p.stat().st_size, p) for p in extra if p.is_file()]
    sources += [(entries[n], n) for n in reversed(segment_names(storage))]
    read = 0
    for size, source in sources:
        if read + size > max_bytes:
            break
        read += size
        data = source.read_bytes() if isinstance(source, Path) else storage.read(source)
        found = [r for r in _lines(data) if r.get("request_id") == request_id and r.get("type") == "prediction"]
        if found:
            return found
    return []
