"""Every endpoint through the Flask test client, and served output == in-memory model output."""

import base64
import io
import json
import re

import numpy as np
import pydantic
import pytest
from openapi_spec_validator import validate

import model_store
import runtimes
from app.http.contract import datamodels, tfserving_datamodels, v2_datamodels
from tests import images


def _multipart(*named: tuple[str, bytes]):
    return {"image": [(io.BytesIO(data), name) for name, data in named]}


def _check_prediction(body: dict):
    assert set(body) >= {"label", "confidence", "probabilities", "model_version"}
    assert body["label"] in ("cats", "dogs")
    assert body["model_version"] == "1"
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_multipart_single(client, sample_jpeg):
    resp = client.post("/predict", data=_multipart(("dog.jpg", sample_jpeg)))
    assert resp.status_code == 200, resp.json
    _check_prediction(resp.json)


def test_predict_multipart_many_keeps_order_and_names(client, sample_jpeg):
    other = images.encode(images.gradient(), "PNG")
    resp = client.post("/predict", data=_multipart(("a.jpg", sample_jpeg), ("b.png", other), ("c.jpg", sample_jpeg)))
    assert resp.status_code == 200
    preds = resp.json["predictions"]
    assert [p["filename"] for p in preds] == ["a.jpg", "b.png", "c.jpg"]
    for p in preds:
        _check_prediction(p)
    assert preds[0]["probabilities"] == pytest.approx(preds[2]["probabilities"], abs=1e-6)


def test_predict_raw_body_and_json_base64_agree(client, sample_jpeg):
    raw = client.post("/predict", data=sample_jpeg, content_type="image/jpeg").json
    js = client.post("/predict", json={"image": base64.b64encode(sample_jpeg).decode()}).json
    form = client.post("/predict", data=_multipart(("x.jpg", sample_jpeg))).json
    _check_prediction(raw)
    assert raw["probabilities"] == pytest.approx(js["probabilities"], abs=1e-6)
    assert raw["probabilities"] == pytest.approx(form["probabilities"], abs=1e-6)


def test_served_output_equals_in_memory_model(app, client, trained_store, tiny_data):
    # The runtime auto chose (tests/test_runtimes.py checks each runtime by name).
    served_by = app.extensions["model_service"].predictor.runtime_name
    vdir = model_store.version_dir(trained_store, 1)
    model = runtimes.load(vdir, model_store.read_metadata(trained_store, 1), served_by)
    files = sorted((tiny_data["val"] / "cats").iterdir())[:2] + sorted((tiny_data["val"] / "dogs").iterdir())[:2]
    for path in files:
        data = path.read_bytes()
        expected = model.predict(model_store.preprocess_image(data, np.uint8)[None])[0]
        served = client.post("/predict", data=_multipart((path.name, data))).json["probabilities"]
        np.testing.assert_allclose([served["cats"], served["dogs"]], expected, atol=1e-6)


@pytest.mark.parametrize("name", sorted(images.valid_images()))
def test_every_supported_format_is_classified(client, name):
    resp = client.post("/predict", data=_multipart((f"{name}.img", images.valid_images()[name])))
    assert resp.status_code == 200, resp.json
    _check_prediction(resp.json)


def test_tf_serving_api(client, sample_jpeg):
    b64 = base64.b64encode(sample_jpeg).decode()
    resp = client.post("/v1/models/alexnet:predict", json={"instances": [{"b64": b64}, {"image_bytes": {"b64": b64}}]})
    assert resp.status_code == 200, resp.json
    preds = resp.json["predictions"]
    assert len(preds) == 2 and len(preds[0]) == 2
    assert sum(preds[0]) == pytest.approx(1.0, abs=1e-5)
    assert preds[0] == pytest.approx(preds[1], abs=1e-6)
    form = client.post("/predict", data=_multipart(("x.jpg", sample_jpeg))).json["probabilities"]
    assert preds[0] == pytest.approx([form["cats"], form["dogs"]], abs=1e-6)
    assert client.post("/v1/models/alexnet/versions/1:predict", json={"instances": [{"b64": b64}]}).status_code == 200

    status = client.get("/v1/models/alexnet").json
    assert status == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}],
        "poll": {"failures": 0, "last_error": ""}}
    meta = client.get("/v1/models/alexnet/metadata").json
    assert meta["model_spec"] == {"name": "alexnet", "signature_name": "", "version": "1"}
    assert "serving_default" in meta["metadata"]["signature_def"]["signature_def"]


def test_v2_api(client, sample_jpeg):
    assert client.get("/v2/health/live").json == {"live": True}
    assert client.get("/v2/health/ready").json == {"ready": True}
    assert client.get("/v2/models/alexnet/ready").status_code == 200
    meta = client.get("/v2/models/alexnet").json
    assert meta["name"] == "alexnet" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
                               {"name": "ood_score", "datatype": "FP32", "shape": [-1]},
                               {"name": "state", "datatype": "BYTES", "shape": [-1]}]
    b64 = base64.b64encode(sample_jpeg).decode()
    req = {"id": "r1", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [b64, b64]}]}
    body = client.post("/v2/models/alexnet/infer", json=req).json
    assert body["id"] == "r1" and body["model_name"] == "alexnet" and body["model_version"] == "1"
    out = body["outputs"][0]
    assert out["datatype"] == "FP32" and out["shape"] == [2, 2] and len(out["data"]) == 4
    assert sum(out["data"][:2]) == pytest.approx(1.0, abs=1e-5)
    ood_out = body["outputs"][1]
    assert ood_out["name"] == "ood_score" and ood_out["shape"] == [2]
    assert ood_out["data"][0] == pytest.approx(2 * (1 - max(out["data"][:2])), abs=1e-5)


@pytest.mark.parametrize("path", ["/v1/models/resnet", "/v1/models/resnet/metadata", "/v2/models/resnet",
                                  "/v1/models/alexnet/versions/7", "/v2/models/alexnet/versions/7"])
def test_unknown_model_or_version_is_404_json(client, path):
    resp = client.get(path)
    assert resp.status_code == 404 and "error" in resp.json


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_health_ready_metrics(app, client, sample_jpeg):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready", "model_version": "1"}
    before = _samples(client.get("/metrics").get_data(as_text=True))
    for _ in range(3):
        assert client.post("/predict", data=_multipart(("x.jpg", sample_jpeg))).status_code == 200
    assert client.post("/predict", data=_multipart(("x.jpg", sample_jpeg), ("y.jpg", sample_jpeg))).status_code == 200
    assert client.post("/predict", data=b"junk", content_type="image/jpeg").status_code == 400
    after = _samples(client.get("/metrics").get_data(as_text=True))

    def moved(name):
        return after.get(name, 0.0) - before.get(name, 0.0)

    # Values move by exactly what was served, not merely exist.
    assert moved('http_requests_total{method="POST",route="/predict",status="200"}') == 4
    assert moved('http_requests_total{method="POST",route="/predict",status="400"}') == 1
    assert moved('http_request_duration_seconds_count{route="/predict"}') == 5
    assert moved('http_request_duration_seconds_sum{route="/predict"}') > 0
    assert moved("images_classified_total") == 5
    assert moved("inference_batch_size_sum") == 5  # 5 images went through the model
    assert 1 <= moved("inference_batch_size_count") <= 4
    assert moved("inference_duration_seconds_sum") > 0
    runtime = app.extensions["model_service"].predictor.runtime_name
    serving = [k for k, v in after.items() if k.startswith("model_version_info{") and v == 1.0]
    assert len(serving) == 1 and 'version="1"' in serving[0] and f'runtime="{runtime}"' in serving[0]
    assert after["http_requests_in_progress"] == 1.0  # just the /metrics request itself
    r = client.post("/explain?method=occlusion", data=sample_jpeg, content_type="image/jpeg")
    assert r.status_code == 200
    explained = _samples(client.get("/metrics").get_data(as_text=True))
    # One image classified for the user; its masked copies went through the model but are not classifications.
    assert explained["images_classified_total"] - after["images_classified_total"] == 1
    assert explained["inference_batch_size_sum"] - after["inference_batch_size_sum"] > 1


def test_openapi_document_is_valid_and_complete(client, app):
    doc = client.get("/openapi.json").json
    validate(doc)
    documented = set(doc["paths"])
    for rule in app.url_map.iter_rules():  # every JSON route, versioned ones included, with its methods
        if rule.endpoint in ("static", "ui.index", "ui.submit", "docs.docs"):
            continue  # the HTML page, its form post, the docs page and static files are not the API
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in documented, path
        assert {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}} <= set(doc["paths"][path]), path
        declared = {p["name"] for op in doc["paths"][path].values() for p in op.get("parameters", [])
                    if p["in"] == "path"}
        assert set(rule.arguments) <= declared, (path, rule.arguments)
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(doc)))
    assert refs and refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])
    assert client.get("/docs").status_code == 200


def test_served_answers_are_the_declared_types(client, sample_jpeg):
    # The same types generate the document: a served body that drifts from them fails here.
    one = client.post("/predict", data=sample_jpeg, content_type="image/jpeg").json
    datamodels.Prediction.model_validate(one)
    with pytest.raises(pydantic.ValidationError):
        datamodels.Prediction.model_validate({**one, "state": "maybe"})
    b64 = base64.b64encode(sample_jpeg).decode()
    tfserving_datamodels.TFPredictResponse.model_validate(
        client.post("/v1/models/alexnet:predict", json={"instances": [{"b64": b64}]}).json)
    v2_datamodels.V2InferResponse.model_validate(client.post("/v2/models/alexnet/infer", json={"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}]}).json)
    tfserving_datamodels.TFModelStatus.model_validate(client.get("/v1/models/alexnet").json)
    v2_datamodels.V2ModelMetadata.model_validate(client.get("/v2/models/alexnet").json)
    bad = client.post("/v1/models/alexnet:predict", json={"instances": [{"b65": b64}]})
    assert bad.status_code == 400 and "instances.0" in bad.json["error"]


def test_security_headers_on_page_and_api(client):
    for path in ("/", "/healthz"):
        headers = client.get(path).headers
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"


def test_upload_page_and_no_javascript_form(client, sample_jpeg):
    page = client.get("/").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'name="image"' in page and "<script src=" in page
    resp = client.post("/", data=_multipart(("dog.jpg", sample_jpeg), ("bad.jpg", b"nope")))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.content_type.startswith("text/html")
    # People read "cat" and "dog" (display names); the JSON API keeps the folder names.
    assert "<progress" in html and '<span class="cls">cat</span>' in html and '<span class="cls">dog</span>' in html
    assert "bad.jpg" in html and "not a recognised image" in html
