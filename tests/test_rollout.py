"""Rollouts: version labels, shadow and canary traffic, the gate, against the app and gunicorn."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

import model_store
from app import create_app
from app.config import from_env
from app.rollouts.gate import bucket
from model_store.versions import golden, version_labels
from settings import SettingsError
from tests.conftest import free_port, start_gunicorn, stop, wait_ready, worker_crashes
from tests.test_abstain import BLUE, RED, _colour_model, _jpeg, _serving_gauge_restored  # noqa: F401
from training.__main__ import main

IMAGES = [_jpeg(RED, i) for i in range(4)] + [_jpeg(BLUE, i) for i in range(4)]  # cats, then dogs


GOLDEN = {"cats": [_jpeg(RED, 100 + i) for i in range(24)], "dogs": [_jpeg(BLUE, 100 + i) for i in range(24)]}


def _publish(store, model, accuracy: float = 1.0, with_golden: bool = False, **meta) -> int:
    vdir = model_store.staging_dir(store)
    model.save(vdir / model_store.MODEL_FILE)
    meta = {"class_names": ["cats", "dogs"], "input_size": [227, 227], "preprocessing": model_store.PREPROCESSING_SPEC,
            "best_val_accuracy": accuracy, **meta}
    if with_golden:
        meta["golden"] = golden.write(vdir, ["cats", "dogs"], GOLDEN)
    (vdir / model_store.METADATA_FILE).write_text(json.dumps(meta))
    return model_store.publish(store, vdir)


def _swapped_colour_model():
    """The colour model with its two class outputs swapped: red is "dogs", blue is "cats"."""
    model = _colour_model()
    model.get_layer("predictions").set_weights([np.array([[-4, 4], [0, 0], [4, -4]], np.float32),
                                                np.zeros(2, np.float32)])
    return model


def _random_colour_model():
    """The colour model's shape with random weights, seeded so that it does not tell red from blue as the
    trained one does (checked, so the test cannot pass by luck)."""
    model = _colour_model()
    for seed in range(100):
        w = np.random.default_rng(seed).normal(0, 4, (3, 2)).astype(np.float32)
        model.get_layer("predictions").set_weights([w, np.zeros(2, np.float32)])
        red, blue = model.predict(np.stack([np.full((227, 227, 3), c, np.float32) for c in (RED, BLUE)]), verbose=0)
        if not (red.argmax() == 0 and blue.argmax() == 1):
            return model
    raise AssertionError("no disagreeing seed")


@pytest.fixture(scope="module")
def colour_versions(tmp_path_factory):
    """No golden sets (live evidence alone). Version 1: the colour model; 2: the same again; 3: random
    weights; 4: its outputs swapped; 5: abstaining on everything. Every one's metadata claims stable's
    accuracy."""
    store = tmp_path_factory.mktemp("rollout") / "store"
    for model in (_colour_model(), _colour_model(), _random_colour_model(), _swapped_colour_model()):
        _publish(store, model)
    _publish(store, _colour_model(), ood={"method": "msp", "threshold": 0.0})
    return store


@pytest.fixture(scope="module")
def golden_versions(tmp_path_factory):
    """As colour_versions, each version with its golden set, and 5: the colour model abstaining on every
    image (a threshold no answer is under)."""
    store = tmp_path_factory.mktemp("rollout-golden") / "store"
    for model in (_colour_model(), _colour_model(), _random_colour_model(), _swapped_colour_model()):
        _publish(store, model, with_golden=True)
    _publish(store, _colour_model(), with_golden=True, ood={"method": "msp", "threshold": 0.0})
    return store


def _app(store, labels: dict, **config):
    version_labels.write_labels(store, labels)
    return create_app({"MODEL_STORE": str(store), "MODEL_POLL_SECONDS": 0, "MODEL_VERSIONS": "labels",
                       "MODEL_RUNTIME": "tensorflow", **config})


def _predict(client, image: bytes, **headers):
    r = client.post("/predict", data=image, content_type="image/jpeg", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def test_canary_split_is_sticky_and_within_two_points(colour_versions):
    app = _app(colour_versions, {"stable": 1, "candidate": 2}, CANARY_PERCENT=10, PROMOTE_AFTER=0)
    client = app.test_client()
    versions = [_predict(client, IMAGES[i % 8], **{"X-Client-Id": f"client-{i}"})["model_version"]
                for i in range(5000)]
    share = versions.count("2") / len(versions)
    assert abs(share - 0.10) <= 0.02, share
    # Each client got the version its id falls on, every time.
    assert all(v == ("2" if bucket(f"client-{i}") < 10 else "1") for i, v in enumerate(versions))
    again = {_predict(client, IMAGES[0], **{"X-Client-Id": "client-7"})["model_version"] for _ in range(20)}
    assert again == {versions[7]}
    app.extensions["model_service"].stop()


def test_shadow_never_changes_a_response_and_a_random_candidate_is_rejected(colour_versions):
    plain = create_app({"MODEL_STORE": str(colour_versions), "MODEL_POLL_SECONDS": 0, "MODEL_VERSION": 1,
                        "MODEL_RUNTIME": "tensorflow"})
    want = [_predict(plain.test_client(), img) for img in IMAGES]
    window = 40
    app = _app(colour_versions, {"stable": 1, "candidate": 3}, SHADOW_PERCENT=100, GATE_WINDOW=window)
    client = app.test_client()
    rollouts = app.extensions["model_service"].rollouts
    answers, sent = [], 0
    while rollouts.candidate.state == "candidate" and sent < 10 * window:
        answers.append(_predict(client, IMAGES[sent % 8]))
        sent += 1
        time.sleep(0.01)  # gaps between requests, as real traffic has: shadow work runs in them
    for i, got in enumerate(answers):
        expected = want[i % 8]
        assert got["model_version"] == "1" and got["label"] == expected["label"]
        assert got["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    summary = client.get("/v1/models/alexnet").json["rollout"]["candidate"]
    assert summary["state"] == "rejected" and "disagreement" in summary["reason"], summary
    assert sent <= 20, sent  # the sequential test: a few dozen answers at most, not a full window
    # Rejected: no more shadow work, the model unloaded, stable keeps answering, no restart.
    shadowed = summary["requests"]["shadow"]
    assert _predict(client, IMAGES[0])["model_version"] == "1"
    time.sleep(0.2)
    assert client.get("/v1/models/alexnet").json["rollout"]["candidate"]["requests"]["shadow"] == shadowed
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'rollout_state{state="rejected",version="3"} 1.0' in metrics
    assert client.post("/predict?version=3", data=IMAGES[0], content_type="image/jpeg").status_code == 404
    app.extensions["model_service"].stop()


def _clients(client, n: int, start: int = 0) -> list[dict]:
    """n requests from n different clients, red and blue photos in turn."""
    return [_predict(client, IMAGES[(i % 2) * 4 + i % 4], **{"X-Client-Id": f"client-{i}"})
            for i in range(start, start + n)]


@pytest.mark.parametrize(("version", "why"), [(3, "preflight: "), (4, "preflight: "), (5, "preflight: ")])
def test_preflight_rejects_a_broken_candidate_before_any_user_sees_it(golden_versions, version, why):
    """Random weights, swapped outputs, abstaining on everything: each metadata claims stable's accuracy, and
    each is turned away on the golden set, at load, with the default gate."""
    app = _app(golden_versions, {"stable": 1, "candidate": version}, CANARY_PERCENT=10)
    client = app.test_client()
    cand = client.get("/v1/models/alexnet").json["rollout"]["candidate"]
    assert cand["state"] == "rejected" and cand["reason"].startswith(why), cand
    assert cand["preflight"]["photos"] == 48 and cand["preflight"]["passed"] is False
    assert cand["preflight"]["stable_accuracy"] == 1.0
    assert {a["model_version"] for a in _clients(client, 100)} == {"1"}
    assert client.get("/v1/models/alexnet").json["rollout"]["candidate"]["requests"] == {"shadow": 0, "canary": 0}
    status = client.get(f"/v1/models/alexnet/versions/{version}").json["model_version_status"][0]
    assert status["state"] == "END" and status["status"]["error_message"].startswith(why)
    assert 'rollout_rejected_total{stage="preflight"}' in client.get("/metrics").get_data(as_text=True)
    app.extensions["model_service"].stop()


def test_a_good_candidate_passes_preflight_takes_its_canary_share_and_is_promoted(golden_versions):
    app = _app(golden_versions, {"stable": 1, "candidate": 2}, CANARY_PERCENT=10, PROMOTE_AFTER=30)
    client = app.test_client()
    service = app.extensions["model_service"]
    cand = client.get("/v1/models/alexnet").json["rollout"]["candidate"]
    assert cand["state"] == "candidate" and cand["preflight"]["passed"] is True
    assert cand["preflight"]["agreement"] == 1.0 and cand["preflight"]["accuracy"] == 1.0
    answers, sent = [], 0
    while service.predictor.version == 1 and sent < 2000:
        answers += _clients(client, 50, sent)
        sent += 50
        time.sleep(0.05)  # the canary's comparisons run on stable in the gaps
    assert service.predictor.version == 2, client.get("/v1/models/alexnet").json["rollout"]
    served = [a["model_version"] for a in answers]
    # Until the promotion, the tenth of the clients whose id falls in the canary share got the candidate,
    # and only they did.
    promoted_at = max(i for i, v in enumerate(served) if v == "1") + 1
    assert promoted_at >= 200
    assert all(v == ("2" if bucket(f"client-{i}") < 10 else "1") for i, v in enumerate(served[:promoted_at]))
    evidence = service.rollouts.candidate.summary()["evidence"]
    assert all(e["state"] == "evidence in" for e in evidence.values()), evidence
    assert service.rollouts.candidate.compared >= 20
    service.stop()


@pytest.mark.parametrize("version", [3, 4])
def test_without_a_golden_set_canary_comparisons_reject_a_broken_candidate(colour_versions, version):
    """No golden set: the canary's requests, also run on stable, reject random weights or swapped outputs
    within 20 candidate answers; every request is answered, stable throughout."""
    app = _app(colour_versions, {"stable": 1, "candidate": version}, CANARY_PERCENT=10)
    client = app.test_client()
    rollouts = app.extensions["model_service"].rollouts
    assert rollouts.candidate.state == "candidate" and "skipped" in rollouts.candidate.preflight
    answers, sent = [], 0
    while rollouts.candidate.state == "candidate" and sent < 2000:
        answers += _clients(client, 20, sent)
        sent += 20
        time.sleep(0.02)
    cand = client.get("/v1/models/alexnet").json["rollout"]["candidate"]
    assert cand["state"] == "rejected" and "disagreement" in cand["reason"], cand
    assert cand["requests"]["canary"] <= 20, cand
    assert sum(a["model_version"] == str(version) for a in answers) <= 20
    after = _clients(client, 50, sent)
    assert {a["model_version"] for a in after} == {"1"}
    app.extensions["model_service"].stop()


def test_the_answer_that_rejects_a_candidate_is_stables(colour_versions):
    """An abstain-all candidate, no golden set: the canary answer whose evidence rejects it, and any after,
    are answered by stable, so users saw one fewer of its answers than the gate judged."""
    app = _app(colour_versions, {"stable": 1, "candidate": 5}, CANARY_PERCENT=10)
    client = app.test_client()
    rollouts = app.extensions["model_service"].rollouts
    answers, sent = [], 0
    while rollouts.candidate.state == "candidate" and sent < 2000:
        answers += _clients(client, 20, sent)
        sent += 20
    cand = client.get("/v1/models/alexnet").json["rollout"]["candidate"]
    assert cand["state"] == "rejected" and "abstain rate" in cand["reason"], cand
    shown = sum(a["model_version"] == "5" for a in answers)
    assert shown == cand["requests"]["canary"] - 1 and shown <= 10, (shown, cand)
    app.extensions["model_service"].stop()


def test_gate_bounds_cannot_switch_the_protection_off():
    for name, value in (("GATE_TOLERANCE", "1"), ("GATE_MIN_AGREEMENT", "0"), ("GATE_MAX_ABSTAIN_INCREASE", "1"),
                        ("GATE_CANARY_COMPARE_PERCENT", "0")):
        with pytest.raises(SettingsError, match=name):
            from_env({name: value})


def test_sync_waits_for_a_promotion_in_flight(colour_versions):
    """Relabelling while a request thread promotes the candidate: sync() waits for the promotion, then
    acts, instead of unloading the candidate under it."""
    app = _app(colour_versions, {"stable": 1, "candidate": 2}, PROMOTE_AFTER=0)
    service = app.extensions["model_service"]
    rollouts, cand = service.rollouts, service.rollouts.candidate
    in_swap, release, swap = threading.Event(), threading.Event(), service.swap

    def slow_swap(predictor):
        in_swap.set()
        release.wait(5)
        swap(predictor)

    service.swap = slow_swap
    promoting = threading.Thread(target=rollouts.settle, args=(cand, "promoted"))
    promoting.start()
    assert in_swap.wait(5)
    relabel = threading.Thread(target=rollouts.sync, args=(None,))
    relabel.start()
    relabel.join(0.3)
    assert relabel.is_alive()  # waiting for the promotion's lock, not unloading the candidate under it
    release.set()
    promoting.join(5)
    relabel.join(5)
    assert service.predictor.version == 2 and rollouts.candidate is None
    service.stop()


def test_promote_after_answers_within_bounds(colour_versions):
    app = _app(colour_versions, {"stable": 1, "candidate": 2}, SHADOW_PERCENT=100, GATE_WINDOW=20, PROMOTE_AFTER=30)
    client = app.test_client()
    service = app.extensions["model_service"]
    for i in range(200):
        _predict(client, IMAGES[i % 8])
        if service.predictor.version == 2:
            break
        time.sleep(0.01)
    assert service.predictor.version == 2 and service.rollouts.candidate.state == "promoted"
    assert _predict(client, IMAGES[0])["model_version"] == "2"
    service.stop()


def test_versioned_routes_and_label_cli(colour_versions, capsys):
    app = _app(colour_versions, {"stable": 1, "candidate": 2})
    client = app.test_client()
    import base64

    b64 = base64.b64encode(IMAGES[0]).decode()
    r = client.post("/v1/models/alexnet/labels/candidate:predict", json={"instances": [{"b64": b64}]})
    assert r.status_code == 200 and r.headers["X-Model-Version"] == "2"
    r = client.post("/v1/models/alexnet/versions/1:predict", json={"instances": [{"b64": b64}]})
    assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"
    assert client.post("/v1/models/alexnet/labels/beta:predict", json={"instances": [{"b64": b64}]}).status_code == 404
    v2 = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}]}
    assert client.post("/v2/models/alexnet/versions/2/infer", json=v2).json["model_version"] == "2"
    assert client.post("/v2/models/alexnet/versions/3/infer", json=v2).status_code == 404
    assert _predict(client, IMAGES[0])["model_version"] == "1"
    assert client.post("/predict?version=2", data=IMAGES[0], content_type="image/jpeg").json["model_version"] == "2"
    assert client.post("/predict?version=9", data=IMAGES[0], content_type="image/jpeg").status_code == 404
    # A versioned route's metadata is that version's, not stable's.
    for version in ("1", "2"):
        meta = client.get(f"/v1/models/alexnet/versions/{version}/metadata").json
        assert meta["model_spec"]["version"] == version
        assert client.get(f"/v2/models/alexnet/versions/{version}").json["versions"] == [version]
    assert client.get("/v1/models/alexnet/metadata").json["model_spec"]["version"] == "1"
    assert client.get("/v1/models/alexnet/versions/3/metadata").status_code == 404
    assert client.get("/v2/models/alexnet/versions/3").status_code == 404
    app.extensions["model_service"].stop()

    assert main(["label", "--model-store", str(colour_versions), "stable=2"]) == 0  # promotes: candidate dropped
    assert version_labels.read_labels(colour_versions) == {"stable": 2}
    with pytest.raises(SystemExit, match="not in"):
        main(["label", "--model-store", str(colour_versions), "candidate=9"])
    with pytest.raises(SystemExit, match="stable=3"):
        main(["label", "--model-store", str(colour_versions), "stable"])


def test_labels_flipped_under_32_clients_give_no_errors(colour_versions):
    version_labels.write_labels(colour_versions, {"stable": 1})
    port = free_port()
    proc = start_gunicorn(colour_versions, port, extra_env={
        "MODEL_VERSIONS": "labels", "MODEL_POLL_SECONDS": "0.2", "MODEL_RUNTIME": "tensorflow"})
    base = f"http://127.0.0.1:{port}"
    results, done = [], threading.Event()

    def client(k: int) -> None:
        with requests.Session() as s:
            while not done.is_set():
                try:
                    r = s.post(f"{base}/predict", data=IMAGES[k % 8], headers={"Content-Type": "image/jpeg"},
                               timeout=60)
                    results.append((r.status_code, r.json().get("model_version")))
                except requests.RequestException as exc:
                    results.append(("transport", str(exc)))

    try:
        wait_ready(base, proc)
        with ThreadPoolExecutor(32) as pool:
            for k in range(32):
                pool.submit(client, k)
            for stable in (2, 1, 2, 1):
                time.sleep(1.5)
                assert main(["label", "--model-store", str(colour_versions), f"stable={stable}"]) == 0
            time.sleep(1.5)
            done.set()
    finally:
        done.set()
        stop(proc)
    assert results and all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:5]
    assert {v for _, v in results} == {"1", "2"}
    assert not worker_crashes(proc)  # versions swapped back and forth, then SIGTERM: a clean exit


def test_labels_in_a_gcs_store(colour_versions, gcs, tmp_path):
    for v in (1, 3):
        model_store.upload_version(colour_versions, v, gcs)
    assert main(["label", "--model-store", gcs, "stable=1", "candidate=2"]) == 0  # 3 uploaded as 2
    assert version_labels.read_labels(gcs) == {"stable": 1, "candidate": 2}
    app = create_app({"MODEL_STORE": gcs, "MODEL_CACHE_DIR": str(tmp_path / "cache"), "MODEL_POLL_SECONDS": 0,
                      "MODEL_VERSIONS": "labels", "MODEL_RUNTIME": "tensorflow"})
    client = app.test_client()
    status = client.get("/v1/models/alexnet").json["rollout"]
    assert status["stable"] == "1" and status["candidate"]["version"] == "2"
    assert status["candidate"]["state"] == "candidate"
    assert client.post("/predict?version=2", data=IMAGES[0], content_type="image/jpeg").json["model_version"] == "2"
    app.extensions["model_service"].stop()


def test_p99_is_judged_against_stable_on_the_same_host():
    """Slower than GATE_MAX_P99_MS rejects a candidate only when it is also slower than stable meanwhile
    (a busy host slows both)."""
    from app.rollouts.gate import Bounds, Candidate

    for stable_p99, state in ((90.0, "rejected"), (180.0, "candidate"), (None, "rejected")):
        cand = Candidate(9, None, None, Bounds(window=5, max_p99_ms=100.0))
        cand.stable_p99 = lambda v=stable_p99: v
        for _ in range(5):
            got = cand.record("canary", False, 200.0)
        assert got == state, (stable_p99, cand.reason)
        assert state == "candidate" or "p99 latency 200 ms" in cand.reason
