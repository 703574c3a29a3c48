"""`make soak`: thousands of mixed good and bad requests at high concurrency against the real server.

Passes when there is no 5xx, no transport error, every request gets the status class it should, and
the worker's RSS grows by less than 50 MB between the end of warm-up and the end of the run.
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import itertools
import json
import sys
import threading
import time
from pathlib import Path

from bench import load
from bench.server import free_port, start_gunicorn, stop, wait_ready, worker_rss_mb
from tests import images

SHARED_VAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cats_dogs" / "validation"


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
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--images", default=str(SHARED_VAL))
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args(argv)

    mix = request_mix(load.load_bodies(args.images, 40))
    port = free_port()
    proc = start_gunicorn(Path(args.model_store).resolve(), port)
    base_rss = None
    counts = collections.Counter()
    wrong: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()
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
                    counts[status if isinstance(status, str) else f"{status // 100}xx"] += 1
                    if status != expected:
                        wrong.append(f"{name}: got {status}, expected {expected}")
            conn.close()

        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - started
        end_rss = worker_rss_mb(proc.pid)
        healthy = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        healthy.request("GET", "/healthz")
        health_status = healthy.getresponse().status
    finally:
        exit_code = stop(proc)

    growth = end_rss - (base_rss or end_rss)
    transport = sum(v for k, v in counts.items() if k.startswith("transport"))
    print(f"soak: {args.requests} requests ({len(mix)} kinds: photos, every format, every bad input) at "
          f"{args.clients} clients in {seconds:.1f}s ({args.requests / seconds:.1f} req/s)")
    print(f"  status classes: {dict(sorted(counts.items()))}")
    print(f"  5xx: {counts['5xx']}, transport errors: {transport}, unexpected statuses: {len(wrong)}")
    print(f"  worker RSS after warm-up ({args.warmup} requests): {base_rss:.0f} MB, at end: {end_rss:.0f} MB, "
          f"growth {growth:+.1f} MB (limit 50)")
    print(f"  /healthz after the run: {health_status}; SIGTERM exit code: {exit_code}")
    for line in collections.Counter(wrong).most_common(5):
        print(f"  unexpected: {line}")
    ok = counts["5xx"] == 0 and transport == 0 and not wrong and growth < 50 and health_status == 200
    print("SOAK PASSED" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
