"""app.http.multipart: the same matches as Werkzeug's per-boundary regexes, and the same parsed forms."""

from __future__ import annotations

import importlib.metadata
import io

from hypothesis import example, given, settings
from hypothesis import strategies as st
from werkzeug.sansio.multipart import MultipartDecoder
from werkzeug.wrappers import Request

from app.http import multipart

# Boundaries as clients send them (RFC 2046 characters), bodies built from the bytes that matter here.
BOUNDARY = st.text("abcXYZ019'()+_,-./:=? ", min_size=1, max_size=12).map(str.encode)
PIECES = st.sampled_from([b"\r\n", b"\r", b"\n", b"--", b"-", b" ", b"\t", b"x", b"\x0b", b"\x0c"])


def _body(boundary: bytes, pieces: list[bytes], spots: list[int]) -> bytes:
    out = list(pieces)
    for spot in spots:  # the marker itself, at random places
        out.insert(spot % (len(out) + 1), b"--" + boundary)
    return b"".join(out)


def _as_tuple(match) -> tuple | None:
    return None if match is None else (match.start(), match.end(), match.group(1))


@settings(max_examples=600, deadline=None)
@given(BOUNDARY, st.lists(PIECES, max_size=30), st.lists(st.integers(0, 40), max_size=4), st.integers(0, 20))
@example(b"b", [b"\r\n"], [1], 0)
@example(b"-x", [b"--", b"\r\n"], [1, 2], 0)
@example(b"b", [b"\r", b"\r\n", b"--"], [1, 2], 1)
def test_search_equals_werkzeugs_regexes(boundary, pieces, spots, pos):
    data = _body(boundary, pieces, spots)
    real = MultipartDecoder(boundary)  # Werkzeug's own compiled patterns for this boundary
    for regex, required in ((real.preamble_re, False), (real.boundary_re, True)):
        ours = multipart.BoundarySearch(boundary, line_break_required=required)
        assert _as_tuple(ours.search(data, pos)) == _as_tuple(regex.search(data, pos))
        assert _as_tuple(ours.search(bytearray(data), pos)) == _as_tuple(regex.search(bytearray(data), pos))


def _parse(body: bytes, boundary: str, decoder) -> tuple:
    from werkzeug import formparser

    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "SERVER_NAME": "x",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    saved = formparser.MultipartDecoder
    formparser.MultipartDecoder = decoder
    try:
        request = Request(environ)
        try:
            files = [(k, f.filename, f.read()) for k, f in request.files.items(multi=True)]
            return sorted(request.form.items(multi=True)), files
        except ValueError as exc:
            return ("error", str(exc))
    finally:
        formparser.MultipartDecoder = saved


@settings(max_examples=200, deadline=None)
@given(BOUNDARY.filter(lambda b: not b.endswith(b" ")),
       st.lists(st.tuples(st.sampled_from(["image", "other"]), st.binary(max_size=200)), max_size=4),
       st.sampled_from([b"\r\n", b"\n"]), st.integers(0, 3))
def test_forms_parse_the_same(boundary, parts, line_break, cut):
    lb = line_break
    body = b"".join(b"--" + boundary + lb + b'Content-Disposition: form-data; name="' + name.encode() + b'"; '
                    b'filename="f.jpg"' + lb + lb + data + lb for name, data in parts)
    body += b"--" + boundary + b"--" + lb
    body = body[:len(body) - cut]  # truncated bodies too: the same error or the same result
    boundary_text = boundary.decode()
    quoted = f'"{boundary_text}"'
    assert _parse(body, quoted, multipart.FastMultipartDecoder) == _parse(body, quoted, MultipartDecoder)


def test_the_app_uses_it(client, sample_jpeg):
    from werkzeug import formparser

    assert formparser.MultipartDecoder is multipart.FastMultipartDecoder
    response = client.post("/predict", data={"image": (io.BytesIO(sample_jpeg), "cat.jpg")},
                           content_type="multipart/form-data; boundary=a new one for every request")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["label"] in ("cats", "dogs")


def test_another_werkzeug_keeps_its_own_parser(monkeypatch):
    from flask import Flask
    from werkzeug import formparser

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9" if name == "werkzeug" else real(name))
    multipart.init_app(Flask(__name__))
    try:
        assert formparser.MultipartDecoder is MultipartDecoder
    finally:
        monkeypatch.undo()
        multipart.init_app(Flask(__name__))
    assert formparser.MultipartDecoder is multipart.FastMultipartDecoder
