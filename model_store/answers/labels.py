"""Class labels as people read them: metadata.json keeps the folder names and adds display names."""

from __future__ import annotations

import re


def display_name(folder: str) -> str:
    """A folder name as a person expects the label: 'dogs' -> 'dog', 'golden_retrievers' -> 'golden retriever'."""
    words = re.sub(r"[_\-]+", " ", folder).strip().split(" ")
    last = words[-1]
    lower = last.lower()
    if len(lower) > 3 and lower.endswith("ies"):
        last = last[:-3] + ("Y" if last[-3].isupper() else "y")
    elif lower.endswith(("ches", "shes", "sses", "xes", "zes")):
        last = last[:-2]
    elif len(lower) > 2 and lower.endswith("s") and not lower.endswith(("ss", "us", "is")):
        last = last[:-1]
    return " ".join([*words[:-1], last]) or folder


def display_names(metadata: dict) -> dict[str, str]:
    """{folder name: display name} for a version: its metadata's display_names, derived for older versions."""
    given = metadata.get("display_names")
    given = given if isinstance(given, dict) else {}
    return {name: str(given.get(name) or display_name(name)) for name in metadata.get("class_names", [])}
