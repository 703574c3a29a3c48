"""What the comparison servers share: a bare Flask app that is ready as soon as it is imported."""

from flask import Flask


def bare_app(name: str) -> Flask:
    """A Flask app with only GET /readyz (always 200), for the benchmark's comparison servers."""
    app = Flask(name)
    app.add_url_rule("/readyz", "ready", lambda: "ok")
    return app
