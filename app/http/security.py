"""Security headers on every response, and uploads kept in memory only."""

from __future__ import annotations

import io

from flask import Flask, Request

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class InMemoryRequest(Request):
    """Werkzeug spools big uploads to temp files; keep them in memory (the body is size-capped anyway)."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def _headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def init_app(app: Flask) -> None:
    """Install the request class and the header hook."""
    app.request_class = InMemoryRequest
    app.after_request(_headers)
