"""Flask application factory for the AlexNet prediction service."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.routing import BaseConverter

import api_keys
from app import config
from app.access import auth
from app.features import explain, logbook
from app.http import errors, multipart, request_id, security
from app.http.decode_budget import DecodeBudget, limit_heaps, return_big_buffers_to_the_os, trim_heaps_every
from app.ops import metrics
from app.serving import model_service
from app.serving.predictor import ModelLoadError

__all__ = ["ModelLoadError", "create_app"]


class ModelNameConverter(BaseConverter):
    """A model name: no '/' and no ':', so GET /v1/models/<name> never matches '<name>:predict'."""

    regex = r"[^/:]+"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: config defaults, then environment, then test_config; load and warm the model."""
    app = Flask(__name__)
    app.url_map.converters["model"] = ModelNameConverter
    try:
        app.config.from_mapping(config.from_env())
    except ValueError as exc:
        raise ModelLoadError(f"bad configuration: {exc}") from exc
    if test_config:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False
    if not app.debug:
        app.logger.setLevel(logging.INFO)

    return_big_buffers_to_the_os()
    # Before the model's and the request threads start: the cap applies to heaps made after it.
    limit_heaps(int(app.config["MALLOC_ARENA_MAX"]))
    if float(app.config["MALLOC_TRIM_SECONDS"]) > 0:
        trim_heaps_every(float(app.config["MALLOC_TRIM_SECONDS"]))
    app.extensions["decode_budget"] = DecodeBudget(float(app.config["DECODE_BUDGET_MEGAPIXELS"]),
                                                   float(app.config["REQUEST_TIMEOUT_SECONDS"]))
    security.init_app(app)
    multipart.init_app(app)
    errors.init_app(app)
    metrics.init_app(app)
    request_id.init_app(app)
    try:
        auth.init_app(app)
    except api_keys.KeysFileError as exc:
        raise ModelLoadError(f"bad configuration: {exc}") from exc
    model_service.init_app(app)
    logbook.init_app(app)
    explain.init_app(app)

    from app.routes import docs, feedback, predict, report, tfserving, ui, v2
    from app.routes import explain as explain_routes

    for module in (predict, feedback, explain_routes, tfserving, v2, ui, report, docs):
        app.register_blueprint(module.bp)
    return app
