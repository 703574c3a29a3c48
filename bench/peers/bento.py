"""Start the BentoML peer (bench/peers/bento_service.py) from its own venv, on the same model version and IR."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import model_store
import runtimes
from bench.drive.server import ROOT


def start(python: str, store: str, port: int, runtime: str = "openvino-int8") -> subprocess.Popen:
    """`bentoml serve bench.peers.bento_service:AlexNet` on 127.0.0.1:port serving `runtime`'s IR; ready when
    GET /readyz answers 200."""
    version = model_store.latest_version(store)
    meta = model_store.read_metadata(store, version)
    xml = model_store.version_dir(store, version) / runtimes.files_for(meta, runtime)[0]
    env = {**os.environ, "ALEXNET_IR": str(xml), "ALEXNET_CLASSES": ",".join(meta["class_names"]),
           "BENTOML_HOME": str(ROOT / ".bench" / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "True"}
    bentoml = str(Path(python).parent / "bentoml")
    proc = subprocess.Popen([bentoml, "serve", "bench.peers.bento_service:AlexNet", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    proc.ready_path = "/readyz"
    return proc
