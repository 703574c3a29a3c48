"""Open Inference Protocol (KServe V2): health, model metadata and infer with BYTES input."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.classify import check_model, classify
from app.errors import ApiError
from app.inputs import b64decode, check_count, decode_all, json_object
from app.model_service import get_service
from model_store import MODEL_NAME

bp = Blueprint("v2", __name__, url_prefix="/v2")

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"



@bp.get("")
def server_metadata():
    """Server name, version and extensions."""
    return jsonify(name="alexnet-service", version="0.1.0", extensions=[])


@bp.get("/health/live")
def live():
    """The process is alive."""
    return jsonify(live=True)


@bp.get("/health/ready")
def ready():
    """Every model is ready (503 otherwise)."""
    ok = get_service().ready
    return jsonify(ready=ok), (200 if ok else 503)


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None):
    """This model is ready."""
    check_model(name, version)
    ok = get_service().ready
    return jsonify(name=name, ready=ok), (200 if ok else 503)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None):
    """Inputs and outputs with datatypes and shapes."""
    check_model(name, version)
    p = get_service().predictor
    return jsonify(
        name=MODEL_NAME, versions=[str(p.version)], platform="tensorflow_keras",
        inputs=[{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        outputs=[{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, len(p.class_names)]}],
        parameters={"class_names": p.class_names, "content": "base64-encoded image files (JPEG, PNG, ...)"},
    )


def _input_items(body: dict) -> list[tuple[None, bytes]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ApiError("'inputs' must be a list with one tensor: {\"name\": \"image\", \"datatype\": \"BYTES\", ...}")
    tensor = inputs[0]
    if tensor.get("datatype") != "BYTES":
        raise ApiError(f"input datatype must be BYTES (base64 image files), got {tensor.get('datatype')!r}")
    data = tensor.get("data")
    if not isinstance(data, list) or not data:
        raise ApiError("input 'data' must be a non-empty list of base64 strings")
    shape = tensor.get("shape")
    if shape is not None and (not isinstance(shape, list) or shape[:1] != [len(data)]):
        raise ApiError(f"input shape {shape} does not match {len(data)} data elements")
    check_count(len(data))
    return [(None, b64decode(value, f"data[{i}]")) for i, value in enumerate(data)]


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None):
    """BYTES input of base64 image files -> FP32 probabilities [N, classes]."""
    check_model(name, version)
    body = json_object('{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["<base64>"]}]}')
    result = classify(decode_all(_input_items(body)))
    probs = result.probabilities
    response = {
        "model_name": MODEL_NAME, "model_version": str(result.version),
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(probs.shape),
                     "data": probs.astype(float).ravel().tolist()}],
    }
    if "id" in body:
        response["id"] = body["id"]
    return jsonify(response)
