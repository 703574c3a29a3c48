"""The OpenAPI 3.1 document (served at /openapi.json), generated from the URL map, the contract each view
declares with @api and the types in app.http's datamodels modules."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from werkzeug.routing import IntegerConverter, Rule

import settings
from app.access import auth
from app.http.contract import datamodels as dm
from app.http.contract import tfserving_datamodels as tf
from app.http.contract import v2_datamodels as v2
from app.http.contract.datamodels import MAX_IMAGES, Contract, Model

REF = "#/components/schemas/{model}"
# Every type the document lists under components/schemas.
COMPONENTS = (dm.Error, dm.OneImage, dm.Prediction, dm.Predictions, dm.FeedbackRequest, dm.Feedback,
              tf.TFPredictRequest, tf.TFPredictResponse, tf.TFModelStatus, tf.TFModelMetadata, v2.V2InferRequest,
              v2.V2ExplainRequest, v2.V2InferResponse, v2.V2ModelMetadata, v2.V2ServerMetadata, dm.Status, dm.Live,
              dm.Ready, dm.Explanation)


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(model: type[Model]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


ERROR = _ref(dm.Error)
POST_ERRORS = {400: "Bad input", 404: "Unknown model or version", 413: "Body too large",
               415: "Unsupported Content-Type", 503: "Model not ready or server overloaded"}
IMAGE_FILE = {"type": "string", "format": "binary", "contentMediaType": "image/*",
              "description": "an image file (JPEG, PNG, GIF, WebP, BMP, ...)"}
PATH_PARAMS = {
    "name": {"type": "string", "enum": ["alexnet"]},
    "version": {"type": "string", "pattern": "^[0-9]+$", "examples": ["1"]},
    "label": {"type": "string", "examples": ["stable"]},
}


def uploads(max_images: int) -> dict:
    """Request content of the upload routes: multipart files, one raw image, or JSON base64."""
    return {"multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
                "image": {"type": "array", "minItems": 1, "maxItems": max_images, "items": IMAGE_FILE}}}},
            "image/*": {"schema": IMAGE_FILE}, "application/json": {"schema": _ref(dm.OneImage)}}


def upload(_max_images: int) -> dict:
    """The same for routes that take exactly one image."""
    return {**uploads(1), "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                                             "properties": {"image": IMAGE_FILE}}}}


def query(name: str, schema: dict, description: str) -> dict:
    """A query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def explain_method(methods: list[str]) -> dict:
    """The ?method= parameter of /explain: the methods this server's runtime offers."""
    return query("method", {"type": "string", "enum": methods},
                 "gradcam (TensorFlow runtime) or occlusion (any runtime); default: the first")


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # a property's name is its title


def _components(max_images: int, explain_methods: list[str]) -> dict:
    _, top = models_json_schema([(m, "validation") for m in COMPONENTS], ref_template=REF,
                                schema_generator=_Generator)
    schemas = top["$defs"]
    # The types declare the default limits; the document states the ones this server was started with.
    _served(schemas, max_images)
    schemas["V2ExplainParameters"]["properties"]["method"]["enum"] = list(explain_methods)
    schemas["V2ExplainParameters"]["properties"]["method"].pop("const", None)
    return schemas


def _served(node: Any, max_images: int) -> None:
    if isinstance(node, dict):
        for key in ("maxItems", "maximum"):
            if node.get(key) == MAX_IMAGES:
                node[key] = max_images
        if "default" in node and node["default"] is None:
            del node["default"]  # an optional field whose null the schema refuses (dm.Absent)
        for value in node.values():
            _served(value, max_images)
    elif isinstance(node, list):
        for value in node:
            _served(value, max_images)


def _path(rule: Rule) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)


def _parameters(rule: Rule, contract: Contract, explain_methods: list[str]) -> list[dict]:
    out = []
    for name in sorted(rule.arguments, key=rule.rule.index):
        converter = rule._converters[name]
        schema = {"type": "integer", "minimum": 0} if isinstance(converter, IntegerConverter) else PATH_PARAMS[name]
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    # A callable parameter depends on what this server serves (the explain methods of its runtime).
    return [*out, *(q(explain_methods) if callable(q) else q for q in contract.query)]


def _operation(rule: Rule, method: str, view: Callable, max_images: int, explain_methods: list[str]) -> dict:
    contract: Contract = view.contract
    summary = " ".join((view.__doc__ or "").split()).removesuffix(".")
    if "version" in rule.arguments and rule.endpoint not in ("tfserving.status", "report.report"):
        summary += " (one served version)"
    if isinstance(contract.response, tuple):
        ok = _json({"oneOf": [_ref(m) for m in contract.response]})
    elif contract.response is not None:
        ok = _json(_ref(contract.response))
    else:
        ok = {"description": "OK", "content": {}}
    ok["content"].update(contract.content)
    if contract.headers:
        ok["headers"] = contract.headers
    errors = dict(POST_ERRORS) if method == "post" else {}
    if "name" in rule.arguments:
        errors[404] = "Unknown model or version"
    errors.update(contract.errors)
    op = {"summary": summary, "operationId": f"{rule.endpoint}.{method}.{_path(rule)}",
          "responses": {"200": ok, **{str(code): _error(answer) for code, answer in sorted(errors.items())}}}
    params = _parameters(rule, contract, explain_methods)
    if params:
        op["parameters"] = params
    if contract.body is not None:
        content = ({"application/json": {"schema": _ref(contract.body)}} if isinstance(contract.body, type)
                   else contract.body(max_images))
        op["requestBody"] = {"required": True, "content": content}
    _access(rule.endpoint, op)
    return op


def _error(answer: str | tuple[str, type[Model]]) -> dict:
    # Most errors answer {"error": ...}; a probe's 503 answers its own body ({"ready": false}).
    return _json(_ref(answer[1]), answer[0]) if isinstance(answer, tuple) else _json(ERROR, answer)


def _access(endpoint: str, op: dict) -> None:
    # With API_KEYS_FILE set, every route but the probes needs a key (no key is fine when keys are off).
    if endpoint in auth.OPEN:
        return
    scope = auth.ROUTE_SCOPES.get(endpoint, "operator")
    op["security"] = [{}, {"bearer": []}, {"apiKey": []}]
    op["description"] = f"With API keys on, needs a key with the `{scope}` scope."
    op["responses"]["401"] = _json(ERROR, "API keys are on and the request has no valid key")
    op["responses"]["403"] = _json(ERROR, "The key lacks the scope this route needs")
    if endpoint in auth.MODEL_ROUTES or scope == "feedback":
        op["responses"]["429"] = _json(ERROR, "Over this client's fair share (or feedback rate): retry after "
                                              "Retry-After seconds")


SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer", "description": "an API key (API_KEYS_FILE)"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}


def spec(app: Flask, explain_methods: list[str], max_images: int = MAX_IMAGES, max_bytes: int | None = None
         ) -> dict:
    """The OpenAPI 3.1 document of every route of `app` that declares a contract (the HTML pages do not);
    explain_methods and the limits are what this server serves."""
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, "contract"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(_path(rule), {})[method.lower()] = _operation(rule, method.lower(), view, max_images,
                                                                          explain_methods)
    limit = max_bytes or settings.BY_NAME["MAX_CONTENT_LENGTH"].default
    return {
        "openapi": "3.1.0",
        "info": {"title": "AlexNet image classification service", "version": "0.1.0",
                 "description": f'Upload a photo, get a label with class probabilities. Errors are JSON {{"error": '
                                f'"..."}}. At most {max_images} images and {limit} bytes per request (400 and 413 '
                                "beyond)."},
        "paths": paths,
        "components": {"schemas": _components(max_images, explain_methods), "securitySchemes": SECURITY_SCHEMES},
    }
