"""Batch scoring on Apache Beam (python -m training score): same answers as /predict, dead letters, gs://,
and a Dataflow pipeline built without being submitted."""

from __future__ import annotations

import glob
import json
import shutil

import numpy as np
import pytest

from tests.conftest import SHARED, synthetic_jpeg
from training.__main__ import main

pytest.importorskip("apache_beam")

PHOTOS = 200


def _photos(folder, n: int = PHOTOS) -> list:
    """n shared validation photos copied in (Beam's matcher skips symbolic links), else synthetic JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    shared = sorted(SHARED.glob("validation/*/*.jpg"))[:n]
    out = []
    for i in range(n):
        dest = folder / (shared[i].name if i < len(shared) else f"synthetic.{i}.jpg")
        if i < len(shared):
            shutil.copyfile(shared[i], dest)
        else:
            dest.write_bytes(synthetic_jpeg(i, i % 2))
        out.append(dest)
    return out


def _broken(folder) -> dict[str, str]:
    """Three files that cannot be scored, and a word of the reason each must give."""
    (folder / "notes.jpg").write_text("not an image at all")
    good = synthetic_jpeg(1, 0)
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "huge.jpg").write_bytes(good + b"\0" * (11 * 1024 * 1024))
    return {"notes.jpg": "not a recognised image", "truncated.jpg": "truncated", "huge.jpg": "too large"}


def _lines(pattern: str) -> list[dict]:
    return [json.loads(line) for name in sorted(glob.glob(pattern)) for line in open(name) if line.strip()]


def test_score_answers_as_predict_does_and_dead_letters_the_broken(trained_store, client, tmp_path):
    photos = _photos(tmp_path / "in")
    (tmp_path / "in" / "nested").mkdir()
    broken = _broken(tmp_path / "in" / "nested")
    out = tmp_path / "out" / "labels"
    assert main(["score", "--model-store", str(trained_store), "--input", str(tmp_path / "in"),
                 "--output", str(out), "--direct_num_workers", "2"]) == 0
    results = {r["path"]: r for r in _lines(f"{out}-[0-9]*.jsonl")}
    assert sorted(results) == sorted(str(p) for p in photos)  # one line per good photo, no more
    errors = _lines(f"{out}-errors-*.jsonl")
    assert sorted(e["path"].rsplit("/", 1)[1] for e in errors) == sorted(broken)
    for e in errors:
        assert broken[e["path"].rsplit("/", 1)[1]] in e["reason"], e
    for path in photos[::10]:  # the server, same store, same runtime choice
        served = client.post("/predict", data={"image": (open(path, "rb"), path.name)}).json
        scored = results[str(path)]
        assert scored["label"] == served["label"] and scored["model_version"] == served["model_version"]
        assert scored["abstained"] == served["abstained"]
        np.testing.assert_allclose([scored["probabilities"][k] for k in ("cats", "dogs")],
                                   [served["probabilities"][k] for k in ("cats", "dogs")], atol=1e-5)
        assert scored["ood_score"] == pytest.approx(served["ood_score"], abs=1e-5)


def test_score_reads_and_writes_a_bucket(gcs, trained_store, tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    bucket_name = gcs.removeprefix("gs://").split("/")[0]
    bucket = storage.Client(project="local", credentials=AnonymousCredentials()).bucket(bucket_name)
    photos = _photos(tmp_path / "in", 6)
    for path in photos:
        bucket.blob(f"photos/{path.name}").upload_from_filename(str(path))
    bucket.blob("photos/broken.jpg").upload_from_string(b"nope")
    assert main(["score", "--model-store", str(trained_store), "--input", f"gs://{bucket_name}/photos/*.jpg",
                 "--output", f"gs://{bucket_name}/scored/run1", "--direct_num_workers", "1"]) == 0
    names = sorted(b.name for b in bucket.list_blobs(prefix="scored/"))
    results = [json.loads(line) for n in names if "-errors-" not in n
               for line in bucket.blob(n).download_as_text().splitlines()]
    errors = [json.loads(line) for n in names if "-errors-" in n
              for line in bucket.blob(n).download_as_text().splitlines()]
    assert sorted(r["path"] for r in results) == sorted(f"gs://{bucket_name}/photos/{p.name}" for p in photos)
    assert [e["path"] for e in errors] == [f"gs://{bucket_name}/photos/broken.jpg"]


def test_dataflow_pipeline_is_built_without_submitting(gcs):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import GoogleCloudOptions, StandardOptions

    from scoring import pipeline
    from scoring.handler import RuntimeModelHandler
    from training.evaluation.score import pipeline_options

    bucket = gcs.removeprefix("gs://").split("/")[0]  # the options' checks of temp_location reach the emulator
    runner, options = pipeline_options(["--runner", "DataflowRunner", "--project", "my-project", "--region",
                                        "europe-west1", "--temp_location", f"gs://{bucket}/tmp",
                                        "--requirements_file", "requirements-beam.txt"])
    assert runner == "DataflowRunner" and options.view_as(StandardOptions).runner == "DataflowRunner"
    assert options.view_as(GoogleCloudOptions).project == "my-project"
    p = beam.Pipeline(options=options)
    pipeline.build(p, "gs://my-bucket/photos/*.jpg", "gs://my-bucket/out/labels",
                   RuntimeModelHandler("gs://my-bucket/models", 1))
    proto = p.to_runner_api()  # what submission would send: every step serialises
    labels = {t.unique_name for t in proto.components.transforms.values()}
    assert {"Match", "Read", "Decode", "Infer", "Format", "Write", "WriteErrors"} <= labels
