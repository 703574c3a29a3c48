"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.schemathesis_hooks): what no JSON Schema keyword can say."""

import base64
import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image


def _image_bytes(seed: int, size: tuple[int, int], fmt: str) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


# Real, small image files of a few formats and sizes: a schema can only say "string".
IMAGES = st.builds(_image_bytes, st.integers(0, 2**16), st.tuples(st.integers(1, 64), st.integers(1, 64)),
                   st.sampled_from(["JPEG", "PNG", "GIF", "WEBP", "BMP"]))
schemathesis.openapi.format("image-base64", IMAGES.map(lambda b: base64.b64encode(b).decode()))
schemathesis.openapi.format("binary", IMAGES)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """V2 shape must equal the number of data elements, a cross-field rule JSON Schema cannot state:
    valid (positive) cases get shape = [len(data)]; invalid ones are sent as generated."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    for tensor in case.body.get("inputs") or []:
        if (isinstance(tensor, dict) and isinstance(tensor.get("data"), list)
                and isinstance(tensor.get("shape"), list) and len(tensor["shape"]) == 1):
            tensor["shape"] = [len(tensor["data"])]
