"""The app's configuration: the declared settings (settings/declared.py) read from the environment."""

from __future__ import annotations

import settings
from model_store.tta import check_mode

DEFAULTS: dict[str, object] = settings.defaults("app")


def from_env(environ: dict | None = None) -> dict:
    """DEFAULTS with every key that is set in the environment replaced (typed and checked)."""
    out = settings.read(environ, "app")
    out["TTA"] = check_mode(str(out["TTA"]))
    return out

