"""Turn a request into (name, image bytes) pairs and decode them with the shared preprocessing."""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np
from flask import current_app, request

from app.http.decode_budget import BudgetTimeoutError
from app.http.errors import ApiError
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


NO_IMAGE = ("send an image: multipart field 'image' (curl -F image=@photo.jpg), a raw image/* body, "
            "or JSON {\"image\": base64}")


def parse_json(raw: bytes) -> object:
    """The bytes parsed as JSON, or None when they are not valid UTF-8 JSON."""
    try:
        return json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None


def json_object(hint: str, raw: bytes | None = None) -> dict:
    """The body as a JSON object whatever its Content-Type (curl -d sends form-urlencoded), or a 400."""
    body = parse_json(request.get_data(cache=True) if raw is None else raw)
    if not isinstance(body, dict):
        raise ApiError(f"body must be a JSON object like {hint}")
    return body


def check_count(n: int) -> None:
    """400 for zero images or more than MAX_IMAGES_PER_REQUEST."""
    limit = int(current_app.config["MAX_IMAGES_PER_REQUEST"])
    if n == 0:
        raise ApiError(f"no image: {NO_IMAGE}")
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
    else:
        data = request.get_data(cache=False)
        if not data:
            raise ApiError(NO_IMAGE)
        body = parse_json(data)
        # Any Content-Type (or none) whose body is JSON with "image"/"images" is a JSON request.
        if isinstance(body, dict) and ("image" in body or "images" in body):
            raw = body.get("image", body.get("images"))
            raw = raw if isinstance(raw, list) else [raw]
            items = [(None, b64decode(value, "image")) for value in raw]
        elif ctype == "application/json" or body is not None:
            raise ApiError('JSON body must be an object like {"image": "<base64>"} or {"images": [...]}')
        else:
            raise ApiError(f"unsupported Content-Type {ctype or 'none'}: use multipart/form-data, image/*, "
                           "or application/json", 415)
    check_count(len(items))
    return items


def decode_all(items: list[tuple[str | None, bytes]]) -> list[np.ndarray]:
    """Preprocess every image within the app's decode memory budget; the first bad one is a 400 naming it."""
    budget = current_app.extensions["decode_budget"]
    arrays = []
    for i, (name, data) in enumerate(items):
        label = f"'{name}'" if name else f"image {i + 1}"
        if not data:
            raise ApiError(f"{label} is empty")
        try:
            # uint8 (exact 0-255 pixels): a quarter of the bytes to queue and stack; the model casts.
            arrays.append(preprocess_image(data, np.uint8, budget=budget.hold))
        except InvalidImageError as exc:
            raise ApiError(f"{label}: {exc}") from exc
        except BudgetTimeoutError as exc:
            raise ApiError(f"server busy decoding other uploads: {exc}", 503, {"Retry-After": "1"}) from exc
    return arrays
