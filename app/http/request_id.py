"""X-Request-ID: the client's id when it is a sane token, else a fresh one; echoed on every response."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request

HEADER = "X-Request-ID"
# A client's id is kept only when it is a plain token (it ends up in logs and the prediction log).
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current() -> str:
    """This request's id."""
    rid = g.get("request_id")
    if rid is None:
        given = request.headers.get(HEADER, "")
        rid = g.request_id = given if _SANE.fullmatch(given) else uuid.uuid4().hex
    return rid


def _echo(response):
    response.headers[HEADER] = current()
    return response


def init_app(app: Flask) -> None:
    """Give every response its request id."""
    app.after_request(_echo)
