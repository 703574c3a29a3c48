"""GET /openapi.json and a small human-readable docs page built from it."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from app.features.explain import methods
from app.http.contract.datamodels import api
from app.http.contract.openapi import spec

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
@api(content={"application/json": {"schema": {"type": "object"}}})
def openapi():
    """The OpenAPI 3 document."""
    return jsonify(_spec())


@bp.get("/docs")
def docs():
    """Endpoint list rendered from the OpenAPI document (no CDN, no JavaScript)."""
    doc = _spec()
    rows = [(method.upper(), path, op.get("summary", "")) for path, item in doc["paths"].items()
            for method, op in item.items()]
    return render_template("docs.html", rows=rows, info=doc["info"])


def _spec() -> dict:
    return spec(current_app, methods(), int(current_app.config["MAX_IMAGES_PER_REQUEST"]),
                int(current_app.config["MAX_CONTENT_LENGTH"]))
