"""The app's configuration: the declared settings (settings/declared.py) read from the environment."""

from __future__ import annotations

import settings

DEFAULTS: dict[str, object] = settings.defaults("app")


def from_env(environ: dict | None = None) -> dict:
    """DEFAULTS with every key that is set in the environment replaced (typed and checked)."""
    return settings.read(environ, "app")
