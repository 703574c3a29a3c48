"""The upload page: GET / (drag-and-drop with JS) and POST / (plain form, HTML result without JS)."""

from __future__ import annotations

import base64
import io

import numpy as np
from flask import Blueprint, current_app, render_template, request, url_for
from PIL import Image

import model_store
from app.access import auth
from app.features import logbook
from app.features.explain import explain_image
from app.http.errors import ApiError
from app.http.inputs import decode_all, images_from_request
from app.routes.report import report_exists
from app.serving.classify import classify, prediction
from app.serving.model_service import get_service

bp = Blueprint("ui", __name__)
LOGGED = ("label", "state", "probabilities", "model_version", "ood_score", "abstained")  # what the log keeps of a card


def _thumbnail(arr: np.ndarray) -> str:
    # Built from the decoded 227x227 array, so no client bytes are ever echoed into the page.
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).resize((160, 160)).save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def neither_text(display: dict[str, str]) -> str:
    """What an abstained card says: "This doesn't look like a cat or a dog" (from the display names)."""
    names = [f"{'an' if n[:1].lower() in 'aeiou' else 'a'} {n}" for n in display.values()]
    joined = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)
    return f"This doesn't look like {joined or 'anything the model knows'}"


@bp.get("/")
def index():
    """The upload form."""
    p = get_service().predictor
    display = p.display_names if p else {}
    report = None
    if p and report_exists(p.version):
        report = url_for("report.report", name=model_store.MODEL_NAME, version=p.version)
    return render_template("index.html", labels=list(display.values()), display=display, neither=neither_text(display),
                           version=p.version if p else None, runtime=p.runtime_name if p else None, report=report,
                           feedback=logbook.get_logbook() is not None,
                           ask_key=auth.keys_on() and "predict" not in current_app.extensions["anonymous_scopes"])


def _result(name: str | None, array: np.ndarray, want_why: bool) -> dict:
    if want_why:
        explained = explain_image(array)
        pred = explained.prediction
        extra = {"overlay": "data:image/png;base64," + base64.b64encode(explained.png()).decode(),
                 "method": explained.method}
    else:
        pred, extra = prediction(classify([array]), 0), {}
    names = get_service().predictor.display_names
    bars = sorted(((names.get(k, k), v) for k, v in pred["probabilities"].items()), key=lambda kv: -kv[1])
    label, detail = card_text(pred, names)
    return {"filename": name, "thumbnail": _thumbnail(array), **pred, **extra, "display_label": label,
            "display_detail": detail, "looks_like_label": names.get(pred["looks_like"], pred["looks_like"]),
            "bars": bars}


def _article(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def card_text(pred: dict, display: dict[str, str]) -> tuple[str, str]:
    """(headline, detail) of a result card, one per state: "Dog" / "99.1%"; "Not sure: looks most like a
    cat" / "(54%)"; "This doesn't look like a cat or a dog" / "(looks most like a cat, 12%)"."""
    looks = display.get(pred["looks_like"], pred["looks_like"])
    pct = f"{pred['confidence']:.0%}"
    if pred["state"] == "neither":
        return neither_text(display), f"(looks most like {_article(looks)}, {pct})"
    if pred["state"] == "not_sure":
        return f"Not sure: looks most like {_article(looks)}", f"({pct})"
    return looks, f"{pred['confidence']:.1%}"


@bp.post("/")
def submit():
    """No-JavaScript path: classify (and, if asked, explain) each uploaded file and render the results page."""
    want_why = request.form.get("explain") == "1"
    results, uploads = [], []
    for name, data in images_from_request():
        try:
            arrays = decode_all([(name, data)])
        except ApiError as exc:
            results.append({"filename": name, "error": exc.message})
            continue
        results.append(_result(name, arrays[0], want_why))
        uploads.append(data)
    answered = [r for r in results if "error" not in r]
    logbook.record([{k: r[k] for k in LOGGED} for r in answered], uploads)
    return render_template("result.html", results=results, error=None)
