"""GET /models/alexnet/<version>/report: the model report (report.html) a version was published with."""

from __future__ import annotations

from flask import Blueprint, Response

import model_store
from app.http.contract.datamodels import api
from app.http.errors import ApiError
from app.serving.classify import check_model
from app.serving.model_service import get_service

bp = Blueprint("report", __name__)
REPORT_FILE = model_store.REPORT_FILE
# The report is self-contained (inline styles, data: images) and runs no script: its own, tighter policy.
REPORT_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")


def _path(version: int):
    service = get_service()
    store = service.local_store
    # Only versions the store lists: the int from the URL is never joined into a path before this check.
    if store is None or version not in model_store.list_versions(store):
        return None
    path = model_store.version_dir(store, version) / REPORT_FILE
    return path if path.is_file() else None


def report_exists(version: int) -> bool:
    """True when this server has the report of `version`."""
    return _path(version) is not None


@bp.get("/models/<model:name>/<int:version>/report")
@api(content={"text/html": {"schema": {"type": "string"}}})
def report(name: str, version: int):
    """The version's report.html (404 when this server has none for it)."""
    check_model(name)
    path = _path(version)
    if path is None:
        raise ApiError(f"no report for version {version} of '{name}' on this server "
                       "(make one with `python -m training report`)", 404)
    return Response(path.read_bytes(), mimetype="text/html", headers={"Content-Security-Policy": REPORT_CSP})
