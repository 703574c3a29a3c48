"""Builders for images of every kind Pillow reads, plus broken ones (used by several test modules)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    """Encode a PIL image to bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(size=(300, 200), mode="RGB") -> Image.Image:
    """A smooth colour gradient image of the given size."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    arr = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
    return Image.fromarray(arr).convert(mode)


def valid_images() -> dict[str, bytes]:
    """Name -> bytes of every supported input kind."""
    rgb = gradient()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise on display
    png16 = Image.fromarray((np.linspace(0, 65535, 200 * 300).reshape(200, 300)).astype(np.uint16))
    gif = [gradient((120, 80)), gradient((120, 80)).rotate(90)]
    gif_buf = io.BytesIO()
    gif[0].save(gif_buf, "GIF", save_all=True, append_images=gif[1:])
    return {
        "jpeg": encode(rgb, "JPEG"),
        "jpeg_grayscale": encode(rgb.convert("L"), "JPEG"),
        "jpeg_cmyk": encode(rgb.convert("CMYK"), "JPEG"),
        "jpeg_exif_rotated": encode(rgb, "JPEG", exif=exif),
        "png": encode(rgb, "PNG"),
        "png_alpha": encode(rgb.convert("RGBA"), "PNG"),
        "png_16bit": encode(png16, "PNG"),
        "png_palette": encode(rgb.convert("P"), "PNG"),
        "gif_animated": gif_buf.getvalue(),
        "webp": encode(rgb, "WEBP"),
        "bmp": encode(rgb, "BMP"),
        "tiny_1x1": encode(gradient((1, 1)), "PNG"),
        "extreme_aspect": encode(gradient((4000, 3)), "PNG"),
    }


def invalid_images() -> dict[str, bytes]:
    """Name -> bytes that must be rejected as not-an-image."""
    jpeg = encode(gradient(), "JPEG")
    return {
        "empty": b"",
        "text": b"this is plainly not an image",
        "truncated_jpeg": jpeg[:200],
        "html": b"<html><body>hi</body></html>",
        "random_bytes": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    }


def bomb_png() -> bytes:
    """A tiny PNG whose header claims more pixels than the pixel limit allows."""
    return encode(Image.new("1", (10_000, 10_000)), "PNG")
