"""The raw model ceiling: each runtime's predict() in-process, no HTTP (uint8 input, as the server sends)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# bench names -> (runtime whose files are used, OpenVINO inference precision or None)
VARIANTS = {"tensorflow": ("tensorflow", None), "openvino": ("openvino", "f32"),
            "openvino-bf16": ("openvino", "bf16"), "openvino-int8": ("openvino-int8", "f32")}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_has_bf16() -> bool:
    """OpenVINO's own view: does this CPU run bf16 natively (AVX512_BF16 or AMX)?"""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def predict_fn(store: str, version: int, variant: str):
    """That variant's predict(x) for a store's version, loaded in this process."""
    import model_store
    import runtimes

    name, precision = VARIANTS[variant]
    vdir, meta = model_store.version_dir(store, version), model_store.read_metadata(store, version)
    if precision in (None, "f32"):
        return runtimes.load(vdir, meta, name).predict
    from runtimes.openvino_ir import compile_ir

    request = compile_ir(vdir / runtimes.files_for(meta, name)[0], precision).create_infer_request()
    return lambda x: request.infer({0: x}, share_inputs=True)[0]


def measure(store: str, batch_sizes: list[int], seconds: float, variant: str = "tensorflow") -> dict:
    """img/s, ms per call and CPU ms per image for each batch size."""
    import numpy as np

    import model_store

    version = model_store.latest_version(store)
    predict = predict_fn(store, version, variant)
    out = {}
    for bs in batch_sizes:
        x = np.random.default_rng(0).integers(0, 256, (bs, 227, 227, 3), dtype=np.uint8)
        for _ in range(3):
            predict(x)  # trace / warm the kernels for this shape
        calls, started, cpu0 = 0, time.perf_counter(), _cpu_seconds()
        while time.perf_counter() - started < seconds or calls < 3:
            predict(x)
            calls += 1
        elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu0
        out[str(bs)] = {"img_per_s": bs * calls / elapsed, "ms_per_call": 1000 * elapsed / calls,
                        "cpu_ms_per_image": 1000 * cpu / (bs * calls)}
    best = max(out, key=lambda k: out[k]["img_per_s"])
    return {"runtime": variant, "model_version": version, "by_batch": out, "batch1_ms": out["1"]["ms_per_call"],
            "batch1_img_per_s": out["1"]["img_per_s"], "best_batch": int(best),
            "best_img_per_s": out[best]["img_per_s"], "batch1_after_work": after_work(predict, seconds)}


def after_work(predict, seconds: float, gap_ms: float = 3.0) -> dict:
    """Batch-1 ms per call when each call follows gap_ms of decoding (as at 1 client, where a request's parse and
    decode run between model calls): the model's threads went to sleep and its caches were evicted meanwhile."""
    import numpy as np

    import model_store
    from tests import images

    photo = images.encode(images.gradient((500, 375)), "JPEG")  # the Kaggle photos' size
    x = model_store.preprocess_image(photo, np.uint8)[None]
    for _ in range(3):
        predict(x)
    times, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 3:
        busy_until = time.perf_counter() + gap_ms / 1000
        while time.perf_counter() < busy_until:
            x = model_store.preprocess_image(photo, np.uint8)[None]
        t = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - t)
    return {"gap_ms": gap_ms, "calls": len(times), "median_ms": 1000 * float(np.median(times))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-store", required=True)
    parser.add_argument("--runtime", default="tensorflow", choices=tuple(VARIANTS))
    parser.add_argument("--batch-sizes", default="1,8,16,32,64")
    parser.add_argument("--seconds", type=float, default=6.0)
    a = parser.parse_args()
    if a.runtime == "openvino-bf16" and not cpu_has_bf16():
        print(json.dumps({"runtime": a.runtime, "skipped": "this CPU has no native bf16 (AVX512_BF16/AMX)"}))
    else:
        print(json.dumps(measure(a.model_store, [int(b) for b in a.batch_sizes.split(",")], a.seconds, a.runtime)))
