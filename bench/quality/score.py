"""`python -m bench.quality.score`: batch scoring's throughput and memory against the alternatives on one host.

- `python -m training score` on a folder (default: the 2,000 shared training photos): img/s over the whole
  job (start-up included) and the peak RSS of its process tree (the FnApiRunner's workers included);
- a loop of `python -m training predict` over a few of the same photos, one process per photo: img/s.

Compare with our server's img/s at 32 clients from `make bench` (or `python -m bench.drive.ab`) on the same host.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.drive.server import ROOT, children, rss_mb

SHARED_TRAIN = ROOT.parent / "shared" / "data" / "cats_dogs" / "train"


def _tree_rss_mb(pid: int) -> float:
    todo, total = [pid], 0.0
    while todo:
        p = todo.pop()
        try:
            total += rss_mb(p)
            todo += children(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _run_sampled(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MB of the process tree, stdout) of a command."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.monotonic() - started
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with {proc.returncode}")
    return seconds, peak[0], out


def main(argv: list[str] | None = None) -> int:
    """Print the figures (and write them as JSON with --json)."""
    parser = argparse.ArgumentParser(prog="python -m bench.quality.score", description=__doc__)
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--input", default=str(SHARED_TRAIN))
    parser.add_argument("--predict-files", type=int, default=10, help="photos for the `training predict` loop")
    parser.add_argument("--json")
    parser.add_argument("beam_args", nargs="*", help="extra pipeline options for score (after --)")
    args = parser.parse_args(argv)
    files = sorted(p for p in glob.glob(os.path.join(args.input, "**", "*"), recursive=True) if os.path.isfile(p))
    out = Path(tempfile.mkdtemp(prefix="bench-score-")) / "labels"
    cmd = [sys.executable, "-m", "training", "score", "--model-store", args.model_store, "--input", args.input,
           "--output", str(out), *args.beam_args]
    seconds, peak, stdout = _run_sampled(cmd)
    scored = sum(1 for f in glob.glob(f"{out}-[0-9]*.jsonl") for _ in open(f))
    score_rate = scored / seconds
    print(f"training score: {scored} of {len(files)} files in {seconds:.1f} s = {score_rate:.1f} img/s "
          f"(start-up included); peak RSS of the job's processes {peak:.0f} MB", flush=True)
    print("  " + stdout.strip().splitlines()[-1] if stdout.strip() else "", flush=True)
    loop_started = time.monotonic()
    for path in files[:args.predict_files]:
        subprocess.run([sys.executable, "-m", "training", "predict", "--model-store", args.model_store, path],
                       cwd=ROOT, check=True, capture_output=True)
    loop_rate = args.predict_files / (time.monotonic() - loop_started)
    print(f"training predict loop: {args.predict_files} files, one process each = {loop_rate:.2f} img/s; "
          f"score is {score_rate / loop_rate:.0f}x that", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"score_img_per_s": score_rate, "score_seconds": seconds,
                                               "scored": scored, "peak_rss_mb": peak,
                                               "predict_loop_img_per_s": loop_rate}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
