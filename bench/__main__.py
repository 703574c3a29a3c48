"""`python -m bench`: our server under each runtime vs the raw model ceilings, BentoML and a naive server."""

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

import model_store
import runtimes
from bench.drive import load, paired, raw, wrk
from bench.drive.server import ROOT, children, free_port, start_gunicorn, stop, wait_ready, worker_rss_mb
from bench.peers import bento
from bench.reports import checks, report
from bench.reports.cpu import CpuMeter

SHARED_VAL = ROOT.parent / "shared" / "data" / "cats_dogs" / "validation"


def _serve_and_drive(proc_factory, drive, levels: list[int], measure_child: bool = True) -> dict:
    port = free_port()
    started = time.monotonic()
    proc = proc_factory(port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, timeout=300, path=getattr(proc, "ready_path", "/readyz"))
        ready_s = time.monotonic() - started
        drive(base, 2, warmup=True)  # connection set-up, first requests
        results = []
        meter = CpuMeter(max(children(proc.pid), default=proc.pid)) if measure_child else CpuMeter(proc.pid, tree=True)
        died_at = None
        for clients in levels:
            try:
                meter.start()
                level = drive(base, clients)
                level.update(meter.stop(level["ok"], level.pop("load_generator_cpu_s", 0.0)))
            except FileNotFoundError:  # /proc/<pid> is gone: the worker died under this load
                died_at = clients
                print(f"  {clients:>3} clients: the worker died (its /proc entry is gone); "
                      "no further levels for this server", flush=True)
                break
            results.append(level)
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in level["cpu_ms_per_image"].items())
            print(f"  {clients:>3} clients: {level['img_per_s']:.1f} img/s, p50 {level['p50_ms']:.1f} ms, "
                  f"p99 {level['p99_ms']:.1f} ms, errors {level['errors']}; CPU ms/img: {cpu}, "
                  f"idle {level['idle_pct']:.1f}%", flush=True)
        rss = worker_rss_mb(proc.pid) if measure_child else raw_rss(proc.pid)
    finally:
        stop(proc)
    return {"levels": results, "ready_s": ready_s, "rss_mb": rss, "worker_died_at_clients": died_at}


def raw_rss(pid: int) -> float:
    """RSS of a process and all its descendants, MB (BentoML runs its service in child processes)."""
    from bench.drive.server import rss_mb

    todo, total = [pid], 0.0
    while todo:
        p = todo.pop()
        total += rss_mb(p)
        todo += children(p)
    return total


def _naive(store: str, port: int) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    env = {**os.environ, "MODEL_STORE": store, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([gunicorn, "-w", "1", "-k", "gthread", "--threads", "8", "-b", f"127.0.0.1:{port}",
                             "--timeout", "120", "bench.peers.naive_app:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True)


def _driver(args, bodies):
    if args.load == "wrk":
        gen = wrk.WrkLoad(bodies)
        return lambda base, clients, warmup=False, seconds=None: gen.run_level(
            base, clients, 2 if warmup else seconds or args.seconds)
    return lambda base, clients, warmup=False, seconds=None: load.run_level(
        base, bodies, clients, 20 if warmup else args.requests)


def _raw(store: str, variant: str, seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.drive.raw", "--model-store", store, "--runtime", variant,
                          "--seconds", str(seconds)], cwd=ROOT, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if "skipped" in result:
        print(f"  {variant}: skipped ({result['skipped']})", flush=True)
    else:
        print(f"  {variant}: batch 1 {result['batch1_img_per_s']:.1f} img/s ({result['batch1_ms']:.1f} ms); best "
              f"{result['best_img_per_s']:.1f} img/s at batch {result['best_batch']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the tables, write .bench/results/<date>.{json,md,png}."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--images", default=str(SHARED_VAL), help="folder of JPEGs to send")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--load", choices=("wrk", "python"), default="wrk" if wrk.available() else "python",
                        help="load generator (default wrk when installed: it costs the server's cores least)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per level (wrk)")
    parser.add_argument("--requests", type=int, default=300, help="requests per level (python load generator)")
    parser.add_argument("--raw-seconds", type=float, default=6.0)
    parser.add_argument("--runtimes", default=",".join(runtimes.NAMES), help="our server under each of these")
    parser.add_argument("--bentoml-python", help="python of a venv with BentoML + OpenVINO (make bench makes one)")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "results"))  # ignored by git
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-floor", action="store_true",
                        help="skip the no-model floor servers (HTTP only, HTTP + decode)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for our server (tuning runs), repeatable")
    parser.add_argument("--paired-rounds", type=int, default=3,
                        help="A-B-B-A rounds of the fastest runtime vs tensorflow, both servers up (0: skip)")
    args = parser.parse_args(argv)
    store = str(Path(args.model_store).resolve())
    levels = [int(c) for c in args.clients.split(",")]
    drive = _driver(args, load.load_bodies(args.images))
    exported = runtimes.exported(model_store.read_metadata(store, model_store.latest_version(store)))
    wanted = [n for n in args.runtimes.split(",") if n in exported]

    print("raw model ceilings (in-process predict, uint8 input) ...", flush=True)
    variants = [v for v, (name, _) in raw.VARIANTS.items() if name in wanted]
    raws = {v: _raw(store, v, args.raw_seconds) for v in variants}
    extra = dict(kv.split("=", 1) for kv in args.env)
    servers = {}
    for name in wanted:
        print(f"our server, MODEL_RUNTIME={name} (gunicorn -c gunicorn.conf.py wsgi:app) ...", flush=True)
        env = {**extra, "MODEL_RUNTIME": name}
        servers[f"ours/{name}"] = _serve_and_drive(
            lambda port, e=env: start_gunicorn(store, port, e, output=subprocess.DEVNULL), drive, levels)
    fast = next((n for n in ("openvino-int8", "openvino") if n in wanted), None)
    paired_result = None
    if args.paired_rounds > 0 and fast and "tensorflow" in wanted:
        print(f"paired rounds: {fast} and tensorflow servers up together, raw batch 1 beside each 1-client level",
              flush=True)
        predict = raw.predict_fn(store, model_store.latest_version(store), fast)
        paired_result = paired.run(store, fast, drive, predict, rounds=args.paired_rounds,
                                   clients=max(levels), env=extra)
    if args.bentoml_python:
        peer_ir = next((n for n in ("openvino-int8", "openvino") if n in exported), None)
        print(f"BentoML (adaptive batching, the {peer_ir} IR our server serves) ...", flush=True)
        servers["bentoml"] = _serve_and_drive(lambda port: bento.start(args.bentoml_python, store, port, peer_ir),
                                              drive, levels, measure_child=False)
    if not args.skip_naive:
        print("naive server (global model, model.predict per request, gthread 1x8) ...", flush=True)
        servers["naive"] = _serve_and_drive(lambda port: _naive(store, port), drive, levels)
    if not args.skip_floor:
        for name, decode in (("floor_http", "0"), ("floor_http_decode", "1")):
            print(f"{name}: same gunicorn, no model, {'parse + decode' if decode == '1' else 'parse only'} ...",
                  flush=True)
            servers[name] = _serve_and_drive(
                lambda port, d=decode: start_gunicorn(store, port, {"FLOOR_DECODE": d}, app="bench.peers.floor_app:app",
                                                      output=subprocess.DEVNULL), drive, levels)

    result = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "cores": os.cpu_count(), "load_generator": args.load,
        "per_level": f"{args.seconds:g} s" if args.load == "wrk" else f"{args.requests} requests",
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model_version": model_store.latest_version(store), "server_env": extra, "raw": raws, "servers": servers,
    }
    if paired_result:
        result["paired"] = paired_result
    result["checks"] = checks.checks(result)
    result["bounds"] = checks.bounds(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    (out / f"{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = report.markdown(result)
    (out / f"{stamp}.md").write_text(text)
    report.plot(result, out / f"{stamp}.png")
    print(text)
    print(f"wrote {out / stamp}.json/.md/.png")
    return 0 if all(c["ok"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
