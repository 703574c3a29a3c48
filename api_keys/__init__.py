"""API keys: the keys file (hashes and scopes, never a key in the clear), checked in constant time.

The file is JSON, `{"name": {"sha256": "<hex sha256 of the key>", "scopes": ["predict", ...]}}`, with optional
per-key limits `max_in_flight` (prediction requests at once) and `feedback_per_minute`. A key is any opaque
string; `python -m api_keys create NAME --scopes ...` makes a random one and prints it once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

# predict: every prediction route (and model metadata); feedback: POST /feedback; curate: feedback trusted as
# training data; operator: /metrics and anything that changes the server's state.
SCOPES = ("predict", "feedback", "curate", "operator")
LIMITS = ("max_in_flight", "feedback_per_minute")
_HEX = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class KeysFileError(ValueError):
    """The keys file is missing, not JSON, or holds an entry that is not a valid key."""


@dataclass(frozen=True)
class Key:
    """One named key: its hash, scopes and limits."""

    name: str
    sha256: str
    scopes: frozenset[str]
    max_in_flight: int | None = None
    feedback_per_minute: float | None = None

    def entry(self) -> dict:
        """The key as the file stores it."""
        out: dict = {"sha256": self.sha256, "scopes": sorted(self.scopes)}
        out.update({k: getattr(self, k) for k in LIMITS if getattr(self, k) is not None})
        return out


def digest(key: str) -> str:
    """The hex sha256 the keys file stores for a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A random key (256 bits, URL-safe)."""
    return "ak_" + secrets.token_urlsafe(32)


def _limit(name: str, field: str, value: object) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise KeysFileError(f"key {name!r}: {field!r} must be a positive number, not {value!r}")
    return value


def parse(entries: object) -> dict[str, Key]:
    """Keys of a keys file's parsed JSON; KeysFileError says what is wrong with it."""
    if not isinstance(entries, dict):
        raise KeysFileError('must be a JSON object {"name": {"sha256": ..., "scopes": [...]}}')
    keys = {}
    for name, entry in entries.items():
        if not _NAME.fullmatch(name):
            raise KeysFileError(f"key name {name!r}: letters, digits and _.@- only (at most 64)")
        if not isinstance(entry, dict):
            raise KeysFileError(f"key {name!r}: must be an object with 'sha256' and 'scopes'")
        unknown = set(entry) - {"sha256", "scopes", *LIMITS}
        if unknown:
            raise KeysFileError(f"key {name!r}: unknown fields {sorted(unknown)}")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _HEX.fullmatch(sha):
            raise KeysFileError(f"key {name!r}: 'sha256' must be 64 lowercase hex digits (the key's hash)")
        scopes = entry.get("scopes")
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
            raise KeysFileError(f"key {name!r}: 'scopes' must be a non-empty list of {', '.join(SCOPES)}")
        bad = sorted(set(scopes) - set(SCOPES))
        if bad:
            raise KeysFileError(f"key {name!r}: unknown scope {bad[0]!r} (known: {', '.join(SCOPES)})")
        keys[name] = Key(name, sha, frozenset(scopes), _limit(name, "max_in_flight", entry.get("max_in_flight")),
                         _limit(name, "feedback_per_minute", entry.get("feedback_per_minute")))
    return keys


def load(path: str | Path) -> dict[str, Key]:
    """The keys of a keys file; KeysFileError (with the path) for a missing, malformed or invalid one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeysFileError(f"API_KEYS_FILE {path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        return parse(json.loads(text))
    except json.JSONDecodeError as exc:
        raise KeysFileError(f"API_KEYS_FILE {path}: not JSON ({exc})") from exc
    except KeysFileError as exc:
        raise KeysFileError(f"API_KEYS_FILE {path}: {exc}") from exc


def save(path: str | Path, keys: dict[str, Key]) -> None:
    """Write the keys file atomically (a server reloading it never reads half a file), owner-only."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".keys-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({name: key.entry() for name, key in sorted(keys.items())}, out, indent=2)
        out.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def match(keys: dict[str, Key], presented: str) -> Key | None:
    """The key whose hash is the presented key's, comparing with every entry in constant time."""
    wanted = digest(presented)
    found = None
    for key in keys.values():
        if hmac.compare_digest(key.sha256, wanted):
            found = key
    return found
