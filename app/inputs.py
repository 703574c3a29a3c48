"""Turn a request into (name, image bytes) pairs and decode them with the shared preprocessing."""

from __future__ import annotations

import base64
import binascii

import numpy as np
from flask import current_app, request

from app.errors import ApiError
from model_store import InvalidImageError, preprocess_image


def b64decode(text: object, what: str) -> bytes:
    """Strict base64 (standard or URL-safe, optional data: URL prefix) -> bytes, or a 400."""
    if not isinstance(text, str) or not text:
        raise ApiError(f"{what} must be a non-empty base64 string")
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    text = "".join(text.split())
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(f"{what} is not valid base64: {exc}") from exc


def json_object(hint: str) -> dict:
    """The request body as a JSON object, or a 400 showing the expected shape."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(f"body must be a JSON object like {hint}")
    return body


def check_count(n: int) -> None:
    """400 for zero images or more than MAX_IMAGES_PER_REQUEST."""
    limit = int(current_app.config["MAX_IMAGES_PER_REQUEST"])
    if n == 0:
        raise ApiError("no image: send a multipart field 'image', a raw image/* body, or JSON {\"image\": base64}")
    if n > limit:
        raise ApiError(f"too many images in one request: {n} (limit {limit})")


def images_from_request() -> list[tuple[str | None, bytes]]:
    """(filename, bytes) for every image in a /predict request, whatever the encoding."""
    ctype = (request.mimetype or "").lower()
    if ctype == "multipart/form-data":
        files = [f for f in request.files.getlist("image")]
        if not files and request.files:
            raise ApiError(f"multipart field must be named 'image' (got {sorted(request.files)})")
        items = [(f.filename or None, f.read()) for f in files]
    elif ctype.startswith("image/"):
        items = [(None, request.get_data(cache=False))]
    elif ctype == "application/json":
        body = json_object('{"image": "<base64>"}')
        raw = body.get("image", body.get("images"))
        raw = raw if isinstance(raw, list) else [raw] if raw is not None else []
        items = [(None, b64decode(value, "image")) for value in raw]
    elif not request.content_length and not ctype:
        items = []
    else:
        raise ApiError(f"unsupported Content-Type {ctype or 'none'}: use multipart/form-data, image/*, "
                       "or application/json", 415)
    check_count(len(items))
    return items


def decode_all(items: list[tuple[str | None, bytes]]) -> list[np.ndarray]:
    """Preprocess every image; the first bad one is a 400 naming it."""
    arrays = []
    for i, (name, data) in enumerate(items):
        label = f"'{name}'" if name else f"image {i + 1}"
        if not data:
            raise ApiError(f"{label} is empty")
        try:
            # uint8 (exact 0-255 pixels): a quarter of the bytes to queue and stack; the model casts.
            arrays.append(preprocess_image(data, np.uint8))
        except InvalidImageError as exc:
            raise ApiError(f"{label}: {exc}") from exc
    return arrays
