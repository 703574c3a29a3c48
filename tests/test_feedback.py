"""The prediction log, POST /feedback and `training feedback`, end to end against gunicorn."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image

import model_store
import prediction_log
from app import create_app
from tests.conftest import free_port, shared_photos, start_gunicorn, stop, synthetic_jpeg, wait_ready
from tests.test_reliability import _metric
from training.__main__ import main


def _photos(n: int) -> list[bytes]:
    """n distinct photos: shared training photos, half cats half dogs, else synthetic JPEGs."""
    found = shared_photos("train", "cats", n // 2) + shared_photos("train", "dogs", n - n // 2)
    if len(found) == n:
        return [p.read_bytes() for p in found]
    return [synthetic_jpeg(500 + i, i % 2) for i in range(n)]


def _records(log: Path) -> list[dict]:
    return list(prediction_log.records(prediction_log.LocalStorage(log)))


def _other(label: str) -> str:
    return {"cats": "dogs", "dogs": "cats"}.get(label, "cats")


def test_log_feedback_graceful_stop_and_training_on_the_corrections(trained_store, tiny_data, tmp_path):
    """100 answers logged with their images (32 of them in flight at SIGTERM), 20 verdicts, then a
    dataset of exactly those 20 photos and a version trained on it."""
    photos = _photos(100)
    log = tmp_path / "log"
    port = free_port()
    proc = start_gunicorn(trained_store, port, extra_env={
        "PREDICTION_LOG": str(log), "PREDICTION_LOG_IMAGES": "1.0", "BATCH_MAX_SIZE": "2",
        "GUNICORN_GRACEFUL_TIMEOUT": "20"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)

        def predict(i: int, session: requests.Session | None = None):
            headers = {"Content-Type": "image/jpeg", **({"X-Request-ID": f"client-{i}"} if i < 10 else {})}
            r = (session or requests).post(f"{base}/predict", data=photos[i], headers=headers, timeout=60)
            return r.status_code, r.json(), r.headers.get("X-Request-ID")

        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(predict, range(68)))
        assert all(status == 200 for status, _, _ in first)
        for i, (_, body, header) in enumerate(first):
            assert body["request_id"] == header
            assert header == f"client-{i}" if i < 10 else len(header) == 32  # the client's id, else a uuid4
        # 20 verdicts: every fourth "neither", the others the class the model did not answer.
        verdicts = {i: "neither" if i % 4 == 0 else _other(first[i][1]["label"]) for i in range(20)}
        for i, label in verdicts.items():
            r = requests.post(f"{base}/feedback", json={"request_id": first[i][1]["request_id"], "index": 0,
                                                        "label": label}, timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["agreed"] is (label == "neither" and first[i][1]["abstained"])
        rid = first[0][1]["request_id"]
        assert requests.post(f"{base}/feedback", json={"request_id": rid, "label": "horses"}).status_code == 400
        for body, want in (({"request_id": rid, "index": -1, "label": "cats"}, 400),
                           ({"request_id": "never-seen", "label": "cats"}, 404),
                           ({"request_id": rid, "index": 1, "label": "cats"}, 404)):
            assert requests.post(f"{base}/feedback", json=body, timeout=10).status_code == want, body
        assert requests.post(f"{base}/feedback", data="label=cats", timeout=10).status_code == 400
        status = requests.get(f"{base}/v1/models/alexnet", timeout=10).json()
        assert sum(v["feedback"] for v in status["feedback"].values()) == 20
        assert _metric(base, "feedback_total{") == 20

        # 32 uploads in flight, then SIGTERM: every one answered 200 is in the log.
        sessions = [requests.Session() for _ in range(32)]
        for s in sessions:
            s.get(f"{base}/healthz", timeout=10)  # connection open before the burst
        ok_metric = 'http_requests_total{method="POST",route="/predict",status="200"}'
        done_before = _metric(base, ok_metric)
        with ThreadPoolExecutor(32) as pool:
            futures = [pool.submit(predict, 68 + k, sessions[k]) for k in range(32)]
            # One scrape says both that every upload is inside and how many are still in progress: with all
            # 32 request threads busy, a second scrape waits for one to finish, and the burst may be over by then.
            deadline = time.monotonic() + 60
            while True:
                text = requests.get(f"{base}/metrics", timeout=10).text
                in_flight = _metric(base, "http_requests_in_progress", text) - 1  # less the scrape itself
                inside = in_flight + _metric(base, ok_metric, text) - done_before
                if inside >= 32 or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            assert inside >= 32, f"only {inside} of 32 uploads reached the worker in 60 s"
            proc.send_signal(signal.SIGTERM)
            last = [f.result() for f in futures]
        proc.wait(40)
        assert proc.returncode == 0
        assert all(status == 200 for status, _, _ in last), [s for s, _, _ in last]
        assert in_flight >= 1, "nothing was in flight at SIGTERM: the graceful-stop half proved nothing"
    finally:
        stop(proc)

    records = _records(log)
    predictions = [r for r in records if r["type"] == "prediction"]
    feedback = [r for r in records if r["type"] == "feedback"]
    assert len(predictions) == 100 and len(feedback) == 20
    answers = {body["request_id"]: (i, body) for i, (_, body, _) in enumerate(first + last)}
    assert {r["request_id"] for r in predictions} == set(answers)
    for r in predictions:
        i, body = answers[r["request_id"]]
        with Image.open(io.BytesIO(photos[i])) as img:
            size = img.size
        assert r["sha256"] == hashlib.sha256(photos[i]).hexdigest() and (r["width"], r["height"]) == size
        assert r["label"] == body["label"] and r["probabilities"] == body["probabilities"]
        assert r["model_version"] == "1" and r["runtime"] and r["latency_ms"] > 0 and r["index"] == 0
        assert r["abstained"] == body["abstained"] and r["ood_score"] == body["ood_score"]
        assert (log / r["image"]).read_bytes() == photos[i]
    assert sorted((f["request_id"], f["label"]) for f in feedback) == sorted(
        (first[i][1]["request_id"], label) for i, label in verdicts.items())

    out = tmp_path / "corrected"
    assert main(["feedback", "--log", str(log), "--out", str(out)]) == 0
    expected: dict[str, set[str]] = {}
    for i, label in verdicts.items():
        expected.setdefault(label, set()).add(hashlib.sha256(photos[i]).hexdigest())
    negatives = tmp_path / "corrected-negatives"
    written = {label: {p.stem for p in ((negatives / "feedback") if label == "neither" else out / label).iterdir()}
               for label in expected}
    assert written == expected and sum(map(len, written.values())) == 20
    for label, shas in expected.items():
        folder = negatives / "feedback" if label == "neither" else out / label
        for sha in shas:
            assert hashlib.sha256(next(folder.glob(f"{sha}.*")).read_bytes()).hexdigest() == sha

    store = tmp_path / "store"
    assert main(["train", "--data-dir", str(tiny_data["train"]), "--data-dir", str(out), "--negatives",
                 str(negatives), "--negatives-holdout", "0.2", "--val-dir", str(tiny_data["val"]),
                 "--model-store", str(store), "--epochs", "1", "--batch-size", "8", "--verbose", "0",
                 "--no-export", "--no-report"]) == 0
    meta = model_store.read_metadata(store, 1)
    counts = meta["dataset"]["train_counts"]
    assert counts == {c: 20 + len(expected.get(c, ())) for c in ("cats", "dogs")}
    assert meta["dataset"]["negatives_trained"] == len(expected["neither"]) - round(len(expected["neither"]) * 0.2)


def _app(store, **config):
    return create_app({"MODEL_STORE": str(store), "MODEL_POLL_SECONDS": 0, **config})


def _dropped(client, reason: str) -> float:
    line = f'prediction_log_dropped_total{{reason="{reason}"}}'
    return sum(float(x.rsplit(" ", 1)[1]) for x in client.get("/metrics").text.splitlines() if x.startswith(line))


def test_an_unwritable_log_or_a_full_queue_never_touches_serving(trained_store, tmp_path, sample_jpeg, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = _app(trained_store, PREDICTION_LOG=str(blocker / "log"))  # mkdir under a file fails, even as root
    client = app.test_client()
    before = _dropped(client, "write_error")
    answers = [client.post("/predict", data=sample_jpeg, content_type="image/jpeg") for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    app.extensions["logbook"].close()
    assert _dropped(client, "write_error") - before == 5

    release = __import__("threading").Event()
    original = prediction_log.LogWriter._complete
    monkeypatch.setattr(prediction_log.LogWriter, "_complete",
                        lambda self, record, image: (release.wait(30), original(self, record, image))[1])
    app = _app(trained_store, PREDICTION_LOG=str(tmp_path / "log"), PREDICTION_LOG_QUEUE=1)
    client = app.test_client()
    before = _dropped(client, "queue_full")
    # The writer holds the first record (blocked), the queue holds one more: the other four are dropped.
    answers = [client.post("/predict", data=sample_jpeg, content_type="image/jpeg") for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 6
    assert _dropped(client, "queue_full") - before == 4
    release.set()
    app.extensions["logbook"].close()
    assert len(_records(tmp_path / "log")) == 2


def test_feedback_for_unknown_ids_scans_once_per_id(trained_store, tmp_path, sample_jpeg, monkeypatch):
    """A burst of feedback for ids the log does not hold costs one scan per id (scans run one at a time,
    and a miss is remembered), while a logged id is still found."""
    from concurrent.futures import ThreadPoolExecutor

    app = _app(trained_store, PREDICTION_LOG=str(tmp_path / "log"))
    client = app.test_client()
    served = client.post("/predict", data=sample_jpeg, content_type="image/jpeg").json
    deadline = time.monotonic() + 10
    writer = app.extensions["logbook"].writer
    while time.monotonic() < deadline and not prediction_log.find(
            prediction_log.LocalStorage(tmp_path / "log"), served["request_id"], 1 << 20,
            [writer.open_segment] if writer.open_segment else []):
        time.sleep(0.05)  # until the writer thread has written the record
    app.extensions["logbook"]._recent.clear()  # forgotten in memory (another worker's request, a restart)
    calls = []
    real = prediction_log.find
    monkeypatch.setattr(prediction_log, "find", lambda *a, **k: (calls.append(a[1]), time.sleep(0.05),
                                                                 real(*a, **k))[2])

    def feedback(request_id: str) -> int:
        body = {"request_id": request_id, "index": 0, "label": "cats"}
        return app.test_client().post("/feedback", json=body).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(feedback, ["no-such-id"] * 24 + ["another-missing-id"] * 8))
    assert codes == [404] * 32
    assert sorted(calls) == ["another-missing-id", "no-such-id"]  # one scan each, not 32
    assert feedback(served["request_id"]) == 200 and calls[-1] == served["request_id"]  # found by its scan
    app.extensions["logbook"].close()


def test_feedback_contract_without_a_log_and_request_ids(client, sample_jpeg):
    r = client.post("/feedback", json={"request_id": "x", "label": "cats"})
    assert r.status_code == 409 and "PREDICTION_LOG" in r.json["error"]
    given = client.post("/predict", data=sample_jpeg, content_type="image/jpeg", headers={"X-Request-ID": "abc.1:2"})
    assert given.headers["X-Request-ID"] == given.json["request_id"] == "abc.1:2"
    odd = client.post("/predict", data=sample_jpeg, content_type="image/jpeg", headers={"X-Request-ID": "a b/../c"})
    assert odd.json["request_id"] != "a b/../c" and odd.headers["X-Request-ID"] == odd.json["request_id"]
    files = [(io.BytesIO(sample_jpeg), "a.jpg"), (io.BytesIO(sample_jpeg), "b.jpg")]
    multi = client.post("/predict", data={"image": files})
    assert multi.json["request_id"] == multi.headers["X-Request-ID"] and len(multi.json["predictions"]) == 2


def test_gcs_log_rotates_uploads_and_feeds_training(trained_store, gcs, tmp_path, sample_jpeg):
    uri = gcs.replace("/prod", "/predlog")
    config = {"PREDICTION_LOG": uri, "PREDICTION_LOG_IMAGES": 1.0, "PREDICTION_LOG_SEGMENT_BYTES": 1}
    app = _app(trained_store, **config)
    client = app.test_client()
    rid = client.post("/predict", data=sample_jpeg, content_type="image/jpeg").json["request_id"]
    app.extensions["logbook"].close()  # every segment is uploaded at 1 byte: nothing is left staged
    # A fresh server (another instance, or after a restart) does not remember the id: it reads the log.
    other = _app(trained_store, **config)
    r = other.test_client().post("/feedback", json={"request_id": rid, "label": "neither"})
    assert r.status_code == 200, r.json
    other.extensions["logbook"].close()
    out = tmp_path / "out"
    assert main(["feedback", "--log", uri, "--out", str(out)]) == 0
    written = list((tmp_path / "out-negatives" / "feedback").iterdir())
    assert [p.read_bytes() for p in written] == [sample_jpeg]
    assert sorted(p.name for p in out.iterdir()) == ["cats", "dogs"]


def test_writer_rotates_by_size_and_time_and_keeps_the_byte_and_age_caps(tmp_path):
    import os
    import time

    storage = prediction_log.LocalStorage(tmp_path / "log")
    writer = prediction_log.LogWriter(storage, segment_bytes=300, max_bytes=10_000)
    for i in range(10):
        assert writer.submit({"type": "prediction", "request_id": f"r{i}", "index": 0, "pad": "x" * 100})
    writer.close()
    segments = sorted((tmp_path / "log" / "segments").iterdir())
    assert len(segments) >= 3 and all(p.stat().st_size < 300 + 200 for p in segments)
    assert [r["request_id"] for r in _records(tmp_path / "log")] == [f"r{i}" for i in range(10)]
    # Age cap: a file older than max_age_days goes; the byte cap then removes the oldest first.
    old = segments[0]
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    total = sum(p.stat().st_size for p in segments)
    prediction_log.LogWriter(storage, max_age_days=2, max_bytes=total - old.stat().st_size - 1).close()
    left = sorted((tmp_path / "log" / "segments").iterdir())
    assert old not in left and segments[1] not in left and left == segments[2:]


def test_capture_is_decided_by_the_image_hash():
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]
    picked = [s for s in shas if prediction_log.captured(s, 0.1)]
    assert 150 < len(picked) < 250 and picked == [s for s in shas if prediction_log.captured(s, 0.1)]
    assert not any(prediction_log.captured(s, 0.0) for s in shas) and all(prediction_log.captured(s, 1.0) for s in shas)
    assert json.loads(json.dumps(prediction_log.utc_now())).endswith("Z")


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_page_wrong_button_sends_feedback_and_shows_the_answer(trained_store, tmp_path, sample_jpeg):
    from tests.test_browser import uploaded

    log = tmp_path / "log"
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(sample_jpeg)
    port = free_port()
    proc = start_gunicorn(trained_store, port, extra_env={"PREDICTION_LOG": str(log)})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        with uploaded(base, [photo]) as (page, errors):
            page.locator(".wrong-button").click()
            page.locator(".wrong button[data-label=neither]").click()
            page.wait_for_function("() => document.querySelector('.wrong .answer').textContent.length > 0")
            answer = page.locator(".wrong .answer").inner_text()
            assert answer.startswith("Thanks: recorded as neither"), answer
            assert errors == []
    finally:
        assert stop(proc) == 0
    feedback = [r for r in _records(log) if r["type"] == "feedback"]
    assert [(r["label"], r["index"]) for r in feedback] == [("neither", 0)]


def test_page_has_no_wrong_button_without_a_log(client):
    page = client.get("/").get_data(as_text=True)
    assert 'data-feedback="off"' in page


def test_find_lists_the_store_once_while_the_writer_adds_segments(tmp_path):
    """The writer may start a segment between two listings of the store: find and records must not trip on it
    (a second listing that named a segment the first had not seen raised KeyError), nor on an open segment
    that was sealed away after the caller named it."""
    storage = prediction_log.LocalStorage(tmp_path / "log")
    record = {"type": "prediction", "request_id": "r1", "label": "cats"}
    storage.put("segments/20260101T000000-a-000001.jsonl", (json.dumps(record) + "\n").encode())
    listed = storage.entries

    def growing():  # each listing sees one more segment than the last
        entries = listed()
        storage.put(f"segments/20260101T00000{len(entries)}-b-000001.jsonl", b"{}\n")
        return entries

    storage.entries = growing
    gone = tmp_path / "open-segment-already-sealed.jsonl"
    assert prediction_log.find(storage, "r1", 1 << 20, [gone]) == [record]
    assert prediction_log.find(storage, "nobody", 1 << 20, [gone]) == []
    assert [r for r in prediction_log.records(storage, [gone]) if r] == [record]


@pytest.mark.parametrize("where", ["local", "gcs"])
def test_a_segment_the_retention_removes_mid_search_is_skipped(where, tmp_path, request):
    """find lists the store, then reads newest first: a segment deleted in between (the retention) is skipped on
    either storage, and read() says FileNotFoundError for it on both."""
    uri = request.getfixturevalue("gcs") + "/log" if where == "gcs" else str(tmp_path / "log")
    storage = prediction_log.open_storage(uri)
    record = {"type": "prediction", "request_id": "r1", "label": "dogs"}
    storage.put("segments/20260101T000000-a-000001.jsonl", (json.dumps(record) + "\n").encode())
    storage.put("segments/20260101T000009-a-000002.jsonl", b'{"type": "prediction", "request_id": "r2"}\n')
    listed = storage.entries

    def listing_then_retention():
        entries = listed()
        storage.delete("segments/20260101T000009-a-000002.jsonl")  # the newest, read first
        return entries

    storage.entries = listing_then_retention
    assert prediction_log.find(storage, "r1", 1 << 20) == [record]
    with pytest.raises(FileNotFoundError):
        storage.read("segments/20260101T000009-a-000002.jsonl")
