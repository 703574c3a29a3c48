"""A bound on the pixels all concurrent uploads may hold decoded at once (so on the worker's memory)."""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Iterator

from app.ops import metrics

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def return_big_buffers_to_the_os() -> bool:
    """Pin glibc's mmap threshold at 1 MB so freed decode buffers go back to the OS at once.

    By default glibc raises the threshold after the first large free, and 16 MB Pillow blocks then come
    from per-thread heaps that are never trimmed: measured +2.2 GB RSS after 32 concurrent 39 MP uploads.
    Pinning it also pins the trim threshold at 128 KB, so every freed ~0.5 MB photo buffer was handed back
    and faulted in again (+0.37 ms of CPU per photo): keep up to 4 MB free per heap instead.
    """
    return _mallopt(M_MMAP_THRESHOLD, 1 << 20) and _mallopt(M_TRIM_THRESHOLD, 4 << 20)


def limit_heaps(arenas: int) -> bool:
    """Cap glibc's malloc heaps (arenas) at `arenas` for the threads started from now on (0: glibc's default).

    By default glibc gives threads up to 8 heaps per core, and 32 request threads decoding photos each keep
    their own heap's free memory: measured 436-443 MB worker RSS at 32 clients against 390-396 MB with 2
    heaps, at the same img/s (3 runs each, int8 `make train` store, 2-core AVX-512 host).
    """
    return arenas > 0 and _mallopt(M_ARENA_MAX, arenas)


def _mallopt(option: int, value: int) -> bool:
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(option, value))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False


def trim_heaps_every(seconds: float, stop: threading.Event | None = None) -> threading.Thread | None:
    """A daemon thread handing free heap memory back to the OS every `seconds` (glibc malloc_trim).

    32 request threads decoding photos of every size leave free holes in glibc's per-thread heaps that
    normal trimming (top of heap only) never returns: measured ~+100 MB RSS, of which malloc_trim gives
    back about half in ~5 ms.
    """
    global _trimmer
    if stop is None and _trimmer is not None and _trimmer.is_alive():
        return _trimmer  # one per process, however many apps it builds (tests build many)
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None

    def loop(stop: threading.Event) -> None:
        while not stop.wait(seconds):
            trim(0)

    thread = threading.Thread(target=loop, args=(stop or threading.Event(),), name="malloc-trim", daemon=True)
    thread.start()
    if stop is None:
        _trimmer = thread
    return thread


_trimmer: threading.Thread | None = None


class BudgetTimeoutError(Exception):
    """An upload waited too long for decode memory."""


class DecodeBudget:
    """A counting semaphore of pixels: a decode waits until its pixels fit beside the others in flight."""

    def __init__(self, megapixels: float, timeout_s: float):
        self.capacity = int(megapixels * 1_000_000)
        self.timeout_s = timeout_s
        self.in_use = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Reserve pixels for the duration of a decode (an image above the capacity runs alone)."""
        need = min(pixels, self.capacity)
        started = time.monotonic()
        with self._cond:
            if not self._cond.wait_for(lambda: self.in_use + need <= self.capacity, timeout=self.timeout_s):
                raise BudgetTimeoutError(f"decode budget busy for {self.timeout_s:.0f}s")
            self.in_use += need
            self.peak = max(self.peak, self.in_use)
        metrics.DECODE_WAIT.observe(time.monotonic() - started)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= need
                self._cond.notify_all()
