"""`python -m bench.quality.resize_cost`: what the preprocessing resize costs per photo, against OpenCV's.

Each photo is decoded as serving does (DCT draft, integer box reduce) and then resized to 227x227 by
model_store's bilinear, by OpenCV's INTER_LINEAR (when OpenCV is installed: the dev requirements have it) and
by Pillow's antialiased bilinear (other pixels; for scale). The server's allocator settings are applied first,
since without them every temporary array is faulted in again. Prints ms per photo (best of --passes) and how
many outputs equal OpenCV's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from app.http.decode_budget import return_big_buffers_to_the_os
from model_store import IMAGE_SIZE
from model_store.preprocessing import box_reduce, open_image
from model_store.preprocessing.resize import resize_bilinear

SHARED_VAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "cats_dogs" / "validation"


def reduced_photos(folder: Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` photos under folder, decoded and box-reduced as preprocessing does before its resize."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file())[:limit]:
        out.append(np.asarray(box_reduce(open_image(path.read_bytes()).convert("RGB"))))
    return out


def best_ms(fn: Callable[[np.ndarray], np.ndarray], photos: list[np.ndarray], passes: int) -> float:
    """Best mean ms per photo over `passes` passes."""
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for pixels in photos:
            fn(pixels)
        best = min(best, (time.perf_counter() - started) / len(photos) * 1000)
    return best


def main(argv: list[str] | None = None) -> int:
    """Print the per-photo figures; exit 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.quality.resize_cost", description=__doc__)
    parser.add_argument("--images", default=str(SHARED_VAL))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args(argv)
    return_big_buffers_to_the_os()
    photos = reduced_photos(Path(args.images), args.limit)
    ours = {"model_store bilinear": lambda p: resize_bilinear(p, IMAGE_SIZE),
            "Pillow antialiased bilinear": lambda p: np.asarray(
                Image.fromarray(p).resize(IMAGE_SIZE, Image.Resampling.BILINEAR))}
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        cv2.setNumThreads(1)  # serving resizes one photo per request thread
        ours["OpenCV INTER_LINEAR"] = lambda p: cv2.resize(p, IMAGE_SIZE, interpolation=cv2.INTER_LINEAR)
    print(f"{len(photos)} photos from {args.images}, best of {args.passes} passes")
    for name, fn in ours.items():
        print(f"  {name}: {best_ms(fn, photos, args.passes):.3f} ms per photo")
    if cv2 is not None:
        same = sum(np.array_equal(resize_bilinear(p, IMAGE_SIZE), ours["OpenCV INTER_LINEAR"](p)) for p in photos)
        print(f"  model_store bilinear equal to OpenCV on {same} of {len(photos)} photos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
