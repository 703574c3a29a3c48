"""Interoperability: JSON whatever the Content-Type, the V2 binary extension, and the real tritonclient."""

import base64
import json
import struct

import numpy as np
import pytest

HEADER = "Inference-Header-Content-Length"


def _v2_json(b64s):
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(b64s)], "data": b64s}]}


@pytest.mark.parametrize("ctype", [None, "application/x-www-form-urlencoded", "application/json", "text/plain"])
def test_json_routes_accept_any_content_type(client, sample_jpeg, ctype):
    b64 = base64.b64encode(sample_jpeg).decode()
    headers = {"Content-Type": ctype} if ctype else {}
    tf = client.post("/v1/models/alexnet:predict", data=json.dumps({"instances": [{"b64": b64}]}), headers=headers)
    assert tf.status_code == 200, tf.json
    v2 = client.post("/v2/models/alexnet/infer", data=json.dumps(_v2_json([b64])), headers=headers)
    assert v2.status_code == 200, v2.json
    pred = client.post("/predict", data=json.dumps({"image": b64}), headers=headers)
    assert pred.status_code == 200, pred.json
    expected = [pred.json["probabilities"]["cats"], pred.json["probabilities"]["dogs"]]
    assert tf.json["predictions"][0] == pytest.approx(expected, abs=1e-6)
    assert v2.json["outputs"][0]["data"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("path", ["/v1/models/alexnet:predict", "/v2/models/alexnet/infer"])
@pytest.mark.parametrize("body", [b"instances=1", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_json_routes_reject_what_is_not_a_json_object(client, path, body):
    resp = client.post(path, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 400 and "JSON object" in resp.json["error"]


def test_predict_without_body_says_how_to_send_an_image(client):
    resp = client.post("/predict")
    assert resp.status_code == 400
    assert "multipart field 'image'" in resp.json["error"] and "image/*" in resp.json["error"]
    assert client.post("/predict", data=b"hello", headers={"Content-Type": "text/plain"}).status_code == 415
    bad_json = client.post("/predict", data=b'{"picture": "x"}', headers={"Content-Type": "text/plain"})
    assert bad_json.status_code == 400 and '"image"' in bad_json.json["error"]


@pytest.mark.parametrize("shape", [[], None, [0], [2], [1, 2], ["1"], [True]])
def test_v2_shape_must_match_the_data(client, sample_jpeg, shape):
    req = _v2_json([base64.b64encode(sample_jpeg).decode()])
    req["inputs"][0]["shape"] = shape
    resp = client.post("/v2/models/alexnet/infer", json=req)
    assert resp.status_code == 400 and "shape" in resp.json["error"]


def _binary_request(images, binary_output=True):
    blob = b"".join(struct.pack("<I", len(b)) + b for b in images)
    head = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)],
                        "parameters": {"binary_data_size": len(blob)}}]}
    if binary_output:
        head["outputs"] = [{"name": "probabilities", "parameters": {"binary_data": True}}]
    head = json.dumps(head).encode()
    return head + blob, {HEADER: str(len(head))}


def test_v2_binary_extension_in_and_out(client, sample_jpeg, app):
    from tests.images import valid_images

    other = valid_images()["png_alpha"]
    body, headers = _binary_request([sample_jpeg, other])
    resp = client.post("/v2/models/alexnet/infer", data=body, headers=headers)
    assert resp.status_code == 200
    n = int(resp.headers[HEADER])
    head = json.loads(resp.data[:n])
    out = head["outputs"][0]
    assert out["shape"] == [2, 2] and out["parameters"]["binary_data_size"] == 16 and "data" not in out
    probs = np.frombuffer(resp.data[n:], dtype="<f4").reshape(2, 2)
    for row, img in zip(probs, (sample_jpeg, other), strict=True):
        single = client.post("/predict", data=img, headers={"Content-Type": "image/png"}).json["probabilities"]
        assert row == pytest.approx([single["cats"], single["dogs"]], abs=1e-6)
    # Binary input, JSON output.
    body, headers = _binary_request([sample_jpeg], binary_output=False)
    resp = client.post("/v2/models/alexnet/infer", data=body, headers=headers)
    assert resp.status_code == 200 and len(resp.json["outputs"][0]["data"]) == 2


@pytest.mark.parametrize("mangle", ["short", "bad_header", "header_past_end", "element_past_end", "not_image"])
def test_v2_binary_bad_input_is_400(client, sample_jpeg, mangle):
    body, headers = _binary_request([sample_jpeg])
    n = int(headers[HEADER])
    if mangle == "short":
        body = body[:-10]
    elif mangle == "bad_header":
        headers[HEADER] = "abc"
    elif mangle == "header_past_end":
        headers[HEADER] = str(len(body) + 5)
    elif mangle == "element_past_end":
        body = body[:n] + struct.pack("<I", 10**6) + body[n + 4:]
    else:
        body, headers = _binary_request([b"not an image at all"])
    resp = client.post("/v2/models/alexnet/infer", data=body, headers=headers)
    assert resp.status_code == 400 and resp.json["error"]


def test_tritonclient_against_gunicorn(live_server, sample_jpeg):
    import requests
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(live_server.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("alexnet")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("alexnet")
    assert meta["inputs"][0]["name"] == "image" and meta["outputs"][0]["name"] == "probabilities"
    single = requests.post(f"{live_server}/predict", files={"image": ("d.jpg", sample_jpeg)}, timeout=30).json()
    expected = np.array([[single["probabilities"]["cats"], single["probabilities"]["dogs"]]], np.float32)

    def infer(data, binary_in, binary_out):
        inp = httpclient.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([data], dtype=object), binary_data=binary_in)
        outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary_out)]
        return client.infer("alexnet", [inp], outputs=outputs).as_numpy("probabilities")

    b64 = base64.b64encode(sample_jpeg).decode()
    for data, binary_in in ((b64, False), (sample_jpeg, True)):
        for binary_out in (False, True):
            np.testing.assert_allclose(infer(data, binary_in, binary_out), expected, atol=1e-6)
    # No outputs named: tritonclient asks for binary_data_output and reads every output back.
    inp = httpclient.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([sample_jpeg], dtype=object), binary_data=True)
    both = client.infer("alexnet", [inp])
    np.testing.assert_allclose(both.as_numpy("probabilities"), expected, atol=1e-6)
    np.testing.assert_allclose(both.as_numpy("ood_score"), [single["ood_score"]], atol=1e-6)
    # The state (model_store.answers.decision) as a BYTES tensor, read back by tritonclient from the binary layout.
    assert [s.decode() for s in both.as_numpy("state")] == [single["state"]]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "ood_score", "state"]
    for binary_out in (False, True):  # the OOD score asked for on its own, JSON and binary
        ood_only = client.infer("alexnet", [inp], outputs=[httpclient.InferRequestedOutput(
            "ood_score", binary_data=binary_out)])
        np.testing.assert_allclose(ood_only.as_numpy("ood_score"), [single["ood_score"]], atol=1e-6)
        assert ood_only.as_numpy("probabilities") is None
    for data, binary_in in ((base64.b64encode(b"nope").decode(), False), (b"nope", True)):
        with pytest.raises(InferenceServerException) as err:
            infer(data, binary_in, False)
        assert err.value.status() == "400" and "not a recognised image" in err.value.message()
