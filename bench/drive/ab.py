"""`python -m bench.drive.ab`: one server setting against another, both servers up, measured in turns.

A-B-B-A rounds at 32 clients (img/s), then rounds at 1 client (p50), each side seconds apart from the
other so host drift cancels; medians and B/A ratios at the end. For settings whose cost must stay within a
few percent (ABSTAIN on/off, and any new per-request work).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench.drive import load, wrk
from bench.drive.server import ROOT, free_port, start_gunicorn, stop, wait_ready
from bench.reports import cpu

SHARED_VAL = ROOT.parent / "shared" / "data" / "cats_dogs" / "validation"


def _env(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def main(argv: list[str] | None = None) -> int:
    """Print each round and the medians; exit 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.drive.ab", description=__doc__)
    parser.add_argument("--model-store", default="model_store")
    parser.add_argument("--a", action="append", default=[], metavar="KEY=VALUE", help="server A's environment")
    parser.add_argument("--b", action="append", default=[], metavar="KEY=VALUE", help="server B's environment")
    parser.add_argument("--images", default=str(SHARED_VAL))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    store = str(Path(args.model_store).resolve())
    bodies = load.load_bodies(args.images)
    gen = wrk.WrkLoad(bodies) if wrk.available() else None

    def drive(base: str, clients: int, seconds: float) -> dict:
        if gen:
            return gen.run_level(base, clients, seconds)
        return load.run_level(base, bodies, clients, int(seconds * 30))

    sides = {"A": _env(args.a), "B": _env(args.b)}
    procs, bases = {}, {}
    figures = {s: {"img_per_s": [], "cpu_ms_per_img": [], "p50_ms": [], "errors": 0} for s in sides}
    try:
        for side, env in sides.items():
            port = free_port()
            procs[side] = start_gunicorn(store, port, env)
            bases[side] = f"http://127.0.0.1:{port}"
            wait_ready(bases[side], procs[side], timeout=300)
            drive(bases[side], 2, 2)
        for r in range(args.rounds):
            for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                cpu_before = cpu.tree_cpu(procs[side].pid)
                level = drive(bases[side], args.clients, args.seconds)
                # The server's CPU per answered image: what per-request work (a shadow model call) costs.
                cpu_used = cpu.tree_cpu(procs[side].pid) - cpu_before
                figures[side]["img_per_s"].append(level["img_per_s"])
                figures[side]["cpu_ms_per_img"].append(1000 * cpu_used / max(1.0, level["img_per_s"] * args.seconds))
                figures[side]["errors"] += level["errors"]
            print(f"round {r + 1}: {args.clients} clients A {figures['A']['img_per_s'][-1]:.1f}, "
                  f"B {figures['B']['img_per_s'][-1]:.1f} img/s; server CPU per image A "
                  f"{figures['A']['cpu_ms_per_img'][-1]:.2f}, B {figures['B']['cpu_ms_per_img'][-1]:.2f} ms",
                  flush=True)
        for r in range(args.rounds):
            for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                level = drive(bases[side], 1, args.seconds)
                figures[side]["p50_ms"].append(level["p50_ms"])
                figures[side]["errors"] += level["errors"]
            print(f"round {r + 1}: 1 client p50 A {figures['A']['p50_ms'][-1]:.2f}, "
                  f"B {figures['B']['p50_ms'][-1]:.2f} ms", flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
    med = {s: {k: statistics.median(v) for k, v in f.items() if isinstance(v, list)} for s, f in figures.items()}
    print(f"A {sides['A']}: {med['A']['img_per_s']:.1f} img/s at {args.clients} clients, p50 "
          f"{med['A']['p50_ms']:.2f} ms at 1 client (medians of {args.rounds}); errors {figures['A']['errors']}")
    print(f"B {sides['B']}: {med['B']['img_per_s']:.1f} img/s, p50 {med['B']['p50_ms']:.2f} ms; errors "
          f"{figures['B']['errors']}")
    print(f"B/A: throughput {med['B']['img_per_s'] / med['A']['img_per_s']:.3f}x, p50 "
          f"{med['B']['p50_ms'] / med['A']['p50_ms']:.3f}x, server CPU per image "
          f"{med['B']['cpu_ms_per_img']:.2f} / {med['A']['cpu_ms_per_img']:.2f} ms = "
          f"{med['B']['cpu_ms_per_img'] / med['A']['cpu_ms_per_img']:.3f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"sides": sides, "rounds": figures, "medians": med}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
