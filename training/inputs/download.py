"""`python -m training download`: fetch and unpack Microsoft's Kaggle Cats and Dogs archive."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import requests
from tqdm import tqdm

log = logging.getLogger(__name__)

DEFAULT_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
    "kagglecatsanddogs_5340.zip"
)
# Archive folder -> class folder name (same names as ../shared/data/cats_dogs uses).
CLASS_FOLDERS = {"Cat": "cats", "Dog": "dogs"}
_MEMBER = re.compile(r"^(?:.*/)?PetImages/(Cat|Dog)/([^/]+)$")


def fetch(url: str, dest_file: Path, timeout: float = 60.0, chunk: int = 1 << 20) -> Path:
    """Stream url to dest_file with a progress bar; a partial download never takes the final name."""
    dest_file.parent.mkdir(parents=True, exist_ok=True)
    part = dest_file.with_suffix(dest_file.suffix + ".part")
    with requests.get(url, stream=True, timeout=timeout) as resp:
        resp.raise_for_status()
        total = int(resp.headers.get("Content-Length", 0)) or None
        with open(part, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True, desc=dest_file.name) as bar:
            for block in resp.iter_content(chunk_size=chunk):
                fh.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size != total:
        raise OSError(f"download truncated: got {part.stat().st_size} of {total} bytes")
    os.replace(part, dest_file)
    return dest_file


def unpack(archive: Path, dest: Path) -> dict[str, int]:
    """Extract PetImages/Cat|Dog files into dest/cats and dest/dogs; returns files per class."""
    counts = dict.fromkeys(CLASS_FOLDERS.values(), 0)
    with zipfile.ZipFile(archive) as zf:
        members = [(m, _MEMBER.match(m.filename)) for m in zf.infolist() if not m.is_dir()]
        for info, match in tqdm([(m, x) for m, x in members if x], unit="file", desc="unpacking"):
            cls, name = CLASS_FOLDERS[match.group(1)], match.group(2)
            # Only the basename is used, so no member can write outside dest (zip-slip).
            target = dest / cls / os.path.basename(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            counts[cls] += 1
    if not any(counts.values()):
        raise ValueError(f"{archive} holds no PetImages/Cat or PetImages/Dog files")
    return counts


def run(args: argparse.Namespace) -> int:
    """Download (unless already there) and unpack into args.dest."""
    dest = Path(args.dest)
    archive = dest / "kagglecatsanddogs.zip"
    if not archive.exists():
        fetch(args.url, archive)
    counts = unpack(archive, dest)
    if not args.keep_archive:
        archive.unlink()
    print(f"unpacked {counts} into {dest} (unreadable files are skipped when training)")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the download command."""
    parser.add_argument("--dest", default="data/cats_dogs", help="folder to unpack into (cats/, dogs/)")
    parser.add_argument("--url", default=os.environ.get("CATS_DOGS_URL", DEFAULT_URL))
    parser.add_argument("--keep-archive", action="store_true")
    parser.set_defaults(func=run)
