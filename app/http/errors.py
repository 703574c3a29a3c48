"""JSON errors for every failure a client can cause (never an HTML error page)."""

from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error answered to the client as {"error": message} with an HTTP status."""

    def __init__(self, message: str, status: int = 400, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or {}


def _wants_html() -> bool:
    # Only the browser form (no JavaScript) gets an HTML error page; every API gets JSON.
    return request.path == "/" and request.method == "POST"


def _response(message: str, status: int, headers: dict | None = None):
    if _wants_html():
        body = render_template("result.html", results=[], error=message)
        return body, status, headers or {}
    resp = jsonify(error=message)
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _drain_body(cap: int) -> None:
    # Read (and drop) the rest of an upload the answer did not need: closing the socket with unread data
    # makes the kernel reset the connection (the client never sees a 413), and gunicorn drains at most
    # 64 KiB itself before dropping a connection it has just answered as keep-alive (the client's next
    # request on it fails).
    declared = request.content_length
    if declared is not None and declared > cap:
        return
    stream = request.environ.get("wsgi.input")
    drained = 0
    try:
        while stream is not None and drained < cap and (chunk := stream.read(1 << 16)):
            drained += len(chunk)
    except OSError:
        pass  # the client went away: nothing to answer


def handle_api_error(exc: ApiError):
    """Render an ApiError (after reading what is left of the request's upload)."""
    _drain_body(int(current_app.config["MAX_CONTENT_LENGTH"]))
    return _response(exc.message, exc.status, exc.headers)


def handle_http_exception(exc: HTTPException):
    """Render werkzeug's 404/405/413/... as JSON."""
    headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    message = exc.description or exc.name
    if exc.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        message = f"request body too large (limit {limit // (1024 * 1024)} MB)"
        _drain_body(limit * 5)
    return _response(message, exc.code or 500, headers)


def handle_unexpected(exc: Exception):
    """Log a server bug and answer a generic JSON 500 (no traceback to the client)."""
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return _response("internal server error", 500)


def init_app(app: Flask) -> None:
    """Register the JSON error handlers."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
