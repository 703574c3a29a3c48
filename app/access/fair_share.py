"""A fair share per client: when the worker is busy, a client holding more than its share of the prediction
slots gets a 429, so clients within theirs keep being served; a client alone may use every slot.

Clients are the key's name (API keys on) or the remote address. A client counts as active while it has a
request in flight and for ACTIVE_SECONDS after its last one, so a polite client's sequential requests keep
its share between them. Counts are per worker process (each worker has its own model and batcher).
"""

from __future__ import annotations

import threading
import time

ACTIVE_SECONDS = 2.0
FORGET_AFTER = 1000  # idle clients remembered before the table is swept


class FairShare:
    """In-flight prediction requests per client, admitted against `slots` shared by the active clients."""

    def __init__(self, slots: int, active_seconds: float = ACTIVE_SECONDS, clock=time.monotonic):
        self.slots, self.active_seconds, self._clock = slots, active_seconds, clock
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._seen: dict[str, float] = {}

    def admit(self, client: str, limit: int | None = None) -> bool:
        """Take a slot for one request of `client` (False: over its share or its own limit; answer 429)."""
        now = self._clock()
        with self._lock:
            held = self._in_flight.get(client, 0)
            self._seen[client] = now
            if limit is not None and held >= limit:
                return False
            if self.slots > 0 and held > 0:
                active = [c for c, t in self._seen.items() if self._in_flight.get(c) or now - t < self.active_seconds]
                total = sum(self._in_flight.values())
                share = max(1, self.slots // max(1, len(active)))
                if len(active) > 1 and total >= self.slots and held >= share:
                    return False
            self._in_flight[client] = held + 1
            if len(self._seen) > FORGET_AFTER:
                self._sweep(now)
            return True

    def release(self, client: str) -> None:
        """Give back the slot of one finished request."""
        with self._lock:
            self._seen[client] = self._clock()
            held = self._in_flight.get(client, 0) - 1
            if held > 0:
                self._in_flight[client] = held
            else:
                self._in_flight.pop(client, None)

    def in_flight(self) -> dict[str, int]:
        """{client: requests in flight} now."""
        with self._lock:
            return dict(self._in_flight)

    def _sweep(self, now: float) -> None:
        for client, seen in list(self._seen.items()):
            if client not in self._in_flight and now - seen >= self.active_seconds:
                del self._seen[client]


class RateLimit:
    """A token bucket per client: `per_minute` events, bursts of up to that many."""

    def __init__(self, per_minute: float, clock=time.monotonic):
        self.per_minute, self._clock = per_minute, clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    def take(self, client: str, per_minute: float | None = None) -> float:
        """0 when the event is allowed, else the seconds until it would be."""
        rate = per_minute or self.per_minute
        now = self._clock()
        with self._lock:
            tokens, when = self._buckets.get(client, (rate, now))
            tokens = min(rate, tokens + (now - when) * rate / 60.0)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) * 60.0 / rate
