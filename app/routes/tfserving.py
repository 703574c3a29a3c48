"""TensorFlow Serving REST API: model status, metadata and :predict with b64 instances."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.features.logbook import get_logbook
from app.http.contract.datamodels import api, parse
from app.http.contract.tfserving_datamodels import TFModelMetadata, TFModelStatus, TFPredictRequest, TFPredictResponse
from app.http.errors import ApiError
from app.http.inputs import b64decode, check_count, decode_all, json_object
from app.serving.classify import check_model, classify, served_predictor
from app.serving.model_service import get_service
from model_store import MODEL_NAME

bp = Blueprint("tfserving", __name__, url_prefix="/v1/models")
HINT = '{"instances": [{"b64": "..."}]}'


@bp.get("/<model:name>")
@bp.get("/<model:name>/versions/<model:version>")
@api(TFModelStatus)
def status(name: str, version: str | None = None):
    """Version states, TF Serving style (AVAILABLE, LOADING, END with an error for failed ones)."""
    if name != MODEL_NAME:
        raise ApiError(f"Could not find any versions of model {name}", 404)
    states = dict(get_service().states)
    if version is not None:
        if not version.isdigit() or int(version) not in states:
            raise ApiError(f"Could not find version {version} of model {name}", 404)
        states = {int(version): states[int(version)]}
    out = []
    for v, st in sorted(states.items(), reverse=True):
        failed = st.get("failed", False)
        out.append({"version": str(v), "state": st["state"],
                    "status": {"error_code": "UNKNOWN" if failed else "OK", "error_message": st["error_message"]}})
    service = get_service()
    logbook = get_logbook()
    # Beyond TF Serving's fields: the hot-reload poller's health (it keeps polling after errors) and, with
    # the prediction log on, each version's live agreement with people's feedback (this worker's count).
    extra = {"feedback": logbook.agreement()} if logbook is not None else {}
    if service.rollouts.enabled:
        extra["rollout"] = service.rollouts.summary()
    return jsonify(model_version_status=out,
                   poll={"failures": service.poll_failures, "last_error": service.last_poll_error}, **extra)


@bp.get("/<model:name>/metadata")
@bp.get("/<model:name>/versions/<version>/metadata")
@api(TFModelMetadata)
def metadata(name: str, version: str | None = None):
    """Signature of the served model."""
    p = served_predictor(name, version)
    sig = {
        "inputs": {"image_bytes": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]},
                                   "name": "image_bytes"}},
        "outputs": {"probabilities": {"dtype": "DT_FLOAT", "name": "probabilities",
                                      "tensor_shape": {"dim": [{"size": "-1"}, {"size": str(len(p.class_names))}]}}},
        "method_name": "tensorflow/serving/predict",
    }
    return jsonify(model_spec={"name": MODEL_NAME, "signature_name": "", "version": str(p.version)},
                   metadata={"signature_def": {"signature_def": {"serving_default": sig}},
                             "class_names": p.class_names, "runtime": p.runtime_name})


@bp.post("/<model:name>:predict")
@bp.post("/<model:name>/versions/<version>:predict")
@bp.post("/<model:name>/labels/<label>:predict")
@api(TFPredictResponse, body=TFPredictRequest, headers={"X-Model-Version": {
    "description": "the version that answered", "schema": {"type": "string"}}})
def predict(name: str, version: str | None = None, label: str | None = None):
    """{"instances": [{"b64": ...}, ...]} -> {"predictions": [[p0, p1], ...], "answers": [{label, state, ...}]};
    a version or label picks the served version (MODEL_VERSIONS=labels)."""
    if label is not None:
        version = _labelled(name, label)
    served = check_model(name, version)
    body = json_object(HINT)
    instances = body.get("instances")
    if isinstance(instances, list):
        check_count(len(instances))  # before validating: the count has its own message and limit
    instances = parse(TFPredictRequest, body, HINT).instances
    items = [(None, b64decode(getattr(inst, "image_bytes", inst).b64, f"instances[{i}].b64"))
             for i, inst in enumerate(instances)]
    result = classify(decode_all(items), version=served)
    # TF Serving's body has no version field: the header names the version that answered.
    # "answers" (the decision every route shares) sits beside TF Serving's own "predictions", which clients read.
    answers = [d.as_dict() for d in result.decisions]
    return (jsonify(predictions=result.probabilities.astype(float).tolist(), answers=answers),
            {"X-Model-Version": str(result.version)})


def _labelled(name: str, label: str) -> str:
    service = get_service()
    # "stable" is always the version serving everyone (the newest without labels, or one promoted here).
    labels = {**service.rollouts.labels, "stable": service.predictor.version}
    if label not in labels:
        raise ApiError(f"model '{name}' has no version labelled '{label}' (labels: "
                       f"{', '.join(sorted(labels)) or 'none'})", 404)
    return str(labels[label])
