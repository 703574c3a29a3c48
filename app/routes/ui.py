"""The upload page: GET / (drag-and-drop with JS) and POST / (plain form, HTML result without JS)."""

from __future__ import annotations

import base64
import io

import numpy as np
from flask import Blueprint, render_template
from PIL import Image

from app.classify import classify, prediction
from app.errors import ApiError
from app.inputs import decode_all, images_from_request
from app.model_service import get_service

bp = Blueprint("ui", __name__)


def _thumbnail(arr: np.ndarray) -> str:
    # Built from the decoded 227x227 array, so no client bytes are ever echoed into the page.
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).resize((160, 160)).save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


@bp.get("/")
def index():
    """The upload form."""
    p = get_service().predictor
    return render_template("index.html", class_names=p.class_names if p else [],
                           version=p.version if p else None, runtime=p.runtime_name if p else None)


@bp.post("/")
def submit():
    """No-JavaScript path: classify each uploaded file and render the results page."""
    results = []
    for name, data in images_from_request():
        try:
            arrays = decode_all([(name, data)])
        except ApiError as exc:
            results.append({"filename": name, "error": exc.message})
            continue
        result = classify(arrays)
        pred = prediction(result, 0)
        results.append({"filename": name, "thumbnail": _thumbnail(arrays[0]), **pred,
                        "bars": sorted(pred["probabilities"].items(), key=lambda kv: -kv[1])})
    return render_template("result.html", results=results, error=None)
