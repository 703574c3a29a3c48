"""Paired rounds: the int8-vs-TensorFlow ratio and the 1-client p50 margin with host drift cancelled.

This host kind drifts by up to ~10% within minutes, and the main bench measures each server minutes apart.
Here both servers stay up and take turns in A-B-B-A order, and the raw batch-1 time is measured just before
each 1-client level, so each round compares figures taken seconds apart. The medians go to the checks.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from bench.drive.server import free_port, start_gunicorn, stop, wait_ready

Drive = Callable[..., dict]


def raw_batch1_ms(predict: Callable[[np.ndarray], object], seconds: float = 2.0) -> float:
    """Mean ms per back-to-back batch-1 call over `seconds`: the same figure as bench.drive.raw's batch 1."""
    x = np.random.default_rng(0).integers(0, 256, (1, 227, 227, 3), dtype=np.uint8)
    for _ in range(5):
        predict(x)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or calls < 5:
        predict(x)
        calls += 1
    return 1000 * (time.perf_counter() - started) / calls


def run(store: str, fast: str, drive: Drive, predict_fast: Callable, rounds: int = 3, seconds: float = 8.0,
        clients: int = 32, env: dict | None = None) -> dict:
    """Both servers up at once; `rounds` A-B-B-A rounds at `clients`, then `rounds` (raw batch 1, 1 client)."""
    procs, bases = {}, {}
    try:
        for name in (fast, "tensorflow"):
            port = free_port()
            procs[name] = start_gunicorn(store, port, {**(env or {}), "MODEL_RUNTIME": name})
            bases[name] = f"http://127.0.0.1:{port}"
            wait_ready(bases[name], procs[name], timeout=300)
            drive(bases[name], 2, warmup=True)
        ratios = []
        for r in range(rounds):
            order = (fast, "tensorflow") if r % 2 == 0 else ("tensorflow", fast)
            got = {name: drive(bases[name], clients, seconds=seconds)["img_per_s"] for name in order}
            ratios.append(got[fast] / got["tensorflow"])
            print(f"  round {r + 1}: {fast} {got[fast]:.1f}, tensorflow {got['tensorflow']:.1f} img/s at "
                  f"{clients} clients = {ratios[-1]:.2f}x", flush=True)
        margins = []
        for r in range(rounds):
            raw_ms = raw_batch1_ms(predict_fast)
            p50 = drive(bases[fast], 1, seconds=seconds)["p50_ms"]
            margins.append(p50 - raw_ms)
            print(f"  round {r + 1}: {fast} p50 {p50:.2f} ms at 1 client, raw batch 1 {raw_ms:.2f} ms: "
                  f"+{margins[-1]:.2f} ms", flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
    return {"runtime": fast, "clients": clients, "seconds": seconds, "ratios": ratios,
            "ratio_median": statistics.median(ratios), "p50_margins_ms": margins,
            "p50_margin_median_ms": statistics.median(margins)}
