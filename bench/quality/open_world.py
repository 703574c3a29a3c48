"""`python -m bench.quality.open_world`: "neither" on kinds a version never saw, through the production server.

Starts gunicorn on a store's newest version (default configuration: `auto` runtime, the version's own
threshold), uploads every validation photo and every photo of the version's unseen kinds (`train
--unseen-kinds`), one upload per photo as users send them, and from the answers alone (`state`,
`ood_score`, `looks_like`) reports: validation abstain rate and accuracy on the answered photos; per unseen
kind the share answered "neither" and "not sure" and the AUROC of `ood_score` against the validation
photos; and the mean over unseen kinds.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from sklearn.metrics import roc_auc_score

import model_store
from bench.drive.server import free_port, start_gunicorn, stop, wait_ready
from training.inputs import data, negatives

TARGETS = {"mean_auroc": 0.90, "kind_auroc": 0.85, "kind_abstain": 0.60, "val_abstain": 0.03, "val_accuracy": 0.94}


def _post(base: str, path: str) -> dict:
    with open(path, "rb") as fh:
        resp = requests.post(f"{base}/predict", files={"image": (Path(path).name, fh)}, timeout=60)
    resp.raise_for_status()
    return resp.json()


def _answers(base: str, paths: list[str], clients: int = 4) -> list[dict]:
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda p: _post(base, p), paths))


def measure(store: str, limit: int | None = None) -> dict:
    """The open-world figures of a store's newest version (the one served), from the server's answers."""
    version = model_store.latest_version(store)  # what the server serves by default
    meta = model_store.read_metadata(store, version)
    ds = meta["dataset"]
    unseen = list(ds.get("negatives_unseen") or [])
    if not unseen:
        raise SystemExit(f"version {version} has no unseen kinds (train it with --unseen-kinds)")
    photo_dirs = [d for d in ds["negatives"] if "synthetic" not in Path(d).name]
    kinds = negatives.unseen_files(photo_dirs, unseen)
    val = data.list_files(ds["val_dir"], list(meta["class_names"]), None, 1337)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_gunicorn(store, port)
    try:
        ready_s = wait_ready(base, proc)
        runtime = requests.get(f"{base}/v2/models/{model_store.MODEL_NAME}", timeout=10).json()["parameters"]["runtime"]
        started = time.time()
        val_answers = _answers(base, [p for p, _ in val])
        labels = np.array([c for _, c in val])
        val_scores = np.array([a["ood_score"] for a in val_answers])
        answered = np.array([not a["abstained"] for a in val_answers])
        correct = np.array([a["looks_like"] == meta["class_names"][c] for a, c in zip(val_answers, labels,
                                                                                     strict=True)])
        out = {"version": version, "runtime": runtime, "ready_s": round(ready_s, 1),
               "validation": {"images": len(val), "abstain_rate": round(float(1 - answered.mean()), 4),
                              "not_sure_rate": round(float(np.mean([a["state"] == "not_sure"
                                                                    for a in val_answers])), 4),
                              "accuracy_answered": round(float(correct[answered].mean()), 4),
                              "accuracy_all": round(float(correct.mean()), 4)}, "unseen": {}}
        for kind, files in kinds.items():
            found = _answers(base, files[:limit] if limit else files)
            scores = np.array([a["ood_score"] for a in found])
            auroc = roc_auc_score(np.r_[np.zeros(len(val_scores)), np.ones(len(scores))], np.r_[val_scores, scores])
            out["unseen"][kind] = {"images": len(found), "auroc": round(float(auroc), 4),
                                   "neither": round(float(np.mean([a["state"] == "neither" for a in found])), 4),
                                   "not_sure": round(float(np.mean([a["state"] == "not_sure" for a in found])), 4)}
        figs = list(out["unseen"].values())
        out["unseen_mean"] = {"auroc": round(float(np.mean([f["auroc"] for f in figs])), 4),
                              "neither": round(float(np.mean([f["neither"] for f in figs])), 4),
                              "not_sure": round(float(np.mean([f["not_sure"] for f in figs])), 4)}
        out["seconds"] = round(time.time() - started, 1)
    finally:
        stop(proc)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table and the targets met."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-store", required=True)
    parser.add_argument("--limit", type=int, help="at most this many photos per unseen kind")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    out = measure(args.model_store, args.limit)
    v = out["validation"]
    print(f"version {out['version']} served by {out['runtime']} (ready in {out['ready_s']} s), "
          f"{out['seconds']} s of uploads")
    print(f"validation: {v['images']} photos, neither {v['abstain_rate']:.1%}, not sure {v['not_sure_rate']:.1%}, "
          f"accuracy on the answered {v['accuracy_answered']:.4f} (all {v['accuracy_all']:.4f})")
    print("| unseen kind | photos | neither | not sure | AUROC |")
    print("|---|---:|---:|---:|---:|")
    for kind, f in out["unseen"].items():
        print(f"| {kind} | {f['images']} | {f['neither']:.0%} | {f['not_sure']:.0%} | {f['auroc']:.3f} |")
    m = out["unseen_mean"]
    print(f"| **mean** | | {m['neither']:.0%} | {m['not_sure']:.0%} | {m['auroc']:.3f} |")
    checks = {f"mean AUROC >= {TARGETS['mean_auroc']}": m["auroc"] >= TARGETS["mean_auroc"],
              f"each kind AUROC >= {TARGETS['kind_auroc']}": all(f["auroc"] >= TARGETS["kind_auroc"]
                                                                   for f in out["unseen"].values()),
              f"each kind >= {TARGETS['kind_abstain']:.0%} neither": all(f["neither"] >= TARGETS["kind_abstain"]
                                                                         for f in out["unseen"].values()),
              f"validation neither <= {TARGETS['val_abstain']:.0%}": v["abstain_rate"] <= TARGETS["val_abstain"],
              f"answered accuracy >= {TARGETS['val_accuracy']}": v["accuracy_answered"] >= TARGETS["val_accuracy"]}
    for name, ok in checks.items():
        print(f"{'met' if ok else 'NOT met'}: {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
