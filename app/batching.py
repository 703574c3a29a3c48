"""Dynamic batching: concurrent requests share one model call on a single inference thread."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


class OverloadedError(Exception):
    """The queue is full or a request waited too long for its turn."""


@dataclass
class _Item:
    image: np.ndarray
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    """Collects single images from many threads and runs them through `run_batch` together."""

    def __init__(
        self,
        run_batch: Callable[[np.ndarray], np.ndarray],
        max_batch: int = 32,
        max_wait_s: float = 0.002,
        max_queue: int = 256,
        max_queue_time_s: float = 10.0,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue_time_s = max_queue_time_s
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue)
        self._on_batch = on_batch
        self.batches_run = 0
        self._last_batch = 0
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)
        self._thread.start()

    def set_runner(self, run_batch: Callable[[np.ndarray], np.ndarray]) -> None:
        """Swap the model function; batches already taken finish on the old one."""
        self._run_batch = run_batch

    def submit(self, images: list[np.ndarray]) -> list[Future]:
        """Queue images; each future resolves to that image's output row."""
        items = [_Item(img) for img in images]
        for item in items:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                for queued in items:
                    queued.future.cancel()
                raise OverloadedError("server busy: inference queue is full") from None
        return [item.future for item in items]

    def depth(self) -> int:
        """Images waiting in the queue."""
        return self._queue.qsize()

    def close(self) -> None:
        """Stop the inference thread after the queue drains."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _collect(self, first: _Item) -> list[_Item]:
        batch = [first]
        # Wait for stragglers only under concurrency (the last batch had company): a lone client
        # should not pay max_wait on every request.
        wait = self.max_wait_s if self._last_batch > 1 else 0.0
        deadline = time.monotonic() + wait
        while len(batch) < self.max_batch:
            try:
                # Take what is already queued at once; wait at most `wait` for stragglers.
                remaining = deadline - time.monotonic()
                item = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _runnable(self, batch: list[_Item]) -> list[_Item]:
        now = time.monotonic()
        keep = []
        for item in batch:
            # A cancelled future means the client gave up: drop its work.
            if not item.future.set_running_or_notify_cancel():
                continue
            if now - item.enqueued > self.max_queue_time_s:
                item.future.set_exception(OverloadedError("server busy: request waited too long in the queue"))
                continue
            keep.append(item)
        return keep

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            collected = self._collect(first)
            self._last_batch = len(collected)
            batch = self._runnable(collected)
            if not batch:
                continue
            started = time.monotonic()
            try:
                out = self._run_batch(np.stack([item.image for item in batch]))
            except Exception as exc:  # noqa: BLE001 - any model failure goes back to the waiting requests
                log.exception("batch of %d failed", len(batch))
                for item in batch:
                    item.future.set_exception(exc)
                continue
            self.batches_run += 1
            if self._on_batch:
                self._on_batch(len(batch), time.monotonic() - started)
            for item, row in zip(batch, out, strict=False):
                item.future.set_result(row)
