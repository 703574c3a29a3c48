"""Start-up: a missing or corrupt model stops the process with one clear line."""

import shutil
import subprocess
import sys

import pytest

import model_store
from app import ModelLoadError, create_app
from tests import images
from tests.conftest import ROOT, corrupt_models, free_port, start_gunicorn


def test_empty_store_refuses_to_start(tmp_path):
    with pytest.raises(ModelLoadError, match="no model in .*make demo"):
        create_app({"MODEL_STORE": str(tmp_path), "MODEL_POLL_SECONDS": 0})


def test_corrupt_model_refuses_to_start(copy_store):
    corrupt_models(model_store.version_dir(copy_store, 1))
    with pytest.raises(ModelLoadError, match="cannot load"):
        create_app({"MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0})


def test_metadata_mismatch_refuses_to_start(copy_store):
    meta = model_store.version_dir(copy_store, 1) / "metadata.json"
    meta.write_text(meta.read_text().replace('"dogs"', '"dogs", "birds"', 1))
    with pytest.raises(ModelLoadError, match="do not match"):
        create_app({"MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0})


def test_other_preprocessing_is_served_with_a_warning(copy_store, caplog):
    import json

    meta_path = model_store.version_dir(copy_store, 1) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    assert meta["preprocessing"] == model_store.PREPROCESSING_SPEC
    with caplog.at_level("WARNING", logger="app.serving.predictor"):
        create_app({"MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0}).extensions["model_service"].stop()
    assert "other preprocessing" not in caplog.text
    meta["preprocessing"]["resize"] = "bilinear, whole image (aspect ratio not kept)"  # an older version's
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level("WARNING", logger="app.serving.predictor"):
        app = create_app({"MODEL_STORE": str(copy_store), "MODEL_POLL_SECONDS": 0})
    app.extensions["model_service"].stop()
    assert "trained with other preprocessing (resize differ)" in caplog.text
    assert app.extensions["model_service"].loaded


def test_not_ready_answers_503(trained_store):
    app = create_app({"MODEL_STORE": str(trained_store), "LOAD_MODEL": False})
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    assert client.get("/v2/health/ready").status_code == 503
    resp = client.post("/predict", data=images.encode(images.gradient(), "JPEG"), content_type="image/jpeg")
    assert resp.status_code == 503 and resp.json == {"error": "model not ready"}
    assert resp.headers["Retry-After"]


def test_gunicorn_exits_nonzero_with_one_clear_line(tmp_path):
    proc = start_gunicorn(tmp_path / "empty-store", free_port(), output=subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    lines = [line for line in out.splitlines() if line.startswith("alexnet-service: cannot start:")]
    assert len(lines) == 1 and "make demo" in lines[0], out


def test_wsgi_import_exit_code(tmp_path):
    env_store = tmp_path / "nothing"
    proc = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, capture_output=True, text=True,
                          env={"MODEL_STORE": str(env_store), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 4
    assert "cannot start: no model in" in proc.stderr
    shutil.rmtree(env_store, ignore_errors=True)


def test_model_version_pins_an_older_version(copy_store):
    from tests.test_reliability import _publish_copy

    assert _publish_copy(copy_store, 1) == 2
    app = create_app({"MODEL_STORE": str(copy_store), "MODEL_VERSION": 1, "MODEL_POLL_SECONDS": 0.2})
    try:
        service = app.extensions["model_service"]
        assert service.predictor.version == 1
        assert not service.check_for_new_version()  # pinned: newer versions are not loaded
        assert app.test_client().get("/readyz").json["model_version"] == "1"
    finally:
        app.extensions["model_service"].stop()


@pytest.mark.parametrize("env,needle", [
    ({"MAX_QUEUE": "lots"}, "MAX_QUEUE='lots' is not a number"),
    ({"TTA": "rotate"}, "TTA='rotate' is not one of none, flip"),
    ({"GUNICORN_THREADS": "many"}, "GUNICORN_THREADS='many' is not a number"),
    ({"MODEL_STORE": "gs://no-such-bucket/x", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"}, "unreadable"),
])
def test_config_and_store_errors_exit_4_with_one_line(trained_store, env, needle):
    proc = start_gunicorn(env.get("MODEL_STORE", trained_store), free_port(), extra_env=env,
                          output=subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.startswith("alexnet-service: cannot start:")]
    assert proc.returncode != 0 and len(lines) == 1 and needle in lines[0], out[-3000:]
    assert "Traceback" not in out, out[-3000:]


def test_a_worker_class_without_threads_exits_4_with_one_line(trained_store):
    proc = start_gunicorn(trained_store, free_port(), args=("-k", "gevent"), output=subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    lines = [line for line in out.splitlines() if line.startswith("alexnet-service: cannot start:")]
    assert proc.returncode == 4 and len(lines) == 1 and "GeventWorker" in lines[0] and "gthread" in lines[0], out


def test_wsgi_config_error_exit_code(trained_store):
    proc = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, capture_output=True, text=True,
                          env={"MODEL_STORE": str(trained_store), "MAX_QUEUE": "x", "PATH": "/usr/bin:/bin"},
                          timeout=120)
    assert proc.returncode == 4 and "bad configuration" in proc.stderr and "Traceback" not in proc.stderr
