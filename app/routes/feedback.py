"""POST /feedback: a person says what one logged image really was (a trained class, or "neither")."""

from __future__ import annotations

from flask import Blueprint, jsonify

import prediction_log
from app.access import auth
from app.features.logbook import get_logbook
from app.http.contract.datamodels import Feedback, FeedbackRequest, api, parse
from app.http.errors import ApiError
from app.http.inputs import json_object
from app.serving.model_service import get_service

bp = Blueprint("feedback", __name__)

HINT = '{"request_id": "...", "index": 0, "label": "cats"}'


@bp.post("/feedback")
@api(Feedback, body=FeedbackRequest, errors={404: "The log holds no prediction with that request_id and index",
                                             409: "The prediction log is off on this server"})
def feedback():
    """Store one verdict on a logged prediction; 409 when the log is off, 404 for an id it does not hold."""
    logbook = get_logbook()
    if logbook is None:
        raise ApiError("feedback needs the prediction log, which is off on this server (PREDICTION_LOG)", 409)
    auth.limit_feedback()
    body = parse(FeedbackRequest, json_object(HINT), HINT)
    rid, index, label = body.request_id, body.index, body.label
    predictor = get_service().predictor
    allowed = [*(predictor.class_names if predictor else []), prediction_log.NEITHER]
    if label not in allowed:
        raise ApiError(f"'label' must be one of {', '.join(allowed)}")
    served = logbook.served(rid, index)
    if served is None:
        raise ApiError(f"no logged prediction with request_id {rid!r} and index {index}", 404)
    client = auth.client_label() if auth.keys_on() else None
    record = logbook.log_feedback(rid, index, label, *served, client=client, trusted=auth.trusted_feedback())
    if not record["stored"]:
        raise ApiError("the prediction log is busy: feedback not stored, try again", 503, {"Retry-After": "1"})
    return jsonify(request_id=rid, index=index, label=label, model_version=record["model_version"],
                   served=record["served"], agreed=record["agreed"], trusted=auth.trusted_feedback())
