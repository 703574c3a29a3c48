"""The trust boundary: API keys with scopes (API_KEYS_FILE), a fair share of the prediction slots per client,
and the client's name for the prediction log and the metrics.

Keys off (no API_KEYS_FILE): every route is open, as for a local demo, and clients are their addresses.
Keys on: each route needs its scope (ROUTE_SCOPES; a route not listed needs `operator`), probes stay open,
and requests without a key get ANONYMOUS_SCOPES (none by default).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

from flask import Flask, current_app, g, request

import api_keys
from app.access.fair_share import FairShare, RateLimit
from app.http.errors import ApiError
from app.ops import metrics

log = logging.getLogger(__name__)

OPEN = frozenset({"predict.healthz", "predict.readyz", "v2.live", "v2.ready", "v2.server_metadata",
                  "v2.model_ready", "docs.openapi", "docs.docs", "ui.index", "static"})
ROUTE_SCOPES = {
    "predict.predict": "predict", "explain.explain_route": "predict", "ui.submit": "predict",
    "tfserving.predict": "predict", "tfserving.status": "predict", "tfserving.metadata": "predict",
    "v2.infer": "predict", "v2.explain_v2": "predict", "v2.model_metadata": "predict",
    "report.report": "predict", "feedback.feedback": "feedback", "metrics": "operator",
}
# Routes whose requests run the model: they take a fair-share slot.
MODEL_ROUTES = frozenset({"predict.predict", "explain.explain_route", "ui.submit", "tfserving.predict",
                          "v2.infer", "v2.explain_v2"})
ANONYMOUS = "anonymous"


class Keys:
    """The keys file, reloaded when it changes (at most every `every` seconds); a bad reload keeps the last
    good keys."""

    def __init__(self, path: str, every: float):
        self.path, self.every = path, every
        self.keys = api_keys.load(path)  # a bad file stops the server at start
        self._stamp = self._stat()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> dict[str, api_keys.Key]:
        """The keys now (re-reading the file when its time or size changed)."""
        now = time.monotonic()
        if now - self._checked >= self.every and self._lock.acquire(blocking=False):
            try:
                self._checked = now
                stamp = self._stat()
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self.keys = api_keys.load(self.path)
                        log.info("API keys reloaded from %s: %d keys", self.path, len(self.keys))
                        metrics.count_keys_reload("ok")
                    except api_keys.KeysFileError as exc:
                        log.error("API keys not reloaded, the last good keys stay: %s", exc)
                        metrics.count_keys_reload("error")
            finally:
                self._lock.release()
        return self.keys


def presented_key() -> str | None:
    """The key a request carries: `Authorization: Bearer KEY`, `X-API-Key`, or the page form's `api_key`."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    if request.headers.get("X-API-Key"):
        return request.headers["X-API-Key"].strip()
    if request.endpoint == "ui.submit" and request.method == "POST":
        return request.form.get("api_key") or None  # the page without JavaScript
    return None


def _unauthorized(message: str) -> ApiError:
    return ApiError(message, 401, {"WWW-Authenticate": 'Bearer realm="alexnet", error="invalid_token"'})


def _check() -> None:
    endpoint = request.endpoint
    g.api_key = None
    keys = current_app.extensions.get("api_keys")
    if keys is not None and endpoint not in OPEN and endpoint is not None:
        scope = ROUTE_SCOPES.get(endpoint, "operator")
        presented = presented_key()
        if presented is None:
            if scope not in current_app.extensions["anonymous_scopes"]:
                metrics.count_client(ANONYMOUS, "unauthorized")
                raise _unauthorized(f"this route needs an API key with the {scope!r} scope: send "
                                    "'Authorization: Bearer KEY' (or 'X-API-Key: KEY')")
        else:
            key = api_keys.match(keys.current(), presented)
            if key is None:
                metrics.count_client(ANONYMOUS, "unauthorized")
                raise _unauthorized("unknown API key")
            if scope not in key.scopes:
                metrics.count_client(key.name, "forbidden")
                raise ApiError(f"API key {key.name!r} lacks the {scope!r} scope this route needs", 403)
            g.api_key = key
    g.client = g.api_key.name if g.api_key else f"addr:{request.remote_addr}"
    if endpoint in MODEL_ROUTES:
        share: FairShare = current_app.extensions["fair_share"]
        limit = g.api_key.max_in_flight if g.api_key else None
        if not share.admit(g.client, limit):
            metrics.count_client(client_label(), "throttled")
            raise ApiError("too many requests from this client while the server is busy: retry after "
                           "Retry-After seconds, or send fewer at once", 429, {"Retry-After": "1"})
        g.fair_slot = g.client
    if keys is not None:
        metrics.count_client(client_label(), "accepted")


def _release(_exc) -> None:
    client = g.pop("fair_slot", None)
    if client is not None:
        current_app.extensions["fair_share"].release(client)


def client_label() -> str:
    """The client's name for logs and metrics: the key's name, else "anonymous" (never a key)."""
    key = g.get("api_key")
    return key.name if key is not None else ANONYMOUS


def keys_on() -> bool:
    """Whether this server checks API keys."""
    return current_app.extensions.get("api_keys") is not None


def trusted_feedback() -> bool:
    """Whether this request's feedback is training data as it is (keys off, or a `curate` key)."""
    key = g.get("api_key")
    return not keys_on() or (key is not None and "curate" in key.scopes)


def limit_feedback() -> None:
    """429 when this client posted more feedback than its rate (only with keys on)."""
    if not keys_on():
        return
    key = g.get("api_key")
    wait = current_app.extensions["feedback_rate"].take(g.client, key.feedback_per_minute if key else None)
    if wait > 0:
        metrics.count_client(client_label(), "throttled")
        raise ApiError("too much feedback from this client: retry later", 429,
                       {"Retry-After": str(max(1, math.ceil(wait)))})


def init_app(app: Flask) -> None:
    """Load the keys file (a bad one stops the server), start the fair share, install the checks."""
    path = app.config.get("API_KEYS_FILE")
    app.extensions["api_keys"] = Keys(str(path), float(app.config["API_KEYS_RELOAD_SECONDS"])) if path else None
    anonymous = {s.strip() for s in str(app.config.get("ANONYMOUS_SCOPES") or "").split(",") if s.strip()}
    bad = sorted(anonymous - set(api_keys.SCOPES))
    if bad:
        known = ", ".join(api_keys.SCOPES)
        raise api_keys.KeysFileError(f"ANONYMOUS_SCOPES: unknown scope {bad[0]!r} (known: {known})")
    app.extensions["anonymous_scopes"] = frozenset(anonymous)
    app.extensions["fair_share"] = FairShare(int(app.config["FAIR_SHARE_SLOTS"]))
    app.extensions["feedback_rate"] = RateLimit(float(app.config["FEEDBACK_PER_MINUTE"]))
    app.before_request(_check)
    app.teardown_request(_release)
    if path:
        app.logger.info("API keys on: %d keys from %s", len(app.extensions["api_keys"].keys), path)
