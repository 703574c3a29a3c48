"""POST /predict (multipart, raw image/*, JSON base64) and the health probes."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.features import logbook
from app.http import request_id
from app.http.contract.datamodels import Prediction, Predictions, Status, api
from app.http.contract.openapi import query, uploads
from app.http.inputs import decode_all, images_from_request
from app.serving.classify import check_model, classify_routed, prediction
from app.serving.model_service import get_service
from model_store import MODEL_NAME

bp = Blueprint("predict", __name__)
VERSION_QUERY = query("version", {"type": "string", "pattern": "^[0-9]+$", "examples": ["1"]},
                      "a served version (stable, or the labelled candidate); 404 for any other")


@bp.post("/predict")
@api((Prediction, Predictions), body=uploads, query=(VERSION_QUERY,))
def predict():
    """Label one image, or several (then {"predictions": [...]} with filenames); ?version=N asks for a
    served version (stable or the labelled candidate)."""
    version = check_model(MODEL_NAME, request.args.get("version"))
    items = images_from_request()
    result = classify_routed(decode_all(items), version)
    answers = [prediction(result, i) for i in range(len(items))]
    logbook.record(answers, [data for _, data in items])
    rid = request_id.current()
    if len(items) == 1:
        return jsonify({**answers[0], "request_id": rid})
    named = [{**a, "filename": name} for a, (name, _) in zip(answers, items, strict=True)]
    return jsonify(request_id=rid, predictions=named)


@bp.get("/healthz")
@api(Status)
def healthz():
    """The process is alive."""
    return jsonify(status="ok")


@bp.get("/readyz")
@api(Status, errors={503: "Not ready, or draining"})
def readyz():
    """The model is loaded and warmed (503 before that and while draining)."""
    service = get_service()
    if not service.ready:
        return jsonify(status="not ready", error="model not ready"), 503
    return jsonify(status="ready", model_version=str(service.predictor.version))
