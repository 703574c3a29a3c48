"""POST /explain: a prediction and its saliency heatmap, as JSON or (?format=png) the overlay image."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

import explain
from app.features.explain import explain_image
from app.http.contract.datamodels import Explanation, api
from app.http.contract.openapi import explain_method, query, upload
from app.http.errors import ApiError
from app.http.inputs import decode_all, images_from_request

bp = Blueprint("explain", __name__)
FORMATS = ("json", "png")
FORMAT_QUERY = query("format", {"type": "string", "enum": list(FORMATS)}, "png: answer the overlay image itself")


def query_method() -> str | None:
    """The ?method= argument (None: the runtime's default), or a 400."""
    method = request.args.get("method")
    if method is not None and method not in explain.METHODS:
        raise ApiError(f"unknown method {method!r}; choose from {', '.join(explain.METHODS)}")
    return method


@bp.post("/explain")
@api(Explanation, body=upload, query=(explain_method, FORMAT_QUERY),
     content={"image/png": {"schema": {"type": "string", "format": "binary"}}})
def explain_route():
    """One image (multipart, raw image/*, JSON base64) -> label, probabilities, method, heatmap, overlay."""
    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        raise ApiError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    method = query_method()
    items = images_from_request()
    if len(items) != 1:
        raise ApiError(f"/explain takes one image per request, got {len(items)}")
    result = explain_image(decode_all(items)[0], method)
    if fmt == "png":
        return Response(result.png(), mimetype="image/png", headers={
            "X-Label": result.prediction["label"], "X-Model-Version": result.prediction["model_version"],
            "X-Explanation-Method": result.method})
    return jsonify(result.as_json())
