"""Dynamic batching: concurrent requests share one model call on a single inference thread.

Two priorities: predictions (HIGH) always go first and never share a model call with background work;
background work such as an explanation's masked copies (LOW) runs in batches of at most `max_low_batch` images,
so a prediction waits behind at most one of those.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from app.serving.batch_input import BatchInput
from app.serving.work_queue import HIGH, LOW, Item, OverloadedError, WorkQueue

log = logging.getLogger(__name__)

__all__ = ["HIGH", "LOW", "Batcher", "OverloadedError"]


class Batcher:
    """Collects single images from many threads and runs them through `run_batch` together."""

    def __init__(
        self,
        run_batch: Callable[[np.ndarray], np.ndarray],
        max_batch: int = 32,
        max_wait_s: float = 0.0,
        max_queue: int = 256,
        max_queue_time_s: float = 10.0,
        on_batch: Callable[[int, float, int], None] | None = None,
        max_low_batch: int = 2,
        low_reserve: int = 0,
        before_low: Callable[[], bool] | None = None,
        turn: threading.Lock | None = None,
        yield_to: Batcher | None = None,
        max_yield_s: float = 0.0,
    ):
        self._run_batch = run_batch
        # Batchers of several versions share one model (every call uses every core) through `turn`: a batch
        # is topped up with what arrived while it waited for its turn, so a version with little traffic
        # (a canary) runs fewer, fuller batches instead of many of one or two images.
        self._turn = turn
        # A canary's predictions let `yield_to` (stable) run its queued work first, for up to max_yield_s after
        # their arrival: each model call has a fixed cost (~6.7 ms CPU for AlexNet's dense weights, measured),
        # so under load fewer, fuller candidate calls cost less than one small call per stable call.
        self._yield_to, self.max_yield_s = yield_to, max_yield_s
        self._batch_done = threading.Condition()
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue_time_s = max_queue_time_s
        self.max_low_batch = max(1, min(max_low_batch, max_batch))
        self.max_queue = max_queue
        self._work = WorkQueue(max_queue, low_reserve, self.max_low_batch)
        self._on_batch = on_batch
        # Called before a LOW batch runs; False drops it (the items fail with OverloadedError). A shadow
        # candidate uses it to run only while the stable version is idle.
        self._before_low = before_low
        self.running = False
        self.last_active = time.monotonic()
        self.batches_run = 0
        self._last_batch = 0
        self._stack = BatchInput(max_batch).stack  # the inference thread's only
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)
        self._thread.start()

    def submit(self, images: list[np.ndarray], priority: int = HIGH) -> list[Future]:
        """Queue images (HIGH or LOW priority); each future resolves to that image's output row."""
        items = self._work.put(images, priority)
        self.last_active = time.monotonic()
        return [item.future for item in items]

    def wait_for_batch(self, timeout: float) -> None:
        """Return when this batcher finishes its next model call, or after `timeout` seconds."""
        with self._batch_done:
            seen = self.batches_run
            self._batch_done.wait_for(lambda: self.batches_run != seen, timeout)

    def waiting_predictions(self) -> int:
        """Prediction (HIGH) images queued; background work not counted."""
        return self._work.waiting(HIGH)

    def _top_up(self, batch: list[Item]) -> list[Item]:
        """The batch with what is queued now added (up to max_batch), without waiting."""
        return batch + self._runnable(self._work.taken(self._work.fill(list(batch), 0.0, self.max_batch)[len(batch):]))

    def _yield(self, batch: list[Item]) -> list[Item]:
        """While `yield_to` has predictions queued, let it run first (up to max_yield_s from the oldest
        arrival), taking in what reaches this queue meanwhile; its background work is not waited for."""
        deadline = batch[0].enqueued + self.max_yield_s
        while len(batch) < self.max_batch and self._yield_to.waiting_predictions() > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._yield_to.wait_for_batch(remaining)
            batch = self._top_up(batch)
        return batch

    def depth(self) -> int:
        """Images waiting in the queue."""
        return self._work.depth()

    def idle_for(self) -> float:
        """Seconds since this batcher last had work queued or running (0 while it has)."""
        if self.running or self._work.depth():
            return 0.0
        return time.monotonic() - self.last_active

    def close(self) -> None:
        """Stop the inference thread after the queue drains."""
        self._work.close()
        self._thread.join(timeout=30)

    def _collect(self, first: Item) -> list[Item]:
        # Wait for stragglers only for predictions under concurrency (the last batch had company): a lone
        # client should not pay max_wait on every request.
        wait = self.max_wait_s if self._last_batch > 1 and first.priority == HIGH else 0.0
        return self._work.fill([first], wait, self.max_batch)

    def _runnable(self, batch: list[Item]) -> list[Item]:
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
            first = self._work.get()
            if first is None:
                return
            collected = self._work.taken(self._collect(first))
            self._last_batch = len(collected)
            batch = self._runnable(collected)
            if not batch:
                continue
            if batch[0].priority == LOW and self._before_low is not None and not self._before_low():
                for item in batch:
                    item.future.set_exception(OverloadedError("background work dropped: the server is busy"))
                continue
            if self._yield_to is not None and self.max_yield_s > 0 and batch[0].priority == HIGH:
                batch = self._yield(batch)
            with self._turn or contextlib.nullcontext():
                if self._turn is not None and len(batch) < self.max_batch:
                    # What queued while another version had the model joins this batch.
                    batch = self._top_up(batch)
                    self._last_batch = len(batch)
                started = time.monotonic()
                self.running = True
                try:
                    out = self._run_batch(self._stack([item.image for item in batch]))
                except Exception as exc:  # noqa: BLE001 - any model failure goes back to the waiting requests
                    log.exception("batch of %d failed", len(batch))
                    for item in batch:
                        item.future.set_exception(exc)
                    continue
                finally:
                    self.running = False
                    self.last_active = time.monotonic()
            with self._batch_done:
                self.batches_run += 1
                self._batch_done.notify_all()
            if self._on_batch:
                self._on_batch(len(batch), time.monotonic() - started, batch[0].priority)
            for item, row in zip(batch, out, strict=False):
                item.future.set_result(row)
