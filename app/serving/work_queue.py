"""The batcher's queue: admission by priority, FIFO within a priority, and what one batch may take from it."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

HIGH, LOW = 0, 1
_CLOSE = 2  # sorts after all work: close() lets the queue drain first


class OverloadedError(Exception):
    """The queue is full or a request waited too long for its turn."""


@dataclass
class Item:
    """One queued image and the future its output row goes to."""

    image: np.ndarray
    priority: int = HIGH
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class WorkQueue:
    """Images waiting for a model call, counted per priority so predictions keep their share of the room."""

    def __init__(self, max_queue: int, low_reserve: int, max_low_batch: int):
        # (priority, sequence, item): FIFO within a priority. Unbounded so the inference thread can always put
        # an entry back; put() enforces the limit. low_reserve: room for LOW work beyond max_queue, so
        # bounded background work never takes a prediction's place.
        self._queue: queue.PriorityQueue[tuple[int, int, Item | None]] = queue.PriorityQueue()
        self.max_queue, self._limit = max_queue, max_queue + low_reserve
        self.max_low_batch = max_low_batch
        self._waiting = {HIGH: 0, LOW: 0}  # queued images per priority (put-backs stay counted)
        self._count_lock = threading.Lock()
        self._seq = itertools.count()

    def put(self, images: list[np.ndarray], priority: int) -> list[Item]:
        """Queue images, or raise OverloadedError when their priority has no room left."""
        with self._count_lock:
            # Predictions get max_queue whatever LOW work waits; LOW work only fits in what is left of
            # max_queue + low_reserve.
            if priority == HIGH:
                full = self._waiting[HIGH] + len(images) > self.max_queue
            else:
                full = self._waiting[HIGH] + self._waiting[LOW] + len(images) > self._limit
            if full:
                raise OverloadedError("server busy: inference queue is full")
            self._waiting[priority] += len(images)
        items = [Item(img, priority) for img in images]
        for item in items:
            self._queue.put_nowait((priority, next(self._seq), item))
        return items

    def get(self) -> Item | None:
        """The next item, waiting for one; None once the queue is closed and drained."""
        return self._queue.get()[2]

    def fill(self, batch: list[Item], wait: float, max_batch: int) -> list[Item]:
        """Add to batch what is queued (waiting at most `wait` seconds for more), up to max_batch items."""
        first = batch[0]
        low = sum(item.priority == LOW for item in batch)
        deadline = time.monotonic() + wait
        while len(batch) < max_batch:
            try:
                # Take what is already queued at once; wait at most `wait` for stragglers.
                remaining = deadline - time.monotonic()
                entry = self._queue.get_nowait() if remaining <= 0 else self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            item = entry[2]
            # A prediction's batch carries no LOW work (it would make the prediction pay for it); LOW-only
            # batches stop at max_low_batch, which bounds how long a prediction can wait behind one.
            if item is None or (item.priority == LOW and (first.priority == HIGH or low >= self.max_low_batch)):
                self._queue.put(entry)  # the close marker, or LOW work for a later batch
                break
            low += item.priority == LOW
            batch.append(item)
        return batch

    def taken(self, items: list[Item]) -> list[Item]:
        """Items just taken off the queue: no longer counted as waiting."""
        with self._count_lock:
            for item in items:
                self._waiting[item.priority] -= 1
        return items

    def waiting(self, priority: int) -> int:
        """Images of this priority queued (put-backs included)."""
        return self._waiting[priority]

    def depth(self) -> int:
        """Entries in the queue."""
        return self._queue.qsize()

    def close(self) -> None:
        """Queue the close marker: it sorts after all work, so the queue drains first."""
        self._queue.put((_CLOSE, next(self._seq), None))
