"""Shared fixtures: small image folders (shared photos when present) and a trained model store."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.drive.server import free_port, server_output, start_gunicorn, stop, wait_ready, worker_crashes

__all__ = ["free_port", "server_output", "start_gunicorn", "stop", "wait_ready", "worker_crashes"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "cats_dogs"


def shared_photos(split: str, cls: str, n: int) -> list[Path]:
    """First n shared photos of a class, or [] when ../shared is absent."""
    folder = SHARED / split / cls
    return sorted(folder.glob("*.jpg"))[:n] if folder.is_dir() else []


def synthetic_jpeg(seed: int, cls: int, size=(320, 240)) -> bytes:
    """A noisy JPEG whose colour depends on the class, for machines without ../shared."""
    rng = np.random.default_rng(seed)
    base = np.array([200, 60, 60] if cls == 0 else [60, 60, 200], dtype=np.float32)
    arr = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_dataset(root: Path, split: str, per_class: int, offset: int = 0) -> Path:
    """Folder-per-class dataset of per_class images per class (symlinked shared photos or synthetic)."""
    for label, cls in enumerate(("cats", "dogs")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        photos = shared_photos(split, cls, offset + per_class)[offset:]
        for i in range(per_class):
            if i < len(photos):
                os.symlink(photos[i], root / cls / photos[i].name)
            else:
                (root / cls / f"synthetic.{i}.jpg").write_bytes(synthetic_jpeg(1000 * label + i + offset, label))
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """20+20 training and 10+10 validation photos."""
    base = tmp_path_factory.mktemp("tiny")
    return {"train": make_dataset(base / "train", "train", 20), "val": make_dataset(base / "val", "validation", 10)}


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, tiny_data) -> Path:
    """A model store holding version 1, trained for one epoch by the real CLI."""
    from training.__main__ import main

    store = tmp_path_factory.mktemp("store")
    rc = main(["train", "--data-dir", str(tiny_data["train"]), "--val-dir", str(tiny_data["val"]),
               "--model-store", str(store), "--epochs", "1", "--batch-size", "8", "--verbose", "0"])
    assert rc == 0
    return store


def corrupt_models(vdir: Path) -> None:
    """Overwrite every model file of a version (alexnet.h5 and the OpenVINO IRs): no runtime can load it."""
    (vdir / "alexnet.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 1000)  # HDF5 magic, nothing else
    for path in [*vdir.glob("openvino-*/*.xml"), *vdir.glob("openvino-*/*.bin")]:
        path.write_bytes(b"<?xml version='1.0'?><net" if path.suffix == ".xml" else b"\0" * 64)


BUCKET = "alexnet-models"

# Fixtures that train a model (directly or through trained_store): tests using them are marked `trains`.
TRAINING_FIXTURES = {"trained_store", "colour_store", "colour_versions", "golden_versions", "fused_store"}


def pytest_collection_modifyitems(config, items):
    """Mark every test that trains, so `make test-fast` (-m "not trains") can leave them out."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trains)


@pytest.fixture
def gcs(monkeypatch):
    """A local GCS emulator (gcp-storage-emulator) with one bucket: yields gs://BUCKET/prod."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    yield f"gs://{BUCKET}/prod"
    server.stop()


@pytest.fixture
def sample_jpeg() -> bytes:
    """One real photo's bytes (a synthetic JPEG without ../shared)."""
    photos = shared_photos("validation", "dogs", 1)
    return photos[0].read_bytes() if photos else synthetic_jpeg(7, 1)


@pytest.fixture
def copy_store(tmp_path, trained_store) -> Path:
    """A private copy of the trained store that a test may modify."""
    dest = tmp_path / "store"
    shutil.copytree(trained_store, dest)
    return dest


@pytest.fixture(scope="session")
def app(trained_store):
    """The Flask app (factory) serving the trained store, hot reload off."""
    from app import create_app

    application = create_app({"TESTING": True, "MODEL_STORE": str(trained_store), "MODEL_POLL_SECONDS": 0})
    yield application
    application.extensions["model_service"].stop()


@pytest.fixture
def client(app):
    """Flask test client."""
    return app.test_client()


@pytest.fixture(scope="session")
def live_server(trained_store):
    """gunicorn started with the production command on a free port: yields the base URL."""
    port = free_port()
    proc = start_gunicorn(trained_store, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield base
    finally:
        stop(proc)
