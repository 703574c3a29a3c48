"""Werkzeug's multipart parser without its per-request regex compiles.

Werkzeug's MultipartDecoder compiles two regular expressions for every new boundary (~0.18 ms of the GIL
per upload here), and curl and browsers send a new boundary with every request. `BoundarySearch` finds
the same matches with `bytes.find` plus one pattern compiled once; everything else is Werkzeug's own code.
"""

from __future__ import annotations

import importlib.metadata
import re

from flask import Flask
from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

WRITTEN_FOR = "3.1.9"  # the Werkzeug release whose MultipartDecoder internals this relies on (pinned)

# What follows "--boundary" in Werkzeug's patterns: "--" (the closing boundary) with optional trailing
# horizontal whitespace and line break, or horizontal whitespace then a line break.
_TAIL = re.compile(rb"(--[^\S\n\r]*(?:\r\n|\n|\r)?|[^\S\n\r]*(?:\r\n|\n|\r))")


class BoundaryMatch:
    """The parts of an re.Match Werkzeug's decoder reads: start(), end(), group(1)."""

    __slots__ = ("_start", "_end", "_tail")

    def __init__(self, start: int, end: int, tail: bytes):
        self._start, self._end, self._tail = start, end, tail

    def start(self) -> int:
        """Where the match begins (its leading line break, when there is one)."""
        return self._start

    def end(self) -> int:
        """Where the match ends."""
        return self._end

    def group(self, index: int) -> bytes:
        """Group 1: what follows the boundary."""
        if index != 1:
            raise IndexError(index)
        return self._tail


class BoundarySearch:
    """`re.compile(rb"(LB)?--BOUNDARY(tail)")` (LB required when line_break_required), searched like one."""

    def __init__(self, boundary: bytes, line_break_required: bool):
        self._marker = b"--" + boundary
        self._required = line_break_required

    def search(self, data: bytes | bytearray, pos: int = 0) -> BoundaryMatch | None:
        """The leftmost match at or after pos, as the compiled pattern's search would return it."""
        at = data.find(self._marker, pos)
        while at != -1:
            # The regex's leftmost start: a line break right before the marker belongs to the match.
            if at - 2 >= pos and data[at - 2:at] == b"\r\n":
                start = at - 2
            elif at - 1 >= pos and data[at - 1:at] in (b"\n", b"\r"):
                start = at - 1
            else:
                start = -1 if self._required else at
            tail = _TAIL.match(data, at + len(self._marker)) if start != -1 else None
            if tail is not None:
                return BoundaryMatch(start, tail.end(), tail.group(1))
            at = data.find(self._marker, at + 1)
        return None


class FastMultipartDecoder(MultipartDecoder):
    """MultipartDecoder with BoundarySearch in place of its two per-boundary regexes."""

    def __init__(self, boundary: bytes, max_form_memory_size: int | None = None, *,
                 max_parts: int | None = None):
        # Werkzeug's own set-up with a constant boundary (re's cache makes its compiles free), then the
        # real boundary and the literal searches.
        super().__init__(b"-", max_form_memory_size, max_parts=max_parts)
        self.boundary = boundary
        self.preamble_re = BoundarySearch(boundary, line_break_required=False)
        self.boundary_re = BoundarySearch(boundary, line_break_required=True)


def init_app(app: Flask) -> None:
    """Parse multipart bodies with FastMultipartDecoder (Werkzeug's MultiPartParser looks it up by name),
    when Werkzeug is the version this was written against; else Werkzeug's own parser stays."""
    installed = importlib.metadata.version("werkzeug")
    if installed != WRITTEN_FOR:
        # The decoder's internals (preamble_re, boundary_re) are private: another version may use them
        # differently, so it keeps its own parser and pays for the per-boundary compiles.
        app.logger.warning("Werkzeug %s is not %s: multipart uploads use Werkzeug's own parser", installed,
                           WRITTEN_FOR)
        formparser.MultipartDecoder = MultipartDecoder
        return
    formparser.MultipartDecoder = FastMultipartDecoder
