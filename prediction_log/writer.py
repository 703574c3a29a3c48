"""The background writer: a bounded queue in front of the log, so a request never waits for (or fails on) it.

Requests hand over a record and the upload's bytes; the writer thread hashes the bytes, reads the image's
size from its header, stores the image when it is sampled for capture, appends the JSON line, rotates
segments by size and age, and applies the retention caps. A full queue or a failing store drops records
and says so through `on_drop`; `close()` writes out everything still queued (gunicorn calls it on SIGTERM).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prediction_log.storage import IMAGES, SEGMENTS, GcsStorage, LocalStorage
from prediction_log.upload_facts import captured, image_facts

log = logging.getLogger(__name__)

_STOP = object()
_BATCH = 256  # records written per flush at most


class LogWriter:
    """Appends records to a prediction log from one background thread."""

    def __init__(self, storage: LocalStorage | GcsStorage, *, capture: float = 0.0,
                 segment_bytes: int = 16 << 20, segment_seconds: float = 300.0, max_bytes: int = 1 << 30,
                 max_age_days: float = 30.0, queue_records: int = 10_000, queue_bytes: int = 64 << 20,
                 on_drop: Callable[[str, int], None] | None = None,
                 on_write: Callable[[str, int], None] | None = None):
        self.storage, self.capture = storage, capture
        self.segment_bytes, self.segment_seconds = segment_bytes, segment_seconds
        self.max_bytes, self.max_age_s = max_bytes, max_age_days * 86400
        self.queue_bytes = queue_bytes
        self._on_drop, self._on_write = on_drop or (lambda reason, n: None), on_write or (lambda kind, n: None)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_records)
        self._held, self._held_lock = 0, threading.Lock()
        self._segment: Path | None = None
        self._segment_size = 0
        self._segment_started = 0.0
        self._seq = 0
        # Two writers of one process (or a restarted one with the same pid) never share a segment name:
        # on GCS the second upload would replace the first.
        self._token = uuid.uuid4().hex[:8]
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    # ----- request side (any thread) -----

    def submit(self, record: dict, image: bytes | None = None) -> bool:
        """Queue a record (and its upload's bytes) without waiting; False (and a counted drop) when full."""
        size = len(image) if image is not None else 0
        with self._held_lock:
            if self._closed or self._held + size > self.queue_bytes:
                self._on_drop("queue_full", 1)
                return False
            self._held += size
        try:
            self._queue.put_nowait((record, image))
        except queue.Full:
            with self._held_lock:
                self._held -= size
            self._on_drop("queue_full", 1)
            return False
        return True

    def close(self, timeout: float = 15.0) -> None:
        """Write out everything queued, close the open segment, stop the thread."""
        with self._held_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("prediction log: queue still full after %.0f s at close", timeout)
            return
        self._thread.join(timeout)

    @property
    def open_segment(self) -> Path | None:
        """The local file being appended to (readers may scan it for records not yet uploaded)."""
        return self._segment

    # ----- writer thread -----

    def _run(self) -> None:
        self._retain()
        while True:
            try:
                items = [self._queue.get(timeout=0.5)]
            except queue.Empty:
                items = []
            while items and len(items) < _BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in items)
            records = [item for item in items if item is not _STOP]
            if records:
                self._write([self._complete(record, image) for record, image in records])
            if stop or (self._segment and (time.time() - self._segment_started >= self.segment_seconds)):
                self._rotate()
            if stop:
                if isinstance(self.storage, GcsStorage):
                    self.storage.close()
                return

    def _complete(self, record: dict, image: bytes | None) -> dict:
        if image is None:
            return record
        with self._held_lock:
            self._held -= len(image)
        sha = hashlib.sha256(image).hexdigest()
        width, height, ext = image_facts(image)
        record.update(sha256=sha, width=width, height=height, image=None)
        if captured(sha, self.capture):
            name = f"{IMAGES}/{sha[:2]}/{sha}.{ext}"
            try:
                self.storage.put(name, image)
                record["image"] = name
            except OSError as exc:
                log.warning("prediction log: image %s not stored: %s", name, exc)
                self._on_drop("image_error", 1)
        return record

    def _write(self, records: list[dict]) -> None:
        chunk: list[tuple[bytes, str]] = []
        for record in records:
            chunk.append(((json.dumps(record, separators=(",", ":")) + "\n").encode(), record.get("type", "?")))
            if self._segment_size + sum(len(line) for line, _ in chunk) >= self.segment_bytes:
                if self._append(chunk):
                    self._rotate()
                chunk = []
        if chunk:
            self._append(chunk)

    def _append(self, chunk: list[tuple[bytes, str]]) -> bool:
        data = b"".join(line for line, _ in chunk)
        try:
            if self._segment is None:
                self._seq += 1
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
                name = f"{stamp}-{socket.gethostname()}-{os.getpid()}-{self._token}-{self._seq:06d}.jsonl"
                self._segment, self._segment_size = self.storage.segment_dir() / name, 0
                self._segment_started = time.time()
            with open(self._segment, "ab") as fh:
                fh.write(data)
        except OSError as exc:
            log.warning("prediction log: %d records dropped: %s", len(chunk), exc)
            self._on_drop("write_error", len(chunk))
            self._segment, self._segment_size = None, 0
            return False
        self._segment_size += len(data)
        for kind in {k for _, k in chunk}:
            self._on_write(kind, sum(1 for _, k in chunk if k == kind))
        return True

    def _rotate(self) -> None:
        segment, self._segment, self._segment_size = self._segment, None, 0
        if segment is None:
            return
        try:
            self.storage.finish_segment(segment)
        except OSError as exc:
            log.error("prediction log: closed segment %s not stored: %s", segment.name, exc)
        self._retain()

    def _retain(self) -> None:
        """Delete segments and images older than the age cap, then the oldest until under the byte cap."""
        try:
            entries = sorted(self.storage.entries(), key=lambda e: (e.mtime, e.name))
            now, total = time.time(), sum(e.size for e in entries)
            current = f"{SEGMENTS}/{self._segment.name}" if self._segment else None
            for entry in entries:
                if entry.name == current:
                    continue
                if now - entry.mtime > self.max_age_s or total > self.max_bytes:
                    self.storage.delete(entry.name)
                    total -= entry.size
        except OSError as exc:
            log.warning("prediction log: retention not applied: %s", exc)
