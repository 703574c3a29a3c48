"""The raw model ceiling: model(x, training=False) in a tf.function, in-process, no HTTP."""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(store: str, batch_sizes: list[int], seconds: float) -> dict:
    """img/s and ms per call for each batch size."""
    import keras
    import numpy as np
    import tensorflow as tf

    import model_store

    version = model_store.latest_version(store)
    model = keras.models.load_model(model_store.version_dir(store, version) / model_store.MODEL_FILE, compile=False)
    forward = tf.function(lambda x: model(x, training=False), autograph=False)
    out = {}
    for bs in batch_sizes:
        x = tf.constant(np.random.default_rng(0).uniform(0, 255, (bs, 227, 227, 3)).astype("float32"))
        for _ in range(3):
            forward(x).numpy()  # trace + warm oneDNN for this shape
        calls, started, cpu0 = 0, time.perf_counter(), _cpu_seconds()
        while time.perf_counter() - started < seconds or calls < 3:
            forward(x).numpy()
            calls += 1
        elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu0
        out[str(bs)] = {"img_per_s": bs * calls / elapsed, "ms_per_call": 1000 * elapsed / calls,
                        "cpu_ms_per_image": 1000 * cpu / (bs * calls)}
    best = max(out, key=lambda k: out[k]["img_per_s"])
    return {"model_version": version, "by_batch": out, "batch1_ms": out["1"]["ms_per_call"],
            "batch1_img_per_s": out["1"]["img_per_s"], "best_batch": int(best),
            "best_img_per_s": out[best]["img_per_s"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-store", required=True)
    parser.add_argument("--batch-sizes", default="1,8,16,32,64")
    parser.add_argument("--seconds", type=float, default=6.0)
    a = parser.parse_args()
    print(json.dumps(measure(a.model_store, [int(b) for b in a.batch_sizes.split(",")], a.seconds)))
