"""Benchmark results as a markdown table and a PNG plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def markdown(result: dict) -> str:
    """Tables: servers by level, CPU per image, raw ceilings, the checks."""
    lines = [
        f"Machine: {result['machine']}; model version {result.get('model_version')}; load generator "
        f"{result.get('load_generator', 'python')}, {result.get('per_level', '')} per level; "
        f"command: `{result['command']}`",
        "",
        "| server | clients | img/s | p50 ms | p95 ms | p99 ms | errors | worker RSS MB | ready s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, srv in result["servers"].items():
        for lvl in srv["levels"]:
            lines.append(f"| {name} | {lvl['clients']} | {lvl['img_per_s']:.1f} | {lvl['p50_ms']:.1f} | "
                         f"{lvl['p95_ms']:.1f} | {lvl['p99_ms']:.1f} | {lvl['errors']} | {srv['rss_mb']:.0f} | "
                         f"{srv['ready_s']:.1f} |")
    lines += _cpu_table(result)
    lines += ["", "| raw model (in-process predict) | batch | img/s | ms per call | CPU ms per image |",
              "|---|---:|---:|---:|---:|"]
    for variant, raw in result["raw"].items():
        if "skipped" in raw:
            lines.append(f"| {variant} | - | skipped: {raw['skipped']} | | |")
            continue
        for bs, m in raw["by_batch"].items():
            lines.append(f"| {variant} | {bs} | {m['img_per_s']:.1f} | {m['ms_per_call']:.1f} | "
                         f"{m.get('cpu_ms_per_image', float('nan')):.2f} |")
    lines += _paired(result.get("paired"))
    lines += ["", "| check | value | target | pass |", "|---|---:|---:|:---:|"]
    for c in result["checks"]:
        lines.append(f"| {c['name']} | {c['value']:.3g} | {c['target']} | {'yes' if c['ok'] else 'NO'} |")
    if result.get("bounds"):
        lines += ["", "What the no-model floor (parse and decode as /predict does) leaves for the targets set against "
                  "the raw model (estimates from this run):",
                  "", "| bound | value | target it limits |", "|---|---:|---:|"]
        lines += [f"| {b['name']} | {b['value']:.3g} | {b['target']} |" for b in result["bounds"]]
    return "\n".join(lines) + "\n"


def _paired(pair: dict | None) -> list[str]:
    if not pair:
        return []
    fast = pair["runtime"]
    return ["", f"Paired rounds (both servers up; {fast} and tensorflow take turns A-B-B-A, {pair['seconds']:g} s "
            f"each; the raw batch-1 time is measured just before each 1-client level): ratio at "
            f"{pair['clients']} clients " + ", ".join(f"{r:.2f}x" for r in pair["ratios"])
            + f" (median {pair['ratio_median']:.2f}x); p50 at 1 client minus raw batch 1: "
            + ", ".join(f"+{m:.2f}" for m in pair["p50_margins_ms"])
            + f" ms (median +{pair['p50_margin_median_ms']:.2f} ms)."]


def _cpu_table(result: dict) -> list[str]:
    # CPU per served image by thread group: with every core busy, img/s = cores * 1000 / (sum of the row).
    rows = [(name, lvl) for name, srv in result["servers"].items() for lvl in srv["levels"]
            if "cpu_ms_per_image" in lvl]
    if not rows:
        return []
    keys = list(dict.fromkeys(k for _, lvl in rows for k in lvl["cpu_ms_per_image"]))
    cores = result.get("cores") or 1
    lines = ["", f"CPU ms per image by thread group ({cores} cores; model = native runtime threads, requests = "
             "gunicorn request threads, worker = the whole server when threads cannot be named; idle = CPU used by "
             "neither the server nor the load generator; 'bound' = img/s if no core ever idled):", "",
             f"| server | clients | {' | '.join(keys)} | total | idle % | bound img/s |",
             "|---|---:|" + "---:|" * (len(keys) + 3)]
    for name, lvl in rows:
        cpu = lvl["cpu_ms_per_image"]
        total = sum(cpu.values())
        lines.append(f"| {name} | {lvl['clients']} | {' | '.join(f'{cpu.get(k, 0):.2f}' for k in keys)} | "
                     f"{total:.2f} | {lvl['idle_pct']:.1f} | {cores * 1000 / total:.1f} |")
    return lines


def plot(result: dict, out: str | Path) -> None:
    """Throughput and p50/p99 latency against concurrent clients, ours vs naive, raw ceiling dashed."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    colours = iter(("tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:red", "tab:brown"))
    for name, srv in result["servers"].items():
        if name.startswith("floor"):
            continue
        colour, lv = next(colours, "tab:gray"), srv["levels"]
        xs = [lvl["clients"] for lvl in lv]
        ax1.plot(xs, [lvl["img_per_s"] for lvl in lv], "o-", color=colour, label=name)
        ax2.plot(xs, [lvl["p50_ms"] for lvl in lv], "o-", color=colour, label=f"{name} p50")
        ax2.plot(xs, [lvl["p99_ms"] for lvl in lv], "s--", color=colour, alpha=0.6, label=f"{name} p99")
    for (variant, raw), style in zip(((v, r) for v, r in result["raw"].items() if "best_img_per_s" in r),
                                     (":", "-.", "--", (0, (1, 3))), strict=False):
        ax1.axhline(raw["best_img_per_s"], ls=style, color="k", lw=1,
                    label=f"raw {variant}, batch {raw['best_batch']}")
    for ax, title in ((ax1, "throughput (img/s)"), (ax2, "latency (ms)")):
        ax.set_xscale("log", base=2)
        ticks = sorted({lvl["clients"] for srv in result["servers"].values() for lvl in srv["levels"]})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax2.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
