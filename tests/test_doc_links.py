"""Every relative link in the repository's Markdown points at a file that exists (and a heading that exists)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "node_modules", ".pytest_cache", ".bench", "runs"}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown() -> list[Path]:
    return [p for p in ROOT.rglob("*.md") if not SKIP & set(p.relative_to(ROOT).parts)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def broken_links() -> list[str]:
    """'file: link (why)' for every relative link whose file or heading is missing."""
    bad = []
    for source in _markdown():
        text = re.sub(r"```.*?```", "", source.read_text(encoding="utf-8"), flags=re.S)
        for link in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto: ...
                continue
            path, _, fragment = link.partition("#")
            target = (source.parent / path).resolve() if path else source
            if not target.exists():
                bad.append(f"{source.relative_to(ROOT)}: {link} (no such file)")
            elif fragment and target.suffix == ".md" and fragment not in _anchors(target):
                bad.append(f"{source.relative_to(ROOT)}: {link} (no such heading)")
    return bad


def test_every_relative_link_resolves():
    assert broken_links() == []


def test_the_check_finds_a_broken_link(tmp_path, monkeypatch):
    (tmp_path / "a.md").write_text("# Title\n[ok](#title) [gone](b.md) [no heading](a.md#nope)\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert broken_links() == ["a.md: b.md (no such file)", "a.md: a.md#nope (no such heading)"]
