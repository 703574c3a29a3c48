"""`python -m bench.drive.fair_share`: one key floods with 48 connections, another sends one request at a time.

Starts the production server (default configuration) with API keys on and two keys, then measures the polite
key's sequential /predict latency alone, and again while the flooder's connections send as fast as they can
(twice: a flooder that waits Retry-After after a 429, as HTTP clients should, and one that ignores it, as an
abusive client would). Prints the polite key's p50 ratio (flood / alone), every
status each key got, whether the flooder's 429s carry Retry-After, and the count of answers >= 500; with
`--compare-off` also the same run with the fair share off (FAIR_SHARE_SLOTS=0).
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

import api_keys
from bench.drive.load import BOUNDARY, load_bodies
from bench.drive.server import ROOT, free_port, start_gunicorn, stop, wait_ready

TARGET_P50_RATIO = 3.0
KEYS = {"flooder": "bench-flooder-key", "polite": "bench-polite-key"}


def _send(conn: http.client.HTTPConnection, body: bytes, key: str, i: int) -> tuple[int, str | None, float]:
    boundary = f"----alexnetbench{i:010d}"
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    conn.request("POST", "/predict", body=body.replace(BOUNDARY.encode(), boundary.encode()), headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status, resp.getheader("Retry-After"), time.perf_counter() - started


def _connect(base: str) -> http.client.HTTPConnection:
    url = urlsplit(base)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)


def polite(base: str, bodies: list[bytes], n: int) -> dict:
    """n sequential requests of the polite key: statuses and latency."""
    conn, statuses, latencies = _connect(base), Counter(), []
    for i in range(n):
        status, _, seconds = _send(conn, bodies[i % len(bodies)], KEYS["polite"], i)
        statuses[status] += 1
        if status == 200:
            latencies.append(seconds * 1000)
    conn.close()
    lat = np.asarray(latencies or [float("nan")])
    return {"statuses": dict(statuses), "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95))}


def flood(base: str, bodies: list[bytes], connections: int, stop_event: threading.Event, honours: bool) -> dict:
    """The flooder's connections until stop_event (each waiting Retry-After after a 429 if `honours`):
    statuses, and 429s without Retry-After."""
    statuses, missing_retry, lock = Counter(), [0], threading.Lock()

    def client(c: int) -> None:
        conn, i = _connect(base), c * 1_000_000
        while not stop_event.is_set():
            i += 1
            try:
                status, retry, _ = _send(conn, bodies[i % len(bodies)], KEYS["flooder"], i)
            except (OSError, http.client.HTTPException) as exc:
                status, retry = type(exc).__name__, None
                conn.close()
                conn = _connect(base)
            with lock:
                statuses[status] += 1
                missing_retry[0] += int(status == 429 and not retry)
            if honours and status == 429 and retry:
                stop_event.wait(float(retry))
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    stop_event.wait()
    for t in threads:
        t.join()
    return {"statuses": dict(statuses), "429_without_retry_after": missing_retry[0]}


def scenario(store: str, bodies: list[bytes], keys_file: Path, slots: int | None, connections: int, n: int,
             honours: bool) -> dict:
    """Polite alone, then polite under the flood, on one fresh server."""
    env = {"API_KEYS_FILE": str(keys_file), "ACCESS_LOG": ""}
    if slots is not None:
        env["FAIR_SHARE_SLOTS"] = str(slots)
    port = free_port()
    proc = start_gunicorn(store, port, extra_env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        polite(base, bodies, 20)  # warm-up
        alone = polite(base, bodies, n)
        stop_event = threading.Event()
        result: dict = {}
        flooding = threading.Thread(target=lambda: result.update(flood(base, bodies, connections, stop_event,
                                                                                honours)))
        flooding.start()
        time.sleep(3.0)  # let the flood fill the server first
        under = polite(base, bodies, n)
        stop_event.set()
        flooding.join()
    finally:
        stop(proc)
    counted = [alone["statuses"], under["statuses"], result["statuses"]]
    return {"alone": alone, "under_flood": under, "flooder": result,
            "p50_ratio": under["p50_ms"] / alone["p50_ms"],
            "answers_5xx": sum(n for c in counted for s, n in c.items() if isinstance(s, int) and s >= 500),
            "non_http": sum(n for c in counted for s, n in c.items() if not isinstance(s, int))}


def _print(name: str, r: dict) -> None:
    print(f"{name}: polite p50 alone {r['alone']['p50_ms']:.1f} ms, under the flood {r['under_flood']['p50_ms']:.1f} "
          f"ms (x{r['p50_ratio']:.2f}; p95 {r['under_flood']['p95_ms']:.1f} ms); polite statuses "
          f"{r['under_flood']['statuses']}; flooder statuses {r['flooder']['statuses']} "
          f"(429 without Retry-After: {r['flooder']['429_without_retry_after']}); answers >= 500: {r['answers_5xx']}")


def main(argv: list[str] | None = None) -> int:
    """Run the scenario (and with --compare-off the same without the fair share); print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.drive.fair_share", description=__doc__)
    parser.add_argument("--model-store", default=str(ROOT / "model_store"))
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "cats_dogs" / "validation"))
    parser.add_argument("--connections", type=int, default=48)
    parser.add_argument("--requests", type=int, default=100, help="polite requests per phase")
    parser.add_argument("--slots", type=int, help="FAIR_SHARE_SLOTS (default: the server's default)")
    parser.add_argument("--only-honouring", action="store_true", help="skip the flooder that ignores Retry-After")
    parser.add_argument("--compare-off", action="store_true", help="also run with FAIR_SHARE_SLOTS=0")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    bodies = load_bodies(args.images, limit=100)
    with tempfile.TemporaryDirectory() as tmp:
        keys_file = Path(tmp) / "keys.json"
        api_keys.save(keys_file, api_keys.parse({name: {"sha256": api_keys.digest(key), "scopes": ["predict"]}
                                                 for name, key in KEYS.items()}))
        runs = {}
        for honours in (True,) if args.only_honouring else (True, False):
            name = "flooder " + ("honours Retry-After" if honours else "ignores Retry-After")
            runs[name] = scenario(args.model_store, bodies, keys_file, args.slots, args.connections, args.requests,
                                  honours)
            if args.compare_off:
                runs[name + ", fair share off"] = scenario(args.model_store, bodies, keys_file, 0, args.connections,
                                                           args.requests, honours)
    for name, r in runs.items():
        _print(name, r)
    checks = {}
    for name in [n for n in runs if "off" not in n]:
        r = runs[name]
        checks.update({
            f"{name}: polite p50 under the flood <= {TARGET_P50_RATIO}x alone": r["p50_ratio"] <= TARGET_P50_RATIO,
            f"{name}: every polite request answered 200": set(r["under_flood"]["statuses"]) == {200},
            f"{name}: the flooder got 429 with Retry-After": r["flooder"]["statuses"].get(429, 0) > 0
            and r["flooder"]["429_without_retry_after"] == 0,
            f"{name}: no answer >= 500, no broken connection": r["answers_5xx"] == 0 and r["non_http"] == 0})
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "checks": checks}, indent=2, default=str))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
