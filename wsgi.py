"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app` (each worker builds its own app)."""

from __future__ import annotations

import sys

from app import ModelLoadError, create_app

try:
    app = create_app()
except ModelLoadError as exc:
    print(f"alexnet-service: cannot start: {exc}", file=sys.stderr, flush=True)
    # 4 is gunicorn's "app failed to load": the master stops instead of respawning the worker forever.
    sys.exit(4)
