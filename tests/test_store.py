"""Versioned store layout: increasing versions, atomic publish, staging never visible."""

import json

import pytest

import model_store
from model_store.versions import layout


def _stage(store, tag):
    staged = model_store.staging_dir(store)
    (staged / model_store.MODEL_FILE).write_bytes(b"h5")
    (staged / model_store.METADATA_FILE).write_text(json.dumps({"tag": tag}))
    return staged


def test_versions_increase_and_staging_is_invisible(tmp_path):
    with pytest.raises(model_store.ModelNotFoundError):
        model_store.latest_version(tmp_path)
    first = _stage(tmp_path, "a")
    assert model_store.list_versions(tmp_path) == []  # a half-written version is not a version
    assert model_store.publish(tmp_path, first) == 1
    assert model_store.publish(tmp_path, _stage(tmp_path, "b")) == 2
    assert model_store.list_versions(tmp_path) == [1, 2]
    assert model_store.latest_version(tmp_path) == 2
    assert model_store.read_metadata(tmp_path, 2) == {"tag": "b"}


def test_publish_never_reuses_a_number(tmp_path):
    model_store.publish(tmp_path, _stage(tmp_path, "a"))
    staged = _stage(tmp_path, "b")
    (layout.model_root(tmp_path) / "2").mkdir()  # e.g. published by another trainer meanwhile
    assert model_store.publish(tmp_path, staged) == 3


def test_publish_refuses_incomplete_stage(tmp_path):
    staged = model_store.staging_dir(tmp_path)
    (staged / model_store.MODEL_FILE).write_bytes(b"h5")
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        model_store.publish(tmp_path, staged)
    assert model_store.list_versions(tmp_path) == []
