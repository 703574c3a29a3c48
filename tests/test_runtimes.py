"""Runtimes: the export, the one place that chooses, and served output equal to in-memory output for each."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import model_store
import runtimes
from app import ModelLoadError, create_app
from tests.conftest import ROOT, free_port, start_gunicorn, stop, wait_ready
from training.__main__ import main


def _meta(int8: float | None = 0.90, fp32: float | None = 0.90) -> dict:
    found = {}
    if fp32 is not None:
        found["openvino"] = {"files": ["openvino-1/alexnet_fp32.xml"], "val_accuracy": fp32}
    if int8 is not None:
        found["openvino-int8"] = {"files": ["openvino-1/alexnet_int8.xml"], "val_accuracy": int8}
    return {"class_names": ["cats", "dogs"], "runtimes": found}


def test_auto_prefers_int8_only_within_one_point_of_float32():
    everything = lambda name: True  # noqa: E731
    assert runtimes.choose(_meta(0.895, 0.90), "auto", everything) == "openvino-int8"
    assert runtimes.choose(_meta(0.889, 0.90), "auto", everything) == "openvino"
    assert runtimes.choose(_meta(None, 0.90), "auto", everything) == "openvino"
    assert runtimes.choose({"class_names": []}, "auto", everything) == "tensorflow"
    assert runtimes.choose(_meta(), "auto", lambda n: n == "tensorflow") == "tensorflow"
    assert runtimes.choose(_meta(0.5, 0.9), "openvino-int8", everything) == "openvino-int8"  # asked for: served


def test_choose_explains_what_is_missing():
    with pytest.raises(runtimes.RuntimeUnavailableError, match="python -m training export"):
        runtimes.choose({"class_names": []}, "openvino-int8", lambda n: True)
    with pytest.raises(runtimes.RuntimeUnavailableError, match="python -m training export"):
        runtimes.choose({"class_names": []}, "auto", lambda n: n != "tensorflow")
    with pytest.raises(runtimes.RuntimeUnavailableError, match="not installed"):
        runtimes.choose(_meta(), "openvino", lambda n: False)
    with pytest.raises(runtimes.RuntimeUnavailableError, match="unknown"):
        runtimes.choose(_meta(), "onnx", lambda n: True)


def _accuracy(runtime, folder) -> float:
    files = [(p, c) for c, name in enumerate(("cats", "dogs")) for p in sorted((folder / name).iterdir())]
    batch = np.stack([model_store.preprocess_image(p.read_bytes(), np.uint8) for p, _ in files])
    return float((runtime.predict(batch).argmax(axis=1) == np.array([c for _, c in files])).mean())


def test_train_exports_both_openvino_models_with_measured_accuracy(trained_store, tiny_data):
    vdir = model_store.version_dir(trained_store, 1)
    found = model_store.read_metadata(trained_store, 1)["runtimes"]
    assert set(found) == set(runtimes.NAMES)
    for name, entry in found.items():
        assert all((vdir / f).is_file() for f in entry["files"]), name
        assert entry["val_images"] == 20, name
        # The accuracy stored is the one measured: recompute it with the runtime on the same 20 photos.
        runtime = runtimes.load(vdir, model_store.read_metadata(trained_store, 1), name)
        assert entry["val_accuracy"] == pytest.approx(_accuracy(runtime, tiny_data["val"]), abs=1e-6), name
    assert found["openvino-int8"]["calibration_images"] == 40  # every training photo of the tiny set
    assert not list(vdir.glob(".*"))  # nothing half-written left behind


@pytest.mark.parametrize("runtime", runtimes.NAMES)
def test_served_output_equals_in_memory_runtime(runtime, trained_store, tiny_data):
    vdir = model_store.version_dir(trained_store, 1)
    metadata = model_store.read_metadata(trained_store, 1)
    model = runtimes.load(vdir, metadata, runtime)
    assert isinstance(model, runtimes.Runtime) and model.name == runtime  # the whole protocol
    app = create_app({"MODEL_STORE": str(trained_store), "MODEL_POLL_SECONDS": 0, "MODEL_RUNTIME": runtime})
    try:
        client = app.test_client()
        assert client.get("/v2/models/alexnet").json["parameters"]["runtime"] == runtime
        assert client.get("/v1/models/alexnet/metadata").json["metadata"]["runtime"] == runtime
        assert f"runtime {runtime}" in client.get("/").get_data(as_text=True)
        assert f'runtime="{runtime}"' in client.get("/metrics").get_data(as_text=True)
        files = sorted((tiny_data["val"] / "cats").iterdir())[:2] + sorted((tiny_data["val"] / "dogs").iterdir())[:2]
        for path in files:
            data = path.read_bytes()
            expected = model.predict(model_store.preprocess_image(data, np.uint8)[None])[0]
            resp = client.post("/predict", data={"image": (path.open("rb"), path.name)})
            served = resp.json["probabilities"]
            np.testing.assert_allclose([served["cats"], served["dogs"]], expected, atol=1e-6)
    finally:
        app.extensions["model_service"].stop()


INT8_TOLERANCE = 0.05  # largest probability difference int8 may make on these photos


def test_openvino_float32_matches_keras(trained_store, tiny_data):
    vdir = model_store.version_dir(trained_store, 1)
    metadata = model_store.read_metadata(trained_store, 1)
    batch = np.stack([model_store.preprocess_image(p.read_bytes(), np.uint8)
                      for p in sorted((tiny_data["val"] / "dogs").iterdir())[:8]])
    keras_probs = runtimes.load(vdir, metadata, "tensorflow").predict(batch)
    np.testing.assert_allclose(runtimes.load(vdir, metadata, "openvino").predict(batch), keras_probs, atol=1e-4)
    int8 = runtimes.load(vdir, metadata, "openvino-int8").predict(batch)
    # Quantized: close to float32, not equal (the served-equals-in-memory test pins int8 itself exactly).
    assert int8.shape == keras_probs.shape and np.allclose(int8.sum(axis=1), 1, atol=1e-4)
    assert np.abs(int8 - keras_probs).max() < INT8_TOLERANCE, np.abs(int8 - keras_probs).max()


@pytest.mark.parametrize("pinning", ["on", "off"])
def test_cpu_pinning_follows_the_setting(trained_store, monkeypatch, pinning):
    monkeypatch.setenv("OV_CPU_PINNING", pinning)
    vdir = model_store.version_dir(trained_store, 1)
    model = runtimes.load(vdir, model_store.read_metadata(trained_store, 1), "openvino-int8")
    assert model.compiled.get_property("ENABLE_CPU_PINNING") is (pinning == "on")


@pytest.mark.parametrize(("env", "expected"), [
    ({"WEB_CONCURRENCY": "2"}, lambda cores: max(1, cores // 2)),  # each worker its share of the cores
    ({"WEB_CONCURRENCY": "4", "OV_THREADS": "2"}, lambda cores: min(2, cores)),  # the setting wins
    ({"WEB_CONCURRENCY": "1"}, None),  # one worker: OpenVINO's own choice (every core)
])
def test_inference_threads_share_the_cores_among_workers(trained_store, monkeypatch, env, expected):
    for name in ("WEB_CONCURRENCY", "OV_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    vdir = model_store.version_dir(trained_store, 1)
    model = runtimes.load(vdir, model_store.read_metadata(trained_store, 1), "openvino-int8")
    threads = int(model.compiled.get_property("INFERENCE_NUM_THREADS"))
    cores = len(os.sched_getaffinity(0))
    if expected is None:
        assert threads in (0, cores)  # 0: OpenVINO decides, which is every core
    else:
        assert threads == expected(cores)


def test_openvino_worker_never_imports_tensorflow(trained_store):
    port = free_port()
    proc = start_gunicorn(trained_store, port, {"MODEL_RUNTIME": "openvino-int8", "WEB_CONCURRENCY": "1"})
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        workers = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
        assert workers
        for pid in workers:
            maps = open(f"/proc/{pid}/maps").read()
            assert "openvino" in maps
            # (OpenVINO's own libopenvino_tensorflow_frontend.so is not TensorFlow.)
            loaded = {line.split()[-1] for line in maps.splitlines() if "site-packages/" in line}
            assert not [p for p in loaded if "/site-packages/tensorflow/" in p or "/site-packages/keras/" in p]
    finally:
        stop(proc)
    # And in-process, module by module, with a prediction made.
    code = ("import sys; from app import create_app;"
            f"app = create_app({{'MODEL_STORE': {str(trained_store)!r}, 'MODEL_POLL_SECONDS': 0,"
            "'MODEL_RUNTIME': 'openvino-int8'});"
            "from tests import images;"
            "r = app.test_client().post('/predict', data=images.encode(images.gradient(), 'JPEG'),"
            " content_type='image/jpeg'); assert r.status_code == 200, r.json;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'nncf')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_h5_only_version_without_tensorflow_names_the_export_command(copy_store, monkeypatch):
    meta = model_store.read_metadata(copy_store, 1)
    meta.pop("runtimes")
    (model_store.version_dir(copy_store, 1) / "metadata.json").write_text(json.dumps(meta))
    monkeypatch.setattr(runtimes, "installed", lambda name: name != "tensorflow")
    with pytest.raises(ModelLoadError, match="python -m training export"):
        create_app({"MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0})


def test_export_command_is_atomic_and_replaces_the_old_export(copy_store, tiny_data):
    vdir = model_store.version_dir(copy_store, 1)
    assert (vdir / "openvino-1").is_dir()
    assert main(["export", "--model-store", str(copy_store), "--data-dir", str(tiny_data["train"]),
                 "--val-dir", str(tiny_data["val"]), "--calibration-images", "16"]) == 0
    found = model_store.read_metadata(copy_store, 1)["runtimes"]
    assert found["openvino-int8"]["files"][0] == "openvino-2/alexnet_int8.xml"
    assert found["openvino-int8"]["calibration_images"] == 16
    assert not (vdir / "openvino-1").exists() and not list(vdir.glob(".*"))
    app = create_app({"MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0, "MODEL_RUNTIME": "openvino-int8"})
    app.extensions["model_service"].stop()


def test_hot_reload_moves_to_a_version_with_another_runtime(copy_store):
    vdir = model_store.version_dir(copy_store, 1)
    meta = json.loads((vdir / "metadata.json").read_text())
    only_h5 = {k: v for k, v in meta.items() if k != "runtimes"}
    (vdir / "metadata.json").write_text(json.dumps(only_h5))
    app = create_app({"MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0})
    service = app.extensions["model_service"]
    try:
        assert service.predictor.runtime_name == "tensorflow"
        import shutil

        staged = model_store.staging_dir(copy_store)
        shutil.copytree(vdir, staged, dirs_exist_ok=True)
        (staged / "metadata.json").write_text(json.dumps(meta))
        assert model_store.publish(copy_store, staged) == 2
        assert service.check_for_new_version()
        assert service.predictor.version == 2 and service.predictor.runtime_name != "tensorflow"
    finally:
        service.stop()


def test_registry_is_the_one_list_of_runtimes():
    import importlib

    for name, spec in runtimes.REGISTRY.items():
        assert spec.name == name and callable(importlib.import_module(spec.module).open_runtime)
    assert runtimes.NAMES == ("openvino-int8", "openvino", "tensorflow")  # auto's preference
    assert runtimes.EXPORTED == ("openvino-int8", "openvino")
    assert runtimes.REGISTRY["openvino-int8"].v2_platform == "openvino_ir"


def test_a_model_released_on_another_thread_leaves_signals_deliverable():
    """A hot reload compiles the new version on the poller thread and releases the old one wherever its last
    reference goes; a signal afterwards (SIGTERM from the platform) must still reach its handler."""
    code = """
import os, signal, threading, time
import openvino as ov, openvino.opset13 as ops
from runtimes.openvino_ir import compile_ir
x = ops.parameter([1, 4], ov.Type.f32)
model = ov.Model([ops.relu(x)], [x])
got = []
signal.signal(signal.SIGTERM, lambda sig, frame: got.append(sig))
served = {"old": compile_ir(model)}  # compiled on the main thread, as the first version is at start-up

def reload():
    served["new"] = compile_ir(model)
    del served["old"]  # released on this thread

worker = threading.Thread(target=reload)
worker.start()
worker.join()
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.2)
print("handled", got)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "handled [15]" in out.stdout, (out.returncode, out.stderr[-2000:])
