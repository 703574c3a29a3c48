"""Strategy choice from TF_CONFIG, sharding, and a real two-worker MultiWorkerMirroredStrategy run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import model_store
from tests.conftest import ROOT, free_port
from training.fit import distributed
from training.inputs import pipeline


def _config(kind: str, index: int, workers: int = 2, chief: bool = False) -> dict:
    cluster = {"worker": [f"127.0.0.1:{1000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:999"]
    return {"cluster": cluster, "task": {"type": kind, "index": index}}


def test_roles_from_tf_config():
    assert distributed.cluster_workers({}) == 0
    assert distributed.cluster_workers(_config("worker", 0)) == 2
    assert distributed.cluster_workers(_config("worker", 0, chief=True)) == 3
    assert distributed.is_chief({})
    assert distributed.is_chief(_config("worker", 0)) and not distributed.is_chief(_config("worker", 1))
    assert distributed.is_chief(_config("chief", 0, chief=True))
    assert not distributed.is_chief(_config("worker", 0, chief=True))


def test_auto_resolves_from_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(_config("worker", 1)))
    assert distributed.resolve("auto") == "multi-worker"
    monkeypatch.setenv("TF_CONFIG", json.dumps(_config("worker", 0, workers=1)))
    assert distributed.resolve("auto") in ("one", "gpus")
    assert distributed.resolve("one") == "one"
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(SystemExit, match="TF_CONFIG"):
        distributed.tf_config()


def test_shards_together_are_the_unsharded_batches():
    images = np.arange(10 * 4 * 4 * 3, dtype=np.uint8).reshape(10, 4, 4, 3)
    labels = np.arange(10, dtype=np.int32) % 2
    whole = pipeline.EpochBatches(images, labels, 4, seed=5, augment=True)
    whole.epoch = 1
    shards = [whole.shard(i, 2) for i in range(2)]
    for full, a, b in zip(whole(), shards[0](), shards[1](), strict=True):
        for k in range(4):  # pixels, crop boxes, jitter, labels: interleaved halves of the global batch
            merged = np.empty_like(full[k])
            merged[0::2], merged[1::2] = a[k], b[k]
            np.testing.assert_array_equal(merged, full[k])


@pytest.mark.trains
def test_two_workers_train_one_version_with_identical_weights(tmp_path, tiny_data):
    store = tmp_path / "store"
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    cmd = [sys.executable, "-m", "training", "train", "--data-dir", str(tiny_data["train"]),
           "--val-dir", str(tiny_data["val"]), "--model-store", str(store), "--epochs", "1",
           "--batch-size", "4", "--strategy", "multi-worker", "--no-export", "--no-report",
           "--cache-dir", str(tmp_path / "cache"), "--verbose", "0"]
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    try:
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    digests = [re.findall(r"final weights sha256 ([0-9a-f]{64})", out) for out in outputs]
    assert all(len(d) == 1 for d in digests), outputs
    assert digests[0] == digests[1]
    assert "published" in outputs[0] and "published" not in outputs[1]
    assert model_store.list_versions(str(store)) == [1]
    meta = model_store.read_metadata(str(store), 1)
    assert meta["replicas"] == 2 and meta["speed"]["strategy"] == "multi-worker"
