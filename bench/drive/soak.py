"""`make soak`: thousands of mixed good and bad requests at high concurrency against the real server.

Passes when there is no 5xx, no transport error, every request gets the status class it should, the
worker's RSS grows by less than 50 MB between the end of warm-up and the end of the run, and the RSS
sampled through the run shows no trend (least-squares slope after warm-up under 2 MB per 1,000 requests:
a leak of 2 KB per request, where allocator noise stays well below it).
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import io
import itertools
import json
import sys
import threading
import time
from pathlib import Path

from PIL import Image

from bench.drive import load
from bench.drive.drain import drain_under_load
from bench.drive.server import free_port, start_gunicorn, stop, wait_ready, worker_crashes, worker_rss_mb
from tests import images

# MB per 1,000 requests: a slope above it over the post-warm-up samples reads as a leak.
RSS_TREND_LIMIT = 2.0
SHARED_VAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "cats_dogs" / "validation"


def _flat(size: tuple[int, int], fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 140, 200)).save(buf, fmt)
    return buf.getvalue()


def rss_trend(samples: list[tuple[int, float]]) -> float:
    """Least-squares slope of (requests done, RSS MB) samples, in MB per 1,000 requests (0 if too few)."""
    if len(samples) < 3 or len({n for n, _ in samples}) < 2:
        return 0.0
    done = [n for n, _ in samples]
    rss = [r for _, r in samples]
    mean_n, mean_r = sum(done) / len(done), sum(rss) / len(rss)
    cov = sum((n - mean_n) * (r - mean_r) for n, r in samples)
    var = sum((n - mean_n) ** 2 for n in done)
    return 1000.0 * cov / var


def sample_rss(proc, progress, stop_event: threading.Event, samples: list[tuple[int, float]],
               every_s: float = 0.25) -> None:
    """Append (progress(), worker RSS MB) every every_s seconds until stop_event is set."""
    while not stop_event.wait(every_s):
        samples.append((progress(), worker_rss_mb(proc.pid)))


def request_mix(photo_bodies: list[bytes]) -> list[tuple[str, str, str, bytes, int]]:
    """(name, method, path, content-type, body, expected status) for valid photos and every bad kind."""
    mp = f"multipart/form-data; boundary={load.BOUNDARY}"
    jpeg = images.encode(images.gradient(), "JPEG")
    mix = [("photo", "POST", "/predict", mp, body, 200) for body in photo_bodies[:40]]
    mix += [(f"format:{k}", "POST", "/predict", mp, load.multipart(v, k), 200)
            for k, v in images.valid_images().items()]
    mix += [(f"invalid:{k}", "POST", "/predict", mp, load.multipart(v, k), 400)
            for k, v in images.invalid_images().items()]
    mix += [
        ("bomb", "POST", "/predict", mp, load.multipart(images.bomb_png(), "bomb.png"), 400),
        # Decode amplification: small files, huge pixel counts just above the 40 MP limit.
        ("hostile png 49MP", "POST", "/predict", mp, load.multipart(_flat((7000, 7000), "PNG"), "big.png"), 400),
        ("hostile jpeg 50MP", "POST", "/predict", mp, load.multipart(_flat((8000, 6250), "JPEG"), "big.jpg"), 400),
        ("raw jpeg", "POST", "/predict", "image/jpeg", jpeg, 200),
        ("json b64", "POST", "/predict", "application/json", json.dumps({"image": base64.b64encode(jpeg).decode()})
         .encode(), 200),
        ("bad b64", "POST", "/predict", "application/json", b'{"image": "!!!"}', 400),
        ("bad json", "POST", "/predict", "application/json", b"{", 400),
        ("text/plain", "POST", "/predict", "text/plain", b"hello", 415),
        ("too large", "POST", "/predict", "image/jpeg", b"\0" * (10 * 1024 * 1024 + 1), 413),
        ("tf predict", "POST", "/v1/models/alexnet:predict", "application/json",
         json.dumps({"instances": [{"b64": base64.b64encode(jpeg).decode()}]}).encode(), 200),
        ("tf bad", "POST", "/v1/models/alexnet:predict", "application/json", b'{"instances": [1]}', 400),
        ("v2 bad", "POST", "/v2/models/alexnet/infer", "application/json", b'{"inputs": []}', 400),
        ("unknown model", "GET", "/v1/models/resnet", "", b"", 404),
        ("wrong method", "GET", "/predict", "", b"", 405),
    ]
    return [(n, m, p, c, b, s) for n, m, p, c, b, s in mix]


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.drive.soak")
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--images", default=str(SHARED_VAL))
    parser.add_argument("--requests", type=int, default=25000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2500)
    args = parser.parse_args(argv)

    photos = load.load_bodies(args.images, 40)
    mix = request_mix(photos)
    port = free_port()
    proc = start_gunicorn(Path(args.model_store).resolve(), port)
    base_rss = None
    counts = collections.Counter()
    wrong: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()
    done = [0]  # requests answered, read by the RSS sampler
    samples: list[tuple[int, float]] = []
    sampling = threading.Event()
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout=180)

        def client() -> None:
            nonlocal base_rss
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while (i := next(counter)) < args.requests:
                if i == args.warmup:
                    base_rss = worker_rss_mb(proc.pid)
                name, method, path, ctype, body, expected = mix[i % len(mix)]
                try:
                    conn.request(method, path, body=body or None, headers={"Content-Type": ctype} if ctype else {})
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                except (OSError, http.client.HTTPException) as exc:
                    status = f"transport:{type(exc).__name__}"
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                with lock:
                    done[0] += 1
                    counts[status if isinstance(status, str) else f"{status // 100}xx"] += 1
                    if status != expected:
                        wrong.append(f"{name}: got {status}, expected {expected}")
            conn.close()

        started = time.monotonic()
        sampler = threading.Thread(target=sample_rss, args=(proc, lambda: done[0], sampling, samples))
        sampler.start()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - started
        sampling.set()
        sampler.join()
        end_rss = worker_rss_mb(proc.pid)
        healthy = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        healthy.request("GET", "/healthz")
        health_status = healthy.getresponse().status
        drained = drain_under_load(port, proc, photos)
    finally:
        exit_code = stop(proc)
    crashes = worker_crashes(proc)

    growth = end_rss - (base_rss or end_rss)
    steady = [(n, r) for n, r in samples if n >= args.warmup]
    trend = rss_trend(steady)
    transport = sum(v for k, v in counts.items() if k.startswith("transport"))
    print(f"soak: {args.requests} requests ({len(mix)} kinds: photos, every format, every bad input) at "
          f"{args.clients} clients in {seconds:.1f}s ({args.requests / seconds:.1f} req/s)")
    print(f"  status classes: {dict(sorted(counts.items()))}")
    print(f"  5xx: {counts['5xx']}, transport errors: {transport}, unexpected statuses: {len(wrong)}")
    print(f"  worker RSS after warm-up ({args.warmup} requests): {base_rss:.0f} MB, at end: {end_rss:.0f} MB, "
          f"growth {growth:+.1f} MB (limit 50)")
    low, high = (min(r for _, r in steady), max(r for _, r in steady)) if steady else (0.0, 0.0)
    print(f"  RSS trend over {len(steady)} samples after warm-up: {trend:+.2f} MB per 1,000 requests "
          f"(limit {RSS_TREND_LIMIT}), range {low:.0f}-{high:.0f} MB")
    resets = sum(v for k, v in drained.items() if k.startswith("reset"))
    print(f"  /healthz after the run: {health_status}; SIGTERM with 32 uploads in flight: {dict(drained)}, "
          f"resets {resets}; exit code: {exit_code}; worker crashes: {crashes or 'none'}")
    for line in collections.Counter(wrong).most_common(5):
        print(f"  unexpected: {line}")
    ok = (counts["5xx"] == 0 and transport == 0 and not wrong and growth < 50 and trend < RSS_TREND_LIMIT
          and health_status == 200
          and resets == 0 and exit_code == 0 and not crashes and set(drained) <= {"200", "503", "refused"})
    print("SOAK PASSED" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
