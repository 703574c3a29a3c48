"""The trust boundary: API keys and scopes, the keys file and its CLI, the fair share, feedback that cannot be
poisoned."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
from pathlib import Path

import pytest

import api_keys
from api_keys.__main__ import main as keys_cli
from app import ModelLoadError, create_app
from app.access.fair_share import FairShare, RateLimit
from tests.conftest import free_port, shared_photos, start_gunicorn, stop, synthetic_jpeg, wait_ready
from training.__main__ import main as training_cli

KEYS = {"predictor": "k-predict-only", "reporter": "k-predict-feedback", "curator": "k-curate",
        "ops": "k-operator"}
SCOPES = {"predictor": ["predict"], "reporter": ["predict", "feedback"], "curator": ["predict", "feedback", "curate"],
          "ops": ["operator"]}


def _keys_file(path: Path, keys: dict[str, str] = KEYS, scopes: dict[str, list[str]] = SCOPES,
               extra: dict | None = None) -> Path:
    entries = {name: {"sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": scopes[name],
                      **(extra or {}).get(name, {})} for name, key in keys.items()}
    path.write_text(json.dumps(entries))
    return path


def _app(store, keys_file, **config):
    return create_app({"MODEL_STORE": str(store), "MODEL_POLL_SECONDS": 0, "API_KEYS_FILE": str(keys_file),
                       **config})


def _bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def _metric(client, line: str) -> float:
    return sum(float(x.rsplit(" ", 1)[1]) for x in client.get("/metrics", headers=_bearer("ops")).text.splitlines()
               if x.startswith(line))


def test_no_key_or_a_wrong_key_is_401_a_key_without_the_scope_403_probes_open(trained_store, tmp_path,
                                                                              sample_jpeg):
    client = _app(trained_store, _keys_file(tmp_path / "keys.json"),
                  PREDICTION_LOG=str(tmp_path / "log")).test_client()
    b64 = __import__("base64").b64encode(sample_jpeg).decode()
    routes = [("/predict", {"data": sample_jpeg, "content_type": "image/jpeg"}),
              ("/v1/models/alexnet:predict", {"json": {"instances": [{"b64": b64}]}}),
              ("/v2/models/alexnet/infer", {"json": {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                                                 "data": [b64]}]}})]
    for path, body in routes:
        for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"X-API-Key": "k-predict-onl"}):
            r = client.post(path, headers=headers, **body)
            assert r.status_code == 401, (path, headers, r.get_data(as_text=True))
            assert "error" in r.get_json()
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        for headers in (_bearer("predictor"), {"X-API-Key": KEYS["predictor"]}):
            r = client.post(path, headers=headers, **body)
            assert r.status_code == 200, (path, r.get_data(as_text=True))
        assert client.post(path, headers=_bearer("ops"), **body).status_code == 403  # operator, not predict
    rid = client.post("/predict", data=sample_jpeg, content_type="image/jpeg",
                      headers=_bearer("reporter")).get_json()["request_id"]
    r = client.post("/feedback", json={"request_id": rid, "label": "cats"}, headers=_bearer("predictor"))
    assert r.status_code == 403 and "feedback" in r.get_json()["error"]
    r = client.post("/feedback", json={"request_id": rid, "label": "cats"}, headers=_bearer("reporter"))
    assert r.status_code == 200 and r.get_json()["trusted"] is False
    for probe in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/v2", "/openapi.json", "/"):
        assert client.get(probe).status_code == 200, probe
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=_bearer("predictor")).status_code == 403
    metrics = client.get("/metrics", headers=_bearer("ops")).get_data(as_text=True)
    assert 'api_client_requests_total{client="predictor",outcome="accepted"}' in metrics
    assert 'api_client_requests_total{client="ops",outcome="forbidden"}' in metrics
    assert not any(key in metrics for key in KEYS.values())  # names, never keys
    client.application.extensions["logbook"].close()
    logged = [json.loads(line) for f in sorted((tmp_path / "log").rglob("*.jsonl")) for line in f.read_text().split()]
    predictions = [r for r in logged if r.get("type") != "feedback"]
    assert predictions and {r["client"] for r in predictions} == {"predictor", "reporter"}
    assert not any(key in json.dumps(logged) for key in KEYS.values())


def test_anonymous_scopes_open_the_page_and_predictions_only(trained_store, tmp_path, sample_jpeg):
    client = _app(trained_store, _keys_file(tmp_path / "keys.json"), ANONYMOUS_SCOPES="predict").test_client()
    assert client.post("/predict", data=sample_jpeg, content_type="image/jpeg").status_code == 200
    assert client.post("/predict", data=sample_jpeg, content_type="image/jpeg",
                       headers={"X-API-Key": "wrong"}).status_code == 401  # a wrong key is never anonymous
    assert client.get("/metrics").status_code == 401
    assert "api_key" not in client.get("/").get_data(as_text=True)  # no key field when uploads are anonymous
    keyed = _app(trained_store, _keys_file(tmp_path / "keys.json")).test_client()
    assert 'name="api_key"' in keyed.get("/").get_data(as_text=True)
    r = keyed.post("/", data={"image": (__import__("io").BytesIO(sample_jpeg), "a.jpg"), "api_key": KEYS["predictor"]},
                   content_type="multipart/form-data")
    assert r.status_code == 200  # the page without JavaScript sends the key as a form field
    with pytest.raises(ModelLoadError, match="ANONYMOUS_SCOPES"):
        _app(trained_store, _keys_file(tmp_path / "keys.json"), ANONYMOUS_SCOPES="everything")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("{not json", "not JSON"),
    (json.dumps({"a": {"sha256": "abc123", "scopes": ["predict"]}}), "64 lowercase hex"),
    (json.dumps({"a": {"sha256": "0" * 64, "scopes": ["predict", "admin"]}}), "unknown scope 'admin'"),
    (json.dumps({"a": {"sha256": "0" * 64, "scopes": []}}), "non-empty list"),
    (json.dumps({"a": {"sha256": "0" * 64, "scopes": ["predict"], "key": "clear"}}), "unknown fields"),
    (json.dumps(["a"]), "JSON object"),
])
def test_a_bad_keys_file_stops_the_server_at_start(trained_store, tmp_path, content, message):
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ModelLoadError, match=message) as caught:
        _app(trained_store, path)
    assert str(path) in str(caught.value)


def test_the_keys_file_reloads_and_a_bad_reload_keeps_the_last_good_keys(trained_store, tmp_path, sample_jpeg):
    path = _keys_file(tmp_path / "keys.json")
    client = _app(trained_store, path, API_KEYS_RELOAD_SECONDS=0).test_client()
    new = {**KEYS, "late": "k-late"}
    _keys_file(path, new, {**SCOPES, "late": ["predict"]})
    r = client.post("/predict", data=sample_jpeg, content_type="image/jpeg", headers={"X-API-Key": "k-late"})
    assert r.status_code == 200
    errors = _metric(client, 'api_keys_reloads_total{result="error"}')
    path.write_text('{"late": {"sha256": "not hex", "scopes": ["predict"]}}')
    os.utime(path, ns=(1, 1))  # a different stamp even on a coarse clock
    for key in ("k-late", KEYS["predictor"]):
        r = client.post("/predict", data=sample_jpeg, content_type="image/jpeg", headers={"X-API-Key": key})
        assert r.status_code == 200, r.get_data(as_text=True)
    assert _metric(client, 'api_keys_reloads_total{result="error"}') == errors + 1
    _keys_file(path, {"ops": KEYS["ops"]}, SCOPES)  # revoked: every key but ops
    r = client.post("/predict", data=sample_jpeg, content_type="image/jpeg", headers={"X-API-Key": "k-late"})
    assert r.status_code == 401


def test_the_cli_creates_lists_and_revokes_keys_and_stores_only_their_hash(tmp_path, capsys):
    path = tmp_path / "keys.json"
    assert keys_cli(["--file", str(path), "create", "alice", "--scopes", "predict,feedback",
                     "--max-in-flight", "4"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[0].strip()
    assert len(key) >= 40
    text = path.read_text()
    assert key not in text and api_keys.digest(key) in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    found = api_keys.match(api_keys.load(path), key)
    assert found is not None and found.name == "alice" and found.scopes == {"predict", "feedback"}
    assert found.max_in_flight == 4
    assert api_keys.match(api_keys.load(path), key + "x") is None
    assert keys_cli(["--file", str(path), "create", "bob", "--scopes", "curate"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit, match="exists"):  # names are unique
        keys_cli(["--file", str(path), "create", "bob", "--scopes", "predict"])
    with pytest.raises(SystemExit, match="unknown scope 'root'"):
        keys_cli(["--file", str(path), "create", "carol", "--scopes", "root"])
    capsys.readouterr()
    assert keys_cli(["--file", str(path), "list"]) == 0
    listed = capsys.readouterr().out
    assert "alice" in listed and "bob" in listed and key not in listed
    assert keys_cli(["--file", str(path), "revoke", "alice"]) == 0
    assert set(api_keys.load(path)) == {"bob"}
    with pytest.raises(SystemExit, match="no key named"):
        keys_cli(["--file", str(path), "revoke", "alice"])


def test_fair_share_lets_one_client_use_everything_and_holds_a_flooder_to_its_share():
    now = [0.0]
    share = FairShare(8, active_seconds=2.0, clock=lambda: now[0])
    assert all(share.admit("flooder") for _ in range(20))  # alone: no share to keep
    assert share.admit("polite")  # a client with nothing in flight is always served
    assert not share.admit("flooder")  # over its share (8 // 2) while the server is full
    share.release("polite")
    assert not share.admit("flooder")  # polite is still active between its sequential requests
    now[0] += 2.5
    assert share.admit("flooder")  # polite went idle: the flooder may use everything again
    assert share.admit("polite") and share.admit("polite")  # polite holds 2 of its share of 4
    for _ in range(21):
        share.release("flooder")
    assert share.in_flight() == {"polite": 2}
    limited = FairShare(0)
    assert limited.admit("a", limit=2) and limited.admit("a", limit=2) and not limited.admit("a", limit=2)


def test_rate_limit_refills_over_time():
    now = [0.0]
    rate = RateLimit(6, clock=lambda: now[0])
    assert [rate.take("a") for _ in range(6)] == [0.0] * 6
    wait = rate.take("a")
    assert wait == pytest.approx(10.0)
    assert rate.take("b") == 0.0  # per client
    now[0] += 10.0
    assert rate.take("a") == 0.0
    assert rate.take("a", per_minute=60) > 0  # a key's own rate


def test_a_flooder_gets_429_with_retry_after_while_a_polite_key_is_served(trained_store, tmp_path, sample_jpeg):
    path = _keys_file(tmp_path / "keys.json", extra={"reporter": {"max_in_flight": 1, "feedback_per_minute": 2}})
    app = _app(trained_store, path, FAIR_SHARE_SLOTS=4, PREDICTION_LOG=str(tmp_path / "log"))
    client, share = app.test_client(), app.extensions["fair_share"]
    for _ in range(4):
        assert share.admit("curator")  # the flooder's requests in flight
    r = client.post("/predict", data=sample_jpeg, content_type="image/jpeg", headers=_bearer("predictor"))
    assert r.status_code == 200
    r = client.post("/predict", data=sample_jpeg, content_type="image/jpeg", headers=_bearer("curator"))
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and "error" in r.get_json()
    assert _metric(client, 'api_client_requests_total{client="curator",outcome="throttled"}') == 1
    for _ in range(4):
        share.release("curator")
    assert share.in_flight() == {}  # the 429 and the answered request gave their slots back
    assert share.admit("reporter")  # its own limit of one request at a time, even on an idle server
    r = client.post("/predict", data=sample_jpeg, content_type="image/jpeg", headers=_bearer("reporter"))
    assert r.status_code == 429
    share.release("reporter")
    rid = client.post("/predict", data=sample_jpeg, content_type="image/jpeg",
                      headers=_bearer("reporter")).get_json()["request_id"]
    codes = [client.post("/feedback", json={"request_id": rid, "label": "dogs"}, headers=_bearer("reporter"))
             for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert int(codes[-1].headers["Retry-After"]) >= 1
    app.extensions["logbook"].close()


def _dogs(n: int) -> list[bytes]:
    found = shared_photos("train", "dogs", n)
    return [p.read_bytes() for p in found] if len(found) == n else [synthetic_jpeg(900 + i, 1) for i in range(n)]


def _export(log: Path, out: Path, *flags: str) -> set[str]:
    assert training_cli(["feedback", "--log", str(log), "--out", str(out), *flags]) == 0
    return {p.stem for p in (out / "cats").iterdir()}


def test_dogs_labelled_cats_by_one_feedback_key_never_reach_the_export(trained_store, tmp_path, capsys):
    keys = {**KEYS, "reporter2": "k-r2", "reporter3": "k-r3"}
    path = _keys_file(tmp_path / "keys.json", keys, {**SCOPES, "reporter2": ["predict", "feedback"],
                                                     "reporter3": ["predict", "feedback"]})
    log = tmp_path / "log"
    app = _app(trained_store, path, PREDICTION_LOG=str(log), PREDICTION_LOG_IMAGES=1.0, FEEDBACK_PER_MINUTE=1000)
    client = app.test_client()
    photos = _dogs(40)
    hashes = [hashlib.sha256(p).hexdigest() for p in photos]

    def label_cats(i: int, key: str) -> None:
        r = client.post("/predict", data=photos[i], content_type="image/jpeg", headers={"X-API-Key": key})
        assert r.status_code == 200
        r = client.post("/feedback", json={"request_id": r.get_json()["request_id"], "label": "cats"},
                        headers={"X-API-Key": key})
        assert r.status_code == 200

    for i in range(30):  # one feedback key, thirty times
        label_cats(i, KEYS["reporter"])
    for i in range(30, 35):  # two keys agree: fewer than the quorum of three
        label_cats(i, KEYS["reporter"])
        label_cats(i, "k-r2")
    for i in range(35, 38):  # three distinct keys agree on the same photo
        for key in (KEYS["reporter"], "k-r2", "k-r3"):
            label_cats(i, key)
    for i in range(38, 40):  # a curate key
        label_cats(i, KEYS["curator"])
    app.extensions["logbook"].close()
    capsys.readouterr()
    exported = _export(log, tmp_path / "out")
    report = capsys.readouterr().out
    assert exported == set(hashes[35:40])
    assert "key reporter: 38 feedback" in report and "review queue: 35 photos" in report, report
    assert _export(log, tmp_path / "all", "--include-review") == set(hashes)  # on an operator's word

    curated = tmp_path / "curated-log"  # the same thirty corrections from a curate key are training data
    app = _app(trained_store, path, PREDICTION_LOG=str(curated), PREDICTION_LOG_IMAGES=1.0, FEEDBACK_PER_MINUTE=1000)
    client = app.test_client()
    for i in range(30):
        label_cats(i, KEYS["curator"])
    app.extensions["logbook"].close()
    assert _export(curated, tmp_path / "out-curated") == set(hashes[:30])


def test_openapi_declares_the_key_schemes_and_which_routes_need_them(trained_store, tmp_path):
    spec = _app(trained_store, _keys_file(tmp_path / "keys.json")).test_client().get("/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["apiKey"]["name"] == "X-API-Key"
    predict = spec["paths"]["/predict"]["post"]
    assert {"bearer": []} in predict["security"] and {"401", "403", "429"} <= set(predict["responses"])
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_gunicorn_with_a_bad_keys_file_exits_with_one_clear_line(trained_store, tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"a": {"sha256": "0" * 63, "scopes": ["predict"]}}))
    proc = start_gunicorn(trained_store, free_port(), output=subprocess.PIPE, extra_env={"API_KEYS_FILE": str(path)})
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    lines = [line for line in out.splitlines() if line.startswith("alexnet-service: cannot start:")]
    assert len(lines) == 1 and "64 lowercase hex" in lines[0] and str(path) in lines[0], out


def test_a_refused_upload_keeps_its_keep_alive_connection(trained_store, tmp_path):
    """gunicorn drains at most 64 KiB of an unread body; a refusal reads the rest so the next request works."""
    port = free_port()
    proc = start_gunicorn(trained_store, port, extra_env={"API_KEYS_FILE": str(_keys_file(tmp_path / "keys.json"))})
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        body = synthetic_jpeg(7, 0, size=(1200, 900))
        assert len(body) > 256 << 10
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for key, want in (("wrong", 401), (KEYS["ops"], 403), ("wrong", 401), (KEYS["predictor"], 200)):
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/jpeg", "X-API-Key": key})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == want
        conn.close()
    finally:
        stop(proc)
