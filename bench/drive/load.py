"""A closed-loop HTTP load generator: N clients, keep-alive connections, pre-encoded multipart bodies."""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

BOUNDARY = "----alexnetbench7MA4YWxkTrZu0gW"


def multipart(data: bytes, filename: str) -> bytes:
    """The body `curl -F image=@file` sends."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def load_bodies(image_dir: str | Path, limit: int = 200) -> list[bytes]:
    """Multipart bodies for up to `limit` JPEGs found under image_dir (recursively)."""
    files = sorted(Path(image_dir).rglob("*.jpg"))[:limit]
    if not files:
        raise FileNotFoundError(f"no .jpg files under {image_dir}")
    return [multipart(f.read_bytes(), f.name) for f in files]


def run_level(base: str, bodies: list[bytes], clients: int, requests: int, timeout: float = 60.0,
              path: str = "/predict", stop: threading.Event | None = None) -> dict:
    """Send `requests` POST `path` from `clients` concurrent keep-alive clients (or until `stop` is set);
    latency stats."""
    url = urlsplit(base)
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        while (i := next(counter)) < requests and not (stop and stop.is_set()):
            # A boundary of its own per request, as curl and browsers send (see multipart.lua).
            boundary = f"----alexnetbench{i:010d}"
            body = bodies[i % len(bodies)].replace(BOUNDARY.encode(), boundary.encode())
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Client-Id": boundary}
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
                resp = type("R", (), {"status": type(exc).__name__})
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors.append(str(resp.status))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = np.asarray(latencies) * 1000 if latencies else np.asarray([float("nan")])
    return {"clients": clients, "requests": requests, "ok": len(latencies), "errors": len(errors),
            "error_kinds": sorted(set(errors)), "seconds": wall, "img_per_s": len(latencies) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean())}
