"""gs:// model stores against a local GCS emulator (gcp-storage-emulator) started by the test."""

import shutil

import pytest

import model_store
from app import create_app
from tests import images
from training.__main__ import main


def test_publish_then_serve_from_bucket(gcs, trained_store, tmp_path):
    assert model_store.remote_versions(gcs) == []
    assert main(["publish", "--model-store", str(trained_store), "--to", gcs]) == 0
    assert model_store.remote_versions(gcs) == [1]

    cache = tmp_path / "cache"
    app = create_app({"MODEL_STORE": gcs, "MODEL_CACHE_DIR": str(cache), "MODEL_POLL_SECONDS": 0,
                      "MODEL_RUNTIME": "tensorflow"})
    try:
        client = app.test_client()
        resp = client.post("/predict", data=images.encode(images.gradient(), "JPEG"), content_type="image/jpeg")
        assert resp.status_code == 200 and resp.json["model_version"] == "1"
        assert (cache / "alexnet" / "1" / "alexnet.h5").is_file()
        local = (model_store.version_dir(trained_store, 1) / "alexnet.h5").read_bytes()
        assert (cache / "alexnet" / "1" / "alexnet.h5").read_bytes() == local

        # A second publish becomes version 2 and is picked up by the poller's check.
        assert main(["publish", "--model-store", str(trained_store), "--to", gcs]) == 0
        assert model_store.remote_versions(gcs) == [1, 2]
        assert app.extensions["model_service"].check_for_new_version()
        assert client.get("/readyz").json["model_version"] == "2"
    finally:
        app.extensions["model_service"].stop()

    # MODEL_VERSION pins an older remote version: that one is downloaded and served.
    pinned = create_app({"MODEL_STORE": gcs, "MODEL_CACHE_DIR": str(tmp_path / "cache2"), "MODEL_VERSION": 1,
                         "MODEL_POLL_SECONDS": 0})
    try:
        assert pinned.test_client().get("/readyz").json["model_version"] == "1"
        assert not (tmp_path / "cache2" / "alexnet" / "2").exists()
    finally:
        pinned.extensions["model_service"].stop()


def test_incomplete_remote_version_is_ignored(gcs, trained_store, tmp_path):
    main(["publish", "--model-store", str(trained_store), "--to", gcs])
    from model_store.versions.remote import _client, split_uri

    bucket, prefix = split_uri(gcs)
    # An upload that died before metadata.json: not a version.
    _client().bucket(bucket).blob(f"{prefix}/alexnet/2/alexnet.h5").upload_from_string(b"partial")
    assert model_store.remote_versions(gcs) == [1]
    local = model_store.local_copy(gcs, tmp_path / "cache")
    assert model_store.list_versions(local) == [1]
    shutil.rmtree(tmp_path / "cache")


def test_bad_uri_is_rejected():
    with pytest.raises(ValueError):
        model_store.versions.remote.split_uri("s3://bucket/x")


def test_cache_keeps_only_the_serving_version(gcs, trained_store, tmp_path):
    cache = tmp_path / "cache"
    assert main(["publish", "--model-store", str(trained_store), "--to", gcs]) == 0
    app = create_app({"MODEL_STORE": gcs, "MODEL_CACHE_DIR": str(cache), "MODEL_POLL_SECONDS": 0})
    service = app.extensions["model_service"]
    try:
        for expected in (2, 3, 4):
            assert main(["publish", "--model-store", str(trained_store), "--to", gcs]) == 0
            assert service.check_for_new_version() and service.predictor.version == expected
            # Only the serving version stays on disk (Cloud Run's /tmp is memory).
            assert model_store.list_versions(cache) == [expected]
            assert not list((cache / "alexnet").glob(".staging-*"))
        assert app.test_client().get("/readyz").json["model_version"] == "4"
    finally:
        service.stop()


@pytest.mark.trains
def test_train_to_gcs_removes_its_local_store(gcs, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["train", "--data-dir", str(tiny_data["train"]), "--val-dir", str(tiny_data["val"]),
                 "--model-store", gcs, "--epochs", "1", "--batch-size", "8", "--verbose", "0",
                 "--precision", "float32"]) == 0
    assert model_store.remote_versions(gcs) == [1]
    assert not (tmp_path / "cache" / "train-store").exists()


def test_openvino_serving_downloads_only_its_runtime_files(gcs, trained_store, tmp_path):
    assert main(["publish", "--model-store", str(trained_store), "--to", gcs]) == 0
    cache = tmp_path / "cache"
    app = create_app({"MODEL_STORE": gcs, "MODEL_CACHE_DIR": str(cache), "MODEL_POLL_SECONDS": 0,
                      "MODEL_RUNTIME": "openvino-int8"})
    try:
        resp = app.test_client().post("/predict", data=images.encode(images.gradient(), "JPEG"),
                                      content_type="image/jpeg")
        assert resp.status_code == 200, resp.json
    finally:
        app.extensions["model_service"].stop()
    got = sorted(p.relative_to(cache / "alexnet" / "1").as_posix() for p in (cache / "alexnet" / "1").rglob("*")
                 if p.is_file())
    int8 = model_store.read_metadata(trained_store, 1)["runtimes"]["openvino-int8"]["files"]
    assert set(int8) <= set(got) and "alexnet.h5" not in got  # Cloud Run's /tmp is memory: 233 MB not fetched
    assert "golden.npz" in got  # the rollout gate's preflight photos come with the model files
    assert not any("fp32" in name for name in got)

    # The same cached version asked for with TensorFlow later: the .h5 is fetched then.
    app = create_app({"MODEL_STORE": gcs, "MODEL_CACHE_DIR": str(cache), "MODEL_POLL_SECONDS": 0,
                      "MODEL_RUNTIME": "tensorflow"})
    app.extensions["model_service"].stop()
    assert (cache / "alexnet" / "1" / "alexnet.h5").is_file()


def test_export_a_gcs_version_in_place(gcs, trained_store, tmp_path, tiny_data):
    src = tmp_path / "plain"
    shutil.copytree(trained_store, src)
    meta = model_store.read_metadata(src, 1)
    meta.pop("runtimes")
    (model_store.version_dir(src, 1) / "metadata.json").write_text(__import__("json").dumps(meta))
    shutil.rmtree(model_store.version_dir(src, 1) / "openvino-1")
    assert main(["publish", "--model-store", str(src), "--to", gcs]) == 0
    assert main(["export", "--model-store", gcs, "--cache-dir", str(tmp_path / "c"),
                 "--data-dir", str(tiny_data["train"]), "--val-dir", str(tiny_data["val"])]) == 0
    app = create_app({"MODEL_STORE": gcs, "MODEL_CACHE_DIR": str(tmp_path / "serve"), "MODEL_POLL_SECONDS": 0,
                      "MODEL_RUNTIME": "openvino"})
    try:
        assert app.extensions["model_service"].predictor.runtime_name == "openvino"
    finally:
        app.extensions["model_service"].stop()


def _create_only_preconditions(monkeypatch) -> None:
    """GCS's `if_generation_match=0` (create only: 412 when the object exists), which the emulator ignores."""
    from google.api_core.exceptions import PreconditionFailed
    from google.cloud.storage import Blob

    for method in ("upload_from_string", "upload_from_filename"):
        original = getattr(Blob, method)

        def checked(self, *args, _original=original, if_generation_match=None, **kwargs):
            if if_generation_match == 0 and self.exists():
                raise PreconditionFailed(f"{self.name} exists")
            return _original(self, *args, if_generation_match=if_generation_match, **kwargs)

        monkeypatch.setattr(Blob, method, checked)


def test_a_publisher_never_writes_into_a_number_another_is_publishing(gcs, trained_store, monkeypatch):
    from model_store.versions.remote import _client, split_uri
    from model_store.versions.remote_publish import CLAIM_FILE

    _create_only_preconditions(monkeypatch)
    assert main(["publish", "--model-store", str(trained_store), "--to", gcs]) == 0
    bucket, prefix = split_uri(gcs)
    theirs = _client().bucket(bucket)
    # Another publisher has claimed version 2 and uploaded its model, not yet its metadata.
    theirs.blob(f"{prefix}/alexnet/2/{CLAIM_FILE}").upload_from_string(b"", if_generation_match=0)
    theirs.blob(f"{prefix}/alexnet/2/alexnet.h5").upload_from_string(b"their model")
    assert model_store.upload_version(trained_store, 1, gcs) == 3
    assert theirs.blob(f"{prefix}/alexnet/2/alexnet.h5").download_as_bytes() == b"their model"
    assert model_store.remote_versions(gcs) == [1, 3]
    local = (model_store.version_dir(trained_store, 1) / "alexnet.h5").read_bytes()
    assert theirs.blob(f"{prefix}/alexnet/3/alexnet.h5").download_as_bytes() == local
