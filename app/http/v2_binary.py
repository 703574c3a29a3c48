"""The Open Inference Protocol's binary tensor data extension (what tritonclient sends and reads)."""

from __future__ import annotations

import struct

import numpy as np

from app.http.errors import ApiError

HEADER = "Inference-Header-Content-Length"


def split_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, binary part) of a request; without the header the whole body is JSON."""
    if header_length is None:
        return raw, b""
    try:
        n = int(header_length)
    except ValueError:
        raise ApiError(f"{HEADER} must be an integer, got {header_length!r}") from None
    if not 0 <= n <= len(raw):
        raise ApiError(f"{HEADER} {n} is outside the body of {len(raw)} bytes")
    return raw[:n], raw[n:]


def take(binary: bytes, size: object, what: str) -> bytes:
    """The first `size` bytes of the binary section (the model has one input), or a 400."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ApiError(f"{what}: binary_data_size must be a non-negative integer")
    if size > len(binary):
        raise ApiError(f"{what}: binary_data_size {size} runs past the end of the body")
    return binary[:size]


def bytes_elements(blob: bytes, what: str) -> list[bytes]:
    """Split a serialized BYTES tensor: each element is a 4-byte little-endian length, then the bytes."""
    out, i = [], 0
    while i < len(blob):
        if i + 4 > len(blob):
            raise ApiError(f"{what}: truncated element length in the binary data")
        (n,) = struct.unpack_from("<I", blob, i)
        if i + 4 + n > len(blob):
            raise ApiError(f"{what}: element of {n} bytes runs past the binary data")
        out.append(blob[i + 4:i + 4 + n])
        i += 4 + n
    return out


def _flag(holder: dict, key: str, what: str) -> bool | None:
    if "parameters" not in holder:
        return None
    params = holder["parameters"]
    if not isinstance(params, dict):
        raise ApiError(f"{what} must be an object")
    value = params.get(key)
    if key in params and not isinstance(value, bool):
        raise ApiError(f"{what}.{key} must be true or false")
    return value


def requested_outputs(body: dict, names: tuple[str, ...]) -> dict[str, bool]:
    """{output name: as binary?} of the outputs a request asks for (every output when it names none; an
    output named twice is answered once, as its last mention asks)."""
    outputs = body.get("outputs", [])
    if not isinstance(outputs, list) or len(outputs) > len(names):
        raise ApiError(f"'outputs' must be a list of at most {len(names)} requested outputs")
    default = bool(_flag(body, "binary_data_output", "parameters"))
    wanted: dict[str, bool] = {}
    for i, out in enumerate(outputs):
        if not isinstance(out, dict) or out.get("name") not in names:
            raise ApiError(f"unknown output {out!r}: this model's outputs are {', '.join(map(repr, names))}")
        flag = _flag(out, "binary_data", f"outputs[{i}].parameters")
        wanted[out["name"]] = default if flag is None else flag
    return wanted or dict.fromkeys(names, default)


def bytes_tensor(values: list[str]) -> bytes:
    """A BYTES tensor in the binary extension's layout: each element a 4-byte little-endian length, then
    its UTF-8 bytes."""
    out = b""
    for value in values:
        raw = value.encode()
        out += len(raw).to_bytes(4, "little") + raw
    return out


def fp32_bytes(array: np.ndarray) -> bytes:
    """Row-major little-endian float32 bytes of a tensor."""
    return np.ascontiguousarray(array, dtype="<f4").tobytes()
