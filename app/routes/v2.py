"""Open Inference Protocol (KServe V2): health, model metadata and infer with BYTES input."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request

import explain
import runtimes
from app.features.explain import explain_image
from app.http import v2_binary
from app.http.contract.datamodels import Live, Ready, api
from app.http.contract.v2_datamodels import (
    V2ExplainRequest,
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
    V2ServerMetadata,
)
from app.http.errors import ApiError
from app.http.inputs import b64decode, check_count, decode_all, json_object
from app.serving.classify import check_model, classify, served_predictor
from app.serving.model_service import get_service
from model_store import MODEL_NAME

bp = Blueprint("v2", __name__, url_prefix="/v2")

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
OOD_NAME = "ood_score"  # per image, higher = less like the trained classes (model_store.answers.ood)
STATE_NAME = "state"  # per image: "sure", "not_sure" or "neither" (model_store.answers.decision)
OUTPUTS = (OUTPUT_NAME, OOD_NAME, STATE_NAME)
NOT_READY = {503: ("Not ready", Ready)}
BINARY = {"application/octet-stream": {"schema": {
    "type": "string", "format": "binary",
    "description": "binary tensor data: the first Inference-Header-Content-Length bytes are the JSON response, "
                   "then each binary output (probabilities, ood_score, state) in the order the JSON lists them"}}}
BINARY_HEADER = {"Inference-Header-Content-Length": {"description": "length of the JSON part (binary responses "
                                                                    "only)", "schema": {"type": "integer"}}}


@bp.get("")
@api(V2ServerMetadata)
def server_metadata():
    """Server name, version and extensions."""
    return jsonify(name="alexnet-service", version="0.1.0", extensions=["binary_tensor_data"])


@bp.get("/health/live")
@api(Live)
def live():
    """The process is alive."""
    return jsonify(live=True)


@bp.get("/health/ready")
@api(Ready, errors=NOT_READY)
def ready():
    """Every model is ready (503 otherwise)."""
    ok = get_service().ready
    return jsonify(ready=ok), (200 if ok else 503)


@bp.get("/models/<model:name>/ready")
@bp.get("/models/<model:name>/versions/<version>/ready")
@api(Ready, errors=NOT_READY)
def model_ready(name: str, version: str | None = None):
    """This model is ready."""
    check_model(name, version)
    ok = get_service().ready
    return jsonify(name=name, ready=ok), (200 if ok else 503)


@bp.get("/models/<model:name>")
@bp.get("/models/<model:name>/versions/<version>")
@api(V2ModelMetadata)
def model_metadata(name: str, version: str | None = None):
    """Inputs and outputs with datatypes and shapes."""
    p = served_predictor(name, version)
    return jsonify(
        name=MODEL_NAME, versions=[str(p.version)], platform=runtimes.REGISTRY[p.runtime_name].v2_platform,
        inputs=[{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        outputs=[{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, len(p.class_names)]},
                 {"name": OOD_NAME, "datatype": "FP32", "shape": [-1]},
                 {"name": STATE_NAME, "datatype": "BYTES", "shape": [-1]}],
        parameters={"class_names": p.class_names, "content": "base64-encoded image files (JPEG, PNG, ...)",
                    "runtime": p.runtime_name, "abstain_threshold": p.abstain_threshold},
    )


HINT = '{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["<base64>"]}]}'


def _input_items(body: dict, binary: bytes) -> list[tuple[None, bytes]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ApiError("'inputs' must be a list with one tensor: {\"name\": \"image\", \"datatype\": \"BYTES\", ...}")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise ApiError(f"input name must be {INPUT_NAME!r}, got {tensor.get('name')!r}")
    if tensor.get("datatype") != "BYTES":
        raise ApiError(f"input datatype must be BYTES (image files), got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or len(shape) != 1 or not isinstance(shape[0], int) or isinstance(shape[0], bool):
        raise ApiError(f"input shape must be [number of images], like [1], got {shape!r}")
    params = tensor.get("parameters") if isinstance(tensor.get("parameters"), dict) else {}
    if "binary_data_size" in params:
        if "data" in tensor:
            raise ApiError("input has both 'data' and parameters.binary_data_size: send one")
        blob = v2_binary.take(binary, params["binary_data_size"], "input 'image'")
        raw = v2_binary.bytes_elements(blob, "input 'image'")
    else:
        data = tensor.get("data")
        if not isinstance(data, list) or not data:
            raise ApiError("input 'data' must be a non-empty list of base64 strings "
                           "(or use the binary tensor data extension)")
        raw = None
    count = len(raw) if raw is not None else len(data)
    if shape[0] != count:
        raise ApiError(f"input shape {shape} does not match {count} data elements")
    check_count(count)
    if raw is not None:
        return [(None, value) for value in raw]
    return [(None, b64decode(value, f"data[{i}]")) for i, value in enumerate(data)]


@bp.post("/models/<model:name>/infer")
@bp.post("/models/<model:name>/versions/<version>/infer")
@api(V2InferResponse, body=V2InferRequest, content=BINARY, headers=BINARY_HEADER)
def infer(name: str, version: str | None = None):
    """BYTES input of image files (base64 JSON or binary extension) -> FP32 probabilities [N, classes] and
    ood_score [N] and state [N] (BYTES: "sure", "not_sure" or "neither")."""
    served = check_model(name, version)
    head, binary = v2_binary.split_body(request.get_data(cache=False), request.headers.get(v2_binary.HEADER))
    body = json_object(HINT, head)
    if "id" in body and not isinstance(body["id"], str):
        raise ApiError("'id' must be a string")
    wanted = v2_binary.requested_outputs(body, OUTPUTS)  # validates 'outputs' and the flags first
    result = classify(decode_all(_input_items(body, binary)), version=served)
    tensors = {OUTPUT_NAME: result.probabilities, OOD_NAME: result.ood_scores}
    outputs, tail = [], b""
    for name, as_binary in wanted.items():
        if name == STATE_NAME:
            output = {"name": name, "datatype": "BYTES", "shape": [len(result.states)]}
            blob = v2_binary.bytes_tensor(result.states) if as_binary else b""
        else:
            values = tensors[name]
            output = {"name": name, "datatype": "FP32", "shape": list(values.shape)}
            blob = v2_binary.fp32_bytes(values) if as_binary else b""
        if as_binary:
            output["parameters"] = {"binary_data_size": len(blob)}
            tail += blob
        else:
            output["data"] = result.states if name == STATE_NAME else values.astype(float).ravel().tolist()
        outputs.append(output)
    response = {"model_name": MODEL_NAME, "model_version": str(result.version), "outputs": outputs}
    if result.threshold is not None:  # an image abstains ("unknown") when its ood_score is above this
        response["parameters"] = {"abstain_threshold": result.threshold}
    if "id" in body:
        response["id"] = body["id"]
    if not tail:
        return jsonify(response)
    head_bytes = json.dumps(response).encode()
    return Response(head_bytes + tail, mimetype="application/octet-stream",
                    headers={v2_binary.HEADER: str(len(head_bytes))})


@bp.post("/models/<model:name>/explain")
@bp.post("/models/<model:name>/versions/<version>/explain")
@api(V2InferResponse, body=V2ExplainRequest)
def explain_v2(name: str, version: str | None = None):
    """One BYTES image (as for infer) -> FP32 probabilities [1, classes] and heatmap [16, 16] outputs;
    parameters.method picks gradcam or occlusion."""
    check_model(name, version)
    head, binary = v2_binary.split_body(request.get_data(cache=False), request.headers.get(v2_binary.HEADER))
    body = json_object(HINT, head)
    if "id" in body and not isinstance(body["id"], str):
        raise ApiError("'id' must be a string")
    if "outputs" in body:
        raise ApiError("explain answers fixed outputs (probabilities, heatmap); send no 'outputs'")
    params = body.get("parameters", {})
    if not isinstance(params, dict):
        raise ApiError("'parameters' must be an object like {\"method\": \"occlusion\"}")
    method = params.get("method")
    if "method" in params and method not in explain.METHODS:
        raise ApiError(f"parameters.method must be one of {', '.join(explain.METHODS)}, got {method!r}")
    items = _input_items(body, binary)
    if len(items) != 1:
        raise ApiError(f"explain takes one image per request, got {len(items)}")
    result = explain_image(decode_all(items)[0], method)
    answer = result.as_json(png=False)
    probs = [answer["probabilities"][n] for n in answer["probabilities"]]
    grid = answer["heatmap"]
    response = {"model_name": MODEL_NAME, "model_version": answer["model_version"],
                "parameters": {"method": result.method, "label": answer["label"]},
                "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [1, len(probs)], "data": probs},
                            {"name": "heatmap", "datatype": "FP32", "shape": [len(grid), len(grid[0])],
                             "data": [v for row in grid for v in row]}]}
    if "id" in body:
        response["id"] = body["id"]
    return jsonify(response)
