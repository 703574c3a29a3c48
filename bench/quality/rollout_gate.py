"""The rollout gate on a real store: broken candidates rejected, a good one promoted, through gunicorn.

Copies a store's stable version into a scratch store as version 1 and adds candidates: v2 = stable's
weights again, v3 = random weights, v4 = stable with its two class outputs swapped (both saved and then
exported with `python -m training export`, and then every accuracy figure in their metadata set to
stable's, as stale or copied metadata would be), and v5 = stable abstaining on everything. For each
candidate it labels `stable=1 candidate=N`, starts the production server (default gate settings,
MODEL_VERSIONS=labels, CANARY_PERCENT=10, no shadow) and sends 1,000 requests from 200 clients (one
validation photo each); for v2 it goes on until the candidate is promoted. Printed per candidate: its
state and reason, the user requests it answered (and of the last 200), failed requests, and for v2 its
client share and `GET /v1/models/alexnet/versions/2/metadata`.

    python -m bench.quality.rollout_gate --model-store STORE [--version N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

import model_store
from bench.drive.server import free_port, start_gunicorn, stop, wait_ready
from bench.quality.candidates import build
from model_store.versions import version_labels
from training.inputs import data

CLIENTS, REQUESTS, CONCURRENCY, CANARY_PERCENT = 200, 1000, 32, 10
MORE_FOR_PROMOTION = 4000  # v2: requests after the first 1,000, at most, until its evidence promotes it


def _send(base: str, photos: list[bytes], n: int, offset: int) -> list[tuple[int, str, int]]:
    """n uploads, request i from client (offset + i) % CLIENTS; (client, version answered, status)."""
    def one(i: int):
        client = (offset + i) % CLIENTS
        r = requests.post(f"{base}/predict", data=photos[(offset + i) % len(photos)], timeout=60,
                          headers={"Content-Type": "image/jpeg", "X-Client-Id": f"client-{client}"})
        return client, (r.json().get("model_version", "") if r.ok else ""), r.status_code

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(one, range(n)))


def run_candidate(store: Path, candidate: int, photos: list[bytes], until_promoted: bool) -> dict:
    """One server, labels stable=1 candidate=N, the traffic; the figures."""
    version_labels.write_labels(store, {"stable": 1, "candidate": candidate})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_gunicorn(store, port, {"MODEL_VERSIONS": "labels", "CANARY_PERCENT": str(CANARY_PERCENT),
                                        "SHADOW_PERCENT": "0"})
    try:
        ready_s = wait_ready(base, proc, timeout=300)
        started = time.perf_counter()
        sent = _send(base, photos, REQUESTS, 0)
        status = requests.get(f"{base}/v1/models/{model_store.MODEL_NAME}", timeout=10).json()
        rollout = status["rollout"]["candidate"]
        out = {"ready_s": round(ready_s, 1), "requests": len(sent), "compared": rollout["compared"],
               "compare_dropped": rollout["compare_dropped"],
               "failed": sum(s != 200 for _, _, s in sent),
               "answered_by_candidate": sum(v == str(candidate) for _, v, _ in sent),
               "of_last_200": sum(v == str(candidate) for _, v, _ in sent[-200:]),
               "stable_answered": sum(v == "1" for _, v, _ in sent),
               "clients_on_candidate": len({c for c, v, _ in sent if v == str(candidate)}),
               "state": rollout["state"], "reason": rollout["reason"],
               "stable_p99_ms": rollout["window"].get("stable_p99_ms"), "preflight": rollout["preflight"],
               "evidence": rollout["evidence"], "window": rollout["window"]}
        if until_promoted:
            canary_clients = {c for c, v, _ in sent if v == str(candidate)}
            while out["state"] == "candidate" and len(sent) < REQUESTS + MORE_FOR_PROMOTION:
                batch = _send(base, photos, 500, len(sent))
                sent += batch
                out["failed"] += sum(s != 200 for _, _, s in batch)
                out["state"] = requests.get(f"{base}/v1/models/{model_store.MODEL_NAME}",
                                            timeout=10).json()["rollout"]["candidate"]["state"]
            # Promoted in the server: from then on every client gets it, not only the canary's.
            everyone = [i for i, (c, v, _) in enumerate(sent) if v == str(candidate) and c not in canary_clients]
            out["requests_until_promoted"] = everyone[0] if everyone else None
            meta = requests.get(f"{base}/v1/models/{model_store.MODEL_NAME}/versions/{candidate}/metadata",
                                timeout=10)
            out["versioned_metadata_names"] = (meta.json()["model_spec"]["version"] if meta.ok
                                               else f"HTTP {meta.status_code}: {meta.text.strip()}")
        out["seconds"] = round(time.perf_counter() - started, 1)
    finally:
        stop(proc)
    return out


def main(argv: list[str] | None = None) -> int:
    """Build the scratch store, run every candidate, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-store", required=True, help="a local store with a trained version")
    parser.add_argument("--version", type=int, help="the stable version to copy (default: newest)")
    parser.add_argument("--no-golden", action="store_true",
                        help="strip the golden sets: no preflight, the live gate alone judges")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    meta = model_store.read_metadata(args.model_store, args.version or model_store.latest_version(args.model_store))
    val = data.list_files(meta["dataset"]["val_dir"], list(meta["class_names"]), None, 1337)
    photos = [Path(p).read_bytes() for p, _ in val]
    with tempfile.TemporaryDirectory(prefix="rollout-gate-") as scratch:
        store = Path(scratch) / "store"
        candidates = build(args.model_store, args.version, Path(scratch), golden=not args.no_golden)
        results = {name: run_candidate(store, v, photos, name == "same weights") for name, v in candidates.items()}
    print(f"{REQUESTS} requests from {CLIENTS} clients per candidate, CANARY_PERCENT={CANARY_PERCENT}, no shadow, "
          f"default gate settings, {'no golden sets' if args.no_golden else 'golden sets'}")
    print("| candidate | state | answered (last 200) | compared with stable | failed | preflight | reason |")
    print("|---|---|---:|---:|---:|---|---|")
    for name, r in results.items():
        pf = r["preflight"]
        pre = ("skipped" if "skipped" in pf else
               f"acc {pf['accuracy']:.3f} vs {pf['stable_accuracy']:.3f}, agree {pf['agreement']:.3f}, "
               f"abstained {pf['abstained']}/{pf['photos']}")
        print(f"| {name} | {r['state']} | {r['answered_by_candidate']} ({r['of_last_200']}) | {r['compared']} | "
              f"{r['failed']} | "
              f"{pre} | {r['reason'] or '-'} |")
    same = results["same weights"]
    print(f"same weights: {same['clients_on_candidate']}/{CLIENTS} clients on it, "
          f"promoted by request {same['requests_until_promoted']}; "
          f"versions/2/metadata names version {same['versioned_metadata_names']}")
    bad = [r for name, r in results.items() if name != "same weights"]
    checks = {"broken candidates rejected": all(r["state"] == "rejected" for r in bad),
              "broken candidates answered <= 20 user requests": sum(r["answered_by_candidate"] for r in bad) <= 20,
              "0 failed requests": all(r["failed"] == 0 for r in results.values()),
              "same weights promoted": same["state"] == "promoted",
              "same weights on ~10% of clients": abs(same["clients_on_candidate"] / CLIENTS - 0.1) <= 0.05,
              "versioned metadata names its version": str(same["versioned_metadata_names"]) == "2"}
    for name, ok in checks.items():
        print(f"{'met' if ok else 'NOT met'}: {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
