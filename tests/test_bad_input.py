"""Every bad input gets a 4xx JSON error, and the server keeps serving afterwards."""

import base64
import io

import pytest

from tests import images

JPEG = images.encode(images.gradient(), "JPEG")
B64 = base64.b64encode(JPEG).decode()


class Upload(io.BytesIO):
    """A file to upload that remembers its bytes: the test client closes uploads after each request."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.data = data


def fresh(kwargs: dict) -> dict:
    """The request kwargs with new, unread copies of every upload (so a case can be sent again)."""
    def copy(value):
        if isinstance(value, list):
            return [copy(v) for v in value]
        if isinstance(value, tuple) and isinstance(value[0], Upload):
            return (Upload(value[0].data), *value[1:])
        return value
    data = kwargs.get("data")
    return dict(kwargs, data={k: copy(v) for k, v in data.items()}) if hasattr(data, "items") else kwargs


def _files(*named):
    return {"image": [(Upload(data), name) for name, data in named]}


CASES = {
    # name: (method, path, request kwargs, expected status)
    "no body": ("post", "/predict", {}, 400),
    "multipart without image field": ("post", "/predict", {"data": {"photo": (Upload(JPEG), "a.jpg")}}, 400),
    "urlencoded form": ("post", "/predict", {"data": {"image": "just text"}}, 415),
    "multipart text field only": ("post", "/predict", {"data": {"image": "text", "other": (Upload(b"x"), "x")}},
                                  400),
    "empty file": ("post", "/predict", {"data": _files(("a.jpg", b""))}, 400),
    "text file": ("post", "/predict", {"data": _files(("a.jpg", b"hello"))}, 400),
    "truncated jpeg": ("post", "/predict", {"data": _files(("a.jpg", JPEG[:300]))}, 400),
    "decompression bomb": ("post", "/predict", {"data": _files(("bomb.png", images.bomb_png()))}, 400),
    "one bad among good": ("post", "/predict", {"data": _files(("a.jpg", JPEG), ("b.jpg", b"xx"))}, 400),
    "too many images": ("post", "/predict", {"data": _files(*[(f"{i}.jpg", JPEG) for i in range(33)])}, 400),
    "raw body not an image": ("post", "/predict", {"data": b"\x00" * 100, "content_type": "image/png"}, 400),
    "raw body empty": ("post", "/predict", {"data": b"", "content_type": "image/jpeg"}, 400),
    "unsupported content type": ("post", "/predict", {"data": b"abc", "content_type": "text/plain"}, 415),
    "malformed json": ("post", "/predict", {"data": b"{not json", "content_type": "application/json"}, 400),
    "json array": ("post", "/predict", {"json": [1, 2]}, 400),
    "json without image": ("post", "/predict", {"json": {"picture": B64}}, 400),
    "json image not string": ("post", "/predict", {"json": {"image": 42}}, 400),
    "json bad base64": ("post", "/predict", {"json": {"image": "###not base64###"}}, 400),
    "json base64 of text": ("post", "/predict", {"json": {"image": base64.b64encode(b"hi").decode()}}, 400),
    "too large": ("post", "/predict", {"data": b"\xff" * (10 * 1024 * 1024 + 10), "content_type": "image/jpeg"}, 413),
    "too large multipart": ("post", "/predict", {"data": _files(("a.jpg", b"\xff" * (10 * 1024 * 1024 + 10)))}, 413),
    "GET predict": ("get", "/predict", {}, 405),
    "unknown path": ("get", "/no/such/page", {}, 404),
    "tf no instances": ("post", "/v1/models/alexnet:predict", {"json": {"signature_name": "x"}}, 400),
    "tf empty instances": ("post", "/v1/models/alexnet:predict", {"json": {"instances": []}}, 400),
    "tf instance not b64": ("post", "/v1/models/alexnet:predict", {"json": {"instances": [[1, 2, 3]]}}, 400),
    "tf bad image": ("post", "/v1/models/alexnet:predict",
                     {"json": {"instances": [{"b64": base64.b64encode(b"no").decode()}]}}, 400),
    "tf not json": ("post", "/v1/models/alexnet:predict", {"data": b"x", "content_type": "text/plain"}, 400),
    "tf unknown model": ("post", "/v1/models/resnet:predict", {"json": {"instances": [{"b64": B64}]}}, 404),
    "tf unknown version": ("post", "/v1/models/alexnet/versions/9:predict",
                           {"json": {"instances": [{"b64": B64}]}}, 404),
    "v2 no inputs": ("post", "/v2/models/alexnet/infer", {"json": {"outputs": []}}, 400),
    "v2 wrong datatype": ("post", "/v2/models/alexnet/infer",
                          {"json": {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}]}},
                          400),
    "v2 shape mismatch": ("post", "/v2/models/alexnet/infer",
                          {"json": {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [3], "data": [B64]}]}},
                          400),
    "v2 bad image": ("post", "/v2/models/alexnet/infer",
                     {"json": {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]}]}},
                     400),
    "v2 unknown model": ("post", "/v2/models/resnet/infer", {"json": {"inputs": []}}, 404),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_4xx_json(client, case):
    method, path, kwargs, status = CASES[case]
    resp = getattr(client, method)(path, **fresh(kwargs))
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json, resp.get_data(as_text=True)[:300]
    assert isinstance(resp.json["error"], str) and resp.json["error"]
    # Still healthy and still serving after each bad request.
    assert client.get("/healthz").status_code == 200
    assert client.post("/predict", data=JPEG, content_type="image/jpeg").status_code == 200


def test_browser_form_error_is_html(client):
    resp = client.post("/", data={"other": (io.BytesIO(JPEG), "a.jpg")})
    assert resp.status_code == 400 and resp.content_type.startswith("text/html")
    assert "must be named" in resp.get_data(as_text=True)
