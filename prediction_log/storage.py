"""Where a prediction log lives: a local folder or gs://bucket/prefix, behind one small interface.

Layout under the root: `segments/<UTC time>-<host>-<pid>-<random>-<n>.jsonl` (JSON lines, appended while open) and
`images/<sha256[:2]>/<sha256>.<ext>` (captured uploads, stored once). Every name is made by the server:
nothing a client sends becomes part of a path.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from model_store.versions import remote

SEGMENTS = "segments"
IMAGES = "images"


@dataclass(frozen=True)
class Entry:
    """One stored file: its name under the root, size in bytes, and last-modified time (epoch seconds)."""

    name: str
    size: int
    mtime: float


class LocalStorage:
    """A log in a local folder: segments are written in place, so readers see records as they are flushed."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.uri = str(self.root)

    def segment_dir(self) -> Path:
        """Folder the open segment is appended in."""
        path = self.root / SEGMENTS
        path.mkdir(parents=True, exist_ok=True)
        return path

    def finish_segment(self, path: Path) -> None:
        """A closed segment is already in place."""

    def put(self, name: str, data: bytes) -> bool:
        """Store data under name unless it exists (atomic: temp file + rename); True if written."""
        target = self.root / name
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return True

    def entries(self) -> list[Entry]:
        """Every stored file (segments and images)."""
        out = []
        for top in (SEGMENTS, IMAGES):
            for path in (self.root / top).rglob("*") if (self.root / top).is_dir() else ():
                if path.name.startswith("."):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:  # removed by the retention while this listing ran
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append(Entry(path.relative_to(self.root).as_posix(), st.st_size, st.st_mtime))
        return out

    def delete(self, name: str) -> None:
        """Remove one stored file (gone already is fine)."""
        (self.root / name).unlink(missing_ok=True)

    def read(self, name: str) -> bytes:
        """The bytes of one stored file."""
        return (self.root / name).read_bytes()


class GcsStorage:
    """A log in gs://bucket/prefix: the open segment is staged locally and uploaded whole when it closes
    (GCS objects cannot be appended to)."""

    def __init__(self, uri: str, staging: str | os.PathLike | None = None):
        self.uri = uri.rstrip("/")
        self.bucket_name, self.prefix = remote.split_uri(uri)
        self._staging = Path(staging) if staging else None
        self._bucket = None

    def _blob(self, name: str):
        if self._bucket is None:
            self._bucket = remote.storage_client().bucket(self.bucket_name)
        return self._bucket.blob(f"{self.prefix}/{name}" if self.prefix else name)

    def segment_dir(self) -> Path:
        """A private local folder for the open segment."""
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="alexnet-predlog-"))
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging

    def finish_segment(self, path: Path) -> None:
        """Upload a closed segment, then drop the local copy."""
        with remote.gcs_errors(f"cannot upload {path.name} to {self.uri}"):
            self._blob(f"{SEGMENTS}/{path.name}").upload_from_filename(str(path), content_type="application/jsonl")
        path.unlink(missing_ok=True)

    def put(self, name: str, data: bytes) -> bool:
        """Store data under name unless it exists (a generation-0 precondition); True if written."""
        from google.api_core.exceptions import PreconditionFailed

        with remote.gcs_errors(f"cannot write {name} to {self.uri}"):
            try:
                self._blob(name).upload_from_string(data, if_generation_match=0)
            except PreconditionFailed:
                return False
        return True

    def entries(self) -> list[Entry]:
        """Every stored object (segments and images)."""
        base = f"{self.prefix}/" if self.prefix else ""
        out = []
        with remote.gcs_errors(f"cannot list {self.uri}"):
            client = remote.storage_client()
            for top in (SEGMENTS, IMAGES):
                for blob in client.list_blobs(self.bucket_name, prefix=f"{base}{top}/"):
                    updated = blob.updated.timestamp() if blob.updated else 0.0
                    out.append(Entry(blob.name[len(base):], int(blob.size or 0), updated))
        return out

    def delete(self, name: str) -> None:
        """Remove one stored object (gone already is fine)."""
        from google.api_core.exceptions import NotFound

        with remote.gcs_errors(f"cannot delete {name} from {self.uri}"):
            try:
                self._blob(name).delete()
            except NotFound:
                pass

    def read(self, name: str) -> bytes:
        """The bytes of one stored object (FileNotFoundError when it is gone, as for a local log)."""
        from google.api_core.exceptions import NotFound

        with remote.gcs_errors(f"cannot read {name} from {self.uri}"):
            try:
                return self._blob(name).download_as_bytes()
            except NotFound:
                raise FileNotFoundError(f"{self.uri}/{name} is gone") from None

    def close(self) -> None:
        """Remove the local staging folder."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)


def open_storage(uri: str | os.PathLike) -> LocalStorage | GcsStorage:
    """The storage for a log location: gs://bucket/prefix or a local folder."""
    return GcsStorage(str(uri)) if remote.is_remote(str(uri)) else LocalStorage(uri)
