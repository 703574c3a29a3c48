"""Explanation cost and its effect on /predict: `python -m bench.quality.explain --model-store S`.

Per runtime (a gunicorn worker each, the production command): ms per explanation at one client for every
method the runtime offers, then /predict latency at one client alone and while one client requests
explanations back to back. Writes .bench/results/explain-<time>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench.drive.load import load_bodies, run_level
from bench.drive.server import free_port, start_gunicorn, stop, wait_ready

OUT = Path(__file__).resolve().parents[2] / ".bench" / "results"  # ignored by git


def measure(store: str, runtime: str, bodies: list[bytes], n_explain: int, n_predict: int) -> dict:
    """One server with MODEL_RUNTIME=runtime: explanation cost per method, /predict with and without them."""
    port = free_port()
    proc = start_gunicorn(store, port, {"MODEL_RUNTIME": runtime, "ACCESS_LOG": ""})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        spec = requests.get(f"{base}/openapi.json", timeout=10).json()
        methods = spec["paths"]["/explain"]["post"]["parameters"][0]["schema"]["enum"]
        out = {"runtime": runtime, "explain": {}}
        for method in methods:
            run_level(base, bodies[:2], 1, 2, path=f"/explain?method={method}")  # warm
            out["explain"][method] = run_level(base, bodies, 1, n_explain, path=f"/explain?method={method}")
        run_level(base, bodies[:5], 1, 5)
        out["predict_alone"] = run_level(base, bodies, 1, n_predict)
        for method in methods:
            done = threading.Event()
            background = threading.Thread(target=run_level, args=(base, bodies, 1, 10**9),
                                          kwargs={"path": f"/explain?method={method}", "stop": done})
            background.start()
            time.sleep(1.0)  # explanations under way before the first prediction
            out[f"predict_with_{method}"] = run_level(base, bodies, 1, n_predict)
            done.set()
            background.join()
        return out
    finally:
        stop(proc)


def markdown(results: list[dict], meta: dict) -> str:
    """The results as a Markdown table."""
    lines = [f"# Explanations: cost and /predict latency ({meta['when']})", "",
             f"Model store `{meta['store']}`, host: {meta['host']}. One gunicorn worker per runtime, one client.", "",
             "| runtime | method | ms per explanation (p50 / p95) | /predict p50 / p99 alone (ms) | "
             "/predict p50 / p99 while explaining (ms) |", "|---|---|---|---|---|"]
    for r in results:
        alone = r["predict_alone"]
        for method, e in r["explain"].items():
            w = r[f"predict_with_{method}"]
            lines.append(f"| {r['runtime']} | {method} | {e['p50_ms']:.0f} / {e['p95_ms']:.0f} | "
                         f"{alone['p50_ms']:.1f} / {alone['p99_ms']:.1f} | {w['p50_ms']:.1f} / {w['p99_ms']:.1f} |")
    return "\n".join(lines) + "\n"


def host() -> str:
    """CPU model, core count and the vector extensions that decide OpenVINO's int8 speed."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()}, {os.cpu_count()} cores"
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    ext = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(ext)}"


def main() -> int:
    """Run every runtime the store's newest version has; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-store", required=True)
    parser.add_argument("--runtimes", default="openvino-int8,openvino,tensorflow")
    parser.add_argument("--images", default="../shared/data/cats_dogs/validation")
    parser.add_argument("--explanations", type=int, default=20)
    parser.add_argument("--predictions", type=int, default=200)
    args = parser.parse_args()
    bodies = load_bodies(args.images, 100)
    results = [measure(args.model_store, r, bodies, args.explanations, args.predictions)
               for r in args.runtimes.split(",")]
    meta = {"when": datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S"), "store": args.model_store, "host": host()}
    text = markdown(results, meta)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"explain-{meta['when']}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (OUT / f"explain-{meta['when']}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
