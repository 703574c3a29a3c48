"""Benchmark results as a markdown table and a PNG plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERVERS = ("ours", "naive", "floor_http", "floor_http_decode")


def markdown(result: dict) -> str:
    """Tables: server levels, raw ceiling, the checks."""
    raw = result["raw"]
    lines = [
        f"Machine: {result['machine']}; model version {raw['model_version']}; "
        f"{result['requests_per_level']} requests per level; command: `{result['command']}`",
        "",
        "| server | clients | img/s | p50 ms | p95 ms | p99 ms | errors | worker RSS MB | ready s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (n for n in SERVERS if n in result):
        srv = result[name]
        for lvl in srv["levels"]:
            lines.append(f"| {name} | {lvl['clients']} | {lvl['img_per_s']:.1f} | {lvl['p50_ms']:.1f} | "
                         f"{lvl['p95_ms']:.1f} | {lvl['p99_ms']:.1f} | {lvl['errors']} | {srv['rss_mb']:.0f} | "
                         f"{srv['ready_s']:.1f} |")
    lines += _cpu_table(result)
    lines += ["", "| raw model (tf.function, in-process) | batch | img/s | ms per call | CPU ms per image |",
              "|---|---:|---:|---:|---:|"]
    for bs, m in raw["by_batch"].items():
        cpu = f"{m['cpu_ms_per_image']:.2f}" if "cpu_ms_per_image" in m else "-"
        lines.append(f"| | {bs} | {m['img_per_s']:.1f} | {m['ms_per_call']:.1f} | {cpu} |")
    lines += ["", "| check | value | target | pass |", "|---|---:|---:|:---:|"]
    for c in result["checks"]:
        lines.append(f"| {c['name']} | {c['value']:.3g} | {c['target']} | {'yes' if c['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def _cpu_table(result: dict) -> list[str]:
    # CPU per served image by thread group: with every core busy, img/s = cores * 1000 / (sum of the row).
    rows = [(name, lvl) for name in SERVERS if name in result for lvl in result[name]["levels"]
            if "cpu_ms_per_image" in lvl]
    if not rows:
        return []
    keys = list(dict.fromkeys(k for _, lvl in rows for k in lvl["cpu_ms_per_image"]))
    cores = result.get("cores") or 1
    lines = ["", f"CPU ms per image by thread group ({cores} cores; idle = CPU used by neither the server nor "
             "the load generator; 'bound' = img/s if no core ever idled):", "",
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
    for name, colour in (("ours", "tab:blue"), ("naive", "tab:red")):
        lv = result[name]["levels"]
        xs = [lvl["clients"] for lvl in lv]
        ax1.plot(xs, [lvl["img_per_s"] for lvl in lv], "o-", color=colour, label=name)
        ax2.plot(xs, [lvl["p50_ms"] for lvl in lv], "o-", color=colour, label=f"{name} p50")
        ax2.plot(xs, [lvl["p99_ms"] for lvl in lv], "s--", color=colour, alpha=0.6, label=f"{name} p99")
    raw = result["raw"]
    ax1.axhline(raw["best_img_per_s"], ls=":", color="k", label=f"raw model, batch {raw['best_batch']}")
    ax1.axhline(raw["batch1_img_per_s"], ls=":", color="gray", label="raw model, batch 1")
    for ax, title in ((ax1, "throughput (img/s)"), (ax2, "latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks([lvl["clients"] for lvl in result["ours"]["levels"]],
                      [str(lvl["clients"]) for lvl in result["ours"]["levels"]])
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax2.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
