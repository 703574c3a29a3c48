"""The serving-speed targets, computed from one bench run's results."""

from __future__ import annotations


def _at(server: dict | None, clients: int) -> dict | None:
    return next((lvl for lvl in (server or {}).get("levels", []) if lvl["clients"] == clients), None)


def zero_idle_bound(level: dict, cores: int) -> float:
    """img/s if no core ever idled: cores x 1000 / (server + load generator CPU ms per image)."""
    return cores * 1000 / max(1e-9, sum(level["cpu_ms_per_image"].values()))


def _best_runtime(servers: dict) -> str | None:
    """The fastest runtime of ours the run served: int8, else float32 OpenVINO, else TensorFlow."""
    return next((n for n in ("openvino-int8", "openvino", "tensorflow") if f"ours/{n}" in servers), None)


def bounds(result: dict) -> list[dict]:
    """[{name, value, target}]: estimates, from the same run, of how close this host lets a server of this HTTP
    stack and decode come to the targets that compare it with the raw model: the no-model floor parses and
    decodes as /predict does, and a server does that work per image plus the model's."""
    servers, raw, cores = result["servers"], result["raw"], result.get("cores") or 1
    floor = servers.get("floor_http_decode")
    best = _best_runtime(servers)
    if floor is None or best is None or "best_img_per_s" not in raw.get(best, {}):
        return []
    model = raw[best]
    rows = []
    top = _at(floor, max(lvl["clients"] for lvl in floor["levels"]))
    if top and "cpu_ms_per_image" in top:
        model_ms = cores * 1000 / model["best_img_per_s"]  # every core on the model at its best batch
        floor_ms = top["cpu_ms_per_image"].get("requests", 0.0)
        name = (f"raw best batch fraction the parse and decode floor leaves: model {model_ms:.2f} + parse and "
                f"decode {floor_ms:.2f} CPU ms per image")
        rows.append({"name": name, "value": model_ms / (model_ms + floor_ms), "target": ">= 0.75"})
    one = _at(floor, 1)
    if one:
        rows.append({"name": "p50 at 1 client - raw batch-1 ms the parse and decode floor takes by itself (its p50)",
                     "value": one["p50_ms"], "target": "<= 2"})
        cold = model.get("batch1_after_work")
        if cold:
            # At 1 client each model call follows a request's parse and decode: raw batch 1 runs back to back.
            extra = cold["median_ms"] - model["batch1_ms"]
            rows.append({"name": f"the same plus what a batch-1 call costs after {cold['gap_ms']:g} ms of decoding "
                                 f"instead of back to back ({extra:+.2f} ms)",
                         "value": one["p50_ms"] + max(0.0, extra), "target": "<= 2"})
    return rows


def checks(result: dict) -> list[dict]:
    """[{name, value, target, ok}] for every target the run has the data for."""
    servers, raw, cores = result["servers"], result["raw"], result.get("cores") or 1
    top = max(lvl["clients"] for srv in servers.values() for lvl in srv["levels"])
    runtime = _best_runtime(servers)
    rows = []
    if runtime is None:
        return rows
    best = f"ours/{runtime}"
    fast, tf_ours, bento = _at(servers[best], top), _at(servers.get("ours/tensorflow"), top), _at(
        servers.get("bentoml"), top)
    one, bento_one = _at(servers[best], 1), _at(servers.get("bentoml"), 1)
    if fast and tf_ours and best != "ours/tensorflow":
        rows.append((f"{best} / ours/tensorflow img/s at {top} clients", fast["img_per_s"] / tf_ours["img_per_s"],
                     ">= 2.5"))
    if fast and "cpu_ms_per_image" in fast:
        rows.append((f"{best} img/s at {top} clients / zero-idle CPU bound",
                     fast["img_per_s"] / zero_idle_bound(fast, cores), ">= 0.85"))
    if fast and raw.get(runtime, {}).get("best_img_per_s"):
        rows.append((f"{best} img/s at {top} clients / raw best batch img/s", fast["img_per_s"]
                     / raw[runtime]["best_img_per_s"], ">= 0.75"))
    if one and runtime in raw and "batch1_ms" in raw[runtime]:
        rows.append((f"{best} p50 at 1 client - raw batch-1 ms", one["p50_ms"] - raw[runtime]["batch1_ms"], "<= 2"))
    # BentoML serves the same IR (bench/peers/bento_service.py): the ratio is the serving stack's.
    if bento and fast:
        rows.append((f"{best} / bentoml img/s at {top} clients", fast["img_per_s"] / bento["img_per_s"], ">= 2.5"))
    if bento_one and one:
        rows.append((f"{best} / bentoml img/s at 1 client", one["img_per_s"] / bento_one["img_per_s"], ">= 10"))
    pair = result.get("paired")
    if pair:
        n = len(pair["ratios"])
        rows.append((f"paired: ours/{pair['runtime']} / ours/tensorflow img/s at {pair['clients']} clients, "
                     f"median of {n} A-B-B-A rounds", pair["ratio_median"], ">= 2.5"))
        rows.append((f"paired: ours/{pair['runtime']} p50 at 1 client - raw batch-1 ms measured just before, "
                     f"median of {n} rounds", pair["p50_margin_median_ms"], "<= 3"))
    naive = _at(servers.get("naive"), top)
    if naive and tf_ours:
        rows.append((f"ours/tensorflow / naive img/s at {top} clients", tf_ours["img_per_s"] / naive["img_per_s"],
                     ">= 3"))
    rows += [(f"{best} worker RSS MB", servers[best]["rss_mb"], "<= 400" if runtime != "tensorflow" else "<= 1536"),
             (f"{best} ready seconds", servers[best]["ready_s"], "<= 1" if runtime != "tensorflow" else "<= 15"),
             ("errors, all servers of ours", sum(lvl["errors"] for name, srv in servers.items()
                                                if name.startswith("ours/") for lvl in srv["levels"]), "== 0")]
    out = []
    for name, value, target in rows:
        op, bound = target.split()
        ok = {">=": value >= float(bound), "<=": value <= float(bound), "==": value == float(bound)}[op]
        out.append({"name": name, "value": float(value), "target": target, "ok": bool(ok)})
    return out
