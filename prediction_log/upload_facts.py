"""What the log records of an upload besides the answer: its time, header facts and whether it is captured."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from PIL import Image, UnidentifiedImageError

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}


def captured(sha256: str, fraction: float) -> bool:
    """Whether an image is sampled for capture: decided by its hash, so the same photo always is (or is not)."""
    return fraction > 0 and int(sha256[:8], 16) / 0x1_0000_0000 < fraction


def image_facts(data: bytes) -> tuple[int | None, int | None, str]:
    """(width, height, file extension) from the image header alone (no decode); Nones when unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height, _EXTENSIONS.get(img.format or "", "bin")
    except (UnidentifiedImageError, OSError, ValueError):
        return None, None, "bin"


def utc_now() -> str:
    """The current time as the log writes it: ISO 8601, UTC, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
