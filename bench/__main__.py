"""`python -m bench`: our server vs the raw model ceiling vs a naive model.predict server."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import load, report
from bench.cpu import CpuMeter
from bench.server import ROOT, children, free_port, start_gunicorn, stop, wait_ready, worker_rss_mb

SHARED_VAL = ROOT.parent / "shared" / "data" / "cats_dogs" / "validation"


def _serve_and_drive(proc_factory, bodies, levels, requests) -> dict:
    port = free_port()
    started = time.monotonic()
    proc = proc_factory(port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, timeout=180)
        ready_s = time.monotonic() - started
        load.run_level(base, bodies, 2, 20)  # connection set-up, first requests
        results = []
        meter = CpuMeter(max(children(proc.pid), default=proc.pid))
        for clients in levels:
            meter.start()
            results.append(load.run_level(base, bodies, clients, requests))
            results[-1].update(meter.stop(results[-1]["ok"]))
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in results[-1]["cpu_ms_per_image"].items())
            print(f"  {clients:>3} clients: {results[-1]['img_per_s']:.1f} img/s, p50 {results[-1]['p50_ms']:.1f} ms, "
                  f"p99 {results[-1]['p99_ms']:.1f} ms, errors {results[-1]['errors']}; CPU ms/img: {cpu}, "
                  f"idle {results[-1]['idle_pct']:.1f}%", flush=True)
        rss = worker_rss_mb(proc.pid)
    finally:
        stop(proc)
    return {"levels": results, "ready_s": ready_s, "rss_mb": rss}


def _naive(store: str, port: int) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    env = {**os.environ, "MODEL_STORE": store, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([gunicorn, "-w", "1", "-k", "gthread", "--threads", "8", "-b", f"127.0.0.1:{port}",
                             "--timeout", "120", "bench.naive_app:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True)


def _checks(raw: dict, ours: dict, naive: dict) -> list[dict]:
    at = {lvl["clients"]: lvl for lvl in ours["levels"]}
    naive_at = {lvl["clients"]: lvl for lvl in naive["levels"]}
    top = max(at)
    checks = [
        ("img/s at max clients / raw best", at[top]["img_per_s"] / raw["best_img_per_s"], ">= 0.85"),
        ("img/s at max clients / naive", at[top]["img_per_s"] / naive_at[top]["img_per_s"], ">= 3"),
        ("p50 at 1 client - raw batch-1 ms", at[min(at)]["p50_ms"] - raw["batch1_ms"], "<= 10"),
        ("ready seconds", ours["ready_s"], "<= 15"),
        ("worker RSS MB", ours["rss_mb"], "<= 1536"),
        ("errors", sum(lvl["errors"] for lvl in ours["levels"]), "== 0"),
    ]
    out = []
    for name, value, target in checks:
        op, bound = target.split()
        ok = {">=": value >= float(bound), "<=": value <= float(bound), "==": value == float(bound)}[op]
        out.append({"name": name, "value": float(value), "target": target, "ok": bool(ok)})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the table, write bench/results/<date>.{json,md,png}."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--images", default=str(SHARED_VAL), help="folder of JPEGs to send")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--raw-seconds", type=float, default=6.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-floor", action="store_true",
                        help="skip the no-model floor servers (HTTP only, HTTP + decode)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for our server (tuning runs), repeatable")
    args = parser.parse_args(argv)
    store = str(Path(args.model_store).resolve())
    levels = [int(c) for c in args.clients.split(",")]
    bodies = load.load_bodies(args.images)

    print("raw model ceiling ...", flush=True)
    raw = json.loads(subprocess.run([sys.executable, "-m", "bench.raw", "--model-store", store, "--seconds",
                                     str(args.raw_seconds)], cwd=ROOT, check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1])
    print(f"  batch 1: {raw['batch1_img_per_s']:.1f} img/s ({raw['batch1_ms']:.1f} ms); best: "
          f"{raw['best_img_per_s']:.1f} img/s at batch {raw['best_batch']}", flush=True)
    print("our server (gunicorn -c gunicorn.conf.py wsgi:app) ...", flush=True)
    extra = dict(kv.split("=", 1) for kv in args.env)
    ours = _serve_and_drive(lambda port: start_gunicorn(store, port, extra, output=subprocess.DEVNULL), bodies,
                            levels, args.requests)
    naive = {"levels": [], "ready_s": float("nan"), "rss_mb": float("nan")}
    if not args.skip_naive:
        print("naive server (global model, model.predict per request, gthread 1x8) ...", flush=True)
        naive = _serve_and_drive(lambda port: _naive(store, port), bodies, levels, args.requests)

    floors = {}
    if not args.skip_floor:
        for name, decode in (("floor_http", "0"), ("floor_http_decode", "1")):
            print(f"{name}: same gunicorn, no model, {'parse + decode' if decode == '1' else 'parse only'} ...",
                  flush=True)
            floors[name] = _serve_and_drive(
                lambda port, d=decode: start_gunicorn(store, port, {"FLOOR_DECODE": d}, app="bench.floor_app:app",
                                                      output=subprocess.DEVNULL), bodies, levels,
                args.requests * 10)  # 10x: at ~1,000 req/s a level must last long enough for /proc's 10 ms ticks

    result = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "cores": os.cpu_count(),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "requests_per_level": args.requests, "server_env": extra, "raw": raw, "ours": ours, "naive": naive,
        "checks": _checks(raw, ours, naive) if naive["levels"] else [],
    }
    result.update(floors)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    (out / f"{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = report.markdown(result) if naive["levels"] else json.dumps(ours, indent=2)
    (out / f"{stamp}.md").write_text(text)
    if naive["levels"]:
        report.plot(result, out / f"{stamp}.png")
    print(text)
    print(f"wrote {out / stamp}.json/.md/.png")
    return 0 if all(c["ok"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
