"""The OpenAPI 3 description of every endpoint (served at /openapi.json)."""

from __future__ import annotations

import copy

import settings


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = {"$ref": "#/components/schemas/Error"}
ERRORS = {str(code): _json(ERROR, text) for code, text in (
    (400, "Bad input"), (404, "Unknown model or version"), (413, "Body too large"),
    (415, "Unsupported Content-Type"), (503, "Model not ready or server overloaded"))}
VERSION_QUERY = {"name": "version", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]+$", "examples": ["1"]},
                 "description": "a served version (stable, or the labelled candidate); 404 for any other"}
LABEL = {"name": "label", "in": "path", "required": True, "schema": {"type": "string", "examples": ["stable"]}}
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": ["alexnet"]}}
VERSION = {"name": "version", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[0-9]+$", "examples": ["1"]}}
# An 8x8 PNG, so generated examples reach the model and not only the validation errors.
TINY_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGM8UaHBgA0wYRUdtBIAHicBeAYWg8oAAAAASUVORK5CYII="
# "image-base64": base64 of a decodable image file. No schema keyword can say "a real image", so the custom
# format names it; tests/schemathesis_hooks.py teaches the fuzzer to generate such strings.
B64 = {"type": "string", "format": "image-base64", "contentEncoding": "base64", "contentMediaType": "image/*",
       "description": "base64-encoded image file (JPEG, PNG, GIF, WebP, BMP, ...)", "minLength": 1,
       "examples": [TINY_PNG]}
IMAGE_FILE = {"type": "string", "format": "binary", "contentMediaType": "image/*",
              "description": "an image file (JPEG, PNG, GIF, WebP, BMP, ...)"}

def v2_request(max_images: int, with_outputs: bool = False, methods: list[str] | None = None) -> dict:
    """A V2 request of BYTES image files: infer (up to 32 images, optional outputs) or explain (one image)."""
    props = {
        "id": {"type": "string"},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "required": ["name", "datatype", "shape", "data"], "properties": {
                "name": {"type": "string", "enum": ["image"]}, "datatype": {"type": "string", "enum": ["BYTES"]},
                # shape must be [len(data)]: one dimension, equal to the number of images.
                "shape": {"type": "array", "minItems": 1, "maxItems": 1,
                          "items": {"type": "integer", "minimum": 1, "maximum": max_images},
                          "description": "[number of images]; must equal len(data)"},
                "data": {"type": "array", "minItems": 1, "maxItems": max_images, "items": B64}}}}}
    if with_outputs:
        props["outputs"] = {"type": "array", "maxItems": 3, "items": {
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "enum": ["probabilities", "ood_score", "state"]},
                "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}}}}}
    if methods:
        props["parameters"] = {"type": "object", "properties": {"method": {"type": "string", "enum": methods}}}
    return {"type": "object", "required": ["inputs"], "properties": props}


ABSTAIN_PROPS = {
    "state": {"type": "string", "enum": ["sure", "not_sure", "neither"],
              "description": 'sure: a confident answer; not_sure: an answer (the most likely class) flagged as '
                             'doubtful; neither: none of the classes (label "unknown")'},
    "looks_like": {"type": "string", "description": "the most likely class, whatever the state"},
    "ood_score": {"type": "number", "minimum": 0, "maximum": 1,
                  "description": "higher = less like the trained classes (the version's ood.method)"},
    "abstained": {"type": "boolean", "description": 'state is "neither": ood_score is above the version\'s '
                                                    'threshold, label is "unknown"; the class probabilities stay'},
}
ANSWER_REQUIRED = ["label", "state", "confidence", "looks_like", "ood_score", "abstained"]

REQUEST_ID = {"type": "string", "description": "the request's id (its X-Request-ID when that was a plain token "
                                             "of up to 128 characters); POST /feedback refers to it"}

MAX_IMAGES = int(settings.BY_NAME["MAX_IMAGES_PER_REQUEST"].default)  # the default; spec() takes the served one

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Prediction": {
        "type": "object", "required": [*ANSWER_REQUIRED, "probabilities", "model_version"],
        "properties": {
            "label": {"type": "string", "description": 'a class name, or "unknown" when abstained'},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "probability of the most likely trained class"},
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
            "model_version": {"type": "string"}, "filename": {"type": ["string", "null"]},
            **ABSTAIN_PROPS,
            "request_id": REQUEST_ID,
        },
    },
    "Predictions": {"type": "object", "required": ["request_id", "predictions"], "properties": {
        "request_id": REQUEST_ID,
        "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}}},
    "FeedbackRequest": {"type": "object", "required": ["request_id", "label"], "properties": {
        "request_id": REQUEST_ID,
        "index": {"type": "integer", "minimum": 0, "default": 0,
                  "description": "the image's position in its request (0 for a single image)"},
        "label": {"type": "string", "description": 'what the image really is: a trained class name, or "neither"',
                  "examples": ["cats", "neither"]}}},
    "Feedback": {"type": "object", "required": ["request_id", "index", "label", "model_version", "served",
                                                "agreed"], "properties": {
        "request_id": REQUEST_ID, "index": {"type": "integer"}, "label": {"type": "string"},
        "model_version": {"type": "string"}, "served": {"type": "string", "description": "the label answered"},
        "agreed": {"type": "boolean", "description": "label confirms the served answer"},
        "trusted": {"type": "boolean", "description": "taken as training data as it is (API keys off, or a "
                                                     "`curate` key); else it waits for review"}}},
    "TFPredictRequest": {"type": "object", "required": ["instances"], "properties": {
        "instances": {"type": "array", "minItems": 1, "maxItems": MAX_IMAGES, "items": {"anyOf": [
            {"type": "object", "required": ["b64"], "properties": {"b64": B64}},
            {"type": "object", "required": ["image_bytes"], "properties": {"image_bytes": {
                "type": "object", "required": ["b64"], "properties": {"b64": B64}}}}]}}}},
    "TFPredictResponse": {"type": "object", "required": ["predictions"], "properties": {
        "predictions": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "answers": {"type": "array", "description": "per instance, the answer every route gives", "items": {
            "type": "object", "required": ANSWER_REQUIRED, "properties": {
                "label": {"type": "string"}, "confidence": {"type": "number"}, **ABSTAIN_PROPS}}}}},
    "V2Tensor": {"type": "object", "required": ["name", "datatype", "shape", "data"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}}, "data": {"type": "array"}}},
    "V2InferRequest": v2_request(MAX_IMAGES, with_outputs=True),
    "Explanation": {
        "type": "object", "required": [*ANSWER_REQUIRED, "probabilities", "model_version", "method",
                                       "heatmap", "overlay_png"],
        "properties": {
            "label": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
            "model_version": {"type": "string"}, **ABSTAIN_PROPS,
            "method": {"type": "string", "enum": ["gradcam", "occlusion"]},
            "heatmap": {"type": "array", "items": {"type": "array", "items": {
                "type": "number", "minimum": 0, "maximum": 1}}},
            "overlay_png": {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png"}}},
    "V2InferResponse": {"type": "object", "required": ["model_name", "outputs"], "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "parameters": {"type": "object"},
        "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2Tensor"}}}},
}

OBJ = {"type": "object"}


def _get(summary: str, schema: dict = OBJ, params: list | None = None, extra: dict | None = None) -> dict:
    op = {"summary": summary, "responses": {"200": _json(schema), **(extra or {})}}
    if params:
        op["parameters"] = params
    return {"get": op}


def _post(summary: str, body: dict, schema: dict, params: list | None = None) -> dict:
    op = {"summary": summary, "requestBody": {"required": True, "content": body},
          "responses": {"200": _json(schema), **ERRORS}}
    if params:
        op["parameters"] = params
    return {"post": op}


def _v2_infer(body: dict) -> dict:
    op = _post("V2 inference: BYTES input of image files, as base64 JSON or with the binary tensor data "
               "extension (header Inference-Header-Content-Length: JSON part, then each file as a 4-byte "
               "little-endian length and its bytes, input parameters.binary_data_size)",
               body, {"$ref": "#/components/schemas/V2InferResponse"}, [NAME])
    # parameters.binary_data_output or outputs[].parameters.binary_data: JSON header + raw float32 bytes.
    op["post"]["responses"]["200"]["content"]["application/octet-stream"] = {
        "schema": {"type": "string", "format": "binary",
                   "description": "binary tensor data: the first Inference-Header-Content-Length bytes are the "
                                  "JSON response, then each binary output (probabilities, ood_score) as "
                                  "little-endian float32, in the order the JSON lists them"}}
    op["post"]["responses"]["200"]["headers"] = {"Inference-Header-Content-Length": {
        "description": "length of the JSON part (binary responses only)", "schema": {"type": "integer"}}}
    return op


def _feedback() -> dict:
    op = _post("Say what a logged image really was (needs PREDICTION_LOG)", {"application/json": {
        "schema": {"$ref": "#/components/schemas/FeedbackRequest"}}}, {"$ref": "#/components/schemas/Feedback"})
    op["post"]["responses"]["404"] = _json(ERROR, "The log holds no prediction with that request_id and index")
    op["post"]["responses"]["409"] = _json(ERROR, "The prediction log is off on this server")
    return op


def _explain_paths(multipart_one: dict, methods: list[str]) -> dict:
    method = {"name": "method", "in": "query", "required": False, "schema": {"type": "string", "enum": methods},
              "description": "gradcam (TensorFlow runtime) or occlusion (any runtime); default: the first"}
    fmt = {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": ["json", "png"]},
           "description": "png: answer the overlay image itself"}
    op = _post("Explain one image: the prediction and a saliency heatmap (16x16, 0-1) with a PNG overlay",
               multipart_one, {"$ref": "#/components/schemas/Explanation"}, [method, fmt])
    op["post"]["responses"]["200"]["content"]["image/png"] = {"schema": {"type": "string", "format": "binary"}}
    v2 = {"application/json": {"schema": v2_request(1, methods=methods)}}
    return {"/explain": op,
            "/v2/models/{name}/explain": _post("V2-style explanation: one BYTES image -> probabilities [1, classes] "
                                               "and heatmap [16, 16] outputs", v2,
                                               {"$ref": "#/components/schemas/V2InferResponse"}, [NAME])}


def _limited(max_images: int) -> dict:
    schemas = copy.deepcopy(SCHEMAS)
    schemas["TFPredictRequest"]["properties"]["instances"]["maxItems"] = max_images
    schemas["V2InferRequest"] = v2_request(max_images, with_outputs=True)
    return schemas


def spec(explain_methods: list[str] | None = None, max_images: int = MAX_IMAGES, max_bytes: int | None = None
         ) -> dict:
    """The OpenAPI 3.1 document; explain_methods: those the serving runtime offers; the limits are the
    served MAX_IMAGES_PER_REQUEST and MAX_CONTENT_LENGTH."""
    one_image = {"multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": IMAGE_FILE}}}, "image/*": {"schema": IMAGE_FILE},
        "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {"image": B64}}}}
    multipart = {"multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "array", "minItems": 1, "maxItems": max_images, "items": IMAGE_FILE}}}},
        "image/*": {"schema": IMAGE_FILE},
        "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {"image": B64}}}}
    tf_body = {"application/json": {"schema": {"$ref": "#/components/schemas/TFPredictRequest"}}}
    v2_body = {"application/json": {"schema": {"$ref": "#/components/schemas/V2InferRequest"}}}
    not_found = {"404": _json(ERROR, "Unknown model or version")}
    unavailable = {"503": _json(OBJ, "Not ready")}
    predict_out = {"oneOf": [{"$ref": "#/components/schemas/Prediction"},
                             {"$ref": "#/components/schemas/Predictions"}]}
    paths = {
        "/predict": _post("Classify one or more images (MODEL_VERSIONS=labels: canary clients may get the "
                          "candidate; ?version=N asks for a served version)", multipart, predict_out, [VERSION_QUERY]),
        "/feedback": _feedback(),
        "/healthz": _get("Liveness"),
        "/readyz": _get("Readiness: model loaded and warmed", extra=unavailable),
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/v1/models/{name}": _get("TF Serving model status", params=[NAME], extra=not_found),
        "/v1/models/{name}/versions/{version}": _get("TF Serving status of one version",
                                                     params=[NAME, VERSION], extra=not_found),
        "/v1/models/{name}/metadata": _get("TF Serving signature metadata", params=[NAME], extra=not_found),
        "/v1/models/{name}:predict": _post("TF Serving predict (b64 instances)", tf_body,
                                           {"$ref": "#/components/schemas/TFPredictResponse"}, [NAME]),
        "/v1/models/{name}/versions/{version}:predict": _post(
            "TF Serving predict on one served version (stable or the candidate); X-Model-Version names it",
            tf_body, {"$ref": "#/components/schemas/TFPredictResponse"}, [NAME, VERSION]),
        "/v1/models/{name}/labels/{label}:predict": _post(
            "TF Serving predict on the version a label names (labels.json: stable, candidate, ...)",
            tf_body, {"$ref": "#/components/schemas/TFPredictResponse"}, [NAME, LABEL]),
        "/v2": _get("V2 server metadata"),
        "/v2/health/live": _get("V2 liveness"),
        "/v2/health/ready": _get("V2 readiness", extra=unavailable),
        "/v2/models/{name}": _get("V2 model metadata", params=[NAME], extra=not_found),
        "/v2/models/{name}/ready": _get("V2 model readiness", params=[NAME], extra={**not_found, **unavailable}),
        "/v2/models/{name}/infer": _v2_infer(v2_body),
        **_explain_paths(one_image, explain_methods or ["gradcam", "occlusion"]),
        "/models/{name}/{version}/report": {"get": {
            "summary": "The model report (report.html) of a version this server has", "parameters": [
                NAME, {**VERSION, "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}},
                          **not_found}}},
        "/openapi.json": _get("This document"),
    }
    _versioned(paths)
    _access(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "AlexNet image classification service", "version": "0.1.0",
                 "description": "Upload a photo, get a label with class probabilities. Errors are JSON "
                                "{\"error\": \"...\"}. At most " + str(max_images) + " images and "
                                + str(max_bytes or settings.BY_NAME["MAX_CONTENT_LENGTH"].default)
                                + " bytes per request (400 and 413 beyond)."},
        "paths": paths,
        "components": {"schemas": _limited(max_images), "securitySchemes": SECURITY_SCHEMES},
    }


# Routes that also take one served version (stable, or the labelled candidate; 404 for any other).
VERSIONED = {"/v1/models/{name}/metadata": "/v1/models/{name}/versions/{version}/metadata",
             "/v2/models/{name}": "/v2/models/{name}/versions/{version}",
             "/v2/models/{name}/ready": "/v2/models/{name}/versions/{version}/ready",
             "/v2/models/{name}/infer": "/v2/models/{name}/versions/{version}/infer",
             "/v2/models/{name}/explain": "/v2/models/{name}/versions/{version}/explain"}


def _versioned(paths: dict) -> None:
    # Each versioned route is its plain route with the version in the path; it answers for that version.
    for plain, versioned in VERSIONED.items():
        ops = copy.deepcopy(paths[plain])
        for op in ops.values():
            op["summary"] += " (one served version)"
            op["parameters"] = [*op.get("parameters", []), VERSION]
            op["responses"].setdefault("404", _json(ERROR, "Unknown model or version"))
        paths[versioned] = ops


SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer", "description": "an API key (API_KEYS_FILE)"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
OPEN_PATHS = ("/healthz", "/readyz", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}/ready",
              "/v2/models/{name}/versions/{version}/ready", "/openapi.json")
MODEL_PATHS = ("/predict", "/explain", ":predict", "/infer", "/v2/models/{name}/explain")


def _access(paths: dict) -> None:
    # With API_KEYS_FILE set, every path but the probes needs a key (no key is fine when keys are off).
    for path, ops in paths.items():
        if path in OPEN_PATHS:
            continue
        for op in ops.values():
            op["security"] = [{}, {"bearer": []}, {"apiKey": []}]
            op["responses"]["401"] = _json(ERROR, "API keys are on and the request has no valid key")
            op["responses"]["403"] = _json(ERROR, "The key lacks the scope this route needs")
            if path.endswith(MODEL_PATHS) or path == "/feedback":
                op["responses"]["429"] = _json(ERROR, "Over this client's fair share (or feedback rate): "
                                                      "retry after Retry-After seconds")
