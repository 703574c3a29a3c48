"""Pixel limits that hold for every format, and a decode memory budget that hostile uploads cannot exceed."""

import io
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image

from app.http.decode_budget import BudgetTimeoutError, DecodeBudget
from bench.drive.server import worker_rss_mb
from model_store import InvalidImageError, preprocess_image
from model_store.preprocessing import decode
from tests.conftest import free_port, start_gunicorn, stop, wait_ready


def _encode(size, fmt):
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 140, 200)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"])
def test_pixel_limit_is_exact_for_every_format(monkeypatch, fmt):
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 100 * 100)
    assert preprocess_image(_encode((100, 100), fmt)).shape == (227, 227, 3)  # exactly at the limit
    with pytest.raises(InvalidImageError, match=r"too large: 101x100 = 10,100 pixels \(limit 10,000\)"):
        preprocess_image(_encode((101, 100), fmt))


def test_budget_is_checked_with_the_decoded_size():
    seen = []

    def budget(pixels):
        seen.append(pixels)
        return threading.Lock()  # any context manager

    preprocess_image(_encode((3000, 2000), "PNG"), budget=budget)
    preprocess_image(_encode((3000, 2000), "JPEG"), budget=budget)
    assert seen[0] == 3000 * 2000
    assert seen[1] <= 3000 * 2000 // 16  # JPEGs decode at reduced DCT scale


def test_decode_budget_never_exceeds_capacity():
    budget = DecodeBudget(megapixels=3, timeout_s=10)
    inside, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(8)

    def work(_):
        gate.wait()
        with budget.hold(1_000_000):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert peak[0] == 3 and budget.peak == 3_000_000 and budget.in_use == 0
    with budget.hold(10**9):  # larger than the capacity: runs alone, holding all of it
        assert budget.in_use == budget.capacity
        budget.timeout_s = 0.05
        with pytest.raises(BudgetTimeoutError), budget.hold(1):
            pass


def test_hostile_uploads_stay_within_the_memory_budget(trained_store):
    png_49mp = _encode((7000, 7000), "PNG")  # ~150 KB that decodes to 147 MB
    jpeg_50mp = _encode((8000, 6250), "JPEG")
    png_39mp = _encode((6000, 6500), "PNG")  # just under the 40 MP limit: accepted, decoded in full
    port = free_port()
    # Decodes queue for the budget one 39 MP image at a time: allow the whole burst to finish on a slow host.
    proc = start_gunicorn(trained_store, port, extra_env={"REQUEST_TIMEOUT_SECONDS": "300"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        baseline = worker_rss_mb(proc.pid)
        peak, done = [baseline], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], worker_rss_mb(proc.pid))
                time.sleep(0.02)

        def upload(data):
            r = requests.post(f"{base}/predict", files={"image": ("x", data)}, timeout=300)
            return r.status_code, r.json()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with ThreadPoolExecutor(32) as pool:
            rejected = list(pool.map(upload, [png_49mp] * 32 + [jpeg_50mp] * 8))
            accepted = list(pool.map(upload, [png_39mp] * 32))
        done.set()
        sampler.join()
        assert all(code == 400 and "too large" in body["error"] for code, body in rejected)
        assert all(code == 200 for code, _ in accepted), [a for a in accepted if a[0] != 200][:3]
        growth = peak[0] - baseline
        # The 64 MP budget admits one 39 MP decode at a time: ~6 bytes per pixel of it (RGB, the decoder's
        # buffers and the resize), 234 MB. Measured ~175 MB; without the budget, 32 decodes would run at once.
        bound = 6000 * 6500 * 6 / 1e6
        print(f"worker RSS idle {baseline:.0f} MB, peak {peak[0]:.0f} MB (+{growth:.0f} MB) under 32 hostile uploads")
        assert growth < bound
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
    finally:
        stop(proc)


def test_heaps_are_trimmed_periodically(monkeypatch):
    import ctypes

    from app.http import decode_budget

    calls = []

    class FakeLibc:
        def malloc_trim(self, pad):
            calls.append(pad)
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    stop = threading.Event()
    thread = decode_budget.trim_heaps_every(0.01, stop)
    assert thread is not None and thread.daemon and thread.name == "malloc-trim"
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert calls[:3] == [0, 0, 0] and not thread.is_alive()  # malloc_trim(0): every heap, nothing kept back


def test_one_trim_thread_per_process():
    from app.http import decode_budget

    first = decode_budget.trim_heaps_every(60)
    assert decode_budget.trim_heaps_every(60) is first
    assert [t for t in threading.enumerate() if t.name == "malloc-trim"] == [first]


HEAP_COUNT = """
import ctypes, sys, threading
from app.http import decode_budget
decode_budget.limit_heaps(int(sys.argv[1]))
barrier = threading.Barrier(9)
def work():
    block = bytearray(256 * 1024)  # malloc'd in this thread: it gets a heap of its own when one is allowed
    barrier.wait()
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
barrier.wait()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per heap, on stderr
barrier.wait()
for t in threads:
    t.join()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc")
def test_heaps_are_capped_for_threads_started_after():
    def heaps(cap: int) -> int:
        out = subprocess.run([sys.executable, "-c", HEAP_COUNT, str(cap)], capture_output=True, text=True,
                             timeout=60, cwd=Path(__file__).resolve().parents[1], check=True,
                             env={k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"})
        return out.stderr.count("Arena ")

    assert heaps(2) == 2
    assert heaps(0) > 2  # glibc's own default: a heap per thread here
